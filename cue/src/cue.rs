//! Cues: the one control language of cuecast.
//!
//! A cue is a JSON object `{"type": ...}`; the HTTP API, OSC, rundowns, cue files and
//! take logs all speak it. Parsing is written by hand rather than derived so that every
//! rejection names the field that was wrong and what was expected: a producer who types
//! `forwrd` on show day is told so instead of watching the cue do nothing.
//!
//! This module checks what a cue means on its own (types, ranges, shapes). Whether a
//! param or scene exists depends on the running model and show; `schedule::CueInbox`
//! checks that against a [`crate::ShowContext`] before anything is accepted.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::CUE_TYPES;

/// Every accepted cue gets one; unique for the life of an engine.
pub type CueId = u64;

/// A cue is what to do ([`CueKind`]) and, optionally, when ([`At`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cue {
    #[serde(flatten)]
    pub kind: CueKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<At>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CueKind {
    /// A new scene description, blended in over `transition_s`.
    Prompt { text: String, transition_s: f64 },
    /// Motion controls; fields left out keep their current value.
    Action(Action),
    /// The camera follows a smooth path through the points.
    CameraPath {
        points: Vec<PathPoint>,
        #[serde(rename = "loop")]
        looped: bool,
    },
    /// A model or world parameter, ramped over `ramp_s`.
    Param {
        name: String,
        value: f64,
        ramp_s: f64,
    },
    /// Load a scene from the show.
    Scene {
        name: String,
        transition: SceneTransition,
        transition_s: f64,
    },
    /// Reseed the world.
    Seed { value: u64 },
    /// A timeline marker, carried into takes and exports.
    Marker { label: String },
    /// Hold the current frame.
    Freeze,
    /// Continue after a freeze.
    Resume,
    /// Fade to or from black.
    Fade { to: FadeTarget, duration_s: f64 },
}

/// The five motion axes, each in [-1, 1]. `None` leaves that axis as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Action {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strafe: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pitch: Option<f64>,
    /// After this long the axes this cue set return to zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// The names of the action axes, in the order models receive them.
pub const ACTION_AXES: [&str; 5] = ["forward", "strafe", "rise", "yaw", "pitch"];

impl Action {
    /// The axes as an array in [`ACTION_AXES`] order.
    pub fn axes(&self) -> [Option<f64>; 5] {
        [self.forward, self.strafe, self.rise, self.yaw, self.pitch]
    }
}

/// One point of a camera path: time in seconds after the cue applies, position in
/// metres, yaw and pitch in degrees, optional horizontal field of view in degrees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    pub t: f64,
    pub pos: [f64; 3],
    pub yaw: f64,
    pub pitch: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fov: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SceneTransition {
    #[default]
    Cut,
    Fade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FadeTarget {
    Black,
    Program,
}

/// When a cue takes effect. Without `at` a cue applies on the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum At {
    /// Absolute frame index since the show started.
    Frame(u64),
    /// Seconds after the cue arrives.
    InS(f64),
    /// Absolute show time, `HH:MM:SS:FF` at the nominal frame rate.
    Timecode(Timecode),
}

/// Non-drop-frame timecode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timecode {
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
    pub frames: u32,
}

impl Timecode {
    /// The frame index this timecode names at a nominal (integer) frame rate, or an
    /// error when the frame field does not exist at that rate.
    pub fn to_frame(self, nominal_fps: u32) -> Result<u64, CueError> {
        if self.frames >= nominal_fps {
            return Err(CueError::field(
                "at.timecode",
                format!(
                    "frame field {} does not exist at {nominal_fps} fps (0..{})",
                    self.frames,
                    nominal_fps - 1
                ),
            ));
        }
        let secs =
            (u64::from(self.hours) * 60 + u64::from(self.minutes)) * 60 + u64::from(self.seconds);
        Ok(secs * u64::from(nominal_fps) + u64::from(self.frames))
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds, self.frames
        )
    }
}

impl Serialize for Timecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Timecode {
    type Err = CueError;

