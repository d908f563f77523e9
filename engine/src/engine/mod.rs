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
//!
//! Why one file over 600 lines: it is the engine's whole public face (`Engine`,
//! `ShowHandle`, `Status`, the request protocol); the thread behind it is in
//! `model_thread.rs`.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tch::Tensor;

use crate::camera::Pose;
use crate::checkpoint::{Checkpoint, CheckpointManifest, CHECKPOINT_FORMAT};
use crate::cue::CueId;
use crate::detail::{self, DetailControl};
use crate::device::device_name;
use crate::frame::{Frame, FramePool, Pixels};
use crate::generator::{
    create_generator, BackendConfig, Fps, FrameInput, Generator, Image, ModelInfo, StepError,
};
use crate::metrics::{Histogram, LATENCY_MS_BUCKETS, STEP_MS_BUCKETS};
use crate::schedule::{AppliedCue, CueInbox, InFlight, Scheduler};
use crate::take::{
    utc_iso, FrameRecord, ModelId, Size, Software, TakeManifest, TakeSummary, TakeWriter,
    TAKE_FORMAT,
};
use crate::video_in::{VideoIn, VideoInStats};
use crate::world::{Scene, ShowContext, World};
use crate::{CueError, EngineError};

mod config;
mod events;
mod model_thread;
mod settings;

pub use config::*;
pub use events::{EngineEvent, Subscribers};
use model_thread::ModelThread;
pub use settings::*;

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
    /// The sound the model made with this frame (a model that makes sound, the first
    /// time its frame is shown), to be heard from this frame's time.
    pub sound: Option<Sound>,
    /// Cues whose effect this frame is the first to show.
    pub applied: Vec<AppliedCue>,
    /// Time spent in the model's step (zero when held).
    pub step_time: Duration,
}

/// Sound a model made with one of its frames.
#[derive(Debug, Clone)]
pub struct Sound {
    /// Interleaved, in `format`.
    pub samples: Arc<[f32]>,
    pub format: crate::generator::AudioFormat,
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
    /// A chunked model's chunks, from asking to having them; and moving their frames
    /// from the model's process into cuecast's.
    pub chunk_ms: Histogram,
    pub transfer_ms: Histogram,
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
            chunk_ms: Histogram::new(STEP_MS_BUCKETS),
            transfer_ms: Histogram::new(STEP_MS_BUCKETS),
            step_started_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// A snapshot of the show for status reports; updated every frame.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
    /// A chunked model's worker process: running, restarting, how it last ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_process: Option<crate::worker::ModelProcess>,
    /// A chunked model's frames made ahead of the output.
    pub frames_buffered: usize,
    /// A chunked model's frames never shown because they came after their time.
    pub frames_skipped: u64,
    /// Frames the fallback drew while a chunked model's process was down.
    pub fallback_frames: u64,
    /// A video-to-video model's input: frames received, given to it, dropped, repeated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_in: Option<VideoInStats>,
}

type Reply<T> = mpsc::Sender<Result<T, EngineError>>;

/// A take that ended before it was stopped.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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
        pixels: Pixels,
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
    /// What a chunked model's worker said.
    Worker(crate::worker::WorkerEvent),
    /// Something the model thread waits for is ready (an image decoded): look again.
    Wake,
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
    process: Option<crate::worker::ProcessHandle>,
    /// Where live video for the model goes, for a model that takes one.
    video: Option<VideoIn>,
    /// Where the program's sound goes, for a model that takes it.
    sound: Option<crate::sound::SoundIn>,
    log: Arc<Mutex<CueLog>>,
    counters: Arc<Counters>,
    /// The take being recorded, shared so that a model stuck in a step at shutdown
    /// cannot keep it from being finished.
    take: TakeSlot,
    events: Subscribers,
}

