//! The `python` runtime's host side: a model's own Python code in a worker process
//! that cuecast starts, feeds, watches and restarts.
//!
//! Why a process: real-time video models exist as their own Python (flash-attention,
//! `torch.compile`, tokenizers) and die in ways Python cannot catch (CUDA device
//! asserts, illegal memory access, out of memory). In a process of its own such a death
//! is a restart, not a dead show; the model's code and licence stay out of cuecast too.
//!
//! [`Worker`] is what the model thread holds. Behind it a supervisor thread owns the
//! process: it sends one request at a time over a Unix socket (`protocol`), hands each
//! chunk in shared memory (`shm`, a ring of slots) to the show as its frames without a
//! copy, and tells the model thread what happened through the `events` callback it was
//! given. It watches a heartbeat (every 0.25 s from the worker) and a deadline on every
//! request; a worker that dies, stops answering or overruns a step is killed with its
//! process group and started again with backoff (at once, then 0.5, 1, 2, 4, 8 s, then
//! every 10 s), resumed from the last compact state the model saved, or else reset with
//! the same seed, prompt and image. A model that cannot load at all (an import error,
//! too little memory, a class that lacks a method) is refused when the show starts,
//! with the reason.
//!
//! The model is someone else's code: its process runs in a sandbox (`sandbox`: its own
//! PID namespace, no capabilities, no network unless the show allows it, the system and
//! its package read-only), every process it starts ends with it, the memory it may use
//! is capped from its manifest's figures, and everything it sends back is checked
//! (`protocol::Reply`). A worker that breaks the protocol is killed and started again
//! like one that crashed; nothing it sends can stop the supervisor.
//!
//! Its folder (0700, on tmpfs where there is one) holds what cuecast and the model
//! share: the socket, state files, and the model's `/tmp`. cuecast never opens a file
//! there by a name the model could have replaced with a link: a state file the model
//! wrote is first moved into cuecast's own folder beside it, then checked and read.
//!
//! The worker itself (`python/cuecast_worker.py`) is built into cuecast and written next
//! to the socket at start, so it always speaks this cuecast's protocol.

mod env;
mod folder;
mod memory;
mod process;
mod protocol;
pub mod sandbox;
mod shm;
mod supervisor;
pub(crate) mod terms;

pub use env::{passes, PASSED_ENV};
use folder::RuntimeDir;
use memory::{check_memory, memory_cap};
use supervisor::{Command, Inbound, Supervisor};

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tch::{Device, Tensor};

use crate::frame::{Frame, FramePool, Pixels};
use crate::generator::package::{Package, Runtime};
use crate::generator::{write_image, FrameInput, Image, ModelInfo, StepError};
use crate::EngineError;
use process::Process;
use protocol::{Done, Reply};
use sandbox::{ModelFolder, Sandbox, VIEW};
use shm::{Claim, Layout, Shm};

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
/// A process that could not be started (or failed before it could step) is tried again
/// no sooner than this, whatever `restart_max_s` says: a model that dies at load costs
/// a start a second, not a core.
const FAILED_START_WAIT: Duration = Duration::from_secs(1);
/// How often the memory of the model's processes is measured.
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// How long a stopping worker may take to end by itself before it is killed.
const QUIT_GRACE: Duration = Duration::from_millis(100);

/// An RGB image at the model's native size: what `reset` starts from.
#[derive(Debug, Clone)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// What a step takes beside each frame's inputs: the live video's newest frames (for a
/// model that takes video) and the program's sound for its span (for one that takes
/// sound), interleaved at the model's rate.
#[derive(Debug, Default, Clone)]
pub struct StepMedia {
    pub video: Vec<Arc<RgbImage>>,
    pub sound: Vec<f32>,
}

