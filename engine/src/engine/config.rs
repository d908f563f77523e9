//! How an engine starts: the backend and its package, the device, libtorch's threads,
//! and what to do about a model that keeps failing or whose state keeps growing.

use std::path::PathBuf;

use crate::camera::Pose;
use crate::world::Scene;

use super::settings::ModelSettings;

/// How a show's engine starts: the model as the show says ([`ModelSettings`]), and what
/// the show around it adds.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub settings: ModelSettings,
    pub scenes: Vec<Scene>,
    /// Where the camera starts; the model's default when `None`.
    pub camera: Option<Pose>,
    /// Lower the detail while steps run late (see [`crate::detail`]): for a live show.
    /// Off, every frame is drawn at full detail however long it takes.
    pub adaptive_detail: bool,
    /// Where `image` cues (and the start image) are read from; `None`: nowhere.
    pub media: Option<PathBuf>,
    /// Frames are shown on a clock (a live source): what cannot be ready in time is not
    /// waited for. Not live, every frame is waited for.
    pub live: bool,
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

crate::serde_as_string!(Fallback);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailurePolicy {
    /// Failed steps in a row that count as a failing model: an error, and `action`.
    pub after: u32,
    pub action: FailureAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
            settings: ModelSettings::default(),
            scenes: Vec::new(),
            camera: None,
            adaptive_detail: false,
            media: None,
            live: true,
        }
    }
}
