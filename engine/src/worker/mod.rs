//! The `python` runtime's host side: a model's own Python code in a worker process
//! that cuecast starts, feeds, watches and restarts.
//!
//! Why a process: real-time video models exist as their own Python (flash-attention,
//! `torch.compile`, tokenizers) and die in ways Python cannot catch (CUDA device
//! asserts, illegal memory access, out of memory). In a process of its own such a death
//! is a restart, not a dead show; the model's code and licence stay out of cuecast too.
//!
//! [`Worker`] is what the model thread holds. Behind it a supervisor thread owns the
//! process: it sends one request at a time over a Unix socket (`protocol`), copies each
//! chunk out of shared memory (`shm`) into the show's frames, and tells the model thread
//! what happened through the `events` callback it was given. It watches a heartbeat
//! (every 0.25 s from the worker) and a deadline on every request; a worker that dies,
//! stops answering or overruns a step is killed with its process group and started
//! again with backoff (at once, then 0.5, 1, 2, 4, 8 s, then every 10 s), resumed from
//! the last compact state the model saved, or else reset with the same seed, prompt and
//! image. A model that cannot load at all (an import error, too little memory, a class
//! that lacks a method) is refused when the show starts, with the reason.
//!
//! The worker itself (`python/cuecast_worker.py`) is built into cuecast and written next
//! to the socket at start, so it always speaks this cuecast's protocol.

mod process;
mod protocol;
mod shm;

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tch::{Device, Tensor};

use crate::frame::{Frame, FramePool};
use crate::generator::package::{Package, Runtime, StateRollback};
use crate::generator::{write_image, Image, ModelInfo, PromptMode, StepError};
use crate::EngineError;
use process::Process;
use shm::{Layout, Shm};

const WORKER_PY: &str = include_str!("../../../python/cuecast_worker.py");

/// A worker that sends nothing for this long while not stepping is taken for hung.
pub const HEARTBEAT_LIMIT: Duration = Duration::from_secs(3);
/// The longest a reset, prompt change or state save may take.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// The largest compact state a model may save (caches are re-created, not saved).
pub const MAX_STATE_BYTES: u64 = 256_000_000;
/// Backoff between restarts; the last value repeats (capped by the show's
/// `restart_max_s`).
const BACKOFF_S: [f64; 7] = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0];
/// A worker up this long has its backoff start again from the first step.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How often the model's compact state is saved for a restart, in seconds of video.
const SAVE_EVERY_S: f64 = 1.0;

/// The inputs of one frame of a chunk, in the model's terms.
#[derive(Debug, Clone, Default)]
pub struct FrameInputs {
    /// The frame's index on the model's own clock.
    pub frame: u64,
    pub time_s: f64,
    /// Action axes, in the model's `inputs.axes` order.
    pub axes: Vec<f32>,
    /// 1 for each of the model's keys held.
    pub keys: Vec<f32>,
    pub mouse: [f32; 2],
    pub buttons: [f32; 3],
    /// World-to-camera, row-major (OpenCV axes: x right, y down, z forward).
    pub camera_pose: [f32; 16],
    /// Pixels at the native size, row-major.
    pub intrinsics: [f32; 9],
    pub params: Vec<f32>,
    /// 0 = all the previous prompt, 1 = all the current one (`every_step` prompts).
    pub prompt_mix: f32,
}

/// An RGB image at the model's native size: what `reset` starts from.
#[derive(Debug, Clone)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// A chunk the worker made, copied into the show's frames.
#[derive(Debug)]
pub struct Chunk {
    pub id: u64,
    pub frames: Vec<Frame>,
    /// Depth per frame at the native size, when the model makes depth.
    pub depth: Vec<Vec<f32>>,
    /// Time in the model's `step`.
    pub step: Duration,
    /// From the model's frames to cuecast's: the worker's write into shared memory and
    /// the copy out of it (`write` + `copy`).
    pub transfer: Duration,
    pub write: Duration,
    pub copy: Duration,
    /// From asking for the chunk to having it.
    pub wall: Duration,
}

/// What the worker tells the model thread.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A step's result.
    Chunk(Result<Chunk, (u64, StepError)>),
    /// A reset or prompt change failed (the model's error).
    Failed {
        request: &'static str,
        error: StepError,
    },
    /// The process is gone (the step in flight is lost); it is being started again.
    Down { reason: String },
    /// It is back, resumed from its saved state (`true`) or reset.
    Up { resumed: bool },
}

