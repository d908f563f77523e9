//! OSC 1.0 over UDP: the show-control way in.
//!
//! QLab, TouchDesigner and Bitfocus Companion speak OSC, not HTTP/JSON, so this
//! module turns OSC messages into the same cue JSON the HTTP API takes. It only
//! checks what JSON cannot say (argument count and types); the caller's cue parser
//! validates values, so every way in rejects a bad cue with the same field-named
//! error. The packet parser is written by hand: the format is small, and it keeps
//! the daemon free of another dependency.
//!
//! Address map, under a prefix such as `/cuecast` (OSC arguments are positional, so
//! each address fixes the order of the cue's fields; `[x]` is optional):
//!
//! | address | arguments |
//! |---|---|
//! | `/prompt` | text \[transition_s\] |
//! | `/action` | forward strafe rise yaw pitch \[duration_s\] |
//! | `/action/<axis>` | value (one axis: forward, strafe, rise, yaw or pitch) |
//! | `/param` | name value \[ramp_s\] |
//! | `/param/<name>` | value \[ramp_s\] |
//! | `/scene` | name \[transition\] \[transition_s\] |
//! | `/scene/<name>`, `/freeze`, `/resume`, `/go`, `/back` | none (or a button value) |
//! | `/seed` | value (whole number >= 0) |
//! | `/marker` | \[label\] |
//! | `/fade` | to \[duration_s\] |
//! | `/fade/black`, `/fade/program` | \[duration_s\] |
//! | `/input/keys` | \[key ...\]: the W3C `KeyboardEvent.code` names held from now on (none: release all) |
//! | `/input/mouse` | dx dy \[button ...\]: pixels moved (right, down positive); buttons given (left, middle, right) are then exactly those held |
//! | `/image` | name (a PNG or JPEG file in the show's media folder) |
//! | `/cue` | a JSON string: any cue or array of cues, passed through (e.g. `camera_path`) |
//! | an alias key, e.g. `/dawn` | none (or a button value): the show preset's JSON |
//!
//! Any number type is accepted where a number is expected, and Nil where an
//! optional argument may be skipped (`/scene intro N 2`); the `...` lists take any
//! number of strings (Nil is not one). A message becomes an [`OscCommand`]: cues, or a
//! rundown step (`/go`, `/back`). A button release (0 or false sent to an address that
//! takes none, because Companion and TouchDesigner buttons send 1 on press and 0 on
//! release) is no command at all; [`OscListener`] never passes it on.

use std::collections::BTreeMap;
use std::fmt;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

mod codec;
mod listener;

#[allow(unused_imports)]
use codec::fail;
pub use codec::*;
pub use listener::*;

use cuecast_engine::cue::ACTION_AXES as AXES;

