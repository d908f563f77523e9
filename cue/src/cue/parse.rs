//! The cue parser, written by hand so that each refusal names the field at fault
//! (`points[2].pos`) and says what was expected and what came (see the module above).
//! Serde reads cues through it too, so a take's log or a rundown file is checked the
//! same way as the API.

use serde_json::{Map, Value};

use super::*;

impl Cue {
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
            "input" => {
                let input = Input {
                    keys: f.take_opt("keys").map(keys).transpose()?,
                    mouse: f.take_opt("mouse").map(mouse).transpose()?,
                };
                if input.keys.is_none() && input.mouse.is_none() {
                    return Err(CueError::general("an input cue needs keys, mouse or both"));
                }
                CueKind::Input(input)
            }
            "image" => {
                let name = f.string("name")?;
                if !is_image_name(&name) {
                    return Err(CueError::field(
                        "name",
                        format!(
                            "expected the name of a .png or .jpg file in the media folder \
                             (letters, digits, '.', '_' and '-', no folders), got {name:?}"
                        ),
                    ));
                }
                CueKind::Image { name }
            }
            "audio" => {
                let (lo, hi) = AUDIO_GAIN_DB;
                let kind = CueKind::Audio {
                    source: f.name("source")?,
                    gain_db: f
                        .opt_number("gain_db")?
                        .map(|v| in_range("gain_db", v, lo, hi))
                        .transpose()?,
                    mute: f.opt_bool("mute")?,
                    ramp_s: f.duration("ramp_s", 0.0)?,
                };
                if let CueKind::Audio {
                    gain_db: None,
                    mute: None,
                    ..
                } = kind
                {
                    return Err(CueError::general(
                        "an audio cue needs gain_db, mute or both",
                    ));
                }
                kind
            }
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
}

/// Reading a cue from any serde source (a take's log, a rundown file) goes through the
/// same parser as the API, so it is checked the same way and fails with the same words.
impl<'de> serde::Deserialize<'de> for Cue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cue, D::Error> {
        let value = Value::deserialize(d)?;
        Cue::from_value(&value).map_err(serde::de::Error::custom)
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

fn keys(value: &Value) -> Result<Vec<String>, CueError> {
    let bad = |m: String| CueError::field("keys", m);
    let items = value.as_array().ok_or_else(|| {
        bad(format!(
            "expected an array of key codes such as [\"KeyW\", \"ShiftLeft\"], got {}",
            kind_of(value)
        ))
    })?;
    if items.len() > MAX_KEYS {
        return Err(bad(format!("at most {MAX_KEYS} keys, got {}", items.len())));
    }
    let mut held: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("keys[{i}]");
        let code = item.as_str().ok_or_else(|| {
            CueError::field(
                &field,
                format!("expected a key code, got {}", kind_of(item)),
            )
        })?;
        if !key_codes().iter().any(|k| k == code) {
            return Err(CueError::field(
                &field,
                format!(
                    "{code:?} is not a W3C KeyboardEvent.code (such as KeyW, ArrowUp, Space, ShiftLeft, Digit1)"
                ),
            ));
        }
        if held.iter().any(|k| k == code) {
            return Err(CueError::field(&field, format!("{code:?} is listed twice")));
        }
        held.push(code.to_owned());
    }
    Ok(held)
}

fn mouse(value: &Value) -> Result<Mouse, CueError> {
    let at = |e: CueError| e.within("mouse");
    let obj = value
        .as_object()
        .ok_or_else(|| {
            CueError::general(format!(
                "expected {{\"dx\": x, \"dy\": y}} in pixels, got {}",
                kind_of(value)
            ))
        })
        .map_err(at)?;
    let mut f = Fields::new(obj);
    (|| {
        let dx = in_range("dx", f.number("dx")?, -MAX_MOUSE_PX, MAX_MOUSE_PX)?;
        let dy = in_range("dy", f.number("dy")?, -MAX_MOUSE_PX, MAX_MOUSE_PX)?;
        let buttons = match f.take_opt("buttons") {
            None => None,
            Some(v) => Some(mouse_buttons(v)?),
        };
        f.finish()?;
        Ok(Mouse { dx, dy, buttons })
    })()
    .map_err(at)
}

fn mouse_buttons(value: &Value) -> Result<Vec<MouseButton>, CueError> {
    let names = || {
        MouseButton::ALL
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items = value.as_array().ok_or_else(|| {
        CueError::field(
            "buttons",
            format!("expected an array of {}, got {}", names(), kind_of(value)),
        )
    })?;
    let mut held = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let b = MouseButton::ALL
            .into_iter()
            .find(|b| item.as_str() == Some(b.as_str()))
            .ok_or_else(|| {
                CueError::field(
                    format!("buttons[{i}]"),
                    format!("expected one of {}, got {item}", names()),
                )
            })?;
        if held.contains(&b) {
            return Err(CueError::field(
                format!("buttons[{i}]"),
                format!("{:?} is listed twice", b.as_str()),
            ));
        }
        held.push(b);
    }
    held.sort();
    Ok(held)
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
