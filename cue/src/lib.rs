//! cuecast's cue language, with no libtorch, GStreamer or HTTP in it: what a producer
//! can ask of a show, and the state those asks steer.
//!
//! - [`cue`]: cues, parsed with errors that name the bad field, and their JSON Schema
//!   ([`cue::schema`]), the one description the HTTP API, OSC and the control surface use;
//! - [`schedule`]: the inbox cues arrive in and the scheduler that applies them on frame
//!   boundaries, keeping the cue log;
//! - [`world`] and [`camera`]: the state a show is in, advanced frame by frame;
//! - [`cuefile`]: a show's cues and scenes in YAML;
//! - [`model`]: what a model takes ([`ModelInfo`]) and the show's frame rate ([`Fps`]).
//!
//! It is its own crate so that everything that speaks cues (the daemon's API and OSC,
//! tools, tests) builds and tests without the engine's libtorch.

pub mod camera;
pub mod cue;
pub mod cuefile;
pub mod model;
pub mod schedule;
pub mod schema;
pub mod world;

pub use camera::Pose;
pub use cue::{Cue, CueError, CueId, CueKind};
pub use cuefile::{CueFile, CueFileError};
pub use model::{Fps, ModelInfo, ParamSpec, PromptMode, PromptState};
pub use schedule::{AppliedCue, CueInbox};
pub use world::{Scene, ShowContext};