/// One positional argument of an address: the cue field it fills and what it takes.
enum Slot<'a> {
    Text(&'a str),
    Num(&'a str),
    OptText(&'a str),
    OptNum(&'a str),
    /// `seed`'s value: a whole number >= 0.
    Seed,
    /// The rest of the arguments, each a string, as an array (`[]` when there are none).
    Texts(&'a str),
    /// The rest of the arguments, each a string, as an array; left out when there are none.
    OptTexts(&'a str),
    /// On or off: `T`/`F`, or a number (0 is off), as faders and buttons send.
    Flag(&'a str),
}

impl Slot<'_> {
    /// Whether the slot takes every argument left (so it comes last).
    fn takes_the_rest(&self) -> bool {
        matches!(self, Slot::Texts(_) | Slot::OptTexts(_))
    }
}

/// What one OSC message asks of the show.
#[derive(Debug, Clone, PartialEq)]
pub enum OscCommand {
    /// Cue JSON (one cue or a list), read by the cue language as any other.
    Cues(Value),
    /// GO: fire the rundown's next group.
    Go,
    /// BACK: fire the group before the current one again.
    Back,
}

/// Maps one message to what it asks (see the module doc for the address map); `None`
/// for a button release. Aliases are looked up first, so a show preset may take over
/// any address, `/go` and `/back` included.
pub fn to_command(
    msg: &OscMessage,
    prefix: &str,
    aliases: &BTreeMap<String, Value>,
) -> Result<Option<OscCommand>, OscError> {
    use Slot::*;
    let addr = msg.address.as_str();
    let prefix = prefix.trim_end_matches('/');
    let Some(rest) = addr.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
        return fail(format!("address {addr} is not under {prefix}"));
    };
    let a = Args {
        addr,
        args: &msg.args,
    };
    if let Some(cue) = aliases.get(rest) {
        let pressed = a.pressed()?;
        return Ok(pressed.then(|| OscCommand::Cues(cue.clone())));
    }
    let (head, tail) = match rest[1..].split_once('/') {
        Some((head, tail)) => (head, Some(tail)),
        None => (&rest[1..], None),
    };
    if (head, tail) == ("cue", None) {
        a.at_most(1)?;
        let text = a.text(0, "json")?;
        return serde_json::from_str(&text)
            .map(|cue| Some(OscCommand::Cues(cue)))
            .or_else(|e| fail(format!("{addr}: argument 1 (json) is not valid JSON: {e}")));
    }
    let Some((fixed, slots)) = form(head, tail) else {
        return fail(format!(
            "{addr}: unknown address (expected {prefix}/ then prompt, action, param, \
             scene, seed, marker, freeze, resume, fade, input/keys, input/mouse, image, \
             cue, go, back or an alias)"
        ));
    };
    if slots.is_empty() {
        if !a.pressed()? {
            return Ok(None);
        }
        match head {
            "go" => return Ok(Some(OscCommand::Go)),
            "back" => return Ok(Some(OscCommand::Back)),
            _ => {}
        }
    } else if !slots.iter().any(Slot::takes_the_rest) {
        a.at_most(slots.len())?;
    }
    let mut cue = Map::new();
    cue.insert("type".into(), head.into());
    if let Some((name, value)) = fixed {
        cue.insert(name.into(), value.into());
    }
    for (i, slot) in slots.into_iter().enumerate() {
        let (name, value) = match slot {
            Text(name) => (name, Some(a.text(i, name)?.into())),
            Num(name) => (name, Some(a.number(i, name)?)),
            OptText(name) => (name, a.opt_text(i, name)?.map(Value::from)),
            OptNum(name) => (name, a.opt_number(i, name)?),
            Seed => ("value", Some(a.seed(i)?)),
            Flag(name) => (name, Some(a.flag(i, name)?)),
            Texts(name) => (name, Some(a.texts(i, name)?.into())),
            OptTexts(name) => {
                let texts = a.texts(i, name)?;
                (name, (!texts.is_empty()).then(|| texts.into()))
            }
        };
        // Optional fields not given are left out: the cue parser's defaults apply.
        if let Some(value) = value {
            put(&mut cue, name, value);
        }
    }
    Ok(Some(OscCommand::Cues(Value::Object(cue))))
}

/// Sets the field at `path` in `cue`; a dotted path (`mouse.dx`) names a field of a
/// nested object, made when first needed.
fn put(cue: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        Some((outer, rest)) => {
            let inner = cue
                .entry(outer)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                put(inner, rest, value);
            }
        }
        None => {
            cue.insert(path.into(), value);
        }
    }
}

/// What an address form (`/head` or `/head/tail`) fixes and the arguments it takes in
/// order: the one place the OSC map is written. The cue type is always `head`; some
/// forms carry one field in the address (`/param/fog`). A slot's name is the field it
/// fills, dotted for a field of a nested object (`mouse.dx`). `None`: no such form
/// (`/cue` and aliases are handled before).
type Form<'a> = (Option<(&'static str, &'a str)>, Vec<Slot<'a>>);

fn form<'a>(head: &str, tail: Option<&'a str>) -> Option<Form<'a>> {
    use Slot::*;
    let form: Form<'a> = match (head, tail) {
        ("prompt", None) => (None, vec![Text("text"), OptNum("transition_s")]),
        ("action", None) => {
            let axes = AXES.map(Num).into_iter();
            (None, axes.chain([OptNum("duration_s")]).collect())
        }
        ("action", Some(axis)) if AXES.contains(&axis) => (None, vec![Num(axis)]),
        ("param", None) => (None, vec![Text("name"), Num("value"), OptNum("ramp_s")]),
        ("param", Some(name)) => (Some(("name", name)), vec![Num("value"), OptNum("ramp_s")]),
        ("scene", None) => (
            None,
            vec![Text("name"), OptText("transition"), OptNum("transition_s")],
        ),
        ("scene", Some(name)) => (Some(("name", name)), vec![]),
        ("seed", None) => (None, vec![Seed]),
        ("marker", None) => (Some(("label", "marker")), vec![OptText("label")]),
        ("freeze" | "resume" | "go" | "back", None) => (None, vec![]),
        ("fade", None) => (None, vec![Text("to"), OptNum("duration_s")]),
        ("fade", Some(to @ ("black" | "program"))) => {
            (Some(("to", to)), vec![OptNum("duration_s")])
        }
        ("input", Some("keys")) => (None, vec![Texts("keys")]),
        ("input", Some("mouse")) => (
            None,
            vec![Num("mouse.dx"), Num("mouse.dy"), OptTexts("mouse.buttons")],
        ),
        ("image", None) => (None, vec![Text("name")]),
        ("audio", Some("gain_db")) => {
            (None, vec![Text("source"), Num("gain_db"), OptNum("ramp_s")])
        }
        ("audio", Some("mute")) => (None, vec![Text("source"), Flag("mute"), OptNum("ramp_s")]),
        _ => return None,
    };
    Some(form)
}

