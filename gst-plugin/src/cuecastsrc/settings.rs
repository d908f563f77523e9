//! The element's settings: the model's ([`ModelSettings`], the one definition the engine
//! and the daemon share) and the element's own (its cue file, control server, scenes).
//!
//! An application hands the model settings over whole and typed
//! (`CuecastSrc::set_model_settings`, what the daemon does); `gst-launch-1.0` users set
//! them one property at a time, each read into the same typed field, a wrong value
//! refused with a warning that names it (the last good value kept). The choice
//! `failure-action` is a GEnum, so `gst-inspect-1.0 cuecastsrc` lists its values.

use std::path::PathBuf;
use std::sync::LazyLock;

use cuecast_engine::engine::{FailureAction, ModelSettings, DEFAULT_PROMPT, MAX_MODEL_THREADS};
use cuecast_engine::generator::backend_names;
use cuecast_engine::worker::sandbox::ModelFolder;
use cuecast_engine::Scene;
use gst::glib;
use gst::prelude::*;

/// Property values; copied at the top of `start()`.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub model: ModelSettings,
    pub cues: Option<String>,
    pub control_address: Option<String>,
    pub control_token: Option<String>,
    /// Scenes given by an application (a show preset), beside a cue file's.
    pub scenes: Vec<Scene>,
    pub adaptive_detail: bool,
    /// The folder image cues (and `image`) read from.
    pub media: Option<String>,
    /// Properties last set to a value that could not be, and why: the element does not
    /// start with a setting other than the one asked for.
    pub refused: std::collections::BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: ModelSettings::default(),
            cues: None,
            control_address: None,
            control_token: None,
            scenes: Vec::new(),
            adaptive_detail: true,
            media: None,
            refused: Default::default(),
        }
    }
}

/// The waits between restarts the element says when the show says none.
pub(super) const DEFAULT_RESTART_MAX_S: f64 = 10.0;
pub(super) const DEFAULT_IS_LIVE: bool = true;

/// `failure-action`, as a GEnum (its nicks are the words a show preset uses).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstCuecastFailureAction")]
pub enum FailureActionProp {
    #[enum_value(
        name = "Start the model over (its reset, the show's seed and prompt)",
        nick = "reset"
    )]
    Reset,
    #[enum_value(name = "Keep the last good picture", nick = "hold")]
    Hold,
}

impl From<FailureActionProp> for FailureAction {
    fn from(p: FailureActionProp) -> Self {
        match p {
            FailureActionProp::Reset => FailureAction::Reset,
            FailureActionProp::Hold => FailureAction::Hold,
        }
    }
}

impl From<FailureAction> for FailureActionProp {
    fn from(a: FailureAction) -> Self {
        match a {
            FailureAction::Reset => FailureActionProp::Reset,
            FailureAction::Hold => FailureActionProp::Hold,
        }
    }
}

