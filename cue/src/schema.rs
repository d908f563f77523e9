//! The JSON Schema of a cue: the one description of the cue language that every way in
//! takes its shape from.
//!
//! The HTTP API's OpenAPI document embeds [`schema`] as its `Cue`; the OSC map builds
//! its addresses from [`CUE_TYPES`] and [`ACTION_AXES`]; the control surface is checked
//! against it. The schema is written beside the parser ([`Cue::from_value`]) from the
//! same constants (types, axes, every bound), and the tests below hold the two to each
//! other: every type, field and bound the schema states is accepted by the parser, one
//! step past a bound is refused, and a field or type the schema does not list is
//! refused. The parser stays hand-written because its errors (the field path, what was
//! expected, what came) are what a producer reads on show day.
//!
//! [`Cue::from_value`]: crate::Cue::from_value

use serde_json::{json, Value};

use crate::cue::{
    key_codes, MouseButton, ACTION_AXES, AUDIO_GAIN_DB, IMAGE_NAME_PATTERN, MAX_DURATION_S,
    MAX_KEYS, MAX_MOUSE_PX, MAX_NAME_CHARS, MAX_PATH_POINTS, MAX_PATH_YAW, MAX_POSITION_M,
    MAX_TEXT_CHARS,
};

/// Every cue type, as written in a cue's `type`.
pub const CUE_TYPES: [&str; 13] = [
    "prompt",
    "action",
    "camera_path",
    "param",
    "scene",
    "seed",
    "marker",
    "freeze",
    "resume",
    "fade",
    "input",
    "image",
    "audio",
];

/// The timecode rule, once: non-drop-frame `HH:MM:SS:FF` (one or two digits each,
/// minutes and seconds below 60), counted at the show's nominal integer rate (30 for
/// 29.97); a frame field at or past that rate is refused when the cue is checked
/// against the show.
pub const TIMECODE_PATTERN: &str = "^[0-9]{1,2}:[0-5]?[0-9]:[0-5]?[0-9]:[0-9]{1,2}$";

/// Where a derived schema says "a cue": the document's `Cue`, which [`schema`] makes
/// from the parser's own constants (not derived: the parser is the definition).
pub fn cue_ref(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"$ref": "#/components/schemas/Cue"})
}

