//! The engine: one thread that owns the model, applies cues on frame boundaries and
//! renders the frames it is asked for.
//!
//! libtorch keeps per-thread state and its tensors are not `Sync`, so the generator is
//! created, warmed up, stepped and dropped on a single dedicated thread; nothing runs
//! inference on async workers or on GStreamer's streaming thread. The caller asks for
//! frames by index ([`Engine::render`]) and gets [`Rendered`] results through the
//! callback it gave at start. When the caller asks for several frames before the thread
//! is free, it renders only the newest one (the world still advances through the
//! skipped frames), which is how a live source catches up after a slow step.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tch::Tensor;

use crate::camera::Pose;
use crate::checkpoint::{Checkpoint, CheckpointManifest, CHECKPOINT_FORMAT};
use crate::cue::CueId;
use crate::detail::{self, DetailControl};
use crate::device::{device_name, DeviceSpec};
use crate::frame::{Frame, FramePool};
use crate::generator::{
    create_generator, BackendConfig, Fps, Generator, Image, ModelInfo, StepError, StepInput,
};
use crate::metrics::{Histogram, LATENCY_MS_BUCKETS, STEP_MS_BUCKETS};
use crate::schedule::{AppliedCue, CueInbox, InFlight, Scheduler};
use crate::take::{
    utc_iso, FrameRecord, ModelId, Size, Software, TakeManifest, TakeSummary, TakeWriter,
    TAKE_FORMAT,
};
use crate::world::{Scene, ShowContext, World};
use crate::{CueError, EngineError};

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
        }
    }
}

/// What one render produced.
#[derive(Debug)]
pub enum Picture {
    /// A newly rendered frame.
    New(Frame),
    /// The world is frozen: the held frame again (with any fade applied).
    Held(Frame),
    /// The step failed; show the previous frame again.
    Failed(StepError),
}

/// The result of [`Engine::render`].
#[derive(Debug)]
pub struct Rendered {
    pub frame: u64,
    pub picture: Picture,
    /// Cues whose effect this frame is the first to show.
    pub applied: Vec<AppliedCue>,
    /// Time spent in the model's step (zero when held).
    pub step_time: Duration,
}

/// Counters shared with whoever shows the frames.
#[derive(Debug)]
pub struct Counters {
    pub rendered: AtomicU64,
    pub failed: AtomicU64,
    /// Incremented by the caller when it had to repeat a frame to keep its rate.
    pub repeated: AtomicU64,
    /// Time in the model's step, per rendered frame.
    pub step_ms: Histogram,
    /// From a cue's arrival to the first frame showing it.
    pub cue_latency_ms: Histogram,
    /// When the step in progress began, in milliseconds since `epoch`; 0 between steps.
    step_started_ms: AtomicU64,
    epoch: Instant,
}

impl Counters {
    /// How long the model's step in progress has been running (`None` between steps).
    pub fn step_running(&self) -> Option<Duration> {
        match self.step_started_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }

    fn step_begins(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.step_started_ms.store(ms.max(1), Ordering::Release);
    }

    fn step_ends(&self) {
        self.step_started_ms.store(0, Ordering::Release);
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            rendered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            repeated: AtomicU64::new(0),
            step_ms: Histogram::new(STEP_MS_BUCKETS),
            cue_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
            step_started_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// A snapshot of the show for status reports; updated every frame.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub backend: String,
    pub model: String,
    pub device: String,
    /// libtorch's intra-op threads (see [`default_model_threads`]).
    pub model_threads: usize,
    /// Bytes the model's state holds (0 for a model without state).
    pub state_bytes: u64,
    /// Steps failed in a row now (0 while steps succeed).
    pub failing_steps: u64,
    /// Times the model was started over because it kept failing or its state grew
    /// past the limit; the last reason.
    pub model_resets: u64,
    pub last_reset: Option<String>,
    pub frame: u64,
    pub width: usize,
    pub height: usize,
    pub fps: Fps,
    pub camera: Pose,
    pub prompt: String,
    pub params: BTreeMap<String, f64>,
    pub seed: u64,
    pub frozen: bool,
    pub fade: f64,
    pub cues_waiting: usize,
    pub last_step_ms: f64,
    pub frames_rendered: u64,
    pub steps_failed: u64,
    pub frames_repeated: u64,
    /// The take being recorded.
    pub take: Option<String>,
    /// The detail frames are drawn at: 1 is full; lower while steps run late on a model
    /// that can draw cheaper frames (see [`crate::detail`]).
    pub detail: f32,
    /// The last take that ended by itself (its files could not be written), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_ended: Option<TakeEnded>,
    /// Seconds the model's step in progress has been running, once it has run for
    /// [`STEP_SLOW`] or more (a hung model); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_running_s: Option<f64>,
}

type Reply<T> = mpsc::Sender<Result<T, EngineError>>;

/// A take that ended before it was stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TakeEnded {
    pub name: String,
    pub reason: String,
    /// Frames it holds.
    pub frames: u64,
}

/// A step running this long shows in the status (`step_running_s`).
pub const STEP_SLOW: Duration = Duration::from_secs(1);
/// The most libtorch threads a show may ask for.
pub const MAX_MODEL_THREADS: usize = 256;

/// A step running this long makes requests to the model thread fail at once.
pub const STEP_STALL: Duration = Duration::from_secs(5);
/// The longest any request to the model thread waits.
pub const ASK_LIMIT: Duration = Duration::from_secs(30);
/// How long stopping waits for the model thread before leaving it behind.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