    fn from_str(text: &str) -> Result<Self, CueError> {
        let bad = || {
            CueError::field(
                "timecode",
                format!("expected HH:MM:SS:FF (non-drop-frame), got {text:?}"),
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() != 4
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        let n: Vec<u32> = parts.iter().map(|p| p.parse().unwrap_or(0)).collect();
        if n[1] > 59 || n[2] > 59 {
            return Err(bad());
        }
        Ok(Timecode {
            hours: n[0],
            minutes: n[1],
            seconds: n[2],
            frames: n[3],
        })
    }
}

/// Why a cue was rejected: the field at fault (a dotted path such as
/// `points[2].pos`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CueError {
    pub field: Option<String>,
    pub message: String,
}

impl CueError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        CueError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn general(message: impl Into<String>) -> Self {
        CueError {
            field: None,
            message: message.into(),
        }
    }

    /// The same error, with its field path placed under `prefix` (`[3]`, `cues[3]`).
    pub fn within(self, prefix: &str) -> Self {
        let field = match self.field {
            Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        };
        CueError {
            field: Some(field),
            message: self.message,
        }
    }
}

impl fmt::Display for CueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The longest duration a cue may ask for (transitions, ramps, fades), in seconds.
pub const MAX_DURATION_S: f64 = 3600.0;
/// The longest prompt or marker label, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The most points a camera path may have.
pub const MAX_PATH_POINTS: usize = 10_000;
/// The farthest a camera may be placed from the origin on any axis, in metres (1000 km:
/// far beyond any world a model draws, and far inside where f64 metres lose precision).
pub const MAX_POSITION_M: f64 = 1.0e6;
/// The largest yaw a path point may name, in degrees: ten turns either way, so a path
/// can spin the camera several times but no value is absurd.
pub const MAX_PATH_YAW: f64 = 3600.0;

/// The longest name (param, scene), in characters.
pub const MAX_NAME_CHARS: usize = 128;

impl Cue {
    /// About how many bytes the cue takes in memory or as JSON (for bounding logs
    /// without serialising anything).
    pub fn approx_bytes(&self) -> usize {
        const BASE: usize = 128;
        BASE + match &self.kind {
            CueKind::Prompt { text, .. } => text.len(),
            CueKind::CameraPath { points, .. } => points.len() * 96,
            CueKind::Param { name, .. } | CueKind::Scene { name, .. } => name.len(),
            CueKind::Marker { label } => label.len(),
            _ => 0,
        }
    }

    /// A cue applied on the next frame.
    pub fn now(kind: CueKind) -> Self {
        Cue { kind, at: None }
    }

    /// The cue's `type` as written in JSON.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Parses and validates one cue.
    pub fn from_value(value: &Value) -> Result<Cue, CueError> {
        let obj = value.as_object().ok_or_else(|| {
            CueError::general(format!("a cue is a JSON object, got {}", kind_of(value)))
        })?;
        let mut f = Fields::new(obj);
        let ty = f.string("type")?;
        let kind = match ty.as_str() {
            "prompt" => CueKind::Prompt {
                text: f.text("text")?,
                transition_s: f.duration("transition_s", 1.0)?,
            },
            "action" => {
                let mut a = Action::default();
                let slots = [
                    &mut a.forward,
                    &mut a.strafe,
                    &mut a.rise,
                    &mut a.yaw,
                    &mut a.pitch,
                ];
                for (name, slot) in ACTION_AXES.iter().zip(slots) {
                    *slot = f
                        .opt_number(name)?
                        .map(|v| in_range(name, v, -1.0, 1.0))
                        .transpose()?;
                }
                a.duration_s = f
                    .opt_number("duration_s")?
                    .map(|v| duration_value("duration_s", v))
                    .transpose()?;
                CueKind::Action(a)
            }
            "camera_path" => CueKind::CameraPath {
                points: path_points(f.take("points")?)?,
                looped: f.opt_bool("loop")?.unwrap_or(false),
            },
            "param" => CueKind::Param {
                name: f.name("name")?,
                value: f.number("value")?,
                ramp_s: f.duration("ramp_s", 0.0)?,
            },
            "scene" => CueKind::Scene {
                name: f.name("name")?,
                transition: match f.opt_string("transition")?.as_deref() {
                    None | Some("cut") => SceneTransition::Cut,
                    Some("fade") => SceneTransition::Fade,
                    Some(other) => {
                        return Err(CueError::field(
                            "transition",
                            format!("expected \"cut\" or \"fade\", got {other:?}"),
                        ))
                    }
                },
                transition_s: f.duration("transition_s", 1.0)?,
            },
            "seed" => CueKind::Seed {
                value: f.unsigned("value")?,
            },
            "marker" => CueKind::Marker {
                label: f.text("label")?,
            },
            "freeze" => CueKind::Freeze,
            "resume" => CueKind::Resume,
            "fade" => CueKind::Fade {
                to: match f.string("to")?.as_str() {
                    "black" => FadeTarget::Black,
                    "program" => FadeTarget::Program,
                    other => {
                        return Err(CueError::field(
                            "to",
                            format!("expected \"black\" or \"program\", got {other:?}"),
                        ))
                    }
                },
                duration_s: f.duration("duration_s", 1.0)?,
            },
            other => {
                return Err(CueError::field(
                    "type",
                    format!(
                        "unknown cue type {other:?} (expected one of: {})",
                        CUE_TYPES.join(", ")
                    ),
                ))
            }
        };
        let at = match f.take_opt("at") {
            Some(v) => Some(parse_at(v)?),
            None => None,
        };
        f.finish()?;
        if let CueKind::Action(a) = &kind {
            if a.axes().iter().all(Option::is_none) {
                return Err(CueError::general(
                    "an action cue needs at least one of forward, strafe, rise, yaw, pitch",
                ));
            }
        }
        Ok(Cue { kind, at })
    }