/// A message's arguments, read by position; errors name the address, the position
/// (1-based, as OSC tools show them) and the cue field.
struct Args<'a> {
    addr: &'a str,
    args: &'a [OscArg],
}

impl Args<'_> {
    fn bad<T>(&self, i: usize, name: &str, what: &str) -> Result<T, OscError> {
        fail(format!("{}: argument {} ({name}) {what}", self.addr, i + 1))
    }

    fn at_most(&self, n: usize) -> Result<(), OscError> {
        match self.args.len() {
            len if len > n => fail(format!(
                "{}: too many arguments (expected at most {n}, got {len})",
                self.addr
            )),
            _ => Ok(()),
        }
    }

    /// Nil counts as left out, so a sender can skip an optional argument.
    fn given(&self, i: usize) -> Option<&OscArg> {
        self.args.get(i).filter(|a| **a != OscArg::Nil)
    }

    fn opt_number(&self, i: usize, name: &str) -> Result<Option<Value>, OscError> {
        let x = match self.given(i) {
            None => return Ok(None),
            Some(OscArg::Int(v)) => f64::from(*v),
            Some(OscArg::Long(v)) => *v as f64,
            Some(OscArg::Double(v)) => *v,
            // Via the shortest decimal: plain widening turns 0.1 into 0.10000000149.
            Some(OscArg::Float(v)) => v.to_string().parse().unwrap_or(f64::from(*v)),
            Some(_) => return self.bad(i, name, "must be a number"),
        };
        match serde_json::Number::from_f64(x) {
            Some(n) => Ok(Some(Value::Number(n))),
            None => self.bad(i, name, "must be a finite number"),
        }
    }

    fn number(&self, i: usize, name: &str) -> Result<Value, OscError> {
        match self.opt_number(i, name)? {
            Some(v) => Ok(v),
            None => self.bad(i, name, "is missing (expected a number)"),
        }
    }

    fn opt_text(&self, i: usize, name: &str) -> Result<Option<String>, OscError> {
        match self.given(i) {
            None => Ok(None),
            Some(OscArg::Str(s)) => Ok(Some(s.clone())),
            Some(_) => self.bad(i, name, "must be a string"),
        }
    }

    fn text(&self, i: usize, name: &str) -> Result<String, OscError> {
        match self.opt_text(i, name)? {
            Some(s) => Ok(s),
            None => self.bad(i, name, "is missing (expected a string)"),
        }
    }

    /// Every argument from `i` on, each a string.
    fn texts(&self, i: usize, name: &str) -> Result<Vec<String>, OscError> {
        let rest = self.args.get(i..).unwrap_or_default();
        rest.iter()
            .enumerate()
            .map(|(j, arg)| match arg {
                OscArg::Str(s) => Ok(s.clone()),
                _ => self.bad(i + j, name, "must be a string"),
            })
            .collect()
    }

    fn flag(&self, i: usize, name: &str) -> Result<Value, OscError> {
        match self.given(i) {
            Some(OscArg::Bool(b)) => Ok((*b).into()),
            Some(OscArg::Int(v)) => Ok((*v != 0).into()),
            Some(OscArg::Long(v)) => Ok((*v != 0).into()),
            Some(OscArg::Float(v)) => Ok((*v != 0.0).into()),
            Some(OscArg::Double(v)) => Ok((*v != 0.0).into()),
            None => self.bad(i, name, "is missing (expected on or off: T, F or a number)"),
            Some(_) => self.bad(i, name, "must be T, F or a number"),
        }
    }

    fn seed(&self, i: usize) -> Result<Value, OscError> {
        let whole =
            |x: f64| (x >= 0.0 && x.fract() == 0.0 && x < u64::MAX as f64).then_some(x as u64);
        let n = match self.given(i) {
            None => return self.bad(i, "value", "is missing (expected a whole number >= 0)"),
            Some(OscArg::Int(v)) => u64::try_from(*v).ok(),
            Some(OscArg::Long(v)) => u64::try_from(*v).ok(),
            Some(OscArg::Float(v)) => whole(f64::from(*v)),
            Some(OscArg::Double(v)) => whole(*v),
            Some(_) => None,
        };
        match n {
            Some(n) => Ok(n.into()),
            None => self.bad(i, "value", "must be a whole number >= 0"),
        }
    }

    /// For addresses that take no arguments: buttons send 1 on press and 0 on
    /// release, so one such value is accepted, and a release gives no cue.
    fn pressed(&self) -> Result<bool, OscError> {
        match self.args {
            [] | [OscArg::Nil] => Ok(true),
            [OscArg::Int(v)] => Ok(*v != 0),
            [OscArg::Long(v)] => Ok(*v != 0),
            [OscArg::Float(v)] => Ok(*v != 0.0),
            [OscArg::Double(v)] => Ok(*v != 0.0),
            [OscArg::Bool(b)] => Ok(*b),
            [_] => self.bad(0, "button", "must be a number or boolean, or left out"),
            _ => self.at_most(1).map(|()| true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;
    use OscArg::*;

    fn msg(address: &str, args: Vec<OscArg>) -> OscMessage {
        OscMessage {
            address: address.into(),
            args,
        }
    }

    fn s(text: &str) -> OscArg {
        Str(text.into())
    }

    fn bundle(elements: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"#bundle\0\0\0\0\0\0\0\0\x01".to_vec();
        for e in elements {
            out.extend_from_slice(&(e.len() as i32).to_be_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    fn parse_err(bytes: &[u8]) -> String {
        parse_packet(bytes)
            .expect_err("packet should be rejected")
            .0
    }

    fn command_of(address: &str, args: Vec<OscArg>) -> Result<Option<OscCommand>, String> {
        let aliases = BTreeMap::from([("/dawn".into(), json!([{"type": "prompt", "text": "d"}]))]);
        to_command(&msg(address, args), "/cuecast", &aliases).map_err(|e| e.0)
    }

    /// The cue JSON a message makes (`null` for a release).
    fn cue_of(address: &str, args: Vec<OscArg>) -> Result<Value, String> {
        command_of(address, args).map(|c| match c {
            None => Value::Null,
            Some(OscCommand::Cues(cue)) => cue,
            Some(step) => panic!("{address} is {step:?}, not cues"),
        })
    }

    #[test]
    fn round_trips_every_tag() {
        let mut args = vec![Int(-7), Float(1.5), Bool(true), Bool(false)];
        args.extend([Double(-2.5), Long(1 << 40), Nil]);
        args.extend(["", "a", "abc", "abcd", "abcde"].map(s));
        let msgs = [
            msg("/x", args),
            msg("/abc", vec![]),
            msg("/abcd", vec![Int(1)]),
        ];
        for m in msgs {
            assert_eq!(parse_packet(&encode_message(&m)), Ok(vec![m]));
        }
        // Symbols read as strings; a missing type tag string means no arguments.
        let mut bytes = encode_message(&msg("/a", vec![s("sym")]));
        bytes[5] = b'S';
        assert_eq!(parse_packet(&bytes), Ok(vec![msg("/a", vec![s("sym")])]));
        assert_eq!(parse_packet(b"/old\0\0\0\0"), Ok(vec![msg("/old", vec![])]));
    }

    #[test]
    fn bundles_are_flattened_in_order() {
        let a = msg("/a", vec![Int(1)]);
        let b = msg("/b", vec![]);
        let c = msg("/c", vec![s("x")]);
        let inner = bundle(&[encode_message(&b)]);
        let outer = bundle(&[encode_message(&a), inner, encode_message(&c)]);
        assert_eq!(parse_packet(&outer), Ok(vec![a, b, c]));
    }

    #[test]
    fn malformed_packets_say_what_is_wrong() {
        let good = encode_message(&msg("/a", vec![Int(1), Double(2.0)]));
        let mut big = bundle(&[encode_message(&msg("/a", vec![]))]);
        big[19] = 40;
        let deep = (0..10).fold(encode_message(&msg("/a", vec![])), |m, _| bundle(&[m]));
        #[rustfmt::skip]
        let cases: [(&[u8], &str); 11] = [
            (
                &good[..good.len() - 4],
                "/a: truncated argument 2 ('d'): needs 8 bytes, 4 left",
            ),
            (&good[..good.len() - 1], "packet size 19 is not a multiple of 4"),
            (b"", "empty packet"),
            (b"/abc", "address is not NUL-terminated"),
            (b"/a\0x,\0\0\0", "address padding must be NUL bytes"),
            (
                b"/a\0\0i\0\0\0\0\0\0\x01",
                "/a: type tags must start with ','",
            ),
            (
                b"/a\0\0,b\0\0\0\0\0\x01\0\0\0\0",
                "/a: argument 1 ('b'): blobs are not supported",
            ),
            (
                b"/a\0\0,\0\0\0\0\0\0\x01",
                "/a: 4 bytes after the arguments",
            ),
            (b"a\0\0\0", "address \"a\" must start with '/'"),
            (&big, "truncated bundle element: needs 40 bytes, 8 left"),
            (&deep, "bundles nested deeper than 8"),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_err(bytes), want);
        }
    }

    #[test]
    fn every_address_form_maps_to_its_cue() {
        let axes = vec![
            Float(1.0),
            Int(0),
            Double(0.5),
            Float(-0.1),
            Long(0),
            Float(2.0),
        ];
        let path = s(r#"[{"type": "camera_path", "points": []}]"#);
        #[rustfmt::skip]
        let cases = [
            ("/prompt", vec![s("hills")], json!({"type": "prompt", "text": "hills"})),
            ("/prompt", vec![s("dusk"), Int(3)],
             json!({"type": "prompt", "text": "dusk", "transition_s": 3.0})),
            ("/action", axes, json!({"type": "action", "forward": 1.0, "strafe": 0.0, "rise": 0.5,
                                     "yaw": -0.1, "pitch": 0.0, "duration_s": 2.0})),
            ("/action/yaw", vec![Float(0.25)], json!({"type": "action", "yaw": 0.25})),
            ("/param/fog", vec![Float(0.5), Int(2)],
             json!({"type": "param", "name": "fog", "value": 0.5, "ramp_s": 2.0})),
            ("/param", vec![s("fog"), Int(1)],
             json!({"type": "param", "name": "fog", "value": 1.0})),
            ("/scene", vec![s("intro"), s("fade"), Float(2.0)],
             json!({"type": "scene", "name": "intro", "transition": "fade", "transition_s": 2.0})),
            ("/scene", vec![s("intro"), Nil, Int(2)],
             json!({"type": "scene", "name": "intro", "transition_s": 2.0})),
            ("/scene/intro", vec![], json!({"type": "scene", "name": "intro"})),
            ("/seed", vec![Int(42)], json!({"type": "seed", "value": 42})),
            ("/seed", vec![Float(7.0)], json!({"type": "seed", "value": 7})),
            ("/marker", vec![s("take 1")], json!({"type": "marker", "label": "take 1"})),
            ("/marker", vec![], json!({"type": "marker", "label": "marker"})),
            ("/freeze", vec![], json!({"type": "freeze"})),
            ("/resume", vec![Int(1)], json!({"type": "resume"})),
            ("/fade", vec![s("black"), Float(0.5)],
             json!({"type": "fade", "to": "black", "duration_s": 0.5})),
            ("/fade/program", vec![], json!({"type": "fade", "to": "program"})),
            ("/fade/black", vec![Int(2)],
             json!({"type": "fade", "to": "black", "duration_s": 2.0})),
            ("/input/keys", vec![s("KeyW"), s("ShiftLeft")],
             json!({"type": "input", "keys": ["KeyW", "ShiftLeft"]})),
            ("/input/keys", vec![], json!({"type": "input", "keys": []})),
            ("/input/mouse", vec![Int(3), Float(-1.5)],
             json!({"type": "input", "mouse": {"dx": 3.0, "dy": -1.5}})),
            ("/input/mouse", vec![Float(0.1), Long(0), s("left"), s("right")],
             json!({"type": "input", "mouse": {"dx": 0.1, "dy": 0.0, "buttons": ["left", "right"]}})),
            ("/input/mouse", vec![Double(0.0), Int(0)],
             json!({"type": "input", "mouse": {"dx": 0.0, "dy": 0.0}})),
            ("/image", vec![s("start.png")], json!({"type": "image", "name": "start.png"})),
            ("/cue", vec![path], json!([{"type": "camera_path", "points": []}])),
            ("/dawn", vec![Int(1)], json!([{"type": "prompt", "text": "d"}])),
        ];
        for (addr, args, want) in cases {
            assert_eq!(cue_of(&format!("/cuecast{addr}"), args), Ok(want), "{addr}");
        }
    }

    /// The OSC map and the cue schema (the one description of cues) agree: every cue
    /// type is reachable, every argument is a field of its type (nested fields by their
    /// path, `mouse.dx`), every field but `at` has an argument in some form of its type,
    /// `/action/<axis>` exists for exactly the schema's axes, and each form's cue passes
    /// the cue parser the daemon uses.
    #[test]
    fn the_osc_map_speaks_the_cue_schema() {
        use cuecast_engine::cue::IMAGE_NAME_PATTERN;
        use cuecast_engine::schema::{schema, type_schema, CUE_TYPES};
        let schema = schema();
        fn slot_name<'a>(s: &Slot<'a>) -> &'a str {
            match *s {
                Slot::Text(n) | Slot::Num(n) | Slot::OptText(n) | Slot::OptNum(n) => n,
                Slot::Texts(n) | Slot::OptTexts(n) | Slot::Flag(n) => n,
                Slot::Seed => "value",
            }
        }
        /// The schema of the field at a dotted path in a type's schema.
        fn field<'s>(t: &'s Value, path: &str) -> Option<&'s Value> {
            path.split('.').try_fold(t, |s, k| s["properties"].get(k))
        }
        /// Every field path of a type but `type` and `at`, into nested objects.
        fn fields(t: &Value, prefix: &str, out: &mut Vec<String>) {
            for (k, p) in t["properties"].as_object().unwrap() {
                if prefix.is_empty() && ["type", "at"].contains(&k.as_str()) {
                    continue;
                }
                let path = format!("{prefix}{k}");
                if p["type"] == "object" && p.get("properties").is_some() {
                    fields(p, &format!("{path}."), out);
                } else {
                    out.push(path);
                }
            }
        }
        /// A string the schema allows for a field (or each item of an array field).
        fn example(p: &Value) -> String {
            let p = if p["type"] == "array" { &p["items"] } else { p };
            match (&p["enum"][0], &p["pattern"]) {
                (Value::String(e), _) => e.clone(),
                (_, Value::String(pat)) if pat == IMAGE_NAME_PATTERN => "start.png".into(),
                _ => "dusk".into(),
            }
        }
        for ty in CUE_TYPES {
            let t = type_schema(&schema, ty).unwrap();
            // The forms to try: `/ty`, and `/ty/<tail>` for a free name ("fog"), each
            // field's name and each value a field may take ("black").
            let mut tails = vec![None, Some("fog".to_owned())];
            for (k, p) in t["properties"].as_object().unwrap() {
                tails.push(Some(k.clone()));
                let values = p["enum"].as_array().into_iter().flatten();
                tails.extend(
                    values
                        .filter_map(|v| v.as_str())
                        .map(|v| Some(v.to_owned())),
                );
            }
            let forms: Vec<(String, Form)> = tails
                .iter()
                .filter_map(|tail| {
                    let addr = match tail {
                        Some(tail) => format!("/{ty}/{tail}"),
                        None => format!("/{ty}"),
                    };
                    Some((addr, form(ty, tail.as_deref())?))
                })
                .collect();
            if forms.is_empty() {
                // Types with nested fields go through `/cue` as JSON.
                assert_eq!(ty, "camera_path", "{ty} has no OSC address");
                let cue = json!({"type": ty, "points": [{"t": 0, "pos": [0, 1, 0], "yaw": 0, "pitch": 0}]});
                let got = cue_of("/cuecast/cue", vec![s(&cue.to_string())]).unwrap();
                cuecast_engine::Cue::from_value(&got).unwrap();
                continue;
            }
            let mut reached: Vec<&str> = Vec::new();
            for (addr, (fixed, slots)) in &forms {
                let mut named: Vec<&str> = slots.iter().map(slot_name).collect();
                named.extend(fixed.map(|(n, _)| n));
                for n in &named {
                    assert!(field(&t, n).is_some(), "{addr}: {n} is not a field of {ty}");
                }
                reached.extend(&named);
                let args: Vec<OscArg> = slots
                    .iter()
                    .map(|slot| match slot {
                        Slot::Text(n) | Slot::OptText(n) | Slot::Texts(n) | Slot::OptTexts(n) => {
                            s(&example(field(&t, n).unwrap()))
                        }
                        Slot::Num(_) | Slot::OptNum(_) => Float(0.5),
                        Slot::Seed | Slot::Flag(_) => Int(1),
                    })
                    .collect();
                let args = if args.is_empty() { vec![Int(1)] } else { args };
                let got = cue_of(&format!("/cuecast{addr}"), args).unwrap();
                cuecast_engine::Cue::from_value(&got)
                    .unwrap_or_else(|e| panic!("{addr} gave {got}: {e}"));
            }
            let mut want = Vec::new();
            fields(&t, "", &mut want);
            for k in want {
                assert!(
                    reached.contains(&k.as_str()),
                    "{ty}.{k} has no OSC argument"
                );
            }
        }
        let action = type_schema(&schema, "action").unwrap();
        for (k, p) in action["properties"].as_object().unwrap() {
            let is_axis = p["minimum"] == -1 && p["maximum"] == 1;
            assert_eq!(form("action", Some(k)).is_some(), is_axis, "/action/{k}");
        }
        assert!(form("action", Some("roll")).is_none());
        // `input`'s two fields each have their own address.
        let names =
            |tail| form("input", Some(tail)).map(|(_, s)| s.iter().map(slot_name).collect());
        assert_eq!(names("keys"), Some(vec!["keys"]));
        assert_eq!(
            names("mouse"),
            Some(vec!["mouse.dx", "mouse.dy", "mouse.buttons"])
        );
    }

    /// OSC checks only arity and types; values (key names, ranges, file names) are the
    /// cue parser's, so the error a sender sees names the field as it does over HTTP.
    #[test]
    fn values_are_checked_by_the_cue_parser() {
        #[rustfmt::skip]
        let cases = [
            ("/input/keys", vec![s("Nope")], "keys[0]"),
            ("/input/keys", vec![s("KeyW"), s("KeyW")], "keys[1]"),
            ("/input/mouse", vec![Int(20000), Int(0)], "mouse.dx"),
            ("/input/mouse", vec![Int(0), Int(0), s("thumb")], "mouse.buttons[0]"),
            ("/image", vec![s("../show.yaml")], "name"),
        ];
        for (addr, args, want) in cases {
            let cue = cue_of(&format!("/cuecast{addr}"), args).unwrap();
            let e = cuecast_engine::Cue::from_value(&cue).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(want), "{addr}: {e}");
        }
    }

    #[test]
    fn go_and_back_are_rundown_steps_unless_an_alias_takes_them() {
        assert_eq!(
            command_of("/cuecast/go", vec![Bool(true)]),
            Ok(Some(OscCommand::Go))
        );
        assert_eq!(
            command_of("/cuecast/back", vec![Nil]),
            Ok(Some(OscCommand::Back))
        );
        assert_eq!(command_of("/cuecast/back", vec![Int(0)]), Ok(None));
        let aliases = BTreeMap::from([("/go".into(), json!({"type": "freeze"}))]);
        let got = to_command(&msg("/cuecast/go", vec![]), "/cuecast", &aliases);
        assert_eq!(
            got.unwrap(),
            Some(OscCommand::Cues(json!({"type": "freeze"})))
        );
    }

    #[test]
    fn button_releases_give_null() {
        for arg in [Int(0), Float(0.0), Bool(false), Double(0.0), Long(0)] {
            for addr in ["/freeze", "/go", "/scene/intro", "/dawn"] {
                let got = cue_of(&format!("/cuecast{addr}"), vec![arg.clone()]);
                assert_eq!(got, Ok(Value::Null), "{addr} {arg:?}");
            }
        }
    }

    #[test]
    fn bad_arguments_name_address_position_and_field() {
        let unknown = "unknown address (expected /cuecast/ then prompt, action, param, scene, \
                       seed, marker, freeze, resume, fade, input/keys, input/mouse, image, cue, \
                       go, back or an alias)";
        #[rustfmt::skip]
        let cases = [
            ("/prompt", vec![Int(1)], "argument 1 (text) must be a string"),
            ("/prompt", vec![], "argument 1 (text) is missing (expected a string)"),
            ("/prompt", vec![s("a"), Int(1), Int(2)],
             "too many arguments (expected at most 2, got 3)"),
            ("/action", vec![Int(1); 4], "argument 5 (pitch) is missing (expected a number)"),
            ("/action", vec![Float(f32::NAN); 5], "argument 1 (forward) must be a finite number"),
            ("/param/fog", vec![s("x")], "argument 1 (value) must be a number"),
            ("/seed", vec![Int(-1)], "argument 1 (value) must be a whole number >= 0"),
            ("/seed", vec![Float(1.5)], "argument 1 (value) must be a whole number >= 0"),
            ("/freeze", vec![s("on")],
             "argument 1 (button) must be a number or boolean, or left out"),
            ("/go", vec![Int(1), Int(1)], "too many arguments (expected at most 1, got 2)"),
            ("/cue", vec![s("{")],
             "argument 1 (json) is not valid JSON: EOF while parsing an object at line 1 column 1"),
            ("/input/keys", vec![s("KeyW"), Int(1)], "argument 2 (keys) must be a string"),
            ("/input/keys", vec![Nil], "argument 1 (keys) must be a string"),
            ("/input/mouse", vec![], "argument 1 (mouse.dx) is missing (expected a number)"),
            ("/input/mouse", vec![Int(1)], "argument 2 (mouse.dy) is missing (expected a number)"),
            ("/input/mouse", vec![s("left")], "argument 1 (mouse.dx) must be a number"),
            ("/input/mouse", vec![Float(f32::INFINITY), Int(0)],
             "argument 1 (mouse.dx) must be a finite number"),
            ("/input/mouse", vec![Int(1), Int(2), s("left"), Bool(true)],
             "argument 4 (mouse.buttons) must be a string"),
            ("/image", vec![], "argument 1 (name) is missing (expected a string)"),
            ("/image", vec![Int(1)], "argument 1 (name) must be a string"),
            ("/image", vec![s("a.png"), s("b.png")], "too many arguments (expected at most 1, got 2)"),
            ("/nope", vec![], unknown),
            ("/action/roll", vec![Int(1)], unknown),
            ("/input", vec![s("KeyW")], unknown),
            ("/input/camera", vec![], unknown),
            ("/image/start.png", vec![], unknown),
        ];
        for (addr, args, want) in cases {
            let addr = format!("/cuecast{addr}");
            assert_eq!(cue_of(&addr, args), Err(format!("{addr}: {want}")));
        }
        for addr in ["/other/prompt", "/cuecastx"] {
            let want = format!("address {addr} is not under /cuecast");
            assert_eq!(cue_of(addr, vec![]), Err(want));
        }
    }

    #[test]
    fn listener_delivers_cues_and_stops_on_drop() {
        let (tx, rx) = std::sync::mpsc::channel();
        let on_cue = move |addr: &str, cue| tx.send((addr.to_string(), cue)).unwrap_or(());
        let listener = OscListener::start(
            "127.0.0.1:0",
            "/cuecast".into(),
            BTreeMap::new(),
            Vec::new(),
            on_cue,
        )
        .expect("bind an ephemeral port");
        let addr = listener.local_addr();
        assert!(
            UdpSocket::bind(addr).is_err(),
            "the port is held while listening"
        );

        let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        let release = encode_message(&msg("/cuecast/freeze", vec![Int(0)]));
        let press = bundle(&[encode_message(&msg("/cuecast/freeze", vec![Int(1)]))]);
        for packet in [release, press, b"junk".to_vec()] {
            client.send_to(&packet, addr).expect("send");
        }
        let wait = Duration::from_secs(5);
        let got = rx.recv_timeout(wait).expect("a cue arrives");
        assert_eq!(
            got,
            (
                "/cuecast/freeze".into(),
                Ok(OscCommand::Cues(json!({"type": "freeze"})))
            )
        );
        let (junk_addr, junk) = rx.recv_timeout(wait).expect("the bad packet is reported");
        assert_eq!(junk_addr, "");
        assert!(junk
            .unwrap_err()
            .0
            .starts_with("bad OSC packet from 127.0.0.1:"));

        let t = Instant::now();
        drop(listener);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "stopped in {:?}",
            t.elapsed()
        );
        // The thread owned the callback and the socket: both are gone once it ends.
        assert!(rx.recv_timeout(wait).is_err());
        assert!(UdpSocket::bind(addr).is_ok(), "the port is free again");
    }
}
