//! cuecast's engine: everything between a cue arriving and a frame existing, with no
//! GStreamer and no HTTP in it.
//!
//! - [`cue`], [`schedule`], [`world`], [`camera`], [`cuefile`]: the cue language and the
//!   state it steers, re-exported from the `cuecast-cue` crate (which has no libtorch);
//! - [`generator`]: the model contract and the built-in backends (`procedural`,
//!   `torchscript`, `pattern`);
//! - [`engine`]: the one thread that owns the model and renders what it is asked for;
//!   [`detail`] lowers a scalable model's detail while its steps run late;
//! - [`take`], [`checkpoint`] and [`replay`]: recording what the model made, saving and
//!   resuming its state, and making a take again offline.
//!
//! The GStreamer element (`gst-plugin-cuecast`) and the daemon (`cuecast`) are built on
//! [`Engine`]; anything else that wants frames from cues can be too.

/// Reads and writes a type as the string its `Display` writes and its `FromStr` reads
/// (a setting's one form, in files and properties alike).
macro_rules! serde_as_string {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(|e| serde::de::Error::custom(e))
            }
        }
    };
}
pub(crate) use serde_as_string;

pub use cuecast_cue::{camera, cue, cuefile, schedule, schema, world};
pub mod checkpoint;
pub mod detail;
pub mod device;
pub mod engine;
pub mod files;
pub mod frame;
pub mod generator;
pub mod join;
pub mod media;
pub mod metrics;
mod parallel;
pub mod replay;
pub mod sound;
pub mod take;
pub mod video_in;
pub mod worker;

use std::path::PathBuf;

pub use camera::Pose;
pub use checkpoint::{Checkpoint, CheckpointManifest};
pub use cue::{Cue, CueError, CueId, CueKind};
pub use cuefile::{CueFile, CueFileError};
pub use device::DeviceSpec;
pub use engine::{Engine, EngineConfig, Picture, Rendered, ShowHandle, Status, StatusHandle};
pub use frame::{Frame, Pixels};
pub use generator::{Fps, ModelInfo};
pub use schedule::{AppliedCue, CueInbox};
pub use take::{check_name, FileError, FileErrorKind, Take, TakeManifest, TakeSummary};
pub use world::Scene;

/// Why an engine could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A setting is wrong: `what` names it.
    #[error("{what}: {message}")]
    Config { what: String, message: String },
    /// A model package cannot be used.
    #[error("model package {path}: {message}")]
    Model { path: PathBuf, message: String },
    /// A cue, or a scene's contents, is invalid.
    #[error("invalid cue: {0}")]
    Cue(#[from] CueError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A take or checkpoint file cannot be written or read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The model thread is gone.
    #[error("{0}")]
    Stopped(String),
    /// A take is being recorded, so another cannot start.
    #[error("take: take {name:?} is being recorded: stop it first")]
    TakeInProgress { name: String },
    /// There is no take to stop.
    #[error("take: no take is being recorded")]
    NoTake,
    /// A checkpoint made by another model (or another version of it).
    #[error("checkpoint: it was made by model {made_by}; this show runs {running}")]
    OtherModel { made_by: String, running: String },
    /// A cue file cannot be read or is invalid.
    #[error(transparent)]
    CueFile(#[from] CueFileError),
    /// The model thread is alive but stuck in a model step: it answers nothing until
    /// the step returns.
    #[error("the model is not responding: its step has been running for {running_s:.1} s")]
    NotResponding { running_s: f64 },
}
