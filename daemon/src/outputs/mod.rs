//! Outputs: where the show's frames go (SRT, RTMP, a recording, the preview), each one
//! unable to hurt the others or the show.
//!
//! The show pipeline ends in a tee (`program`). Each encoder profile in use hangs one
//! branch off it, behind a leaky queue: convert, scale, rate, x264 (+ AAC silence),
//! into appsinks. That is the encode-once part: every output that uses the profile gets
//! the same encoded samples. Each SRT, RTMP or record output is then a pipeline of its
//! own (appsrc → mux → sink), fed from those appsinks through non-blocking, leaky
//! appsrcs. So a network sink that errors, blocks or vanishes only ever takes down its
//! own little pipeline: the tee, the encoders, the generator and the other outputs
//! never see its flow errors (a sink's error inside a shared pipeline would travel
//! back up through the tee and stop the source).
//!
//! One supervisor thread owns all of it. It starts outputs, tears them down on error,
//! and restarts them with OBS-like backoff (2 s, ×1.5, jitter, capped); each output's
//! state is an explicit [`OutputState`]. GStreamer's own sinks never reconnect
//! (`rtmp2sink`, and an SRT caller whose listener left, just error out), so the
//! daemon owns reconnection.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cuecast_engine::take::utc_stamp;

use axum::body::Bytes;
use gst::prelude::*;
use serde::Serialize;

use crate::config::{Output, OutputKind, Profile, SrtMode, Video};
use crate::delivery::{Probe, Syncer, Tracker, Verdict};
use crate::events::{Event, Events};

/// Where an output is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    /// Started; the peer has taken nothing yet (or, for an SRT listener, no receiver
    /// is connected).
    Connecting,
    /// The peer takes data: an acknowledged RTMP publish whose bytes flow, SRT
    /// receivers acknowledging, a file growing.
    Live,
    /// Failed; waiting to try again.
    Retrying,
    /// Gave up (too many attempts, or a setting that cannot work); needs a start.
    Failed,
    /// Stopped by the user (or `enabled: false`).
    Stopped,
}

impl OutputState {
    pub const ALL: [OutputState; 5] = [
        OutputState::Connecting,
        OutputState::Live,
        OutputState::Retrying,
        OutputState::Failed,
        OutputState::Stopped,
    ];

    /// As status, events and `/metrics` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputState::Connecting => "connecting",
            OutputState::Live => "live",
            OutputState::Retrying => "retrying",
            OutputState::Failed => "failed",
            OutputState::Stopped => "stopped",
        }
    }
}

/// What the API and `/metrics` show of an output. No secrets.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OutputStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: String,
    pub profile: Option<String>,
    pub state: OutputState,
    pub bytes: u64,
    pub reconnects: u64,
    pub attempt: u32,
    pub last_error: Option<String>,
    /// Connected SRT receivers (SRT outputs only).
    pub receivers: Option<u32>,
    /// Seconds until the next attempt, when retrying.
    pub retry_in_s: Option<f64>,
    /// The file being written, for recordings.
    pub file: Option<String>,
    /// Whether it came from the config file (`false`: added over the API).
    pub from_config: bool,
}

/// What the API and a config reload ask of the outputs. [`Outputs`] is the real one; the
/// trait is the seam that lets the API's routes be tested in-process against a fake.
pub trait OutputControl: Send + Sync {
    /// The config's outputs now: add, remove, restart what changed.
    fn apply(&self, outputs: Vec<Output>);
    fn add(&self, output: Output) -> Result<(), OutputError>;
    fn start_output(&self, name: &str) -> Result<(), OutputError>;
    fn stop_output(&self, name: &str) -> Result<(), OutputError>;
    fn remove(&self, name: &str) -> Result<(), OutputError>;
    /// Every output, by name.
    fn list(&self) -> Vec<OutputStatus>;
    /// The encoders running now.
    fn encoders(&self) -> Vec<EncoderStatus>;
    /// The newest preview JPEG, and a way to wait for the next.
    fn preview(&self) -> tokio::sync::watch::Receiver<Option<Bytes>>;
}

impl OutputControl for Outputs {
    fn apply(&self, outputs: Vec<Output>) {
        let _ = self.tx.send(Message::Command(Command::Apply(outputs)));
    }

    fn add(&self, output: Output) -> Result<(), OutputError> {
        self.ask(|r| Command::Add(Box::new(output), r))
    }