/// The element's properties.
pub(super) fn specs() -> &'static [glib::ParamSpec] {
    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        let backends = format!(
            "Generator backend: {} (procedural needs no weights; torchscript loads `model`)",
            backend_names().join(", ")
        );
        let defaults = ModelSettings::default();
        vec![
            glib::ParamSpecString::builder("backend")
                .nick("Backend")
                .blurb(&backends)
                .default_value(Some(defaults.backend.name()))
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("model")
                .nick("Model package")
                .blurb("Folder with cuecast-model.yaml: model.pt (torchscript backend), model.pt2 (aoti backend) or the model's Python (python backend)")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("python")
                .nick("Python")
                .blurb("Interpreter a python model runs in (its own venv's python); unset: the package's, else CUECAST_PYTHON, else python3")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("fallback")
                .nick("Fallback")
                .blurb("While a python model's process is down and restarting: \"hold\" the last frame, \"procedural\" world from the same camera, or \"still:NAME\" (an image in media)")
                .default_value(Some("hold"))
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("model-env")
                .nick("Model environment")
                .blurb("Comma-separated names of environment variables a python model's process gets beside PATH, HOME, the locale and CUDA's and PyTorch's own (HF_TOKEN, say); nothing else of this process's environment reaches it")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("model-network")
                .nick("Model network")
                .blurb("A python model may reach the network (one that fetches its weights); off, its sandbox has none")
                .default_value(false)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("model-folders")
                .nick("Model folders")
                .blurb("Comma-separated absolute folders beyond its package a python model may read (its weights), each PATH or PATH:rw to let it write; nothing else of the machine's files but the system's")
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("frame-blend")
                .nick("Frame blend")
                .blurb("A python model slower than the show (16 fps in a 30 fps show): frames between two of its frames mix them instead of repeating the first")
                .default_value(false)
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("restart-max-s")
                .nick("Restart backoff (s)")
                .blurb("The longest wait between restarts of a python model's process: at once, then 0.5, 1, 2, 4, 8 s, capped here")
                .minimum(0.0)
                .maximum(3600.0)
                .default_value(DEFAULT_RESTART_MAX_S)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("media")
                .nick("Media folder")
                .blurb("Folder image cues and the start image are read from (nothing outside it); unset: image cues are refused")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("image")
                .nick("Start image")
                .blurb("Image (a .png or .jpg in media) a model that takes images starts from")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("device")
                .nick("Device")
                .blurb("Where the model runs: auto (CUDA when present, else CPU), cpu, cuda:N")
                .default_value(Some("auto"))
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("seed")
                .nick("Seed")
                .blurb("World seed; changing it while playing reseeds the world")
                .default_value(defaults.seed)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("prompt")
                .nick("Prompt")
                .blurb("Scene description; changing it while playing blends to the new prompt over 1 s")
                .default_value(Some(DEFAULT_PROMPT))
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("cues")
                .nick("Cue file")
                .blurb("YAML file of scenes and cues played on schedule from the first frame")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("control-address")
                .nick("Control address")
                .blurb("host:port to serve the cue API on (POST /api/v1/cues, GET /api/v1/status); unset: no server")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("control-token")
                .nick("Control token")
                .blurb("Bearer token for the cue API; required when control-address is not loopback (write-only)")
                .write_only()
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("adaptive-detail")
                .nick("Adaptive detail")
                .blurb("Live only: while steps run late, a model that can draw cheaper frames (the procedural world) draws at 75 % or 50 % detail, and at full detail again once there is room; the frame size stays the same")
                .default_value(true)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("model-threads")
                .nick("Model threads")
                .blurb("libtorch threads for the model's step; 0: half the cores, at most 8 (one on a machine of up to three cores)")
                .maximum(MAX_MODEL_THREADS as u32)
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("failure-action", FailureActionProp::Reset)
                .nick("Failure action")
                .blurb("When failure-after steps in a row fail: reset starts the model over, hold keeps the last good picture")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("failure-after")
                .nick("Failure after")
                .blurb("Failed steps in a row that make a failing model: an error, and failure-action")
                .minimum(1)
                .maximum(1_000_000)
                .default_value(defaults.on_failure.after)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("state-limit-mb")
                .nick("State limit (MB)")
                .blurb("The most the model's state may hold; a state past it starts the model over. 0: no limit")
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("frames")
                .nick("Frames")
                .blurb("Frames pushed since the element started (rendered, held or repeated)")
                .read_only()
                .build(),
            glib::ParamSpecUInt64::builder("rendered")
                .nick("Rendered")
                .blurb("Frames the model made since the element started")
                .read_only()
                .build(),
            glib::ParamSpecUInt64::builder("repeated")
                .nick("Repeated")
                .blurb("Frames sent again because the model's was not ready in time (or its step failed)")
                .read_only()
                .build(),
            glib::ParamSpecUInt64::builder("failed")
                .nick("Failed")
                .blurb("Model steps that failed")
                .read_only()
                .build(),
            glib::ParamSpecBoolean::builder("is-live")
                .nick("Is live")
                .blurb("Live: frames on the pipeline clock at a constant rate, late steps repeat the last frame. Not live: every frame rendered, as fast as possible")
                .default_value(DEFAULT_IS_LIVE)
                .mutable_ready()
                .build(),
        ]
    });
    PROPERTIES.as_ref()
}

fn opt(v: &glib::Value) -> Option<String> {
    v.get::<Option<String>>()
        .unwrap()
        .filter(|s| !s.trim().is_empty())
}

/// A comma-separated list property, each item read by `parse`.
fn list<T>(v: &glib::Value, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    opt(v)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect()
}

