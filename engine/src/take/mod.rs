//! Takes: what the generator made between start and stop, written while it happens
//! (`writer.rs`) and read back for export, replay and listing (`reader.rs`).
//!
//! A take is a folder:
//!
//! | file | what |
//! |---|---|
//! | `take.json` | the manifest: model, size, rate, first frame, lost frames |
//! | `frames.jsonl` | one line per recorded frame: its show frame, world frame, camera and hash |
//! | `rgb.raw` | the frames, RGBx 8-bit, top row first, one after another |
//! | `depth.raw` | depth per frame, f32 little-endian metres along the view axis |
//! | `cues.jsonl` | the cues applied during the take, with their frames |
//! | `start/` | the checkpoint the take starts from (what replay restores) |
//!
//! Why raw frames: the writer must never slow the show, and on a small machine any
//! compression (PNG, even fast deflate) costs as much CPU as a model step. Raw frames
//! cost a copy into the page cache; the exporters make PNG, EXR and ProRes afterwards.
//! Frames go to a writer thread through a bounded queue; when the disk cannot keep up the
//! frame is dropped from the take (never from the show) and listed in `lost_frames`.
//!
//! Why it survives a crash: each frame's pixels are written before its line in
//! `frames.jsonl`, and each line is flushed as it is written. A reader trusts the lines
//! whose pixels are in the files and ignores a torn last line, so a take cut short by a
//! kill is still a take (its manifest then has no `stopped_utc`).

mod reader;
mod writer;

pub use reader::Take;
pub use writer::TakeWriter;
// Where these lived before `files` had them; callers still name them here.
pub use crate::files::{
    check_name, remove_leftovers, temporary_beside, utc_iso, utc_stamp, write_json_atomic,
    FileError, FileErrorKind,
};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::camera::Pose;
use crate::cue::{At, Cue};
use crate::generator::Fps;
use crate::schedule::AppliedCue;

pub const TAKE_FORMAT: &str = "cuecast-take/1";
/// The take's sound, where the show had program audio: 48 kHz stereo 16-bit WAV from
/// the take's start.
pub const AUDIO_FILE: &str = "audio.wav";

/// Which model made something, and how to load it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelId {
    pub name: String,
    pub hash: String,
    pub backend: String,
    /// The model package's folder, for backends that load one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PathBuf>,
}

/// The software that made a take or checkpoint (replays are exact on the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Software {
    pub cuecast: String,
    pub tch: String,
    pub device: String,
}

impl Software {
    pub fn current(device: &str) -> Self {
        Software {
            cuecast: env!("CARGO_PKG_VERSION").to_owned(),
            tch: "0.24".to_owned(),
            device: device.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Size {
    pub width: usize,
    pub height: usize,
}

/// `take.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TakeManifest {
    pub format: String,
    pub name: String,
    pub model: ModelId,
    /// The frames' size.
    pub width: usize,
    pub height: usize,
    /// The depth maps' size (a model's native size can differ from the frames');
    /// `None` when the model makes no depth (or no frame was recorded yet).
    pub depth: Option<Size>,
    pub fps: Fps,
    /// The show frame the take starts at.
    pub start_frame: u64,
    pub started_utc: String,
    /// `None` while recording, or when the take was cut short.
    pub stopped_utc: Option<String>,
    /// Frames recorded (set at stop).
    pub frames: Option<u64>,
    /// Show frames the disk could not keep up with: not in the take.
    pub lost_frames: Vec<u64>,
    pub software: Software,
    /// The checkpoint folder (inside the take) replays start from.
    pub start_checkpoint: String,
    /// Why the take ended before it was stopped (the disk was full...), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

/// One line of `frames.jsonl`: the `index`th frame in `rgb.raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    pub index: u64,
    /// The show frame (its presentation time is `frame / fps` from the show's start).
    pub frame: u64,
    /// The frame of the world's own clock (differs from `frame` after a restore).
    pub world_frame: u64,
    #[serde(flatten)]
    pub pose: Pose,
    /// The world was frozen: the previous picture again.
    #[serde(default)]
    pub held: bool,
    /// The detail it was drawn at (below 1 while steps ran late; see
    /// [`crate::detail`]); written only when below 1.
    #[serde(default = "full_detail", skip_serializing_if = "is_full_detail")]
    pub detail: f32,
    /// The model was started over before this frame (its steps kept failing, or its
    /// state outgrew the limit); a replay does the same here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// A checkpoint was restored live just before this frame: its copy in the take
    /// (`restores/FRAME`), which a replay restores here too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<String>,
    /// `sha256:` of the frame's bytes in `rgb.raw` (RGBx), written by the writer: what
    /// a replay compares its frames with, and what shows a changed `rgb.raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// The hash a take records of a frame's RGBx bytes.
pub fn frame_hash(rgbx: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(rgbx))
}

fn full_detail() -> f32 {
    1.0
}

fn is_full_detail(d: &f32) -> bool {
    *d >= 1.0
}

/// A cue applied during a take, as `cues.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CueRecord {
    pub id: u64,
    pub cue: Cue,
    /// The show frame it took effect on.
    pub frame: u64,
    pub shown_frame: u64,
    pub arrived_unix_ms: u64,
    pub latency_ms: f64,
}

impl CueRecord {
    fn of(a: &AppliedCue) -> Self {
        CueRecord {
            id: a.id,
            cue: a.cue.clone(),
            frame: a.frame,
            shown_frame: a.shown_frame,
            arrived_unix_ms: a.arrived_unix_ms,
            latency_ms: a.latency_ms,
        }
    }

    /// The cue, timed to the frame it took effect on (what a replay submits).
    pub fn replayable(&self) -> Cue {
        Cue {
            at: Some(At::Frame(self.frame)),
            ..self.cue.clone()
        }
    }
}

/// A marker cue in a take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marker {
    pub label: String,
    /// The show frame.
    pub frame: u64,
    /// Frames from the take's start.
    pub offset: u64,
    /// Seconds from the take's start.
    pub time_s: f64,
}

/// What a finished take holds.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TakeSummary {
    pub name: String,
    pub dir: PathBuf,
    pub frames: u64,
    pub lost_frames: Vec<u64>,
    pub start_frame: u64,
}