/// Where the worker process stands, for status reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModelProcess {
    pub state: ProcessState,
    pub pid: Option<u32>,
    pub python: String,
    /// Times it was started again after dying or hanging.
    pub restarts: u64,
    /// How the last process ended.
    pub last_exit: Option<String>,
    /// Seconds the current process has been up.
    pub up_s: f64,
    /// The last chunk: time in the model's step, and moving its frames to cuecast.
    pub last_step_ms: f64,
    pub last_transfer_ms: f64,
    /// Bytes of the last compact state saved (what a restart resumes from).
    pub saved_state_bytes: u64,
    #[serde(skip)]
    since: Option<Instant>,
}

/// A worker process's status, readable from any thread.
#[derive(Debug, Clone)]
pub struct ProcessHandle(Arc<Mutex<ModelProcess>>);

impl ProcessHandle {
    pub fn get(&self) -> ModelProcess {
        let mut s = self.0.lock().clone();
        s.up_s = s.since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Starting,
    Running,
    Restarting,
    Stopped,
}

/// How a worker starts.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The interpreter: the show's choice, else the manifest's, else `CUECAST_PYTHON`,
    /// else `python3`.
    pub python: Option<PathBuf>,
    pub device: Device,
    /// torch threads in the worker (0: torch's default).
    pub threads: usize,
    pub seed: u64,
    pub prompt: String,
    pub image: Option<RgbImage>,
    /// The longest wait between restarts, in seconds.
    pub restart_max_s: f64,
    /// Environment variables the model's process gets beside [`PASSED_ENV`] (a token
    /// its code needs to fetch weights, say). Nothing else of cuecast's environment
    /// reaches it: the show's stream keys and tokens live there.
    pub env: Vec<String>,
}

/// What of cuecast's environment a model's process gets: where things are, the locale,
/// and what CUDA, PyTorch and the usual model libraries read. Names ending in `*` are
/// prefixes.
pub const PASSED_ENV: [&str; 21] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_*",
    "TZ",
    "TMPDIR",
    "XDG_*",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CUDA_*",
    "NVIDIA_*",
    "NCCL_*",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TORCH_*",
    "TORCHINDUCTOR_*",
    "TRITON_*",
    "HF_HOME",
];

/// Whether cuecast's variable `name` goes to a model's process.
pub fn passes(name: &str, extra: &[String]) -> bool {
    extra.iter().any(|e| e == name)
        || PASSED_ENV.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *p,
        })
}

enum Command {
    Step {
        id: u64,
        frames: Vec<FrameInputs>,
        prompt: Option<(String, Option<String>)>,
        pool: FramePool,
    },
    Reset {
        seed: u64,
        prompt: String,
        image: Option<Arc<RgbImage>>,
    },
    SetPrompt {
        text: String,
        transition_s: f64,
    },
    Save(Sender<Result<Vec<(String, Tensor)>, StepError>>),
    Load(Vec<(String, Tensor)>, Sender<Result<(), StepError>>),
    Quit,
}

enum Inbound {
    Command(Command),
    /// A message from worker process `generation`, or the reason its socket closed.
    Worker(u64, Result<Value, String>),
}

/// The model thread's handle on a worker.
pub struct Worker {
    tx: Sender<Inbound>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<ModelProcess>>,
    info: ModelInfo,
    next_id: AtomicU64,
    /// A save or load waits for the step in flight, then its own answer.
    step_timeout: Duration,
}