/// A chunk the worker made, copied into the show's frames.
#[derive(Debug)]
pub struct Chunk {
    pub id: u64,
    pub frames: Vec<Frame>,
    /// Its sound, interleaved at the model's rate, for a model that makes sound.
    pub sound: Vec<f32>,
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
    /// Chunks whose frames were copied out of shared memory rather than shown where the
    /// worker wrote them (every slot still viewed downstream, or the show at another
    /// size or layout than the model's).
    pub copied_chunks: u64,
    /// Bytes of the last compact state saved (what a restart resumes from).
    pub saved_state_bytes: u64,
    /// How the process is confined: `bubblewrap`, or `none: <why>`.
    pub sandbox: String,
    /// Whether it may reach the network.
    pub network: bool,
    /// Memory its processes hold (proportional set size), and the most they may.
    pub memory_bytes: u64,
    pub memory_cap_bytes: Option<u64>,
    /// Its processes, the worker included (helpers it started).
    pub processes: usize,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    pub image: Option<Arc<RgbImage>>,
    /// The longest wait between restarts, in seconds.
    pub restart_max_s: f64,
    /// Environment variables the model's process gets beside [`PASSED_ENV`] (a token
    /// its code needs to fetch weights, say). Nothing else of cuecast's environment
    /// reaches it: the show's stream keys and tokens live there.
    pub env: Vec<String>,
    /// The model may reach the network (to fetch its weights); off, it has none.
    pub network: bool,
    /// Folders beyond its package the model may read (weights), or write (`:rw`).
    pub folders: Vec<ModelFolder>,
    /// Run it in the sandbox where one can be made (else without, with a warning).
    /// Off only for tests of what happens without one.
    pub sandbox: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            python: None,
            device: Device::Cpu,
            threads: 0,
            seed: 0,
            prompt: String::new(),
            image: None,
            restart_max_s: 10.0,
            env: Vec::new(),
            network: false,
            folders: Vec::new(),
            sandbox: true,
        }
    }
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
        let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_some_and(|k| passes(k, &options.env)))
            .collect();
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let python = sandbox::which(&python, path_var)
            .ok_or_else(|| fail(format!("no interpreter {} was found", python.display())))?;
        check_memory(package, options.device).map_err(fail)?;
        let info = package.info.clone();
        let c = info.chunking;
        let frames = c.frames_per_step.max(c.first_step_frames) as usize;
        let confinement = if options.sandbox {
            sandbox::sandbox()
        } else {
            Err("turned off for this worker".to_owned())
        };
        let model_uid = confinement.as_ref().ok().and_then(Sandbox::model_uid);
        let dir = RuntimeDir::new(model_uid)
            .map_err(|e| fail(format!("cannot make its runtime folder: {e}")))?;
        let layout = Layout::new(
            info.width as usize,
            info.height as usize,
            frames,
            info.depth,
            info.inputs
                .video
                .map(|v| (v.frames as usize, v.width as usize, v.height as usize)),
            (
                info.inputs
                    .audio
                    .map_or(0, |a| frames * a.per_frame(info.fps) * a.channels as usize),
                info.audio
                    .map_or(0, |a| frames * a.per_frame(info.fps) * a.channels as usize),
            ),
        );
        let shm =
            Shm::create(layout).map_err(|e| fail(format!("cannot make its shared memory: {e}")))?;
        std::fs::write(dir.model.join("cuecast_worker.py"), WORKER_PY)
            .map_err(|e| fail(format!("cannot write the worker: {e}")))?;
        if let Err(why) = &confinement {
            tracing::warn!("model {}: {}", info.name, sandbox::unavailable_warning(why));
        }
        let memory_cap = memory_cap(package, options.device);
        let status = Arc::new(Mutex::new(ModelProcess {
            state: ProcessState::Starting,
            pid: None,
            python: python.display().to_string(),
            restarts: 0,
            last_exit: None,
            up_s: 0.0,
            last_step_ms: 0.0,
            last_transfer_ms: 0.0,
            copied_chunks: 0,
            saved_state_bytes: 0,
            sandbox: match &confinement {
                Ok(s) if s.setpriv.is_some() => "bubblewrap, as nobody".into(),
                Ok(_) => "bubblewrap".into(),
                Err(why) => format!("none: {why}"),
            },
            network: options.network || confinement.is_err(),
            memory_bytes: 0,
            memory_cap_bytes: memory_cap,
            processes: 0,
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
            image: options.image,
            state_file: None,
            steps_since_save: 0,
            save_every: (SAVE_EVERY_S / chunk_s).ceil().max(1.0) as u32,
            attempt: 0,
            restart_max_s: options.restart_max_s,
            env,
            sandbox: confinement.ok(),
            network: options.network,
            folders: options.folders.clone(),
            memory_cap,
            memory_checked: Instant::now(),
            step_not_before: None,
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

    /// Asks for a chunk of `frames.len()` frames (each frame's inputs sent in the model's
    /// terms: `terms`) from `video` (the input video's frames this step takes, for a
    /// model that takes one), copied into frames from `pool`; the result comes as
    /// [`WorkerEvent::Chunk`] with the id returned here.
    pub fn step(&self, frames: Vec<FrameInput>, media: StepMedia, pool: FramePool) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Step {
            id,
            frames,
            media,
            pool,
        });
        id
    }

    /// Starts the model over (also what a restart without saved state does).
    pub fn reset(&self, seed: u64, prompt: &str, image: Option<Arc<RgbImage>>) {
        self.send(Command::Reset {
            seed,
            prompt: prompt.to_owned(),
            image,
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
            crate::join::join_until(t, Instant::now() + Duration::from_secs(3));
        }
    }
}
