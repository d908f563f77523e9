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
use serde_json::Value;

use crate::schema::CUE_TYPES;

mod parse;

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
    /// Keys and mouse, as game-trained models take them.
    Input(Input),
    /// Start the model over from an image in the show's media folder.
    Image { name: String },
    /// A program audio source's gain or mute, ramped over `ramp_s`; a part left out
    /// stays as it is.
    Audio {
        source: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        gain_db: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mute: Option<bool>,
        ramp_s: f64,
    },
}

/// The quietest and loudest gain an `audio` cue may set, in dB.
pub const AUDIO_GAIN_DB: (f64, f64) = (-60.0, 12.0);

/// Keys held and pointer movement. `None` leaves that part as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Input {
    /// The keys held from now on (W3C `KeyboardEvent.code` names); `[]` releases all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mouse: Option<Mouse>,
}

/// Pointer movement in pixels (right and down positive), added to what the model's
/// next frame receives; and, when given, the buttons held from now on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Mouse {
    pub dx: f64,
    pub dy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<MouseButton>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    Left,
    Middle,
    Right,
}

impl MouseButton {
    pub const ALL: [MouseButton; 3] = [MouseButton::Left, MouseButton::Middle, MouseButton::Right];

    pub fn as_str(self) -> &'static str {
        match self {
            MouseButton::Left => "left",
            MouseButton::Middle => "middle",
            MouseButton::Right => "right",
        }
    }
}

/// The most keys an input cue may hold at once.
pub const MAX_KEYS: usize = 32;
/// The largest pointer movement one input cue may carry, in pixels on each axis.
pub const MAX_MOUSE_PX: f64 = 10_000.0;
/// An image name: a file directly in the media folder, PNG or JPEG.
pub const IMAGE_NAME_PATTERN: &str =
    "^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\\.(png|jpg|jpeg|PNG|JPG|JPEG)$";

/// Whether `name` is an image name [`IMAGE_NAME_PATTERN`] allows: no folders, no hidden
/// files, a PNG or JPEG extension. What keeps an `image` cue inside the media folder.
pub fn is_image_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let first = stem.bytes().next();
    name.len() <= 133
        && !stem.is_empty()
        && stem.len() <= 128
        && first.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && matches!(ext, "png" | "jpg" | "jpeg" | "PNG" | "JPG" | "JPEG")
}

/// The W3C UI Events `KeyboardEvent.code` values an input cue may name: the writing
/// system, functional, control-pad, arrow, numpad and function sections of the spec.
pub fn key_codes() -> &'static [String] {
    static CODES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let mut v: Vec<String> = Vec::new();
        v.extend((b'A'..=b'Z').map(|c| format!("Key{}", c as char)));
        v.extend((0..10).map(|d| format!("Digit{d}")));
        v.extend((0..10).map(|d| format!("Numpad{d}")));
        v.extend((1..=12).map(|n| format!("F{n}")));
        v.extend(
            [
                "Backquote",
                "Backslash",
                "BracketLeft",
                "BracketRight",
                "Comma",
                "Equal",
                "IntlBackslash",
                "IntlRo",
                "IntlYen",
                "Minus",
                "Period",
                "Quote",
                "Semicolon",
                "Slash",
                "AltLeft",
                "AltRight",
                "Backspace",
                "CapsLock",
                "ContextMenu",
                "ControlLeft",
                "ControlRight",
                "Enter",
                "MetaLeft",
                "MetaRight",
                "ShiftLeft",
                "ShiftRight",
                "Space",
                "Tab",
                "Delete",
                "End",
                "Help",
                "Home",
                "Insert",
                "PageDown",
                "PageUp",
                "ArrowDown",
                "ArrowLeft",
                "ArrowRight",
                "ArrowUp",
                "NumLock",
                "NumpadAdd",
                "NumpadComma",
                "NumpadDecimal",
                "NumpadDivide",
                "NumpadEnter",
                "NumpadEqual",
                "NumpadMultiply",
                "NumpadSubtract",
                "Escape",
                "PrintScreen",
                "ScrollLock",
                "Pause",
            ]
            .map(String::from),
        );
        v
    });
    &CODES
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
            CueKind::Image { name } => name.len(),
            CueKind::Audio { source, .. } => source.len(),
            CueKind::Input(i) => i.keys.as_ref().map_or(0, |k| k.len() * 16),
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

    /// The cue as a JSON value, in the same schema it was parsed from.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("cues always serialize")
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
            CueKind::Input(_) => "input",
            CueKind::Image { .. } => "image",
            CueKind::Audio { .. } => "audio",
        }
    }
}

#[cfg(test)]
mod tests;
