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

mod process;
mod protocol;
pub mod sandbox;
mod shm;

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
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
use protocol::{Done, Reply};
use sandbox::{ModelFolder, Sandbox, VIEW};
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
/// A process that could not be started (or failed before it could step) is tried again
/// no sooner than this, whatever `restart_max_s` says: a model that dies at load costs
/// a start a second, not a core.
const FAILED_START_WAIT: Duration = Duration::from_secs(1);
/// How often the memory of the model's processes is measured.
const MEMORY_EVERY: Duration = Duration::from_millis(500);
/// How long a stopping worker may take to end by itself before it is killed.
const QUIT_GRACE: Duration = Duration::from_millis(100);

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
    /// A message from worker process `generation`, or why it cannot be read (its socket
    /// closed, or it broke the protocol).
    Worker(u64, Result<Reply, String>),
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

/// The machine memory a model says it needs, in GB, and the manifest field that says
/// so: `memory_gb`, or on the CPU `vram_gb` (there the device's memory is the machine's).
fn memory_need(package: &Package, device: Device) -> Option<(f64, &'static str)> {
    if package.memory_gb > 0.0 {
        Some((package.memory_gb, "memory_gb"))
    } else if package.vram_gb > 0.0 && device == Device::Cpu {
        Some((package.vram_gb, "vram_gb"))
    } else {
        None
    }
}

/// The most memory the model's processes may hold: what it says it needs, with a
/// margin (a quarter more, and at least 1 GB more), so a model that grows past what it
/// said is killed and started again before it takes the machine's memory from the
/// show. None when the manifest gives no figure.
fn memory_cap(package: &Package, device: Device) -> Option<u64> {
    let (gb, _) = memory_need(package, device)?;
    Some(((gb * 1.25).max(gb + 1.0) * 1e9) as u64)
}