impl Settings {
    /// Sets the property `name`, one the settings hold; a value that cannot be is
    /// refused with why (the last good one kept). `false` when the property is not one
    /// of the settings'.
    pub(super) fn set(&mut self, name: &str, v: &glib::Value) -> Result<bool, String> {
        let r = self.apply(name, v);
        match &r {
            Err(e) => self.refused.insert(name.to_owned(), e.clone()),
            Ok(_) => self.refused.remove(name),
        };
        r
    }

    /// Why the element cannot start with these settings: a property refused.
    pub(super) fn refusal(&self) -> Option<String> {
        self.refused
            .iter()
            .next()
            .map(|(name, why)| format!("{name}: {why}"))
    }

    fn apply(&mut self, name: &str, v: &glib::Value) -> Result<bool, String> {
        let m = &mut self.model;
        match name {
            "backend" => m.backend = opt(v).unwrap_or_else(|| "procedural".into()).parse()?,
            "model" => m.model = opt(v).map(PathBuf::from),
            "device" => {
                let d = opt(v).unwrap_or_else(|| "auto".into());
                m.device = d.parse().map_err(|e| format!("{e}"))?;
            }
            "seed" => m.seed = v.get().unwrap(),
            "prompt" => m.prompt = opt(v).unwrap_or_else(|| DEFAULT_PROMPT.into()),
            "model-threads" => {
                let n: u32 = v.get().unwrap();
                m.model_threads = (n > 0).then_some(n);
            }
            "failure-action" => {
                m.on_failure.action = v.get::<FailureActionProp>().unwrap().into();
            }
            "failure-after" => m.on_failure.after = v.get().unwrap(),
            "state-limit-mb" => {
                let mb: u32 = v.get().unwrap();
                m.state_limit_mb = (mb > 0).then_some(f64::from(mb));
            }
            "python" => m.python = opt(v).map(PathBuf::from),
            "fallback" => m.fallback = opt(v).unwrap_or_else(|| "hold".into()).parse()?,
            "image" => m.image = opt(v),
            "restart-max-s" => m.restart_max_s = Some(v.get().unwrap()),
            "frame-blend" => m.frame_blend = v.get().unwrap(),
            "model-env" => {
                m.model_env = list(v, |n| {
                    if cuecast_engine::engine::is_env_name(n) {
                        Ok(n.to_owned())
                    } else {
                        Err(format!("{n:?} is not an environment variable name"))
                    }
                })?
            }
            "model-network" => m.model_network = v.get().unwrap(),
            "model-folders" => m.model_folders = list(v, str::parse::<ModelFolder>)?,
            "cues" => self.cues = opt(v),
            "control-address" => self.control_address = opt(v),
            "control-token" => self.control_token = opt(v),
            "adaptive-detail" => self.adaptive_detail = v.get().unwrap(),
            "media" => self.media = opt(v),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The value of property `name`, one the settings hold.
    pub(super) fn get(&self, name: &str) -> Option<glib::Value> {
        let m = &self.model;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        Some(match name {
            "backend" => m.backend.name().to_value(),
            "model" => path(&m.model).to_value(),
            "device" => m.device.to_string().to_value(),
            "seed" => m.seed.to_value(),
            "prompt" => m.prompt.to_value(),
            "model-threads" => m.model_threads.unwrap_or(0).to_value(),
            "failure-action" => FailureActionProp::from(m.on_failure.action).to_value(),
            "failure-after" => m.on_failure.after.to_value(),
            "state-limit-mb" => (m.state_limit_mb.unwrap_or(0.0).ceil() as u32).to_value(),
            "python" => path(&m.python).to_value(),
            "fallback" => m.fallback.to_string().to_value(),
            "image" => m.image.to_value(),
            "restart-max-s" => m.restart_max_s.unwrap_or(DEFAULT_RESTART_MAX_S).to_value(),
            "frame-blend" => m.frame_blend.to_value(),
            "model-env" => m.model_env.join(",").to_value(),
            "model-network" => m.model_network.to_value(),
            "model-folders" => {
                let f: Vec<String> = m.model_folders.iter().map(ToString::to_string).collect();
                f.join(",").to_value()
            }
            "cues" => self.cues.to_value(),
            "control-address" => self.control_address.to_value(),
            "control-token" => None::<String>.to_value(),
            "adaptive-detail" => self.adaptive_detail.to_value(),
            "media" => self.media.to_value(),
            _ => return None,
        })
    }
}