    /// Parses one cue or an array of cues. Errors in an array name the index
    /// (`[2].forward`); nothing is returned unless every cue is valid.
    pub fn list_from_value(value: &Value) -> Result<Vec<Cue>, CueError> {
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(CueError::general("an empty list of cues"));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Cue::from_value(v).map_err(|e| e.within(&format!("[{i}]"))))
                    .collect()
            }
            other => Cue::from_value(other).map(|c| vec![c]),
        }
    }

    /// Parses a cue from JSON text.
    pub fn from_json(text: &str) -> Result<Cue, CueError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| CueError::general(format!("malformed JSON: {e}")))?;
        Cue::from_value(&value)
    }

    /// The cue as a JSON value, in the same schema it was parsed from.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("cues always serialize")
    }
}

/// Reading a cue from any serde source (a take's log, a rundown file) goes through the
/// same parser as the API, so it is checked the same way and fails with the same words.
impl<'de> serde::Deserialize<'de> for Cue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cue, D::Error> {
        let value = Value::deserialize(d)?;
        Cue::from_value(&value).map_err(serde::de::Error::custom)
    }
}

impl CueKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            CueKind::Prompt { .. } => "prompt",
            CueKind::Action(_) => "action",
            CueKind::CameraPath { .. } => "camera_path",
            CueKind::Param { .. } => "param",
            CueKind::Scene { .. } => "scene",
            CueKind::Seed { .. } => "seed",
            CueKind::Marker { .. } => "marker",
            CueKind::Freeze => "freeze",
            CueKind::Resume => "resume",
            CueKind::Fade { .. } => "fade",
        }
    }
}

fn parse_at(value: &Value) -> Result<At, CueError> {
    let obj = value.as_object().ok_or_else(|| {
        CueError::field(
            "at",
            format!(
                "expected {{\"frame\": N}}, {{\"in_s\": x}} or {{\"timecode\": \"HH:MM:SS:FF\"}}, got {}",
                kind_of(value)
            ),
        )
    })?;
    if obj.len() != 1 {
        return Err(CueError::field(
            "at",
            "give exactly one of frame, in_s, timecode",
        ));
    }
    let mut f = Fields::new(obj);
    let at = (|| {
        if obj.contains_key("frame") {
            Ok(At::Frame(f.unsigned("frame")?))
        } else if obj.contains_key("in_s") {
            Ok(At::InS(f.duration("in_s", 0.0)?))
        } else if obj.contains_key("timecode") {
            Ok(At::Timecode(f.string("timecode")?.parse()?))
        } else {
            let key = obj.keys().next().map(String::as_str).unwrap_or_default();
            Err(CueError::field(
                key,
                "unknown; expected frame, in_s or timecode",
            ))
        }
    })();
    at.map_err(|e: CueError| e.within("at"))
}

