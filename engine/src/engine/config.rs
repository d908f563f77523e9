//! How an engine starts: the backend and its package, the device, libtorch's threads,
//! and what to do about a model that keeps failing or whose state keeps growing.

use std::path::PathBuf;

use crate::camera::Pose;
use crate::world::Scene;

use crate::device::DeviceSpec;

/// How a show's engine starts.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `procedural`, `torchscript`, `pattern` or a registered backend.
    pub backend: String,
    /// Model package folder (torchscript).
    pub model: Option<PathBuf>,
    pub device: DeviceSpec,
    pub seed: u64,
    pub prompt: String,
    pub scenes: Vec<Scene>,
    /// Where the camera starts; the model's default when `None`.
    pub camera: Option<Pose>,
    /// Lower the detail while steps run late (see [`crate::detail`]): for a live show.
    /// Off, every frame is drawn at full detail however long it takes.
    pub adaptive_detail: bool,
    /// libtorch's intra-op threads for the model (`None`: [`default_model_threads`]).
    pub model_threads: Option<usize>,
    /// What happens when steps keep failing.
    pub on_failure: FailurePolicy,
    /// The most the model's state may hold; beyond it the model is reset.
    pub state_limit_bytes: Option<u64>,
    /// Where `image` cues (and the start image) are read from; `None`: nowhere.
    pub media: Option<PathBuf>,
    /// The image the model starts from (a file in `media`), for models that take one.
    pub image: Option<String>,
    /// The interpreter a `python` model runs in (else its manifest's, else
    /// `CUECAST_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
    /// What a chunked model's show draws while its process is down.
    pub fallback: Fallback,
    /// The longest wait between restarts of a model's process, in seconds (`None`:
    /// 10). The first restart is at once, then 0.5, 1, 2, 4, 8 s.
    pub restart_max_s: Option<f64>,
    /// A chunked model slower than the show: show frames between two of its frames mix
    /// them (by where they fall between) instead of repeating the first.
    pub frame_blend: bool,
    /// Frames are shown on a clock (a live source): what cannot be ready in time is not
    /// waited for. Not live, every frame is waited for.
    pub live: bool,
    /// Environment variables a python model's process gets beside the ones every model
    /// gets (`worker::PASSED_ENV`): none of the show's secrets reach it unless named.
    pub model_env: Vec<String>,
    /// A python model may reach the network (a model that fetches its weights); off,
    /// its sandbox has none.
    pub model_network: bool,
    /// Folders beyond its package a python model may read (weights), or write (`:rw`).
    pub model_folders: Vec<crate::worker::sandbox::ModelFolder>,
}

/// What the show draws while a chunked model's process is down (restarting).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fallback {
    /// The last frame stays on air (repeated, and counted, by whoever shows the frames).
    #[default]
    Hold,
    /// The procedural world, from the same camera.
    Procedural,
    /// An image from the media folder.
    Still(String),
}

impl std::fmt::Display for Fallback {
    /// As [`Fallback::from_str`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::Hold => f.write_str("hold"),
            Fallback::Procedural => f.write_str("procedural"),
            Fallback::Still(name) => write!(f, "still:{name}"),
        }
    }
}

impl std::str::FromStr for Fallback {
    type Err = String;

    /// `hold`, `procedural`, or `still:NAME` (an image in the media folder).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hold" => Ok(Fallback::Hold),
            "procedural" => Ok(Fallback::Procedural),
            _ => match s.strip_prefix("still:") {
                Some(name) if crate::cue::is_image_name(name) => Ok(Fallback::Still(name.into())),
                _ => Err(format!(
                    "{s:?} is none of hold, procedural, still:NAME (a .png or .jpg in the media folder)"
                )),
            },
        }
    }
}

/// What the engine does when the model's steps keep failing (the same bad state fails
/// every step after it, so holding the last picture would hold it forever). A show
/// preset's `on_failure: {after, action}` is this, read as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailurePolicy {
    /// Failed steps in a row that count as a failing model: an error, and `action`.
    pub after: u32,
    pub action: FailureAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Keep showing the last good picture; only report.
    Hold,
    /// Start the model over (its `reset`, with the show's seed and prompt), as at the
    /// show's start; the world (camera, params, cues) carries on.
    Reset,
}

impl FailureAction {
    /// The name a show preset and the element's `failure-action` use.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Hold => "hold",
            FailureAction::Reset => "reset",
        }
    }
}

impl std::str::FromStr for FailureAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hold" => Ok(FailureAction::Hold),
            "reset" => Ok(FailureAction::Reset),
            other => Err(format!("{other:?} is neither \"reset\" nor \"hold\"")),
        }
    }
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            after: 30,
            action: FailureAction::Reset,
        }
    }
}

/// libtorch's threads when the show does not say: half the cores, at most 8, and one
/// on a machine of up to three. libtorch's own default (every core) makes each step a
/// parallel region that waits for its slowest thread; beside the encoders and anything
/// else the machine runs, one busy core then stretches a 7 ms step to hundreds.
pub fn default_model_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).clamp(1, 8)
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            backend: "procedural".into(),
            model: None,
            device: DeviceSpec::Auto,
            seed: 0,
            prompt: "rolling green hills".into(),
            scenes: Vec::new(),
            camera: None,
            adaptive_detail: false,
            model_threads: None,
            on_failure: FailurePolicy::default(),
            state_limit_bytes: None,
            media: None,
            image: None,
            python: None,
            fallback: Fallback::Hold,
            restart_max_s: None,
            frame_blend: false,
            live: true,
            model_env: Vec::new(),
            model_network: false,
            model_folders: Vec::new(),
        }
    }
}