/// The JSON Schema (2020-12, as OpenAPI 3.1 uses it) of one cue.
pub fn schema() -> Value {
    let duration = |default: f64| {
        json!({"type": "number", "minimum": 0, "maximum": MAX_DURATION_S, "default": default,
               "description": "seconds"})
    };
    let text = json!({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS,
                      "pattern": "\\S", "description": "not blank"});
    let name = json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
                      "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
                      "description": "printable characters"});
    let unit = json!({"type": "number", "minimum": -1, "maximum": 1});
    let at = json!({
    "description": "when the cue applies; without it, on the next frame",
    "oneOf": [
        {"type": "object", "required": ["frame"], "additionalProperties": false,
         "properties": {"frame": {"type": "integer", "minimum": 0,
                                  "description": "frame index since the show started"}}},
        {"type": "object", "required": ["in_s"], "additionalProperties": false,
         "properties": {"in_s": {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S,
                                 "description": "seconds after the cue arrives"}}},
        {"type": "object", "required": ["timecode"], "additionalProperties": false,
         "properties": {"timecode": {"type": "string", "pattern": TIMECODE_PATTERN,
                                     "description": "show time, non-drop-frame HH:MM:SS:FF at the nominal rate"}}},
    ]});
    let cue = |ty: &str, description: &str, required: &[&str], props: Value| {
        let mut p = props;
        p["type"] = json!({"const": ty});
        p["at"] = at.clone();
        let mut req = vec!["type"];
        req.extend_from_slice(required);
        json!({"type": "object", "title": ty, "description": description, "required": req,
               "properties": p, "additionalProperties": false})
    };
    let mut action_props = serde_json::Map::new();
    for axis in ACTION_AXES {
        action_props.insert(axis.into(), unit.clone());
    }
    action_props.insert(
        "duration_s".into(),
        json!({"type": "number", "minimum": 0, "maximum": MAX_DURATION_S,
               "description": "after this long the axes this cue set return to zero"}),
    );
    let mut action = cue(
        "action",
        "motion controls; axes left out keep their value",
        &[],
        Value::Object(action_props),
    );
    action["anyOf"] = ACTION_AXES
        .iter()
        .map(|a| json!({"required": [a]}))
        .collect();
    let px = json!({"type": "number", "minimum": -MAX_MOUSE_PX, "maximum": MAX_MOUSE_PX,
                    "description": "pixels, right and down positive"});
    let buttons: Vec<&str> = MouseButton::ALL.iter().map(|b| b.as_str()).collect();
    let mut input = cue(
        "input",
        "keys held and pointer movement, for models trained on them",
        &[],
        json!({
            "keys": {"type": "array", "minItems": 0, "maxItems": MAX_KEYS, "uniqueItems": true,
                     "items": {"enum": key_codes()},
                     "description": "W3C KeyboardEvent.code names held from now on; [] releases all"},
            "mouse": {"type": "object", "required": ["dx", "dy"], "additionalProperties": false,
                      "description": "movement added to the model's next frame; buttons held from now on",
                      "properties": {"dx": px, "dy": px,
                                     "buttons": {"type": "array", "minItems": 0, "maxItems": 3,
                                                 "uniqueItems": true, "items": {"enum": buttons}}}},
        }),
    );
    input["anyOf"] = json!([{"required": ["keys"]}, {"required": ["mouse"]}]);
    let mut audio = cue(
        "audio",
        "a program audio source's gain (dB) or mute, ramped; a part left out stays",
        &["source"],
        json!({"source": name,
               "gain_db": {"type": "number", "minimum": AUDIO_GAIN_DB.0, "maximum": AUDIO_GAIN_DB.1},
               "mute": {"type": "boolean"}, "ramp_s": duration(0.0)}),
    );
    audio["anyOf"] = json!([{"required": ["gain_db"]}, {"required": ["mute"]}]);
    let point = json!({
    "type": "object", "required": ["t", "pos", "yaw", "pitch"], "additionalProperties": false,
    "properties": {
        "t": {"type": "number", "minimum": 0, "maximum": MAX_DURATION_S * 24.0,
              "description": "seconds after the cue applies; increasing"},
        "pos": {"type": "array", "minItems": 3, "maxItems": 3,
                "items": {"type": "number", "minimum": -MAX_POSITION_M, "maximum": MAX_POSITION_M},
                "description": "x, y, z in metres"},
        "yaw": {"type": "number", "minimum": -MAX_PATH_YAW, "maximum": MAX_PATH_YAW, "description": "degrees"},
        "pitch": {"type": "number", "minimum": -89, "maximum": 89, "description": "degrees"},
        "fov": {"type": "number", "minimum": 1, "maximum": 170, "description": "horizontal, degrees"},
    }});
    let variants = vec![
        cue(
            "prompt",
            "a new scene description, blended in",
            &["text"],
            json!({"text": text, "transition_s": duration(1.0)}),
        ),
        action,
        cue(
            "camera_path",
            "the camera follows a smooth path through the points",
            &["points"],
            json!({"points": {"type": "array", "minItems": 1, "maxItems": MAX_PATH_POINTS, "items": point},
                   "loop": {"type": "boolean", "default": false}}),
        ),
        cue(
            "param",
            "a model or world parameter, ramped; its range is the model's",
            &["name", "value"],
            json!({"name": name, "value": {"type": "number"}, "ramp_s": duration(0.0)}),
        ),
        cue(
            "scene",
            "load one of the show's scenes",
            &["name"],
            json!({"name": name, "transition": {"enum": ["cut", "fade"], "default": "cut"},
                   "transition_s": duration(1.0)}),
        ),
        cue(
            "seed",
            "reseed the world",
            &["value"],
            json!({"value": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}),
        ),
        cue(
            "marker",
            "a timeline marker, carried into takes and exports",
            &["label"],
            json!({"label": text}),
        ),
        cue("freeze", "hold the current frame", &[], json!({})),
        cue("resume", "continue after a freeze", &[], json!({})),
        cue(
            "fade",
            "fade to or from black",
            &["to"],
            json!({"to": {"enum": ["black", "program"]}, "duration_s": duration(1.0)}),
        ),
        input,
        cue(
            "image",
            "start the model over from an image in the show's media folder (an upload lands there too)",
            &["name"],
            json!({"name": {"type": "string", "pattern": IMAGE_NAME_PATTERN, "minLength": 5,
                            "maxLength": 133, "description": "a PNG or JPEG file name, no folders"}}),
        ),
        audio,
    ];
    debug_assert_eq!(variants.len(), CUE_TYPES.len());
    json!({"title": "Cue", "oneOf": variants})
}

