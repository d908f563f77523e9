//! What a model is, as the cue language needs to know it: its frame rate, the params,
//! actions and prompt it takes. The engine's generators fill a [`ModelInfo`]; cues are
//! checked against it before they are accepted.

use serde::Serialize;

/// A frame rate as a fraction, as GStreamer and broadcast gear give it (30000/1001).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub const fn new(num: u32, den: u32) -> Self {
        Fps { num, den }
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The integer frame rate timecode counts in (30 for 29.97).
    pub fn nominal(self) -> u32 {
        (self.as_f64().round() as u32).max(1)
    }

    /// Nanoseconds from the start of the show to the start of `frame`, exact.
    pub fn frame_to_ns(self, frame: u64) -> u64 {
        (u128::from(frame) * 1_000_000_000 * u128::from(self.den) / u128::from(self.num)) as u64
    }
}

/// A param a model understands, with its range and default.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ParamSpec {
    pub name: String,
    pub default: f64,
    pub min: f64,
    pub max: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// How a model takes prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    /// The prompt text is passed to every step (contract 2 calls it `every_step`).
    Text,
    /// The model is told when the prompt changes, with the transition asked for
    /// (`set_prompt(text, transition_s)`): models that encode text once, or re-cache.
    SetPrompt,
    /// The model ignores prompts.
    None,
}

impl PromptMode {
    /// The modes as a package's manifest (and the worker protocol) names them.
    pub const MANIFEST_NAMES: [(&'static str, PromptMode); 3] = [
        ("every_step", PromptMode::Text),
        ("set_prompt", PromptMode::SetPrompt),
        ("none", PromptMode::None),
    ];

    /// The manifest's name for this mode.
    pub fn manifest_name(self) -> &'static str {
        Self::MANIFEST_NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("none", |(n, _)| n)
    }

    /// The mode a manifest names, if it is one.
    pub fn from_manifest_name(name: &str) -> Option<PromptMode> {
        Self::MANIFEST_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }
}

/// Whether a model is conditioned on an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageInput {
    /// It takes none: `image` cues are refused.
    #[default]
    None,
    /// It starts from one when given (an `image` cue, or the show's start image).
    Optional,
    /// It cannot start without one: a show must name a start image.
    Required,
}

/// The per-frame inputs a model takes beside its action axes (contract 2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ModelInputs {
    /// Keys, as W3C `KeyboardEvent.code` names, in the order the model takes them.
    pub keys: Vec<String>,
    /// Pointer movement (dx, dy) and the mouse buttons held.
    pub mouse: bool,
    /// A world-to-camera pose and intrinsics per frame, from the camera rig.
    pub camera_pose: bool,
    pub image: ImageInput,
    /// Live video frames (a camera, a feed), for video-to-video models.
    pub video: Option<VideoInput>,
    /// The program's sound for each step's time span (voice-driven models).
    pub audio: Option<AudioFormat>,
}

/// Sound a model makes or takes: interleaved float samples at `rate`, `channels` of
/// them; a whole number of samples per model frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AudioFormat {
    pub rate: u32,
    pub channels: u32,
}

impl AudioFormat {
    /// Samples (per channel) in one frame at `fps`.
    pub fn per_frame(self, fps: Fps) -> usize {
        (u64::from(self.rate) * u64::from(fps.den) / u64::from(fps.num.max(1))) as usize
    }
}

/// A model's video input: what each step takes of the live video fed to it. Frames are
/// scaled to `width` x `height` as they arrive; the newest `frames` are given to each
/// step, older ones dropped (counted), so a slow model never builds a queue. How long
/// after its input a frame is due is the model's `latency_frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VideoInput {
    /// Input frames per step.
    pub frames: u32,
    pub width: u32,
    pub height: u32,
}

/// How a model makes frames: how many a step gives, and how far its output lags the
/// inputs that made it. A model of one frame per step with no lag is `Chunking::ONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Chunking {
    pub frames_per_step: u32,
    /// Frames of the first step after a start (Wan-family models make fewer then).
    pub first_step_frames: u32,
    /// Frames between the inputs of a frame and the frame that shows them.
    pub latency_frames: u32,
}

impl Chunking {
    pub const ONE: Chunking = Chunking {
        frames_per_step: 1,
        first_step_frames: 1,
        latency_frames: 0,
    };
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking::ONE
    }
}

/// What a model is and what it accepts: from a package's `cuecast-model.yaml`, or
/// built in.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ModelInfo {
    pub name: String,
    /// The size and rate the model makes natively.
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
    /// True when the model renders any size directly; otherwise its frames are scaled
    /// to the negotiated size.
    pub any_size: bool,
    /// Action axes the model takes, in the order it takes them.
    pub actions: Vec<String>,
    pub params: Vec<ParamSpec>,
    pub prompt: PromptMode,
    /// The steepest camera pitch, in degrees, the model can draw.
    pub pitch_limit: f64,
    /// Whether steps produce depth.
    pub depth: bool,
    /// A digest of the model's weights and code, for checkpoints.
    pub hash: String,
    /// Keys, mouse, camera poses and images, where the model takes them.
    pub inputs: ModelInputs,
    pub chunking: Chunking,
    /// The sound the model makes with its frames, if it makes any.
    pub audio: Option<AudioFormat>,
}

impl ModelInfo {
    /// A model that renders any size, takes no actions, params or prompt, and makes no
    /// depth: the shape of trivial and test backends.
    pub fn simple(name: &str, width: u32, height: u32, fps: Fps) -> Self {
        ModelInfo {
            name: name.into(),
            width,
            height,
            fps,
            any_size: true,
            actions: Vec::new(),
            params: Vec::new(),
            prompt: PromptMode::None,
            pitch_limit: 89.0,
            depth: false,
            hash: name.into(),
            inputs: ModelInputs::default(),
            chunking: Chunking::ONE,
            audio: None,
        }
    }

    pub fn param(&self, name: &str) -> Option<(usize, &ParamSpec)> {
        self.params.iter().enumerate().find(|(_, p)| p.name == name)
    }
}

/// The prompt as a generator sees it: the current text and, during a transition, the
/// text it is blending from.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptState {
    pub text: String,
    pub previous: Option<String>,
    /// 0 = all `previous`, 1 = all `text`.
    pub mix: f64,
}