impl Worker {
    /// Starts the model's process, loads the model and resets it; returns once it can
    /// step, or with the reason the model cannot run (nothing is left running then).
    /// `events` is called from the supervisor thread.
    pub fn start(
        package: &Package,
        options: WorkerOptions,
        events: impl Fn(WorkerEvent) + Send + 'static,
    ) -> Result<Worker, EngineError> {
        let fail = |message: String| EngineError::Model {
            path: package.dir.clone(),
            message,
        };
        let Runtime::Python { entry, python } = &package.runtime else {
            return Err(fail("not a python package".into()));
        };
        let python = options
            .python
            .clone()
            .or(python.clone())
            .or_else(|| std::env::var_os("CUECAST_PYTHON").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3"));
        check_memory(package, options.device).map_err(fail)?;
        let info = package.info.clone();
        let c = info.chunking;
        let frames = c.frames_per_step.max(c.first_step_frames) as usize;
        let dir =
            runtime_dir().map_err(|e| fail(format!("cannot make its runtime folder: {e}")))?;
        let layout = Layout::new(
            info.width as usize,
            info.height as usize,
            frames,
            info.depth,
        );
        let shm = Shm::create(&dir.path().join("frames.shm"), layout)
            .map_err(|e| fail(format!("cannot make its shared memory: {e}")))?;
        std::fs::write(dir.path().join("cuecast_worker.py"), WORKER_PY)
            .map_err(|e| fail(format!("cannot write the worker: {e}")))?;
        let status = Arc::new(Mutex::new(ModelProcess {
            state: ProcessState::Starting,
            pid: None,
            python: python.display().to_string(),
            restarts: 0,
            last_exit: None,
            up_s: 0.0,
            last_step_ms: 0.0,
            last_transfer_ms: 0.0,
            saved_state_bytes: 0,
            since: None,
        }));
        let (tx, rx) = mpsc::channel();
        let chunk_s = f64::from(c.frames_per_step) / info.fps.as_f64();
        let mut sup = Supervisor {
            package: package.clone(),
            entry: entry.clone(),
            python,
            device: options.device,
            threads: options.threads,
            inbound: rx,
            inbound_tx: tx.clone(),
            events: Box::new(events),
            status: status.clone(),
            shm,
            dir,
            process: None,
            generation: 0,
            pending: VecDeque::new(),
            op: None,
            seed: options.seed,
            prompt: options.prompt,
            image: options.image.map(Arc::new),
            state_file: None,
            steps_since_save: 0,
            save_every: (SAVE_EVERY_S / chunk_s).ceil().max(1.0) as u32,
            attempt: 0,
            restart_max_s: options.restart_max_s,
            env: options.env.clone(),
            next_start: None,
            last_alive: Instant::now(),
            quit: false,
        };
        sup.start_process().map_err(fail)?;
        let thread = std::thread::Builder::new()
            .name("cuecast-worker".into())
            .spawn(move || sup.run())
            .map_err(|e| fail(format!("cannot start its supervisor: {e}")))?;
        Ok(Worker {
            tx,
            thread: Some(thread),
            status,
            info,
            next_id: AtomicU64::new(1),
            step_timeout: package.step_timeout,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Asks for a chunk of `frames.len()` frames, copied into frames from `pool`; the
    /// result comes as [`WorkerEvent::Chunk`] with the id returned here.
    pub fn step(
        &self,
        frames: Vec<FrameInputs>,
        prompt: Option<(String, Option<String>)>,
        pool: FramePool,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Step {
            id,
            frames,
            prompt,
            pool,
        });
        id
    }

    /// Starts the model over (also what a restart without saved state does).
    pub fn reset(&self, seed: u64, prompt: &str, image: Option<RgbImage>) {
        self.send(Command::Reset {
            seed,
            prompt: prompt.to_owned(),
            image: image.map(Arc::new),
        });
    }

    pub fn set_prompt(&self, text: &str, transition_s: f64) {
        self.send(Command::SetPrompt {
            text: text.to_owned(),
            transition_s,
        });
    }

    /// The model's compact state, for a checkpoint (after the step in flight).
    pub fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Save(tx));
        rx.recv_timeout(REQUEST_LIMIT + self.step_timeout)
            .unwrap_or_else(|_| Err(StepError("the model did not give its state in time".into())))
    }

    /// Puts a saved compact state back (a checkpoint restored).
    pub fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Load(state, tx));
        rx.recv_timeout(REQUEST_LIMIT + self.step_timeout)
            .unwrap_or_else(|_| Err(StepError("the model did not load the state in time".into())))
    }

    pub fn status(&self) -> ModelProcess {
        self.process_handle().get()
    }

    /// Reads the process's status from any thread, for as long as it is wanted.
    pub fn process_handle(&self) -> ProcessHandle {
        ProcessHandle(self.status.clone())
    }

    fn send(&self, c: Command) {
        let _ = self.tx.send(Inbound::Command(c));
    }
}