/// The schema of one cue type (its `oneOf` branch), or `None` for an unknown type.
pub fn type_schema(schema: &Value, ty: &str) -> Option<Value> {
    schema["oneOf"]
        .as_array()?
        .iter()
        .find(|v| v["properties"]["type"]["const"] == ty)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cue;

    /// A value that the schema `s` allows, at its lower (`high` false) or upper bound.
    fn example(s: &Value, high: bool) -> Value {
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(e) = s["enum"].as_array() {
            return if high {
                e[e.len() - 1].clone()
            } else {
                e[0].clone()
            };
        }
        if let Some(one) = s["oneOf"].as_array() {
            return example(&one[usize::from(high) % one.len()], high);
        }
        let bound = if high { "maximum" } else { "minimum" };
        match s["type"].as_str() {
            Some("number") | Some("integer") => s.get(bound).cloned().unwrap_or(json!(1)),
            Some("boolean") => json!(high),
            Some("string") if s.get("pattern") == Some(&json!(IMAGE_NAME_PATTERN)) => {
                json!(if high {
                    format!("{}.jpeg", "x".repeat(128))
                } else {
                    "a.png".to_owned()
                })
            }
            Some("string") if s.get("pattern") == Some(&json!(TIMECODE_PATTERN)) => {
                json!(if high { "99:59:59:00" } else { "0:0:0:0" })
            }
            Some("string") => {
                let n = if high {
                    s["maxLength"].as_u64().unwrap_or(8)
                } else {
                    1
                };
                json!("x".repeat(n as usize))
            }
            Some("array") => {
                let n = s["minItems"].as_u64().unwrap_or(1) as usize;
                let items: Vec<Value> = (0..n).map(|_| example(&s["items"], high)).collect();
                json!(items)
            }
            Some("object") => {
                let mut o = serde_json::Map::new();
                for (k, v) in s["properties"].as_object().unwrap() {
                    o.insert(k.clone(), example(v, high));
                }
                Value::Object(o)
            }
            other => panic!("example for {other:?} in {s}"),
        }
    }

    fn parses(v: &Value) -> Result<Cue, String> {
        Cue::from_value(v).map_err(|e| format!("{v} refused: {e}"))
    }

    #[test]
    fn every_type_the_schema_lists_parses_at_both_bounds_and_with_only_what_it_requires() {
        let s = schema();
        for ty in CUE_TYPES {
            let t = type_schema(&s, ty).unwrap_or_else(|| panic!("no schema for {ty}"));
            for high in [false, true] {
                let full = example(&t, high);
                let cue = parses(&full).unwrap();
                assert_eq!(cue.type_name(), ty);
                // What the parser returns serialises back to the same fields (defaults
                // and all): the schema and the parser agree on names.
                let back = cue.to_value();
                for k in full.as_object().unwrap().keys() {
                    assert!(back.get(k).is_some(), "{ty}: {k} lost in {back}");
                }
            }
            let mut minimal = serde_json::Map::new();
            for r in t["required"].as_array().unwrap() {
                let k = r.as_str().unwrap();
                minimal.insert(k.into(), example(&t["properties"][k], false));
            }
            if let Some(any) = t["anyOf"].as_array() {
                let k = any[0]["required"][0].as_str().unwrap();
                minimal.insert(k.into(), example(&t["properties"][k], false));
            }
            parses(&Value::Object(minimal.clone())).unwrap();
            // Each required field is required.
            for r in t["required"].as_array().unwrap() {
                let mut m = minimal.clone();
                m.remove(r.as_str().unwrap());
                assert!(
                    Cue::from_value(&Value::Object(m)).is_err(),
                    "{ty} without {r}"
                );
            }
            // Anything the schema does not list is refused.
            let mut extra = minimal.clone();
            extra.insert("colour".into(), json!(1));
            let e = Cue::from_value(&Value::Object(extra)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("colour"), "{ty}");
        }
    }

    /// Walks the schema's numeric bounds and string lengths: one step past each is refused.
    #[test]
    fn one_step_past_every_bound_is_refused() {
        let s = schema();
        for ty in CUE_TYPES {
            let t = type_schema(&s, ty).unwrap();
            let base = example(&t, false);
            for (k, p) in t["properties"].as_object().unwrap() {
                let mut past = Vec::new();
                if let Some(lo) = p["minimum"].as_f64() {
                    past.push(json!(if p["type"] == "integer" {
                        json!(-1)
                    } else {
                        json!(lo - 1e-6 * lo.abs().max(1.0))
                    }));
                }
                if let Some(hi) = p["maximum"].as_f64() {
                    if p["type"] == "number" {
                        past.push(json!(hi + 1e-6 * hi.abs().max(1.0)));
                    }
                }
                if let Some(n) = p["maxLength"].as_u64() {
                    past.push(json!("x".repeat(n as usize + 1)));
                }
                if p["minLength"].as_u64() == Some(1) {
                    past.push(json!(""));
                }
                if p.get("enum").is_some() {
                    past.push(json!("nope"));
                }
                for bad in past {
                    let mut v = base.clone();
                    v[k] = bad.clone();
                    assert!(Cue::from_value(&v).is_err(), "{ty}.{k} = {bad} accepted");
                }
            }
        }
        // The path point's own bounds, through a camera path.
        let t = type_schema(&s, "camera_path").unwrap();
        let point_schema = &t["properties"]["points"]["items"];
        for (k, p) in point_schema["properties"].as_object().unwrap() {
            let Some(hi) = p["maximum"].as_f64().or(p["items"]["maximum"].as_f64()) else {
                continue;
            };
            let mut point = example(point_schema, false);
            let past = json!(hi * 1.01 + 1.0);
            if p["type"] == "array" {
                point[k][0] = past;
            } else {
                point[k] = past;
            }
            let cue = json!({"type": "camera_path", "points": [point]});
            assert!(
                Cue::from_value(&cue).is_err(),
                "points[0].{k} past its bound accepted"
            );
        }
    }

    #[test]
    fn types_and_at_forms_outside_the_schema_are_refused() {
        let e = Cue::from_value(&json!({"type": "zoom"})).unwrap_err();
        for ty in CUE_TYPES {
            assert!(e.message.contains(ty), "{e}");
        }
        for at in [
            json!({"frames": 1}),
            json!({"frame": 1, "in_s": 1}),
            json!({"timecode": "1:2:3"}),
            json!({"timecode": "00:60:00:00"}),
            json!({"timecode": "00:00:00;00"}),
        ] {
            assert!(
                Cue::from_value(&json!({"type": "freeze", "at": at})).is_err(),
                "{at}"
            );
        }
        let s = schema();
        assert_eq!(s["oneOf"].as_array().unwrap().len(), CUE_TYPES.len());
    }
}
