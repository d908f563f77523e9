//! cuecast's engine: everything between a cue arriving and a frame existing, with no
//! GStreamer and no HTTP in it.
//!
//! - [`cue`]: the control language, parsed with errors that name the bad field;
//! - [`schedule`]: the inbox cues arrive in and the scheduler that applies them on frame
//!   boundaries, keeping the cue log;
//! - [`world`] and [`camera`]: the state a show is in, advanced frame by frame;
//! - [`generator`]: the model contract and the built-in backends (`procedural`,
//!   `torchscript`, `pattern`);
//! - [`engine`]: the one thread that owns the model and renders what it is asked for;
//!   [`detail`] lowers a scalable model's detail while its steps run late;
//! - [`take`], [`checkpoint`] and [`replay`]: recording what the model made, saving and
//!   resuming its state, and making a take again offline.
//!
//! The GStreamer element (`gst-plugin-cuecast`) and the daemon (`cuecast`) are built on
//! [`Engine`]; anything else that wants frames from cues can be too.

pub mod camera;
pub mod checkpoint;
pub mod cue;
pub mod cuefile;
pub mod detail;
pub mod device;
pub mod engine;
pub mod frame;
pub mod generator;
pub mod metrics;
mod parallel;
pub mod replay;
pub mod schedule;
pub mod take;
pub mod world;

use std::path::PathBuf;

pub use camera::Pose;
pub use checkpoint::{Checkpoint, CheckpointManifest};
pub use cue::{Cue, CueError, CueId, CueKind};
pub use cuefile::CueFile;
pub use device::DeviceSpec;
pub use engine::{Engine, EngineConfig, Picture, Rendered, ShowHandle, Status, StatusHandle};
pub use frame::Frame;
pub use generator::{Fps, ModelInfo};
pub use schedule::{AppliedCue, CueInbox};
pub use take::{check_name, FileError, Take, TakeManifest, TakeSummary};
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
    /// The model thread is alive but stuck in a model step: it answers nothing until
    /// the step returns.
    #[error("the model is not responding: its step has been running for {running_s:.1} s")]
    NotResponding { running_s: f64 },
}