enum Request {
    Output {
        width: usize,
        height: usize,
        fps: Fps,
    },
    Scenes(Vec<Scene>),
    /// Render this frame; at this detail when given (a replay), else as the show's
    /// step times allow.
    Render {
        frame: u64,
        detail: Option<f32>,
        /// Start the model over before this frame (a replay of a take in which the
        /// failure policy did so).
        reset: bool,
    },
    StartTake {
        dir: PathBuf,
        name: String,
        reply: Reply<TakeManifest>,
    },
    StopTake(Reply<TakeSummary>),
    Save(Reply<Checkpoint>),
    Restore {
        checkpoint: Box<Checkpoint>,
        /// Keep the show's frame numbering (a live restore), or take the checkpoint's
        /// (a replay, whose cue log is in the original show's frames).
        show_clock: bool,
        reply: Reply<()>,
    },
    Stop,
}

type Deliver = Box<dyn FnMut(Rendered) + Send>;

/// The running engine. Dropping it stops the model thread.
pub struct Engine {
    requests: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
    inbox: CueInbox,
    info: ModelInfo,
    device: tch::Device,
    status: Arc<Mutex<Status>>,
    log: Arc<Mutex<CueLog>>,
    counters: Arc<Counters>,
    /// The take being recorded, shared so that a model stuck in a step at shutdown
    /// cannot keep it from being finished.
    take: TakeSlot,
}

/// The take being recorded. The model thread holds the lock only between steps.
type TakeSlot = Arc<Mutex<Option<TakeWriter>>>;

/// A lock that a panic elsewhere does not poison for good: the data behind it stays
/// consistent (every holder writes whole values).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most cue records kept in memory; takes keep their own complete logs.
const LOG_LIMIT: usize = 10_000;
/// The most the cue log may hold, in (estimated) bytes of cues.
const LOG_BYTES: usize = 8 << 20;