fn path_points(value: &Value) -> Result<Vec<PathPoint>, CueError> {
    let items = value.as_array().ok_or_else(|| {
        CueError::field(
            "points",
            format!("expected an array, got {}", kind_of(value)),
        )
    })?;
    if items.is_empty() {
        return Err(CueError::field(
            "points",
            "a camera path needs at least one point",
        ));
    }
    if items.len() > MAX_PATH_POINTS {
        return Err(CueError::field(
            "points",
            format!("at most {MAX_PATH_POINTS} points, got {}", items.len()),
        ));
    }
    let mut points = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |e: CueError| e.within(&format!("points[{i}]"));
        let obj = item
            .as_object()
            .ok_or_else(|| CueError::general(format!("expected an object, got {}", kind_of(item))))
            .map_err(at)?;
        let mut f = Fields::new(obj);
        let point = (|| {
            let t = f.number("t")?;
            let pos = f.take("pos")?;
            let pos = match pos
                .as_array()
                .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
            {
                Some(v) if v.len() == 3 && v.iter().all(|x| x.is_some_and(f64::is_finite)) => {
                    [v[0].unwrap(), v[1].unwrap(), v[2].unwrap()]
                }
                _ => {
                    return Err(CueError::field(
                        "pos",
                        format!("expected [x, y, z] in metres, got {pos}"),
                    ))
                }
            };
            let yaw = f.number("yaw")?;
            let pitch = f.number("pitch")?;
            let fov = f.opt_number("fov")?;
            f.finish()?;
            let point = PathPoint {
                t,
                pos,
                yaw,
                pitch,
                fov,
            };
            point.check(MAX_PATH_YAW)?;
            Ok(point)
        })()
        .map_err(at)?;
        if let Some(prev) = points.last().map(|p: &PathPoint| p.t) {
            if point.t <= prev {
                return Err(CueError::field(
                    format!("points[{i}].t"),
                    format!("times must increase: {} after {prev}", point.t),
                ));
            }
        }
        points.push(point);
    }
    Ok(points)
}

impl PathPoint {
    /// The ranges a path point keeps, in a cue or read back from a checkpoint (where
    /// unwrapping may have taken yaw past `yaw_limit`'s cue bound).
    pub fn check(&self, yaw_limit: f64) -> Result<(), CueError> {
        if !(0.0..=MAX_DURATION_S * 24.0).contains(&self.t) {
            return Err(CueError::field(
                "t",
                format!("must be >= 0 seconds, got {}", self.t),
            ));
        }
        if let Some(v) = self
            .pos
            .iter()
            .find(|v| !(-MAX_POSITION_M..=MAX_POSITION_M).contains(*v))
        {
            return Err(CueError::field(
                "pos",
                format!("each coordinate must be within ±{MAX_POSITION_M} metres, got {v}"),
            ));
        }
        in_range("yaw", self.yaw, -yaw_limit, yaw_limit)?;
        in_range("pitch", self.pitch, -89.0, 89.0)?;
        if let Some(fov) = self.fov {
            in_range("fov", fov, 1.0, 170.0)?;
        }
        Ok(())
    }
}

fn in_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64, CueError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(CueError::field(
            field,
            format!("must be in [{lo}, {hi}], got {v}"),
        ))
    }
}