    fn start_output(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Start(name.to_owned(), r))
    }

    fn stop_output(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Stop(name.to_owned(), r))
    }

    fn remove(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Remove(name.to_owned(), r))
    }

    fn list(&self) -> Vec<OutputStatus> {
        self.table
            .lock()
            .values()
            .map(|e| {
                let mut s = e.status.clone();
                s.bytes = e.bytes.load(Ordering::Relaxed);
                s
            })
            .collect()
    }

    fn encoders(&self) -> Vec<EncoderStatus> {
        self.encoders
            .lock()
            .iter()
            .map(|c| EncoderStatus {
                profile: c.profile.clone(),
                frames_in: c.frames_in.load(Ordering::Relaxed),
                frames_out: c.frames_out.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn preview(&self) -> tokio::sync::watch::Receiver<Option<Bytes>> {
        self.preview.clone()
    }
}

/// Why an output command was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("no output named {0:?}")]
    Unknown(String),
    #[error("an output named {0:?} exists already")]
    Exists(String),
    #[error("the outputs have shut down")]
    Gone,
}

enum Command {
    /// The config's outputs now: add, remove, restart what changed.
    Apply(Vec<Output>),
    Add(Box<Output>, mpsc::Sender<Result<(), OutputError>>),
    Start(String, mpsc::Sender<Result<(), OutputError>>),
    Stop(String, mpsc::Sender<Result<(), OutputError>>),
    Remove(String, mpsc::Sender<Result<(), OutputError>>),
    /// Finish recordings and close everything.
    Shutdown(mpsc::Sender<()>),
}

enum Message {
    Command(Command),
    /// An output's pipeline reported an error.
    Failed {
        name: String,
        generation: u64,
        error: String,
    },
    /// An output delivered its first buffer.
    Live {
        name: String,
        generation: u64,
    },
}

/// The outputs of one show. Cheap to clone; commands go to the supervisor thread.
#[derive(Clone)]
pub struct Outputs {
    tx: mpsc::Sender<Message>,
    table: Arc<Mutex<BTreeMap<String, Entry>>>,
    encoders: Arc<Mutex<Vec<Arc<EncoderCounts>>>>,
    preview: tokio::sync::watch::Receiver<Option<Bytes>>,
}

/// An output's row in the shared table.
#[derive(Clone)]
struct Entry {
    status: OutputStatus,
    bytes: Arc<AtomicU64>,
}

impl Outputs {
    /// Starts the supervisor for a show pipeline whose program feed is `program` (a
    /// tee with `allow-not-linked=true`), then applies `outputs`.
    pub fn start(
        pipeline: &gst::Pipeline,
        program: &gst::Element,
        video: Video,
        outputs: Vec<Output>,
        events: Events,
    ) -> Outputs {
        let (tx, rx) = mpsc::channel();
        let table = Arc::new(Mutex::new(BTreeMap::new()));
        let encoders = Arc::new(Mutex::new(Vec::new()));
        let (preview_tx, preview) = tokio::sync::watch::channel(None);
        let mut supervisor = Supervisor {
            pipeline: pipeline.clone(),
            program: program.clone(),
            video,
            tx: tx.clone(),
            table: table.clone(),
            encoder_table: encoders.clone(),
            events,
            outputs: BTreeMap::new(),
            encoders: BTreeMap::new(),
            preview: Arc::new(preview_tx),
            next_generation: 1,
            rng: seed_rng(),
            next_check: Instant::now(),
            closing: false,
        };
        std::thread::Builder::new()
            .name("cuecast-outputs".into())
            .spawn(move || supervisor.run(rx))
            .expect("cannot start the outputs thread");
        let _ = tx.send(Message::Command(Command::Apply(outputs)));
        Outputs {
            tx,
            table,
            encoders,
            preview,
        }
    }

    fn ask(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), OutputError>>) -> Command,
    ) -> Result<(), OutputError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Message::Command(make(reply)))
            .map_err(|_| OutputError::Gone)?;
        answer.recv().map_err(|_| OutputError::Gone)?
    }

    /// Finishes recordings (end-of-stream through the muxer) and closes every output;
    /// returns when done or after `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        let (reply, done) = mpsc::channel();
        if self
            .tx
            .send(Message::Command(Command::Shutdown(reply)))
            .is_ok()
        {
            let _ = done.recv_timeout(timeout);
        }
    }
}

mod encoder;
mod supervisor;
pub mod ts;

pub use encoder::EncoderStatus;
use encoder::*;
#[allow(unused_imports)]
use supervisor::pipeline::*;

/// An output's own pipeline (SRT, RTMP, record) while it runs.
struct Running {
    generation: u64,
    pipeline: gst::Pipeline,
    encoder: String,
    eos: Arc<AtomicBool>,
    sink: gst::Element,
    /// What the peer has taken in this attempt.
    tracker: Tracker,
    /// A recording's once-a-second flush to the disk.
    _syncer: Option<Syncer>,
}

/// A preview branch while it runs.
struct PreviewRun {
    branch: Branch,
}

enum Run {
    Pipeline(Running),
    Preview(PreviewRun),
}

/// How often the sinks' delivery counters are read.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long an output must stay live before its attempts count from zero again.
const STABLE: Duration = Duration::from_secs(10);