impl Engine {
    /// Starts the model thread, loads and warms up the model, and returns once it is
    /// ready, or with the reason it could not start. `deliver` is called on the model
    /// thread with every rendered frame.
    pub fn start(
        config: EngineConfig,
        deliver: impl FnMut(Rendered) + Send + 'static,
    ) -> Result<Engine, EngineError> {
        let (req_tx, req_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let counters = Arc::new(Counters::default());
        let log = Arc::new(Mutex::new(CueLog::default()));
        let inbox = CueInbox::new(ShowContext::default());
        let take: TakeSlot = Arc::default();
        let shared = (inbox.clone(), log.clone(), counters.clone(), take.clone());
        let thread = std::thread::Builder::new()
            .name("cuecast-model".into())
            .spawn(move || {
                let _no_grad = tch::no_grad_guard();
                let threads = config.model_threads.unwrap_or_else(default_model_threads);
                tch::set_num_threads(threads.clamp(1, MAX_MODEL_THREADS) as i32);
                let (inbox, log, counters, take) = shared;
                match ModelThread::load(config, inbox, log, counters, take, Box::new(deliver)) {
                    Ok((mut model, status)) => {
                        let ready = (model.gen.info().clone(), model.gen.device(), status.clone());
                        if ready_tx.send(Ok(ready)).is_ok() {
                            model.run(req_rx, status);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| EngineError::Config {
                what: "engine".into(),
                message: format!("cannot start the model thread: {e}"),
            })?;
        let (info, device, status) = match ready_rx.recv() {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let reason = match thread.join() {
                    Err(panic) => panic_message(panic.as_ref()),
                    Ok(()) => "it exited".into(),
                };
                return Err(EngineError::Stopped(format!(
                    "the model thread failed while loading: {reason}"
                )));
            }
        };
        Ok(Engine {
            requests: req_tx,
            thread: Some(thread),
            inbox,
            info,
            device,
            status,
            log,
            counters,
            take,
        })
    }

    /// Starts an engine whose frames arrive on a channel.
    pub fn start_with_channel(
        config: EngineConfig,
    ) -> Result<(Engine, mpsc::Receiver<Rendered>), EngineError> {
        let (tx, rx) = mpsc::channel();
        let engine = Engine::start(config, move |r| {
            let _ = tx.send(r);
        })?;
        Ok((engine, rx))
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// Where cues go. Clone it freely.
    pub fn inbox(&self) -> &CueInbox {
        &self.inbox
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn status(&self) -> Status {
        self.status_handle().get()
    }

    /// A handle that reads status from any thread (for servers that outlive a borrow).
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            status: self.status.clone(),
            counters: self.counters.clone(),
        }
    }

    /// A handle on the running show for other threads: cues, status, metrics, scenes.
    pub fn handle(&self) -> ShowHandle {
        ShowHandle {
            inbox: self.inbox.clone(),
            status: self.status_handle(),
            log: self.log.clone(),
            info: self.info.clone(),
            requests: self.requests.clone(),
        }
    }

    /// Sets the size and rate frames are made at (after caps negotiation).
    pub fn set_output(&self, width: usize, height: usize, fps: Fps) {
        self.inbox.update_context(|c| c.fps = Some(fps));
        let _ = self.requests.send(Request::Output { width, height, fps });
    }

    /// Asks for frame `frame`; the result arrives through the deliver callback.
    pub fn render(&self, frame: u64) -> Result<(), EngineError> {
        self.request_render(frame, None, false)
    }

    /// Asks for frame `frame` drawn at `detail` whatever the step times (a replay draws
    /// each frame at the detail it had on air).
    pub fn render_at(&self, frame: u64, detail: f32, reset: bool) -> Result<(), EngineError> {
        self.request_render(frame, Some(detail), reset)
    }

    fn request_render(
        &self,
        frame: u64,
        detail: Option<f32>,
        reset: bool,
    ) -> Result<(), EngineError> {
        self.requests
            .send(Request::Render {
                frame,
                detail,
                reset,
            })
            .map_err(|_| EngineError::Stopped("the model thread has stopped".into()))
    }
}

impl Engine {
    /// Stops the model thread, waiting at most `grace` for it: one still in a step then
    /// is left behind (it stops after that step, or ends with the process), and the
    /// take it was recording is finished here. Dropping an engine waits
    /// [`STOP_GRACE`].
    pub fn stop_within(mut self, grace: Duration) {
        self.shut_down(grace);
    }

    fn shut_down(&mut self, grace: Duration) {
        let _ = self.requests.send(Request::Stop);
        let Some(t) = self.thread.take() else { return };
        let deadline = Instant::now() + grace;
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            let running = self.counters.step_running().unwrap_or_default();
            tracing::warn!(
                "the model did not stop within {:.1} s (its step has been running for {:.1} s): left behind",
                grace.as_secs_f64(),
                running.as_secs_f64()
            );
            // The take it was recording is finished here: it holds what was recorded.
            // (The model thread takes the lock only between steps, so a stuck step
            // does not hold it; `try_lock`, should it be stuck anywhere else.)
            let taken = self.take.try_lock().ok().and_then(|mut t| t.take());
            if let Some(take) = taken {
                let name = take.name();
                match take.finish() {
                    Ok(s) => tracing::info!("take {name:?} finished ({} frames)", s.frames),
                    Err(e) => tracing::error!("take {name:?} could not be finished: {e}"),
                }
            }
        }
    }
}

impl Drop for Engine {
    /// Stops the model thread; one stuck in a step is left behind after
    /// [`STOP_GRACE`] (it ends with the process), so that stopping never hangs.
    fn drop(&mut self) {
        self.shut_down(STOP_GRACE);
    }
}

/// Reads an engine's status from anywhere, for as long as it is wanted.
#[derive(Clone)]
pub struct StatusHandle {
    status: Arc<Mutex<Status>>,
    counters: Arc<Counters>,
}

impl StatusHandle {
    pub fn get(&self) -> Status {
        let mut s = self.status.lock().unwrap().clone();
        s.frames_repeated = self.counters.repeated.load(Ordering::Relaxed);
        s.step_running_s = self
            .counters
            .step_running()
            .filter(|d| *d >= STEP_SLOW)
            .map(|d| d.as_secs_f64());
        s
    }
}

/// What a controller (the daemon's API, OSC, a rundown) holds on a running engine.
/// Cheap to clone; outliving the engine is harmless (changes then go nowhere).
#[derive(Clone)]
pub struct ShowHandle {
    inbox: CueInbox,
    status: StatusHandle,
    log: Arc<Mutex<CueLog>>,
    info: ModelInfo,
    requests: mpsc::Sender<Request>,
}

impl ShowHandle {
    pub fn inbox(&self) -> &CueInbox {
        &self.inbox
    }

    pub fn status_handle(&self) -> &StatusHandle {
        &self.status
    }

    pub fn status(&self) -> Status {
        self.status.get()
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.status.counters
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Applied cues, oldest first: those after the cue `after` (by id) when given, else
    /// the most recent; at most `limit`. Shared, not copied: the lock is held only to
    /// pick them.
    pub fn cue_log(&self, after: Option<CueId>, limit: usize) -> Vec<Arc<AppliedCue>> {
        self.log.lock().unwrap().page(after, limit)
    }

    /// Starts recording a take into the folder `dir` (which must not exist), beginning
    /// with a checkpoint of the show as it is now.
    pub fn start_take(&self, dir: &Path, name: &str) -> Result<TakeManifest, EngineError> {
        self.ask(|reply| Request::StartTake {
            dir: dir.to_owned(),
            name: name.to_owned(),
            reply,
        })
    }

    /// Stops the take being recorded; returns once its files are complete.
    pub fn stop_take(&self) -> Result<TakeSummary, EngineError> {
        self.ask(Request::StopTake)
    }

    /// Saves a checkpoint of the show as of the last frame made into the folder `dir`
    /// (which must not exist).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<CheckpointManifest, EngineError> {
        let checkpoint = self.ask(Request::Save)?;
        checkpoint.save(dir)?;
        Ok(checkpoint.manifest)
    }

    /// Resumes the scene from a checkpoint: the next frame is the one that followed it.
    /// A checkpoint of another model is refused, naming both hashes.
    pub fn restore(&self, checkpoint: Checkpoint) -> Result<(), EngineError> {
        self.ask(|reply| Request::Restore {
            checkpoint: Box::new(checkpoint),
            show_clock: true,
            reply,
        })
    }

    /// Like [`ShowHandle::restore`], continuing the checkpoint's frame numbering.
    pub(crate) fn restore_for_replay(&self, checkpoint: Checkpoint) -> Result<(), EngineError> {
        self.ask(|reply| Request::Restore {
            checkpoint: Box::new(checkpoint),
            show_clock: false,
            reply,
        })
    }

    /// Sends a request to the model thread and waits for its answer (which comes
    /// between two frames).
    ///
    /// Every wait is bounded: a step stuck for [`STEP_STALL`] answers
    /// [`EngineError::NotResponding`] at once, and no request waits longer than
    /// [`ASK_LIMIT`] (a large checkpoint being written is the slowest honest answer).
    fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, EngineError> {
        let gone = || EngineError::Stopped("the model thread has stopped".into());
        let (tx, rx) = mpsc::channel();
        self.requests.send(request(tx)).map_err(|_| gone())?;
        let deadline = Instant::now() + ASK_LIMIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(answer) => return answer,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gone()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let running = self.counters().step_running().unwrap_or_default();
            if running >= STEP_STALL || Instant::now() >= deadline {
                return Err(EngineError::NotResponding {
                    running_s: running.as_secs_f64(),
                });
            }
        }
    }

    /// Replaces the scenes `scene` cues can call. They are checked against the model
    /// first; on error nothing changes.
    pub fn set_scenes(&self, scenes: Vec<Scene>) -> Result<(), CueError> {
        let context = self.inbox.context();
        for scene in &scenes {
            context.check_scene(scene)?;
        }
        self.inbox
            .update_context(|c| c.scenes = scenes.iter().map(|s| s.name.clone()).collect());
        let _ = self.requests.send(Request::Scenes(scenes));
        Ok(())
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The applied cues status readers see, newest last; bounded in entries and in bytes, so
/// that large cues (long camera paths) cannot make it grow without limit.
#[derive(Default)]
pub struct CueLog {
    entries: VecDeque<Arc<AppliedCue>>,
    bytes: usize,
}

impl CueLog {
    fn push(&mut self, cue: AppliedCue) {
        self.bytes += cue.cue.approx_bytes();
        self.entries.push_back(Arc::new(cue));
        while self.entries.len() > LOG_LIMIT || self.bytes > LOG_BYTES {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.cue.approx_bytes(),
                None => break,
            }
        }
    }

    fn page(&self, after: Option<CueId>, limit: usize) -> Vec<Arc<AppliedCue>> {
        match after {
            Some(id) => self
                .entries
                .iter()
                .filter(|c| c.id > id)
                .take(limit)
                .cloned()
                .collect(),
            None => {
                let skip = self.entries.len().saturating_sub(limit);
                self.entries.iter().skip(skip).cloned().collect()
            }
        }
    }
}

/// Everything the model thread owns.
struct ModelThread {
    gen: Box<dyn Generator>,
    world: World,
    scheduler: Scheduler,
    inbox: CueInbox,
    pool: FramePool,
    /// The last frame the world advanced to.
    last_frame: Option<u64>,
    /// The last frame rendered, before any fade: what a freeze holds.
    last_raw: Option<Frame>,
    /// Applied cues not yet shown (the world was frozen when they applied).
    unshown: Vec<InFlight>,
    log: Arc<Mutex<CueLog>>,
    counters: Arc<Counters>,
    deliver: Deliver,
    backend: String,
    /// Who this model is, for takes and checkpoints.
    model_id: ModelId,
    /// The world's clock minus the show's: zero until a checkpoint is restored, after
    /// which the world continues from the checkpoint's frame while the show's frame
    /// numbers (and timestamps) keep counting.
    shift: i64,
    take: TakeSlot,
    /// Lowers the detail while steps run late, where `adapts` says so.
    detail: DetailControl,
    adapts: bool,
    /// The detail the last step drew at (what the take records for its frame).
    drawn_detail: f32,
    take_ended: Option<TakeEnded>,
    policy: FailurePolicy,
    state_limit: Option<u64>,
    /// Steps failed in a row.
    failing: u64,
    /// Why the model starts over before its next step, when it does.
    reset_next: Option<String>,
    resets: u64,
    last_reset: Option<String>,
    /// The last step began with a policy reset (its frame record says so).
    did_reset: bool,
    /// The take's copy of a checkpoint restored live, for the next frame's record.
    restored: Option<String>,
}

impl ModelThread {
    fn load(
        config: EngineConfig,
        inbox: CueInbox,
        log: Arc<Mutex<CueLog>>,
        counters: Arc<Counters>,
        take: TakeSlot,
        deliver: Deliver,
    ) -> Result<(Self, Arc<Mutex<Status>>), EngineError> {
        let device = config.device.resolve()?;
        let backend_config = BackendConfig {
            backend: config.backend.clone(),
            model: config.model.clone(),
            device,
            seed: config.seed,
            prompt: config.prompt.clone(),
        };
        let mut gen = catch_unwind(AssertUnwindSafe(|| create_generator(&backend_config)))
            .map_err(|p| EngineError::Config {
                what: "backend".into(),
                message: format!(
                    "{} panicked while loading: {}",
                    config.backend,
                    panic_message(p.as_ref())
                ),
            })??;
        let info = gen.info().clone();
        let context = ShowContext {
            params: info.params.clone(),
            scenes: config.scenes.iter().map(|s| s.name.clone()).collect(),
            fps: None,
        };
        for scene in &config.scenes {
            context.check_scene(scene).map_err(EngineError::Cue)?;
        }
        inbox.update_context(|c| *c = context);
        let camera = config.camera.unwrap_or_else(|| {
            let mut pose = Pose::default();
            if let Some(g) = gen.ground_height(0.0, 0.0) {
                pose.pos[1] = g + 40.0;
            }
            pose
        });
        let world = World::new(
            &info,
            info.fps,
            config.seed,
            &config.prompt,
            config.scenes,
            camera,
        );
        warm_up(gen.as_mut(), &world)?;
        let pool = FramePool::new(info.width as usize, info.height as usize);
        let status = Arc::new(Mutex::new(Status {
            backend: config.backend.clone(),
            model: info.name.clone(),
            device: device_name(device),
            model_threads: tch::get_num_threads().max(1) as usize,
            state_bytes: 0,
            failing_steps: 0,
            model_resets: 0,
            last_reset: None,
            frame: 0,
            width: info.width as usize,
            height: info.height as usize,
            fps: info.fps,
            camera: world.camera(),
            prompt: world.prompt().to_owned(),
            params: world.named_params(0),
            seed: world.seed(),
            frozen: false,
            fade: 1.0,
            cues_waiting: 0,
            last_step_ms: 0.0,
            frames_rendered: 0,
            steps_failed: 0,
            frames_repeated: 0,
            take: None,
            detail: 1.0,
            step_running_s: None,
            take_ended: None,
        }));
        let model_id = ModelId {
            name: info.name.clone(),
            hash: info.hash.clone(),
            backend: config.backend.clone(),
            package: config
                .model
                .as_ref()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
        };
        let adapts = config.adaptive_detail && gen.scales_detail();
        let model = ModelThread {
            gen,
            world,
            scheduler: Scheduler::default(),
            inbox,
            pool,
            last_frame: None,
            last_raw: None,
            unshown: Vec::new(),
            log,
            counters,
            deliver,
            backend: config.backend,
            model_id,
            shift: 0,
            take,
            detail: DetailControl::default(),
            adapts,
            drawn_detail: 1.0,
            take_ended: None,
            policy: config.on_failure,
            state_limit: config.state_limit_bytes,
            failing: 0,
            reset_next: None,
            resets: 0,
            last_reset: None,
            did_reset: false,
            restored: None,
        };
        Ok((model, status))
    }

    fn run(&mut self, requests: mpsc::Receiver<Request>, status: Arc<Mutex<Status>>) {
        while let Ok(request) = requests.recv() {
            let mut next = Some(request);
            let mut target = None;
            let mut forced = None;
            let mut forced_reset = false;
            // Take everything queued: settings apply in order, renders collapse to the newest.
            while let Some(r) = next {
                match r {
                    Request::Stop => {
                        if let Some(take) = lock(&self.take).take() {
                            let _ = take.finish();
                        }
                        return;
                    }
                    Request::StartTake { dir, name, reply } => {
                        let r = self.start_take(&dir, name);
                        // Status says so before the caller hears back, not a frame later.
                        status.lock().unwrap().take =
                            lock(&self.take).as_ref().map(TakeWriter::name);
                        let _ = reply.send(r);
                    }
                    Request::StopTake(reply) => {
                        let taken = lock(&self.take).take();
                        let r = match taken {
                            Some(take) => take.finish().map_err(EngineError::from),
                            None => Err(EngineError::Config {
                                what: "take".into(),
                                message: "no take is being recorded".into(),
                            }),
                        };
                        status.lock().unwrap().take = None;
                        let _ = reply.send(r);
                    }
                    Request::Save(reply) => {
                        let _ = reply.send(self.checkpoint());
                    }
                    Request::Restore {
                        checkpoint,
                        show_clock,
                        reply,
                    } => {
                        let restored = catch_unwind(AssertUnwindSafe(|| {
                            self.restore(*checkpoint, show_clock)
                        }))
                        .unwrap_or_else(|panic| {
                            Err(EngineError::Config {
                                what: "checkpoint".into(),
                                message: format!(
                                    "restoring it panicked: {}",
                                    panic_message(panic.as_ref())
                                ),
                            })
                        });
                        if restored.is_ok() {
                            let frame = self.last_frame.unwrap_or(0);
                            self.update_status(&status, frame, Duration::ZERO);
                        }
                        let _ = reply.send(restored);
                    }
                    Request::Output { width, height, fps } => {
                        if self.pool.size() != (width, height) {
                            self.pool = FramePool::new(width, height);
                            self.last_raw = None;
                            // Another size costs differently: start again at full detail.
                            self.detail.reset();
                        }
                        self.world.set_fps(fps);
                    }
                    Request::Scenes(scenes) => self.world.set_scenes(scenes),
                    Request::Render {
                        frame,
                        detail,
                        reset,
                    } => {
                        target = Some(target.map_or(frame, |t: u64| t.max(frame)));
                        forced = detail;
                        forced_reset |= reset;
                    }
                }
                next = requests.try_recv().ok();
            }
            if let Some(frame) = target {
                // A panic outside the model's step (a world no check foresaw) is a failed
                // frame, never the end of the show.
                if forced_reset {
                    self.reset_next = Some("replayed from the take".into());
                }
                let rendered = catch_unwind(AssertUnwindSafe(|| self.render(frame, forced)))
                    .unwrap_or_else(|panic| {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        Rendered {
                            frame,
                            picture: Picture::Failed(StepError(format!(
                                "the show's world panicked: {}",
                                panic_message(panic.as_ref())
                            ))),
                            applied: Vec::new(),
                            step_time: Duration::ZERO,
                        }
                    });
                self.update_status(&status, rendered.frame, rendered.step_time);
                (self.deliver)(rendered);
            }
        }
    }

    /// The world's frame for show frame `frame`.
    fn world_frame(&self, frame: u64) -> u64 {
        (frame as i64 + self.shift).max(0) as u64
    }

    /// Advances the world to `target` and renders it, at `forced` detail if given.
    fn render(&mut self, target: u64, forced: Option<f32>) -> Rendered {
        let fps = self.world.fps();
        let first = self.last_frame.map_or(0, |f| f + 1);
        let target = target.max(first);
        let mut reset = false;
        for f in first..=target {
            let wf = self.world_frame(f);
            for cue in self.scheduler.due(&self.inbox, f, fps) {
                reset |= self.world.apply(cue.cue(), wf).reset;
                self.unshown.push(cue);
            }
            let gen = &self.gen;
            reset |= self.world.advance(wf, |x, z| gen.ground_height(x, z)).reset;
        }
        self.last_frame = Some(target);
        let world_target = self.world_frame(target);

        let started = Instant::now();
        let fade = self.world.fade_level(world_target);
        self.did_reset = false;
        let picture = match (self.world.frozen(), self.last_raw.clone()) {
            (true, Some(held)) => Picture::Held(self.faded(held, fade)),
            _ => {
                let policy_reset = self.reset_next.take();
                if let Some(why) = &policy_reset {
                    self.did_reset = true;
                    self.resets += 1;
                    self.last_reset = Some(why.clone());
                }
                match self.step(world_target, reset || policy_reset.is_some(), forced) {
                    Ok(raw) => {
                        self.last_raw = Some(raw.clone());
                        self.failing = 0;
                        self.check_state_size();
                        Picture::New(self.faded(raw, fade))
                    }
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        self.failing += 1;
                        self.on_failed_step(&e);
                        Picture::Failed(e)
                    }
                }
            }
        };
        let step_time = match picture {
            Picture::Held(_) => Duration::ZERO,
            _ => started.elapsed(),
        };
        let ready = Instant::now();
        let applied: Vec<AppliedCue> = match picture {
            Picture::Failed(_) => Vec::new(),
            _ => self
                .unshown
                .drain(..)
                .map(|c| c.shown(target, ready))
                .collect(),
        };
        if matches!(picture, Picture::New(_)) {
            self.counters.step_ms.observe(step_time.as_secs_f64() * 1e3);
            if forced.is_none() && self.adapts {
                if let Some(c) = self.detail.observe(step_time, self.world.fps().as_f64()) {
                    tracing::info!(
                        "a step took {:.1} ms of the frame's {:.1} ms: drawing at {:.0} % detail (was {:.0} %)",
                        c.step.as_secs_f64() * 1e3,
                        c.budget.as_secs_f64() * 1e3,
                        c.to * 100.0,
                        c.from * 100.0
                    );
                }
            }
        }
        for a in &applied {
            self.counters.cue_latency_ms.observe(a.latency_ms);
        }
        if !applied.is_empty() {
            let mut log = self.log.lock().unwrap();
            for a in &applied {
                log.push(a.clone());
            }
        }
        if matches!(picture, Picture::New(_)) {
            self.counters.rendered.fetch_add(1, Ordering::Relaxed);
        }
        self.record(target, world_target, &picture, &applied);
        Rendered {
            frame: target,
            picture,
            applied,
            step_time,
        }
    }

    /// After a failed step: at the policy's count, an error line and (with `reset`) a
    /// fresh start before the next step.
    fn on_failed_step(&mut self, e: &StepError) {
        if self.failing != u64::from(self.policy.after) {
            return;
        }
        let what = match self.policy.action {
            FailureAction::Hold => "holding the last picture",
            FailureAction::Reset => "starting the model over",
        };
        tracing::error!(
            "the model failed {} steps in a row ({e}): {what}",
            self.failing
        );
        if self.policy.action == FailureAction::Reset {
            self.reset_next = Some(format!("{} steps in a row failed: {e}", self.failing));
        }
    }

    /// After a good step: a state past the limit starts the model over before the next.
    fn check_state_size(&mut self) {
        let Some(limit) = self.state_limit else {
            return;
        };
        let bytes = self.gen.state_bytes();
        if bytes > limit && self.reset_next.is_none() {
            let why = format!(
                "the model's state grew to {:.1} MB, over the limit of {:.1} MB",
                bytes as f64 / 1e6,
                limit as f64 / 1e6
            );
            tracing::error!("{why}: starting the model over");
            self.reset_next = Some(why);
        }
    }

    fn step(&mut self, frame: u64, reset: bool, forced: Option<f32>) -> Result<Frame, StepError> {
        let detail = match forced {
            Some(d) if self.gen.scales_detail() => d.clamp(detail::COARSEST, 1.0),
            None if self.adapts => self.detail.detail(),
            _ => 1.0,
        };
        self.drawn_detail = detail;
        let world = &self.world;
        let gen = &mut self.gen;
        let mut buf = self.pool.take();
        let (width, height) = (buf.width(), buf.height());
        let prompt = world.prompt_state(frame);
        let params = world.params(frame);
        let input = StepInput {
            frame,
            time_s: frame as f64 / world.fps().as_f64(),
            fps: world.fps(),
            camera: world.camera(),
            action: world.action(),
            prompt: &prompt,
            params: &params,
            seed: world.seed(),
            detail,
        };
        self.counters.step_begins();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if reset {
                gen.reset(world.seed(), world.prompt())?;
            }
            let mut image = Image {
                width,
                height,
                data: buf.data_mut(),
            };
            gen.step(&input, &mut image)
        }));
        self.counters.step_ends();
        match outcome {
            Ok(Ok(())) => Ok(buf.freeze()),
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(StepError(format!(
                "the step panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    /// `raw` scaled towards black by `level` (1 = unchanged, no copy).
    fn faded(&self, raw: Frame, level: f64) -> Frame {
        if level >= 1.0 {
            return raw;
        }
        let mut buf = self.pool.take();
        let gain = (level.clamp(0.0, 1.0) * 256.0).round() as u32;
        for (dst, src) in buf
            .data_mut()
            .chunks_exact_mut(4)
            .zip(raw.data().chunks_exact(4))
        {
            for c in 0..3 {
                dst[c] = ((u32::from(src[c]) * gain) >> 8) as u8;
            }
            dst[3] = src[3];
        }
        buf.freeze()
    }

    /// Hands the frame to the take being recorded, if any.
    fn record(&mut self, frame: u64, world_frame: u64, picture: &Picture, applied: &[AppliedCue]) {
        let failure = lock(&self.take).as_ref().and_then(TakeWriter::failure);
        if let Some(reason) = failure {
            self.end_failed_take(reason);
        }
        let slot = self.take.clone();
        let mut slot = lock(&slot);
        let Some(take) = slot.as_mut() else { return };
        take.cues(applied);
        let (shown, held) = match picture {
            Picture::New(f) => (f, false),
            Picture::Held(f) => (f, true),
            Picture::Failed(_) => return,
        };
        let depth = self.gen.depth().and_then(|d| {
            let d = d
                .to_device(tch::Device::Cpu)
                .to_kind(tch::Kind::Float)
                .contiguous();
            let size = match d.size().as_slice() {
                [h, w] => Size {
                    width: *w as usize,
                    height: *h as usize,
                },
                _ => return None,
            };
            Vec::<f32>::try_from(&d.view([-1])).ok().map(|v| (size, v))
        });
        let record = FrameRecord {
            index: 0,
            frame,
            world_frame,
            pose: self.world.camera(),
            held,
            detail: self.drawn_detail,
            reset: self.did_reset,
            restored: self.restored.take(),
        };
        take.frame(record, shown, depth);
    }

    /// Ends a take whose files could not be written: its manifest is completed with the
    /// frames it holds, those it lost and why, and the status says so.
    fn end_failed_take(&mut self, reason: String) {
        let Some(take) = lock(&self.take).take() else {
            return;
        };
        let name = take.name();
        let frames = match take.finish() {
            Ok(summary) => summary.frames,
            Err(e) => {
                tracing::error!("take {name:?}: its manifest could not be completed: {e}");
                0
            }
        };
        tracing::warn!("take {name:?} ended by itself after {frames} frames: {reason}");
        self.take_ended = Some(TakeEnded {
            name,
            reason,
            frames,
        });
    }

    fn start_take(&mut self, dir: &Path, name: String) -> Result<TakeManifest, EngineError> {
        if let Some(t) = lock(&self.take).as_ref() {
            return Err(EngineError::Config {
                what: "take".into(),
                message: format!("take {:?} is being recorded: stop it first", t.name()),
            });
        }
        let checkpoint = self.checkpoint()?;
        let (width, height) = self.pool.size();
        let manifest = TakeManifest {
            format: TAKE_FORMAT.into(),
            name,
            model: self.model_id.clone(),
            width,
            height,
            depth: None,
            fps: self.world.fps(),
            start_frame: self.last_frame.map_or(0, |f| f + 1),
            started_utc: utc_iso(std::time::SystemTime::now()),
            stopped_utc: None,
            frames: None,
            lost_frames: Vec::new(),
            software: checkpoint.manifest.software.clone(),
            start_checkpoint: "start".into(),
            stop_reason: None,
        };
        let writer =
            TakeWriter::create(dir, manifest.clone(), |d| checkpoint.save(&d.join("start")))?;
        *lock(&self.take) = Some(writer);
        Ok(manifest)
    }

    /// The show as of the last frame made.
    fn checkpoint(&self) -> Result<Checkpoint, EngineError> {
        let failed = |e: StepError| EngineError::Config {
            what: "checkpoint".into(),
            message: format!("{} could not give its state: {e}", self.model_id.name),
        };
        let state: Vec<(String, Tensor)> = self
            .gen
            .state()
            .map_err(failed)?
            .into_iter()
            .map(|(k, t)| (k, t.to_device(tch::Device::Cpu)))
            .collect();
        let w = &self.world;
        let frame = self.last_frame;
        let world_frame = frame.map(|f| self.world_frame(f));
        let (width, height) = self.pool.size();
        Ok(Checkpoint {
            manifest: CheckpointManifest {
                format: CHECKPOINT_FORMAT.into(),
                model: self.model_id.clone(),
                seed: w.seed(),
                camera: w.camera(),
                prompt: w.prompt().to_owned(),
                params: w.named_params(world_frame.unwrap_or(0)),
                frame,
                world_frame,
                fps: w.fps(),
                width,
                height,
                created_utc: utc_iso(std::time::SystemTime::now()),
                software: Software::current(&device_name(self.gen.device())),
                state_tensors: state.iter().map(|(k, _)| k.clone()).collect(),
                world: w.clone(),
            },
            state,
        })
    }

    /// Resumes from `checkpoint`: the next frame made is the one that followed it.
    fn restore(&mut self, checkpoint: Checkpoint, show_clock: bool) -> Result<(), EngineError> {
        let m = &checkpoint.manifest;
        if m.model.hash != self.model_id.hash {
            return Err(EngineError::Config {
                what: "checkpoint".into(),
                message: format!(
                    "it was made by model {:?} (hash {}); this show runs {:?} (hash {})",
                    m.model.name, m.model.hash, self.model_id.name, self.model_id.hash
                ),
            });
        }
        let mut world = m.world.clone();
        world.set_fps(self.world.fps());
        if show_clock {
            // The show's scenes are what its cues were checked against.
            world.set_scenes(self.world.scenes().to_vec());
        }
        // A checkpoint is a file anyone can edit: its world obeys the rules cues do, and
        // its summary agrees with it, or nothing changes.
        let refuse = |message: String| EngineError::Config {
            what: "checkpoint".into(),
            message,
        };
        world
            .check(self.gen.info())
            .map_err(|e| refuse(format!("{e}")))?;
        if (m.seed, m.prompt.as_str(), m.camera) != (world.seed(), world.prompt(), world.camera()) {
            return Err(refuse(
                "its summary (seed, prompt, camera) disagrees with its world: the file was edited"
                    .into(),
            ));
        }
        let prompt = world.prompt_state(m.world_frame.unwrap_or(0));
        let state = checkpoint.state_on(self.gen.device());
        self.gen
            .restore(&state, &prompt)
            .map_err(|e| EngineError::Config {
                what: "checkpoint".into(),
                message: format!("{} refused the saved state: {e}", self.model_id.name),
            })?;
        if !show_clock {
            self.last_frame = m.frame;
        }
        let next_show = self.last_frame.map_or(0, |f| f + 1) as i64;
        let next_world = m.world_frame.map_or(0, |f| f + 1) as i64;
        self.shift = next_world - next_show;
        self.world = world;
        self.last_raw = None;
        if show_clock {
            self.keep_restore_in_take(&checkpoint, next_show as u64);
        }
        Ok(())
    }

    /// A take being recorded keeps a copy of a checkpoint restored live, and the next
    /// frame's record points at it, so that a replay restores it at the same frame. A
    /// copy that cannot be written ends the take (as a full disk does): a take that
    /// could not be replayed is not kept going.
    fn keep_restore_in_take(&mut self, checkpoint: &Checkpoint, frame: u64) {
        let Some(take_dir) = lock(&self.take).as_ref().map(|t| t.dir().to_owned()) else {
            return;
        };
        let rel = format!("restores/{frame}");
        let dir = take_dir.join(&rel);
        let saved = std::fs::create_dir_all(take_dir.join("restores"))
            .map_err(|e| crate::take::FileError::io(&dir, e))
            .and_then(|()| checkpoint.save(&dir));
        match saved {
            Ok(_) => self.restored = Some(rel),
            Err(e) => {
                self.end_failed_take(format!("the restored checkpoint could not be kept: {e}"))
            }
        }
    }

    fn update_status(&self, status: &Mutex<Status>, frame: u64, step: Duration) {
        let w = &self.world;
        let wf = self.world_frame(frame);
        let (width, height) = self.pool.size();
        let mut s = status.lock().unwrap();
        s.frame = frame;
        s.width = width;
        s.height = height;
        s.fps = w.fps();
        s.camera = w.camera();
        s.prompt = w.prompt().to_owned();
        s.params = w.named_params(wf);
        s.seed = w.seed();
        s.frozen = w.frozen();
        s.fade = w.fade_level(wf);
        s.take = lock(&self.take).as_ref().map(TakeWriter::name);
        s.cues_waiting = self.scheduler.waiting();
        s.detail = self.drawn_detail;
        s.take_ended.clone_from(&self.take_ended);
        if step > Duration::ZERO {
            s.last_step_ms = step.as_secs_f64() * 1e3;
        }
        s.frames_rendered = self.counters.rendered.load(Ordering::Relaxed);
        s.steps_failed = self.counters.failed.load(Ordering::Relaxed);
        s.backend.clone_from(&self.backend);
        s.state_bytes = self.gen.state_bytes();
        s.failing_steps = self.failing;
        s.model_resets = self.resets;
        s.last_reset.clone_from(&self.last_reset);
    }
}

/// A few steps at the native size before the show starts, so first-call costs
/// (allocation, TorchScript's profiling recompiles, CUDA context) do not land on air.
fn warm_up(gen: &mut dyn Generator, world: &World) -> Result<(), EngineError> {
    let info = gen.info().clone();
    let mut data = vec![0u8; info.width as usize * info.height as usize * 4];
    let prompt = world.prompt_state(0);
    let params = world.params(0);
    for frame in 0..3 {
        let input = StepInput {
            frame,
            time_s: 0.0,
            fps: world.fps(),
            camera: world.camera(),
            action: [0.0; 5],
            prompt: &prompt,
            params: &params,
            seed: world.seed(),
            detail: 1.0,
        };
        let mut image = Image {
            width: info.width as usize,
            height: info.height as usize,
            data: &mut data,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| gen.step(&input, &mut image)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.0,
            Err(p) => format!("panicked: {}", panic_message(p.as_ref())),
        };
        return Err(EngineError::Config {
            what: "model".into(),
            message: format!("{} failed its first step: {failure}", info.name),
        });
    }
    gen.reset(world.seed(), world.prompt())
        .map_err(|e| EngineError::Config {
            what: "model".into(),
            message: format!("{} failed to reset: {e}", info.name),
        })
}