fn duration_value(field: &str, v: f64) -> Result<f64, CueError> {
    if (0.0..=MAX_DURATION_S).contains(&v) {
        Ok(v)
    } else {
        Err(CueError::field(
            field,
            format!("must be a duration in [0, {MAX_DURATION_S}] seconds, got {v}"),
        ))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the fields of one JSON object, remembering which were used so that any
/// field left over is reported as unknown.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    used: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Value>) -> Self {
        Fields {
            obj,
            used: Vec::new(),
        }
    }

    fn take_opt(&mut self, name: &str) -> Option<&'a Value> {
        let (key, value) = self.obj.get_key_value(name)?;
        self.used.push(key.as_str());
        Some(value).filter(|v| !v.is_null())
    }

    fn take(&mut self, name: &str) -> Result<&'a Value, CueError> {
        self.take_opt(name)
            .ok_or_else(|| CueError::field(name, "missing"))
    }

    fn opt_number(&mut self, name: &str) -> Result<Option<f64>, CueError> {
        match self.take_opt(name) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(CueError::field(
                    name,
                    format!("expected a number, got {}", kind_of(v)),
                )),
            },
        }
    }

    fn number(&mut self, name: &str) -> Result<f64, CueError> {
        self.opt_number(name)?
            .ok_or_else(|| CueError::field(name, "missing (expected a number)"))
    }

    fn duration(&mut self, name: &str, default: f64) -> Result<f64, CueError> {
        match self.opt_number(name)? {
            None => Ok(default),
            Some(v) => duration_value(name, v),
        }
    }

    fn unsigned(&mut self, name: &str) -> Result<u64, CueError> {
        let v = self.take(name)?;
        v.as_u64()
            .ok_or_else(|| CueError::field(name, format!("expected a whole number >= 0, got {v}")))
    }

    fn opt_bool(&mut self, name: &str) -> Result<Option<bool>, CueError> {
        match self.take_opt(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(CueError::field(
                name,
                format!("expected true or false, got {}", kind_of(v)),
            )),
        }
    }

    fn opt_string(&mut self, name: &str) -> Result<Option<String>, CueError> {
        match self.take_opt(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(CueError::field(
                name,
                format!("expected a string, got {}", kind_of(v)),
            )),
        }
    }

    fn string(&mut self, name: &str) -> Result<String, CueError> {
        self.opt_string(name)?
            .ok_or_else(|| CueError::field(name, "missing (expected a string)"))
    }

    /// Free text (prompts, labels): non-blank and not absurdly long.
    fn text(&mut self, name: &str) -> Result<String, CueError> {
        let s = self.string(name)?;
        if s.trim().is_empty() {
            return Err(CueError::field(name, "must not be empty"));
        }
        if s.chars().count() > MAX_TEXT_CHARS {
            return Err(CueError::field(
                name,
                format!(
                    "at most {MAX_TEXT_CHARS} characters, got {}",
                    s.chars().count()
                ),
            ));
        }
        Ok(s)
    }

    /// A name (param, scene): non-empty, printable, short.
    fn name(&mut self, name: &str) -> Result<String, CueError> {
        let s = self.string(name)?;
        if s.is_empty() || s.chars().count() > MAX_NAME_CHARS || s.chars().any(char::is_control) {
            return Err(CueError::field(
                name,
                format!("expected a name of 1 to {MAX_NAME_CHARS} printable characters, got {s:?}"),
            ));
        }
        Ok(s)
    }

    fn finish(self) -> Result<(), CueError> {
        let mut unknown = self.obj.keys().filter(|k| !self.used.contains(&k.as_str()));
        match unknown.next() {
            None => Ok(()),
            Some(k) => Err(CueError::field(k.as_str(), "unknown field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> CueError {
        Cue::from_value(&v).expect_err("cue should be rejected")
    }

    #[test]
    fn parses_every_cue_type() {
        let cues = [
            json!({"type": "prompt", "text": "snowy mountains at dawn"}),
            json!({"type": "action", "forward": 1, "yaw": -0.5, "duration_s": 2}),
            json!({"type": "camera_path", "points": [{"t": 0, "pos": [0, 50, 0], "yaw": 0, "pitch": -5},
                                                    {"t": 4, "pos": [0, 60, -100], "yaw": 30, "pitch": 0, "fov": 50}], "loop": true}),
            json!({"type": "param", "name": "fog", "value": 0.5, "ramp_s": 2}),
            json!({"type": "scene", "name": "intro", "transition": "fade", "transition_s": 2}),
            json!({"type": "seed", "value": 42}),
            json!({"type": "marker", "label": "take 1 starts"}),
            json!({"type": "freeze"}),
            json!({"type": "resume"}),
            json!({"type": "fade", "to": "black", "duration_s": 0.5}),
        ];
        for v in cues {
            let cue = Cue::from_value(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(cue.type_name(), v["type"].as_str().unwrap());
            // The schema round-trips: what we write in logs parses back to the same cue.
            assert_eq!(Cue::from_value(&cue.to_value()).unwrap(), cue);
            let text = serde_json::to_string(&cue).unwrap();
            assert_eq!(serde_json::from_str::<Cue>(&text).unwrap(), cue);
        }
    }

    #[test]
    fn serde_reads_cues_through_the_parser_and_names_the_field() {
        let e = serde_json::from_str::<Vec<Cue>>(
            r#"[{"type": "seed", "value": 1}, {"type": "action", "forwrd": 1}]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("forwrd"), "{e}");
        let e = serde_json::from_str::<Cue>(r#"{"type": "action", "pitch": 9}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pitch"), "{e}");
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = Cue::from_value(&json!({"type": "prompt", "text": "x"})).unwrap();
        assert_eq!(
            c.kind,
            CueKind::Prompt {
                text: "x".into(),
                transition_s: 1.0
            }
        );
        let c = Cue::from_value(&json!({"type": "scene", "name": "a"})).unwrap();
        assert_eq!(
            c.kind,
            CueKind::Scene {
                name: "a".into(),
                transition: SceneTransition::Cut,
                transition_s: 1.0
            }
        );
    }

    #[test]
    fn unknown_type_is_named() {
        let e = err(json!({"type": "explode"}));
        assert_eq!(e.field.as_deref(), Some("type"));
        assert!(
            e.message.contains("explode") && e.message.contains("prompt"),
            "{e}"
        );
    }

    #[test]
    fn missing_type_is_named() {
        assert_eq!(err(json!({"text": "x"})).field.as_deref(), Some("type"));
    }

    #[test]
    fn not_an_object() {
        let e = err(json!([1, 2]));
        assert!(e.field.is_none() && e.message.contains("object"), "{e}");
    }

    #[test]
    fn out_of_range_action_is_named() {
        let e = err(json!({"type": "action", "forward": 1.5}));
        assert_eq!(e.field.as_deref(), Some("forward"));
        assert!(
            e.message.contains("[-1, 1]") && e.message.contains("1.5"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_of_value_is_named() {
        let e = err(json!({"type": "action", "yaw": "left"}));
        assert_eq!(e.field.as_deref(), Some("yaw"));
        assert!(e.message.contains("number"), "{e}");
    }

    #[test]
    fn empty_action_is_rejected() {
        let e = err(json!({"type": "action"}));
        assert!(e.message.contains("at least one"), "{e}");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = err(json!({"type": "action", "forwrd": 1}));
        assert_eq!(e.field.as_deref(), Some("forwrd"));
        assert_eq!(e.message, "unknown field");
    }

    #[test]
    fn missing_required_field_is_named() {
        assert_eq!(
            err(json!({"type": "prompt"})).field.as_deref(),
            Some("text")
        );
        assert_eq!(
            err(json!({"type": "param", "name": "fog"}))
                .field
                .as_deref(),
            Some("value")
        );
        assert_eq!(err(json!({"type": "fade"})).field.as_deref(), Some("to"));
    }

    #[test]
    fn blank_prompt_is_rejected() {
        assert_eq!(
            err(json!({"type": "prompt", "text": "  "}))
                .field
                .as_deref(),
            Some("text")
        );
    }

    #[test]
    fn negative_or_huge_durations_are_rejected() {
        assert_eq!(
            err(json!({"type": "prompt", "text": "x", "transition_s": -1}))
                .field
                .as_deref(),
            Some("transition_s")
        );
        assert_eq!(
            err(json!({"type": "fade", "to": "black", "duration_s": 1e9}))
                .field
                .as_deref(),
            Some("duration_s")
        );
    }

    #[test]
    fn bad_enum_values_are_named() {
        assert_eq!(
            err(json!({"type": "fade", "to": "white"})).field.as_deref(),
            Some("to")
        );
        assert_eq!(
            err(json!({"type": "scene", "name": "a", "transition": "wipe"}))
                .field
                .as_deref(),
            Some("transition")
        );
    }

    #[test]
    fn seed_must_be_a_whole_number() {
        assert_eq!(
            err(json!({"type": "seed", "value": -3})).field.as_deref(),
            Some("value")
        );
        assert_eq!(
            err(json!({"type": "seed", "value": 1.5})).field.as_deref(),
            Some("value")
        );
    }

    #[test]
    fn camera_path_errors_name_the_point() {
        let e = err(json!({"type": "camera_path", "points": [
            {"t": 0, "pos": [0, 1, 2], "yaw": 0, "pitch": 0},
            {"t": 1, "pos": [0, 1], "yaw": 0, "pitch": 0}]}));
        assert_eq!(e.field.as_deref(), Some("points[1].pos"));
        let e = err(json!({"type": "camera_path", "points": [
            {"t": 2, "pos": [0, 1, 2], "yaw": 0, "pitch": 0},
            {"t": 1, "pos": [0, 1, 3], "yaw": 0, "pitch": 0}]}));
        assert_eq!(e.field.as_deref(), Some("points[1].t"));
        let e = err(json!({"type": "camera_path", "points": [
            {"t": 0, "pos": [0, 1, 2], "yaw": 0, "pitch": 95}]}));
        assert_eq!(e.field.as_deref(), Some("points[0].pitch"));
        let e = err(json!({"type": "camera_path", "points": []}));
        assert_eq!(e.field.as_deref(), Some("points"));
    }

    #[test]
    fn camera_path_refuses_absurd_angles_and_positions() {
        let path = |yaw: Value, pos: Value| {
            json!({"type": "camera_path", "points": [
                {"t": 0, "pos": [0, 100, 0], "yaw": 0, "pitch": 0},
                {"t": 1, "pos": pos, "yaw": yaw, "pitch": 0}]})
        };
        let e = err(path(json!(1e300), json!([0, 100, 0])));
        assert_eq!(e.field.as_deref(), Some("points[1].yaw"), "{e}");
        let e = err(path(json!(-3600.5), json!([0, 100, 0])));
        assert_eq!(e.field.as_deref(), Some("points[1].yaw"), "{e}");
        let e = err(path(json!(0), json!([0, 1e308, 0])));
        assert_eq!(e.field.as_deref(), Some("points[1].pos"), "{e}");
        assert!(e.message.contains("1000000"), "{e}");
        let e = err(path(json!(0), json!([-1.5e6, 0, 0])));
        assert_eq!(e.field.as_deref(), Some("points[1].pos"), "{e}");
        // Several turns and far places are fine.
        Cue::from_value(&path(json!(3600), json!([1e6, 0, -1e6]))).unwrap();
    }

    #[test]
    fn at_in_all_three_forms() {
        let c = Cue::from_value(&json!({"type": "freeze", "at": {"frame": 90}})).unwrap();
        assert_eq!(c.at, Some(At::Frame(90)));
        let c = Cue::from_value(&json!({"type": "freeze", "at": {"in_s": 1.5}})).unwrap();
        assert_eq!(c.at, Some(At::InS(1.5)));
        let c =
            Cue::from_value(&json!({"type": "freeze", "at": {"timecode": "00:01:02:03"}})).unwrap();
        let Some(At::Timecode(tc)) = c.at else {
            panic!("{c:?}")
        };
        assert_eq!(tc.to_frame(30).unwrap(), (62 * 30 + 3) as u64);
        assert_eq!(tc.to_string(), "00:01:02:03");
    }

    #[test]
    fn bad_at_is_named() {
        let e = err(json!({"type": "freeze", "at": {"frame": -1}}));
        assert_eq!(e.field.as_deref(), Some("at.frame"));
        let e = err(json!({"type": "freeze", "at": {"timecode": "1:2:3"}}));
        assert_eq!(e.field.as_deref(), Some("at.timecode"));
        let e = err(json!({"type": "freeze", "at": {"frame": 1, "in_s": 2}}));
        assert_eq!(e.field.as_deref(), Some("at"));
        let e = err(json!({"type": "freeze", "at": {"when": 1}}));
        assert_eq!(e.field.as_deref(), Some("at.when"));
        let e = err(json!({"type": "freeze", "at": 5}));
        assert_eq!(e.field.as_deref(), Some("at"));
    }

    #[test]
    fn timecode_frame_field_must_exist_at_the_rate() {
        let tc: Timecode = "00:00:01:29".parse().unwrap();
        assert_eq!(tc.to_frame(30).unwrap(), 59);
        let e = tc.to_frame(25).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("at.timecode"));
    }

    #[test]
    fn list_errors_name_the_index() {
        let e = Cue::list_from_value(&json!([
            {"type": "freeze"},
            {"type": "action", "pitch": 7}
        ]))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("[1].pitch"));
        assert_eq!(
            Cue::list_from_value(&json!({"type": "resume"}))
                .unwrap()
                .len(),
            1
        );
        assert!(Cue::list_from_value(&json!([])).is_err());
    }

    #[test]
    fn malformed_json() {
        let e = Cue::from_json("{\"type\": ").unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{e}");
    }
}