/// Where an output is in its life, with what that phase owns: a run exists only while an
/// attempt is under way, a retry time only while one is planned. The state the API shows
/// ([`OutputState`]) is read from it, never kept beside it.
enum Phase {
    /// Not running: stopped by the user, disabled, or not started yet.
    Stopped,
    /// An attempt is being built; its pipeline does not exist yet.
    Starting,
    /// The attempt runs; the peer has taken nothing yet.
    Connecting(Run),
    /// The peer takes data, since `since`. Attempts count from zero again only once it
    /// has stayed live for [`STABLE`] (a server that takes the connection and then
    /// refuses the stream would otherwise reset the count at every try).
    Live { run: Run, since: Instant },
    /// The last attempt failed; the next starts at `at`.
    Retrying { at: Instant },
    /// Gave up; only a start tries again.
    Failed,
}

impl Phase {
    fn state(&self) -> OutputState {
        match self {
            Phase::Stopped => OutputState::Stopped,
            Phase::Starting | Phase::Connecting(_) => OutputState::Connecting,
            Phase::Live { .. } => OutputState::Live,
            Phase::Retrying { .. } => OutputState::Retrying,
            Phase::Failed => OutputState::Failed,
        }
    }

    fn run(&self) -> Option<&Run> {
        match self {
            Phase::Connecting(run) | Phase::Live { run, .. } => Some(run),
            _ => None,
        }
    }

    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Phase::Connecting(run) | Phase::Live { run, .. } => Some(run),
            _ => None,
        }
    }

    fn into_run(self) -> Option<Run> {
        match self {
            Phase::Connecting(run) | Phase::Live { run, .. } => Some(run),
            _ => None,
        }
    }

    /// Whether an attempt is under way (its errors count).
    fn attempting(&self) -> bool {
        matches!(
            self,
            Phase::Starting | Phase::Connecting(_) | Phase::Live { .. }
        )
    }

    /// Connecting → live (the run is kept); whether it changed.
    fn go_live(&mut self, now: Instant) -> bool {
        if !matches!(self, Phase::Connecting(_)) {
            return false;
        }
        if let Phase::Connecting(run) = std::mem::replace(self, Phase::Starting) {
            *self = Phase::Live { run, since: now };
        }
        true
    }

    /// Live → connecting (a listener lost its last receiver); whether it changed.
    fn go_connecting(&mut self) -> bool {
        if !matches!(self, Phase::Live { .. }) {
            return false;
        }
        if let Phase::Live { run, .. } = std::mem::replace(self, Phase::Starting) {
            *self = Phase::Connecting(run);
        }
        true
    }
}

/// The supervisor's record of an output.
struct Managed {
    output: Output,
    from_config: bool,
    phase: Phase,
    /// The attempt now under way (or last made): messages from older ones are ignored.
    generation: u64,
    attempt: u32,
    reconnects: u64,
    last_error: Option<String>,
    file: Option<PathBuf>,
    bytes: Arc<AtomicU64>,
}

struct Supervisor {
    pipeline: gst::Pipeline,
    program: gst::Element,
    video: Video,
    tx: mpsc::Sender<Message>,
    table: Arc<Mutex<BTreeMap<String, Entry>>>,
    encoder_table: Arc<Mutex<Vec<Arc<EncoderCounts>>>>,
    events: Events,
    outputs: BTreeMap<String, Managed>,
    /// Keyed by [`Profile::encode_key`].
    encoders: BTreeMap<String, Encoder>,
    preview: Arc<tokio::sync::watch::Sender<Option<Bytes>>>,
    next_generation: u64,
    rng: u64,
    /// When the sinks' counters are read next.
    next_check: Instant,
    /// Set at shutdown: branches then stay in the show pipeline and stop with it,
    /// rather than being detached by threads that could outlive the process's main.
    closing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_get_their_start_time() {
        let p = record_path(Path::new("rec/show-{time}.mkv"));
        let s = p.to_string_lossy();
        assert!(
            s.starts_with("rec/show-")
                && s.ends_with(".mkv")
                && s.len() == "rec/show-.mkv".len() + 15,
            "{s}"
        );
        assert_eq!(record_path(Path::new("a.mkv")), PathBuf::from("a.mkv"));
    }

    #[test]
    fn a_recording_never_overwrites_a_file() {
        let dir = std::env::temp_dir().join(format!("cuecast-record-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("show.mkv");
        std::fs::write(&first, b"kept").unwrap();
        assert_eq!(record_path(&first), dir.join("show-2.mkv"));
        std::fs::write(dir.join("show-2.mkv"), b"kept").unwrap();
        assert_eq!(record_path(&first), dir.join("show-3.mkv"));
        assert_eq!(std::fs::read(&first).unwrap(), b"kept");
        // An empty file (an attempt that failed at once) is taken again, not littered.
        std::fs::write(dir.join("show-3.mkv"), b"").unwrap();
        assert_eq!(record_path(&first), dir.join("show-3.mkv"));
        assert!(free_bytes(&dir).is_some_and(|b| b > 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