/// The take being recorded. The model thread holds the lock only between steps.
type TakeSlot = Arc<Mutex<Option<TakeWriter>>>;

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
        let events = Subscribers::default();
        let shared = (
            inbox.clone(),
            log.clone(),
            counters.clone(),
            take.clone(),
            events.clone(),
        );
        // A chunked model's worker tells the model thread through its own queue.
        let worker_events = req_tx.clone();
        let thread = std::thread::Builder::new()
            .name("cuecast-model".into())
            .spawn(move || {
                let _no_grad = tch::no_grad_guard();
                let threads = config
                    .settings
                    .model_threads
                    .map_or_else(default_model_threads, |n| n as usize);
                tch::set_num_threads(threads.clamp(1, MAX_MODEL_THREADS) as i32);
                let loaded = ModelThread::load(config, shared, Box::new(deliver), worker_events);
                match loaded {
                    Ok((mut model, status)) => {
                        let (process, video, sound) = match &model.model {
                            model_thread::Model::Chunks(c) => {
                                (c.model().process(), c.video_in(), c.sound_in())
                            }
                            model_thread::Model::Frames(_) => (None, None, None),
                        };
                        let ready = (
                            model.model.info().clone(),
                            model.model.device(),
                            status.clone(),
                            process,
                            video,
                            sound,
                        );
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
        let (info, device, status, process, video, sound) = match ready_rx.recv() {
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
            process,
            video,
            sound,
            log,
            counters,
            take,
            events,
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

    /// Where live video goes, for a model that takes a video input (`None` otherwise).
    pub fn video_in(&self) -> Option<&VideoIn> {
        self.video.as_ref()
    }

    /// Where the program's sound goes, for a model that takes sound (`None` otherwise).
    pub fn sound_in(&self) -> Option<&crate::sound::SoundIn> {
        self.sound.as_ref()
    }

    pub fn status(&self) -> Status {
        self.status_handle().get()
    }

    /// A handle that reads status from any thread (for servers that outlive a borrow).
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            status: self.status.clone(),
            counters: self.counters.clone(),
            process: self.process.clone(),
            video: self.video.clone(),
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
            events: self.events.clone(),
        }
    }

    /// Sets the size and rate frames are made at (after caps negotiation), RGBx.
    pub fn set_output(&self, width: usize, height: usize, fps: Fps) {
        self.set_output_as(width, height, fps, Pixels::Rgbx);
    }

    /// Sets the size, rate and layout frames are made in.
    pub fn set_output_as(&self, width: usize, height: usize, fps: Fps, pixels: Pixels) {
        self.inbox.update_context(|c| c.fps = Some(fps));
        let _ = self.requests.send(Request::Output {
            width,
            height,
            fps,
            pixels,
        });
    }

    /// The layout its frames are best shown in: a worker's model writes RGB, which goes
    /// on air where it lies when the show is RGB at the model's size (a width that is a
    /// multiple of four, so that rows need no padding); anything else draws RGBx.
    pub fn native_pixels(&self) -> Pixels {
        if self.process.is_some() && self.info.width % 4 == 0 {
            Pixels::Rgb
        } else {
            Pixels::Rgbx
        }
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
        if let Some(v) = &self.video {
            v.close();
        }
        let Some(t) = self.thread.take() else { return };
        if !crate::join::join_until(t, Instant::now() + grace) {
            let running = self.counters.step_running().unwrap_or_default();
            tracing::warn!(
                "the model did not stop within {:.1} s (its step has been running for {:.1} s): left behind",
                grace.as_secs_f64(),
                running.as_secs_f64()
            );
            // The take it was recording is finished here: it holds what was recorded.
            // (The model thread takes the lock only between steps, so a stuck step
            // does not hold it; `try_lock`, should it be stuck anywhere else.)
            let taken = self.take.try_lock().and_then(|mut t| t.take());
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
    /// A chunked model's process, read live: it answers while the model thread waits.
    process: Option<crate::worker::ProcessHandle>,
    video: Option<VideoIn>,
}

impl StatusHandle {
    pub fn get(&self) -> Status {
        let mut s = self.status.lock().clone();
        s.frames_repeated = self.counters.repeated.load(Ordering::Relaxed);
        s.step_running_s = self
            .counters
            .step_running()
            .filter(|d| *d >= STEP_SLOW)
            .map(|d| d.as_secs_f64());
        s.model_process = self.process.as_ref().map(|p| p.get());
        s.video_in = self.video.as_ref().map(VideoIn::stats);
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
    events: Subscribers,
}

impl ShowHandle {
    /// Every event from now on, typed ([`EngineEvent`]), on a queue of its own.
    pub fn subscribe(&self) -> mpsc::Receiver<EngineEvent> {
        self.events.subscribe()
    }

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
        self.log.lock().page(after, limit)
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

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
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