/// The memory a model needs is checked here (on CUDA the worker checks the device's
/// free memory before the model loads).
fn check_memory(package: &Package, device: Device) -> Result<(), String> {
    let Some((gb, field)) = memory_need(package, device) else {
        return Ok(());
    };
    let Some(available) = mem_available() else {
        return Ok(());
    };
    if gb * 1e9 > available as f64 {
        return Err(format!(
            "needs {gb} GB of memory ({field}); this machine has {:.1} GB available",
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

/// One worker's folders, on tmpfs (`/dev/shm`) where there is one, all 0700: `model`
/// (what the model's process may open: socket, state files, the worker script), `tmp`
/// (its `/tmp`), and the folder itself, where cuecast keeps the state files it reads
/// and writes, out of the model's reach.
struct RuntimeDir {
    root: tempfile::TempDir,
    model: PathBuf,
    tmp: PathBuf,
    /// The user the model runs as, when not cuecast's: its folders are that user's.
    uid: Option<u32>,
}

impl RuntimeDir {
    fn new(uid: Option<u32>) -> std::io::Result<RuntimeDir> {
        let root = runtime_dir()?;
        let sub = |name: &str| -> std::io::Result<PathBuf> {
            let p = root.path().join(name);
            std::fs::DirBuilder::new().mode(0o700).create(&p)?;
            if let Some(uid) = uid {
                std::os::unix::fs::chown(&p, Some(uid), Some(uid))?;
            }
            Ok(p)
        };
        let (model, tmp) = (sub("model")?, sub("tmp")?);
        Ok(RuntimeDir {
            root,
            model,
            tmp,
            uid,
        })
    }

    /// Gives a file cuecast made in the model's folder to the model's user.
    fn hand(&self, path: &Path) -> std::io::Result<()> {
        match self.uid {
            Some(uid) => std::os::unix::fs::chown(path, Some(uid), Some(uid)),
            None => Ok(()),
        }
    }

    /// cuecast's own folder (the model cannot reach it).
    fn private(&self) -> &Path {
        self.root.path()
    }
}

/// A private folder for one worker: on tmpfs (`/dev/shm`) where there is one, 0700.
/// Folders left by a cuecast that was killed are removed first.
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
            // SAFETY: kill with signal 0 only asks whether the process exists (ESRCH: it
            // does not; EPERM: it does, another user's).
            let gone = pid.is_some_and(|p| {
                let r = unsafe { libc::kill(p, 0) };
                r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            });
            if gone {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("cuecast-worker-{}-", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(base)
}

/// Bytes the files under `dir` take (blocks, not lengths), links not followed; at most
/// the first 10,000 entries are looked at, so a model that makes a million files costs
/// a bounded walk.
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let (mut total, mut seen, mut stack) = (0u64, 0usize, vec![dir.to_path_buf()]);
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            seen += 1;
            if seen > 10_000 {
                return total;
            }
            if let Ok(m) = e.metadata() {
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
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
    dir: RuntimeDir,
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
    /// The model's process's environment: [`PASSED_ENV`] and what the show names.
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// The sandbox the process runs in, if one could be made.
    sandbox: Option<Sandbox>,
    network: bool,
    folders: Vec<ModelFolder>,
    memory_cap: Option<u64>,
    memory_checked: Instant,
    /// A failed step's successor waits for this: a model that fails at once costs at
    /// most its step rate, not a core.
    step_not_before: Option<Instant>,
    next_start: Option<Instant>,
    last_alive: Instant,
    quit: bool,
}

/// Ends a process that must go, and says how it ended: one whose socket closed is
/// likely ending by itself, and is given a moment so that its own exit status is told;
/// any other is killed at once.
fn end(p: &mut Process, why: &str) -> String {
    if why.contains("socket closed") {
        p.stop(Duration::from_millis(500))
    } else {
        p.kill()
    }
}

/// What a worker said when it refused a request.
fn refused(r: Reply) -> String {
    match r {
        Reply::Error { message, .. } if !message.is_empty() => message,
        Reply::Error { .. } => "it failed".into(),
        other => format!("it answered {other:?}"),
    }
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.package.info.name
    }

    fn run(mut self) {
        while !self.quit {
            // Nothing the worker sends may stop the supervisor: a panic here is a bug
            // met by a broken worker, and is handled as that worker's death.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.turn())) {
                let why = format!(
                    "cuecast's supervisor failed on what it sent ({}): killed",
                    crate::engine::panic_message(panic.as_ref())
                );
                if catch_unwind(AssertUnwindSafe(|| self.down(why))).is_err() {
                    self.process = None;
                    self.op = None;
                    self.schedule_restart(FAILED_START_WAIT);
                }
            }
        }
        if let Some((mut p, mut stream)) = self.process.take() {
            let _ = protocol::write(&mut stream, &json!({"op": "quit"}));
            p.stop(QUIT_GRACE);
        }
        self.status.lock().state = ProcessState::Stopped;
    }

    /// One turn of the supervisor: a request sent, a message or command taken, health
    /// checked.
    fn turn(&mut self) {
        if self.process.is_none() {
            self.wait_to_restart();
            return;
        }
        let mut wait = Duration::from_millis(50);
        if self.op.is_none() {
            let now = Instant::now();
            let paced = match (self.pending.front(), self.step_not_before) {
                (Some(Command::Step { .. }), Some(t)) if now < t => Some(t - now),
                _ => None,
            };
            match paced {
                Some(left) => wait = wait.min(left),
                None => {
                    if let Some(c) = self.pending.pop_front() {
                        self.command(c);
                        return;
                    }
                }
            }
        }
        match self.inbound.recv_timeout(wait) {
            // Stopping does not wait for the request in flight.
            Ok(Inbound::Command(Command::Quit)) => self.quit = true,
            Ok(Inbound::Command(c)) => self.pending.push_back(c),
            Ok(Inbound::Worker(generation, m)) if generation == self.generation => self.message(m),
            Ok(Inbound::Worker(..)) => {}
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.quit = true,
        }
        self.check_health();
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
                    {
                        let mut s = self.status.lock();
                        s.last_exit = Some(e);
                        s.restarts += 1;
                    }
                    self.schedule_restart(FAILED_START_WAIT);
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

    /// Plans the next start: after the backoff (capped by `restart_max_s`), and no
    /// sooner than `at_least`.
    fn schedule_restart(&mut self, at_least: Duration) {
        let delay = BACKOFF_S[self.attempt.min(BACKOFF_S.len() - 1)].min(self.restart_max_s);
        self.attempt += 1;
        let delay = Duration::from_secs_f64(delay).max(at_least);
        self.next_start = Some(Instant::now() + delay);
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
                let r = self.hand_over(&state, "state.safetensors");
                if let Ok(path) = &r {
                    self.state_file = Some(path.clone());
                }
                let _ = reply.send(r.map(|_| ()));
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
                let path = self.dir.model.join("checkpoint.safetensors");
                let m = json!({"op": "save_state", "path": self.view(&path),
                               "state_limit_bytes": MAX_STATE_BYTES});
                (m, Op::Save(limit, path, reply))
            }
            Command::Load(state, reply) => {
                let path = match self.hand_over(&state, "load.safetensors") {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                let m = json!({"op": "load_state", "path": self.view(&path)});
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

    /// Where the model's process sees `path` (a file in its folder).
    fn view(&self, path: &Path) -> PathBuf {
        match (&self.sandbox, path.strip_prefix(&self.dir.model)) {
            (Some(_), Ok(rel)) => Path::new(VIEW).join(rel),
            _ => path.to_owned(),
        }
    }

    /// Writes a state for the model to read as `name` in its folder: written in
    /// cuecast's own folder, then moved there (a move replaces whatever the model left
    /// under that name, a link too, and never writes through it).
    fn hand_over(&self, state: &[(String, Tensor)], name: &str) -> Result<PathBuf, StepError> {
        let private = self.dir.private().join(name);
        let target = self.dir.model.join(name);
        Tensor::write_safetensors(state, &private)
            .and_then(|()| {
                self.dir.hand(&private)?;
                std::fs::rename(&private, &target).map_err(Into::into)
            })
            .map_err(|e| StepError(format!("cannot hand over the state: {e}")))?;
        Ok(target)
    }

    /// Reads a state the model wrote as `path` in its folder: moved into cuecast's own
    /// folder first, so the model can no longer change it, then read only if it is a
    /// plain file of at most [`MAX_STATE_BYTES`] and a header.
    fn take_over(&self, path: &Path) -> Result<Vec<(String, Tensor)>, StepError> {
        let name = path.file_name().unwrap_or_default();
        let private = self.dir.private().join(name);
        let read = || -> Result<Vec<(String, Tensor)>, String> {
            std::fs::rename(path, &private).map_err(|e| e.to_string())?;
            let meta = std::fs::symlink_metadata(&private).map_err(|e| e.to_string())?;
            if !meta.file_type().is_file() {
                return Err("it is not a plain file".into());
            }
            if meta.len() > MAX_STATE_BYTES + (1 << 20) {
                return Err(format!(
                    "{} MB, over the {} MB a state may be",
                    meta.len() >> 20,
                    MAX_STATE_BYTES >> 20
                ));
            }
            Tensor::read_safetensors(&private).map_err(|e| e.to_string())
        };
        let r = read().map_err(|e| StepError(format!("its state file could not be read: {e}")));
        // What the model left there, a folder too.
        let _ = std::fs::remove_file(&private);
        let _ = std::fs::remove_dir_all(&private);
        r
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

    /// A message from the worker, or why none can be read (its socket closed, or it
    /// broke the protocol).
    fn message(&mut self, m: Result<Reply, String>) {
        let m = match m {
            Ok(m) => m,
            Err(reason) => {
                self.down(reason);
                return;
            }
        };
        self.last_alive = Instant::now();
        let (done, error) = match m {
            Reply::Alive => return,
            Reply::Done(d) => (d, None),
            Reply::Error { message, traceback } => {
                if let Some(tb) = traceback {
                    tracing::debug!("model {}: {tb}", self.name());
                }
                let message = if message.is_empty() {
                    "failed".to_owned()
                } else {
                    message
                };
                (Done::default(), Some(StepError(message)))
            }
            other => {
                self.down(format!("it sent {other:?} where an answer was due: killed"));
                return;
            }
        };
        let Some(inflight) = self.op.take() else {
            self.down("it answered a request it was not asked: killed".into());
            return;
        };
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
                    None => self.take_chunk(id, frames, &done, &pool, sent),
                };
                match &result {
                    Ok(_) => {
                        self.step_not_before = None;
                        self.steps_since_save += 1;
                        if self.package.save_state && self.steps_since_save >= self.save_every {
                            self.steps_since_save = 0;
                            let path = self.dir.model.join("autosave.safetensors");
                            let m = json!({"op": "save_state", "path": self.view(&path),
                                           "state_limit_bytes": MAX_STATE_BYTES});
                            self.send(m, Op::AutoSave(Instant::now() + REQUEST_LIMIT));
                        }
                    }
                    Err(_) => {
                        // The next step no sooner than this one's frames would have
                        // taken to play.
                        let fps = self.package.info.fps.as_f64();
                        let chunk = Duration::from_secs_f64(frames as f64 / fps.max(1.0));
                        self.step_not_before = Some(sent + chunk);
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
                    let saved = self.dir.model.join("autosave.safetensors");
                    let kept = self.dir.model.join("state.safetensors");
                    if std::fs::rename(&saved, &kept).is_ok() {
                        self.state_file = Some(kept);
                        self.status.lock().saved_state_bytes =
                            done.bytes.unwrap_or(0).min(MAX_STATE_BYTES);
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
                    None => self.take_over(&path),
                };
                let _ = reply.send(r);
            }
            Op::Load(_, path, reply) => {
                let r = match error {
                    Some(e) => Err(e),
                    None => {
                        // A restart resumes from the state just loaded.
                        let kept = self.dir.model.join("state.safetensors");
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
        m: &Done,
        pool: &FramePool,
        sent: Instant,
    ) -> Result<Chunk, (u64, StepError)> {
        let fail = |e: String| Err((id, StepError(e)));
        let frames = m.frames.unwrap_or(0).min(u64::from(u32::MAX)) as usize;
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
        let depth = if m.depth == Some(true) {
            (0..frames).filter_map(|i| self.shm.depth(i)).collect()
        } else {
            Vec::new()
        };
        // In range: checked when the reply was read.
        let ms = |v: Option<f64>| Duration::from_secs_f64(v.unwrap_or(0.0) / 1e3);
        let (write, copy) = (ms(m.write_ms), copy_started.elapsed());
        let transfer = write + copy;
        let step = ms(m.step_ms);
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

    /// Kills a worker that overran its request, stopped sending heartbeats or holds
    /// more memory than its cap; notices one that exited (even while helpers it started
    /// hold its socket open).
    fn check_health(&mut self) {
        let Some((p, _)) = &self.process else {
            return;
        };
        if p.has_exited() {
            self.down("it exited".into());
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.memory_checked) >= MEMORY_EVERY {
            self.memory_checked = now;
            // Its files in its folders count too: they are memory (tmpfs) that outlives
            // its processes.
            let files = disk_bytes(&self.dir.tmp) + disk_bytes(&self.dir.model);
            let (bytes, processes) = (p.memory() + files, p.tree().len());
            {
                let mut s = self.status.lock();
                s.memory_bytes = bytes;
                s.processes = processes;
            }
            if let Some(cap) = self.memory_cap.filter(|c| bytes > *c) {
                self.down(format!(
                    "it held {:.2} GB ({:.2} GB of it in files in its /tmp and folder), over \
                     its cap of {:.2} GB (what its manifest says it needs, with a margin): killed",
                    bytes as f64 / 1e9,
                    files as f64 / 1e9,
                    cap as f64 / 1e9
                ));
                // What its files held would still be held: the next process starts with
                // an empty /tmp.
                if files > 0 {
                    for e in std::fs::read_dir(&self.dir.tmp)
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let _ = std::fs::remove_dir_all(e.path());
                        let _ = std::fs::remove_file(e.path());
                    }
                }
                return;
            }
        }
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
        let ended = end(&mut p, &why);
        let reason = if why.contains("killed") || why.starts_with("it sent") {
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
            s.processes = 0;
            s.memory_bytes = 0;
        }
        if up >= HEALTHY_AFTER {
            self.attempt = 0;
        }
        // What was queued behind the lost request is answered as if it came now.
        for c in std::mem::take(&mut self.pending) {
            self.command_while_down(c);
        }
        self.step_not_before = None;
        self.schedule_restart(Duration::ZERO);
        (self.events)(WorkerEvent::Down { reason });
    }

    /// Starts a worker process and brings the model to where a step can run: loaded, and
    /// resumed from the saved state or reset. Bounded by the manifest's `warmup_s`.
    /// Returns whether it resumed from saved state.
    fn start_process(&mut self) -> Result<bool, String> {
        let deadline = Instant::now() + self.package.warmup;
        self.generation += 1;
        let generation = self.generation;
        let socket = self.dir.model.join("control.sock");
        // Whatever the last process left under the socket's name (a folder too).
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_dir_all(&socket);
        let listener =
            UnixListener::bind(&socket).map_err(|e| format!("cannot listen on its socket: {e}"))?;
        self.dir
            .hand(&socket)
            .map_err(|e| format!("cannot give its socket to the model's user: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut p = Process::spawn(
            self.start_command(&socket),
            self.sandbox.is_some(),
            self.name(),
            self.shm.fd(),
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
            if let Some(how) = p.exit() {
                return Err(format!("its process {how} before it connected"));
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
        self.status.lock().pid = Some(p.model_pid());
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
        let tx = self.inbound_tx.clone();
        std::thread::Builder::new()
            .name("cuecast-worker-read".into())
            .spawn(move || {
                // Heartbeats are passed on at most every 50 ms: a worker that floods
                // them cannot grow cuecast's queue or delay its commands.
                let mut last_alive: Option<Instant> = None;
                loop {
                    let m = protocol::read(&mut reader);
                    let closed = m.is_err();
                    let m = match m {
                        Ok(v) => Reply::from_value(v).map_err(|e| format!("{e}: killed")),
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            Err("its socket closed".to_owned())
                        }
                        Err(e) => Err(format!("its socket failed: {e}")),
                    };
                    if matches!(m, Ok(Reply::Alive)) {
                        if last_alive.is_some_and(|t| t.elapsed() < Duration::from_millis(50)) {
                            continue;
                        }
                        last_alive = Some(Instant::now());
                    }
                    let broken = m.is_err();
                    if tx.send(Inbound::Worker(generation, m)).is_err() || closed || broken {
                        break;
                    }
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
                    let ended = end(&mut p, &e);
                    if e.contains("socket closed") {
                        return Err(format!("its process {ended}"));
                    }
                }
                Err(e)
            }
        }
    }

    /// The command that starts the worker: the interpreter running the worker script,
    /// in the sandbox when there is one.
    fn start_command(&self, socket: &Path) -> std::process::Command {
        let script = self.view(&self.dir.model.join("cuecast_worker.py"));
        let pycache = self.view(&self.dir.model.join("pycache"));
        let mut c = match &self.sandbox {
            Some(sandbox) => {
                let jail = sandbox::Jail {
                    python: &self.python,
                    package: &self.package.dir,
                    dir: &self.dir.model,
                    tmp: &self.dir.tmp,
                    cuda: self.device != Device::Cpu,
                    network: self.network,
                    folders: &self.folders,
                    env: &self.env,
                    tmpfs_bytes: self.memory_cap,
                };
                let mut c = std::process::Command::new(&sandbox.bwrap);
                c.args(jail.args(sandbox)).arg(&self.python);
                c
            }
            None => {
                let mut c = std::process::Command::new(&self.python);
                c.current_dir(&self.package.dir);
                c
            }
        };
        c.arg("-u")
            .arg("-X")
            .arg("faulthandler")
            .arg(script)
            .arg("--socket")
            .arg(self.view(socket))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPYCACHEPREFIX", pycache);
        if self.sandbox.is_none() {
            c.env("TMPDIR", &self.dir.tmp);
        }
        c
    }

    /// hello, load, then resume or reset; each answer awaited until `deadline`.
    fn bring_up(&mut self, deadline: Instant) -> Result<bool, String> {
        let hello = self.await_reply(deadline, "say hello")?;
        if hello
            != (Reply::Hello {
                protocol: protocol::PROTOCOL,
            })
        {
            return Err(format!(
                "it does not speak worker protocol {}: {hello:?}",
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
            "shm": {"fd": self.shm.fd(), "bytes": l.bytes},
        });
        self.write_now(&load)?;
        match self.await_reply(deadline, "load the model")? {
            Reply::Loaded => {}
            other => return Err(refused(other)),
        }
        let resume = self.state_file.clone();
        if let Some(path) = &resume {
            self.write_now(&json!({"op": "load_state", "path": self.view(path)}))?;
            match self.await_reply(deadline, "load its saved state")? {
                Reply::Done(_) => return Ok(true),
                other => tracing::warn!(
                    "model {}: its saved state did not load ({}): reset instead",
                    self.name(),
                    refused(other)
                ),
            }
            self.state_file = None;
        }
        let reset = self.reset_message();
        self.write_now(&reset)?;
        match self.await_reply(deadline, "reset")? {
            Reply::Done(_) => Ok(false),
            other => Err(format!("reset() failed: {}", refused(other))),
        }
    }

    fn write_now(&mut self, m: &Value) -> Result<(), String> {
        let (_, stream) = self.process.as_mut().ok_or("it is gone")?;
        protocol::write(stream, m).map_err(|e| format!("its socket failed: {e}"))?;
        stream.flush().map_err(|e| e.to_string())
    }

    /// The next message from the current process other than a heartbeat; commands that
    /// arrive meanwhile wait their turn.
    fn await_reply(&mut self, deadline: Instant, what: &str) -> Result<Reply, String> {
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
                    Ok(Reply::Alive) => {}
                    Ok(v) => return Ok(v),
                    Err(e) => return Err(e),
                },
                Ok(Inbound::Worker(..)) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err("cuecast is stopping".into()),
            }
        }
    }
}