impl Drop for Worker {
    /// Asks the worker to quit, and kills it if it has not within two seconds; never
    /// waits longer than that.
    fn drop(&mut self) {
        let _ = self.tx.send(Inbound::Command(Command::Quit));
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// On the CPU the model's memory is the machine's: it is checked here. On CUDA the
/// worker checks the device's free memory before the model loads.
fn check_memory(package: &Package, device: Device) -> Result<(), String> {
    if package.vram_gb <= 0.0 || device != Device::Cpu {
        return Ok(());
    }
    let Some(available) = mem_available() else {
        return Ok(());
    };
    if package.vram_gb * 1e9 > available as f64 {
        return Err(format!(
            "needs {} GB of memory (vram_gb); this machine has {:.1} GB available",
            package.vram_gb,
            available as f64 / 1e9
        ));
    }
    Ok(())
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A private folder for one worker's socket, shared memory and state files: on tmpfs
/// (`/dev/shm`) where there is one. Folders left by a cuecast that was killed are
/// removed first.
fn runtime_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("cuecast-worker-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            // SAFETY: kill with signal 0 only asks whether the process exists.
            if pid.is_some_and(|p| unsafe { libc::kill(p, 0) } != 0) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("cuecast-worker-{}-", std::process::id()))
        .tempdir_in(base)
}

/// The request in flight, and when it must be answered by.
enum Op {
    Step {
        id: u64,
        frames: usize,
        pool: FramePool,
        sent: Instant,
        deadline: Instant,
    },
    Reset(Instant),
    SetPrompt(Instant),
    AutoSave(Instant),
    Save(
        Instant,
        PathBuf,
        Sender<Result<Vec<(String, Tensor)>, StepError>>,
    ),
    Load(Instant, PathBuf, Sender<Result<(), StepError>>),
}

impl Op {
    fn deadline(&self) -> Instant {
        match self {
            Op::Step { deadline, .. } => *deadline,
            Op::Reset(d) | Op::SetPrompt(d) | Op::AutoSave(d) => *d,
            Op::Save(d, ..) | Op::Load(d, ..) => *d,
        }
    }
}

struct Supervisor {
    package: Package,
    entry: String,
    python: PathBuf,
    device: Device,
    threads: usize,
    inbound: Receiver<Inbound>,
    inbound_tx: Sender<Inbound>,
    events: Box<dyn Fn(WorkerEvent) + Send>,
    status: Arc<Mutex<ModelProcess>>,
    shm: Shm,
    dir: tempfile::TempDir,
    process: Option<(Process, UnixStream)>,
    generation: u64,
    pending: VecDeque<Command>,
    op: Option<Op>,
    /// What a restart without saved state resets to: the last reset's, with the prompt
    /// changes since.
    seed: u64,
    prompt: String,
    image: Option<Arc<RgbImage>>,
    /// The last compact state saved, which a restart resumes from.
    state_file: Option<PathBuf>,
    steps_since_save: u32,
    save_every: u32,
    attempt: usize,
    restart_max_s: f64,
    /// Variables the model's process gets beside [`PASSED_ENV`].
    env: Vec<String>,
    next_start: Option<Instant>,
    last_alive: Instant,
    quit: bool,
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.package.info.name
    }

    fn run(mut self) {
        while !self.quit {
            if self.process.is_none() {
                self.wait_to_restart();
                continue;
            }
            if self.op.is_none() {
                if let Some(c) = self.pending.pop_front() {
                    self.command(c);
                    continue;
                }
            }
            match self.inbound.recv_timeout(Duration::from_millis(50)) {
                // Stopping does not wait for the request in flight.
                Ok(Inbound::Command(Command::Quit)) => self.quit = true,
                Ok(Inbound::Command(c)) => self.pending.push_back(c),
                Ok(Inbound::Worker(generation, m)) if generation == self.generation => {
                    self.message(m)
                }
                Ok(Inbound::Worker(..)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.quit = true,
            }
            self.check_health();
        }
        if let Some((mut p, mut stream)) = self.process.take() {
            let _ = protocol::write(&mut stream, &json!({"op": "quit"}));
            p.reap(Duration::from_secs(1));
        }
        self.status.lock().state = ProcessState::Stopped;
    }

    /// Down: answers what cannot wait, and starts the process again when its backoff is
    /// over.
    fn wait_to_restart(&mut self) {
        let at = self.next_start.unwrap_or_else(Instant::now);
        let wait = at.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            let name = self.name().to_owned();
            match self.start_process() {
                Ok(resumed) => {
                    tracing::info!(
                        "model {name}: running again ({})",
                        if resumed {
                            "resumed from its saved state"
                        } else {
                            "reset"
                        }
                    );
                    (self.events)(WorkerEvent::Up { resumed });
                }
                Err(e) => {
                    tracing::error!("model {name}: could not start again: {e}");
                    self.status.lock().last_exit = Some(e);
                    self.schedule_restart();
                }
            }
            return;
        }
        match self.inbound.recv_timeout(wait) {
            Ok(Inbound::Command(c)) => self.command_while_down(c),
            Ok(Inbound::Worker(..)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.quit = true,
        }
    }

    fn schedule_restart(&mut self) {
        let delay = BACKOFF_S[self.attempt.min(BACKOFF_S.len() - 1)].min(self.restart_max_s);
        self.attempt += 1;
        self.next_start = Some(Instant::now() + Duration::from_secs_f64(delay));
        self.status.lock().state = ProcessState::Restarting;
    }

    fn command_while_down(&mut self, c: Command) {
        let restarting = || StepError("the model's process is restarting".into());
        match c {
            Command::Step { id, .. } => (self.events)(WorkerEvent::Chunk(Err((id, restarting())))),
            Command::Reset {
                seed,
                prompt,
                image,
            } => {
                (self.seed, self.prompt, self.image) = (seed, prompt, image);
                self.state_file = None;
            }
            Command::SetPrompt { text, .. } => self.prompt = text,
            Command::Save(reply) => {
                let _ = reply.send(Err(restarting()));
            }
            Command::Load(state, reply) => {
                // Kept: the restart resumes from it.
                let path = self.dir.path().join("state.safetensors");
                let r = Tensor::write_safetensors(&state, &path)
                    .map_err(|e| StepError(format!("cannot keep the state: {e}")));
                if r.is_ok() {
                    self.state_file = Some(path);
                }
                let _ = reply.send(r);
            }
            Command::Quit => self.quit = true,
        }
    }

    /// Sends one request to the running worker.
    fn command(&mut self, c: Command) {
        let now = Instant::now();
        let limit = now + REQUEST_LIMIT;
        let (message, op) = match c {
            Command::Quit => {
                self.quit = true;
                return;
            }
            Command::Step {
                id,
                frames,
                prompt,
                pool,
            } => {
                let m = self.step_message(id, &frames, prompt);
                let op = Op::Step {
                    id,
                    frames: frames.len(),
                    pool,
                    sent: now,
                    deadline: now + self.package.step_timeout,
                };
                (m, op)
            }
            Command::Reset {
                seed,
                prompt,
                image,
            } => {
                (self.seed, self.prompt, self.image) = (seed, prompt, image);
                // A state saved before the reset is not what a restart should resume.
                self.state_file = None;
                self.steps_since_save = 0;
                (self.reset_message(), Op::Reset(limit))
            }
            Command::SetPrompt { text, transition_s } => {
                let m = json!({"op": "set_prompt", "text": text, "transition_s": transition_s});
                self.prompt = text;
                (m, Op::SetPrompt(limit))
            }
            Command::Save(reply) => {
                let path = self.dir.path().join("checkpoint.safetensors");
                let m =
                    json!({"op": "save_state", "path": path, "state_limit_bytes": MAX_STATE_BYTES});
                (m, Op::Save(limit, path, reply))
            }
            Command::Load(state, reply) => {
                let path = self.dir.path().join("load.safetensors");
                if let Err(e) = Tensor::write_safetensors(&state, &path) {
                    let _ = reply.send(Err(StepError(format!("cannot hand over the state: {e}"))));
                    return;
                }
                let m = json!({"op": "load_state", "path": path});
                (m, Op::Load(limit, path, reply))
            }
        };
        self.send(message, op);
    }

    fn send(&mut self, message: Value, op: Op) {
        let Some((_, stream)) = self.process.as_mut() else {
            return;
        };
        match protocol::write(stream, &message) {
            Ok(()) => self.op = Some(op),
            Err(e) => {
                self.op = Some(op);
                self.down(format!("its socket failed: {e}"));
            }
        }
    }

    fn step_message(
        &self,
        id: u64,
        frames: &[FrameInputs],
        prompt: Option<(String, Option<String>)>,
    ) -> Value {
        let info = &self.package.info;
        let col = |f: &dyn Fn(&FrameInputs) -> Value| -> Value {
            Value::Array(frames.iter().map(f).collect())
        };
        let mut inputs = serde_json::Map::new();
        inputs.insert("frame".into(), col(&|f| json!(f.frame)));
        inputs.insert("time_s".into(), col(&|f| json!(f.time_s)));
        if !info.actions.is_empty() {
            inputs.insert("axes".into(), col(&|f| json!(f.axes)));
        }
        if !info.inputs.keys.is_empty() {
            inputs.insert("keys".into(), col(&|f| json!(f.keys)));
        }
        if info.inputs.mouse {
            inputs.insert("mouse".into(), col(&|f| json!(f.mouse)));
            inputs.insert("buttons".into(), col(&|f| json!(f.buttons)));
        }
        if info.inputs.camera_pose {
            inputs.insert("camera_pose".into(), col(&|f| json!(f.camera_pose)));
            inputs.insert("intrinsics".into(), col(&|f| json!(f.intrinsics)));
        }
        if !info.params.is_empty() {
            inputs.insert("params".into(), col(&|f| json!(f.params)));
        }
        if let (PromptMode::Text, Some((text, previous))) = (info.prompt, prompt) {
            inputs.insert("prompt".into(), json!(text));
            inputs.insert("prompt_previous".into(), json!(previous));
            inputs.insert("prompt_mix".into(), col(&|f| json!(f.prompt_mix)));
        }
        let l = self.shm.layout;
        json!({"op": "step", "id": id, "frames": frames.len(), "inputs": inputs,
               "out": {"rgb": 0, "depth": l.depth}})
    }

    /// `reset` with the image (if any) written into shared memory first.
    fn reset_message(&mut self) -> Value {
        let l = self.shm.layout;
        let image = self.image.clone().filter(|i| {
            i.width == l.width && i.height == l.height && i.data.len() == l.width * l.height * 3
        });
        let image = image.map(|i| {
            self.shm
                .bytes_mut(l.image, i.data.len())
                .copy_from_slice(&i.data);
            json!({"offset": l.image, "width": i.width, "height": i.height})
        });
        json!({"op": "reset", "seed": self.seed, "prompt": self.prompt, "image": image})
    }

    /// A message from the worker, or its socket closing.
    fn message(&mut self, m: Result<Value, String>) {
        let m = match m {
            Ok(m) => m,
            Err(reason) => {
                self.down(reason);
                return;
            }
        };
        self.last_alive = Instant::now();
        let op = m["op"].as_str().unwrap_or_default();
        if op == "alive" {
            return;
        }
        let Some(inflight) = self.op.take() else {
            tracing::warn!("model {}: an answer to no request: {op}", self.name());
            return;
        };
        let error = (op == "error").then(|| {
            if let Some(tb) = m["traceback"].as_str() {
                tracing::debug!("model {}: {tb}", self.name());
            }
            StepError(m["message"].as_str().unwrap_or("failed").to_owned())
        });
        match inflight {
            Op::Step {
                id,
                frames,
                pool,
                sent,
                ..
            } => {
                let result = match error {
                    Some(e) => Err((id, e)),
                    None => self.take_chunk(id, frames, &m, &pool, sent),
                };
                if result.is_ok() {
                    self.steps_since_save += 1;
                    if self.package.save_state && self.steps_since_save >= self.save_every {
                        self.steps_since_save = 0;
                        let path = self.dir.path().join("autosave.safetensors");
                        let m = json!({"op": "save_state", "path": path, "state_limit_bytes": MAX_STATE_BYTES});
                        self.send(m, Op::AutoSave(Instant::now() + REQUEST_LIMIT));
                    }
                }
                (self.events)(WorkerEvent::Chunk(result));
            }
            Op::Reset(_) | Op::SetPrompt(_) => {
                if let Some(error) = error {
                    let request = if matches!(inflight, Op::Reset(_)) {
                        "reset"
                    } else {
                        "set_prompt"
                    };
                    (self.events)(WorkerEvent::Failed { request, error });
                }
            }
            Op::AutoSave(_) => match error {
                None => {
                    let saved = self.dir.path().join("autosave.safetensors");
                    let kept = self.dir.path().join("state.safetensors");
                    if std::fs::rename(&saved, &kept).is_ok() {
                        self.state_file = Some(kept);
                        self.status.lock().saved_state_bytes = m["bytes"].as_u64().unwrap_or(0);
                    }
                }
                Some(e) => tracing::warn!(
                    "model {}: its state could not be saved for a restart: {e}",
                    self.name()
                ),
            },
            Op::Save(_, path, reply) => {
                let r = match error {
                    Some(e) => Err(e),
                    None => Tensor::read_safetensors(&path)
                        .map_err(|e| StepError(format!("its state file could not be read: {e}"))),
                };
                let _ = std::fs::remove_file(&path);
                let _ = reply.send(r);
            }
            Op::Load(_, path, reply) => {
                let r = match error {
                    Some(e) => Err(e),
                    None => {
                        // A restart resumes from the state just loaded.
                        let kept = self.dir.path().join("state.safetensors");
                        if std::fs::rename(&path, &kept).is_ok() {
                            self.state_file = Some(kept);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    /// Copies the chunk the worker wrote into frames of the pool's size.
    fn take_chunk(
        &mut self,
        id: u64,
        asked: usize,
        m: &Value,
        pool: &FramePool,
        sent: Instant,
    ) -> Result<Chunk, (u64, StepError)> {
        let fail = |e: String| Err((id, StepError(e)));
        let frames = m["frames"].as_u64().unwrap_or(0) as usize;
        if frames != asked || frames > self.shm.layout.frames {
            return fail(format!(
                "the worker wrote {frames} frames, {asked} were asked for"
            ));
        }
        let copy_started = Instant::now();
        let l = self.shm.layout;
        let (w, h) = pool.size();
        let mut out = Vec::with_capacity(frames);
        for i in 0..frames {
            let mut buf = pool.take();
            let src = self.shm.frame(i);
            if (w, h) == (l.width, l.height) {
                crate::generator::rgb_to_rgbx(src, buf.data_mut());
            } else {
                let mut image = Image {
                    width: w,
                    height: h,
                    data: buf.data_mut(),
                };
                // SAFETY: the view borrows the mapped frame, which is not written while
                // it lives (the next step is asked for after this returns).
                let t = unsafe {
                    Tensor::from_blob(
                        src.as_ptr(),
                        &[l.height as i64, l.width as i64, 3],
                        &[l.width as i64 * 3, 3, 1],
                        tch::Kind::Uint8,
                        Device::Cpu,
                    )
                };
                if let Err(e) = write_image(&mut image, &t) {
                    return Err((id, e));
                }
            }
            out.push(buf.freeze());
        }
        let depth = if m["depth"].as_bool() == Some(true) {
            (0..frames).filter_map(|i| self.shm.depth(i)).collect()
        } else {
            Vec::new()
        };
        let ms = |k: &str| Duration::from_secs_f64(m[k].as_f64().unwrap_or(0.0).max(0.0) / 1e3);
        let (write, copy) = (ms("write_ms"), copy_started.elapsed());
        let transfer = write + copy;
        let step = ms("step_ms");
        {
            let mut s = self.status.lock();
            s.last_step_ms = step.as_secs_f64() * 1e3;
            s.last_transfer_ms = transfer.as_secs_f64() * 1e3;
        }
        Ok(Chunk {
            id,
            frames: out,
            depth,
            step,
            transfer,
            write,
            copy,
            wall: sent.elapsed(),
        })
    }

    /// Kills a worker that overran its request or stopped sending heartbeats.
    fn check_health(&mut self) {
        if self.process.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(op) = &self.op {
            if now > op.deadline() {
                let what = match op {
                    Op::Step { .. } => format!(
                        "a step ran past its {:.1} s deadline (step_timeout_s)",
                        self.package.step_timeout.as_secs_f64()
                    ),
                    _ => format!(
                        "a request went unanswered for {} s",
                        REQUEST_LIMIT.as_secs()
                    ),
                };
                self.down(format!("{what}: killed"));
                return;
            }
        }
        let stepping = matches!(self.op, Some(Op::Step { .. }));
        if !stepping && now.duration_since(self.last_alive) > HEARTBEAT_LIMIT {
            self.down(format!(
                "no heartbeat for {} s: killed",
                HEARTBEAT_LIMIT.as_secs()
            ));
        }
    }

    /// The process is gone or must go: kill it, fail what was in flight, tell the model
    /// thread, and plan the restart.
    fn down(&mut self, why: String) {
        let Some((mut p, _)) = self.process.take() else {
            return;
        };
        let ended = p.kill();
        let reason = if why.contains("killed") {
            why
        } else {
            format!("its process {ended}")
        };
        let up = p.started.elapsed();
        tracing::error!("model {}: {reason}; starting it again", self.name());
        match self.op.take() {
            Some(Op::Save(_, _, reply)) => {
                let _ = reply.send(Err(StepError(format!(
                    "the model's process ended: {reason}"
                ))));
            }
            Some(Op::Load(_, _, reply)) => {
                let _ = reply.send(Err(StepError(format!(
                    "the model's process ended: {reason}"
                ))));
            }
            _ => {}
        }
        {
            let mut s = self.status.lock();
            s.last_exit = Some(reason.clone());
            s.pid = None;
            s.since = None;
            s.restarts += 1;
        }
        if up >= HEALTHY_AFTER {
            self.attempt = 0;
        }
        // What was queued behind the lost request is answered as if it came now.
        for c in std::mem::take(&mut self.pending) {
            self.command_while_down(c);
        }
        self.schedule_restart();
        (self.events)(WorkerEvent::Down { reason });
    }

    /// Starts a worker process and brings the model to where a step can run: loaded, and
    /// resumed from the saved state or reset. Bounded by the manifest's `warmup_s`.
    /// Returns whether it resumed from saved state.
    fn start_process(&mut self) -> Result<bool, String> {
        let deadline = Instant::now() + self.package.warmup;
        self.generation += 1;
        let generation = self.generation;
        let socket = self.dir.path().join("control.sock");
        let _ = std::fs::remove_file(&socket);
        let listener =
            UnixListener::bind(&socket).map_err(|e| format!("cannot listen on its socket: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let script = self.dir.path().join("cuecast_worker.py");
        let pycache = self.dir.path().join("pycache");
        let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_some_and(|k| passes(k, &self.env)))
            .collect();
        let mut p = Process::spawn(
            &self.python,
            &script,
            &socket,
            &self.package.dir,
            &pycache,
            self.name(),
            &env,
        )
        .map_err(|e| format!("cannot start {}: {e}", self.python.display()))?;
        {
            let mut s = self.status.lock();
            s.state = ProcessState::Starting;
            s.pid = Some(p.pid);
        }
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("its socket failed: {e}")),
            }
            if let Some(status) = p.exited() {
                return Err(format!(
                    "its process {} before it connected",
                    process::describe_exit(status, p.last_error().as_deref())
                ));
            }
            if Instant::now() > deadline {
                p.kill();
                return Err(format!(
                    "it did not connect within warmup_s ({} s)",
                    self.package.warmup.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = std::fs::remove_file(&socket);
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
        let tx = self.inbound_tx.clone();
        std::thread::Builder::new()
            .name("cuecast-worker-read".into())
            .spawn(move || loop {
                let m = protocol::read(&mut reader);
                let closed = m.is_err();
                let m = m.map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => "its socket closed".to_owned(),
                    _ => format!("its socket failed: {e}"),
                });
                if tx.send(Inbound::Worker(generation, m)).is_err() || closed {
                    break;
                }
            })
            .map_err(|e| e.to_string())?;
        self.process = Some((p, stream));
        self.op = None;
        let result = self.bring_up(deadline);
        match result {
            Ok(resumed) => {
                let mut s = self.status.lock();
                s.state = ProcessState::Running;
                s.since = Some(Instant::now());
                self.last_alive = Instant::now();
                self.steps_since_save = 0;
                Ok(resumed)
            }
            Err(e) => {
                if let Some((mut p, _)) = self.process.take() {
                    let ended = p.kill();
                    if e.contains("socket closed") {
                        return Err(format!("its process {ended}"));
                    }
                }
                Err(e)
            }
        }
    }

    /// hello, load, then resume or reset; each answer awaited until `deadline`.
    fn bring_up(&mut self, deadline: Instant) -> Result<bool, String> {
        let refused = |v: &Value| v["message"].as_str().unwrap_or("it failed").to_owned();
        let hello = self.await_reply(deadline, "say hello")?;
        if hello["op"] != "hello" || hello["protocol"].as_u64() != Some(protocol::PROTOCOL) {
            return Err(format!(
                "it does not speak worker protocol {}: {hello}",
                protocol::PROTOCOL
            ));
        }
        let info = &self.package.info;
        let l = self.shm.layout;
        let load = json!({
            "op": "load",
            "package": self.package.dir.canonicalize().unwrap_or_else(|_| self.package.dir.clone()),
            "entry": self.entry,
            "device": crate::device::device_name(self.device),
            "width": info.width, "height": info.height, "fps": info.fps.as_f64(),
            "prompt": match info.prompt { PromptMode::Text => "every_step", PromptMode::SetPrompt => "set_prompt", PromptMode::None => "none" },
            "state_rollback": match self.package.state_rollback { StateRollback::Copy => "copy", StateRollback::None => "none" },
            "save_state": self.package.save_state,
            "state_limit_bytes": MAX_STATE_BYTES,
            "vram_gb": self.package.vram_gb,
            "threads": self.threads,
            "config": self.package.config,
            "shm": {"path": self.shm.path, "bytes": l.bytes},
        });
        self.write_now(&load)?;
        let loaded = self.await_reply(deadline, "load the model")?;
        if loaded["op"] != "loaded" {
            return Err(refused(&loaded));
        }
        let resume = self.state_file.clone();
        if let Some(path) = &resume {
            self.write_now(&json!({"op": "load_state", "path": path}))?;
            let r = self.await_reply(deadline, "load its saved state")?;
            if r["op"] == "done" {
                return Ok(true);
            }
            tracing::warn!(
                "model {}: its saved state did not load ({}): reset instead",
                self.name(),
                r["message"].as_str().unwrap_or("")
            );
            self.state_file = None;
        }
        let reset = self.reset_message();
        self.write_now(&reset)?;
        let r = self.await_reply(deadline, "reset")?;
        if r["op"] != "done" {
            return Err(format!("reset() failed: {}", refused(&r)));
        }
        Ok(false)
    }

    fn write_now(&mut self, m: &Value) -> Result<(), String> {
        let (_, stream) = self.process.as_mut().ok_or("it is gone")?;
        protocol::write(stream, m).map_err(|e| format!("its socket failed: {e}"))?;
        stream.flush().map_err(|e| e.to_string())
    }

    /// The next message from the current process other than a heartbeat; commands that
    /// arrive meanwhile wait their turn.
    fn await_reply(&mut self, deadline: Instant, what: &str) -> Result<Value, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "it did not {what} within warmup_s ({} s)",
                    self.package.warmup.as_secs()
                ));
            }
            match self.inbound.recv_timeout(left) {
                Ok(Inbound::Command(Command::Quit)) => {
                    self.quit = true;
                    return Err("cuecast is stopping".into());
                }
                Ok(Inbound::Command(c)) => self.pending.push_back(c),
                Ok(Inbound::Worker(g, m)) if g == self.generation => match m {
                    Ok(v) if v["op"] == "alive" => {}
                    Ok(v) => return Ok(v),
                    Err(e) => return Err(e),
                },
                Ok(Inbound::Worker(..)) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("cuecast is stopping".into()),
            }
        }
    }
}
