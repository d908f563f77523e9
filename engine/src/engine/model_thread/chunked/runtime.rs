//! What the chunk pacing needs of a model that makes its frames off the model thread:
//! asked for a chunk, it answers later, on the model thread's queue, with a
//! [`WorkerEvent`]. The python worker is one ([`Worker`]); [`InProcess`], which steps a
//! compiled model (`aoti`, `torchscript`) on a thread of its own, is the other, paced the
//! same way.

use super::*;
use crate::generator::inprocess::InProcessModel;
use crate::generator::package::Package;
use crate::worker::{Chunk, ProcessHandle, StepMedia};
use std::sync::atomic::{AtomicBool, AtomicU64};

/// A model that makes chunks off the model thread (see the module doc).
///
/// What the model is (its size, rate, chunking, inputs) is its package's, which the
/// pacing holds beside it.
pub(crate) trait ChunkModel: Send {
    /// Asks for a chunk of `frames.len()` frames, from `media` (the live video and
    /// program sound for this step, for a model that takes them), written into frames
    /// from `pool`; the answer is a [`WorkerEvent::Chunk`] with the id returned here.
    fn step(&self, frames: Vec<FrameInput>, media: StepMedia, pool: FramePool) -> u64;

    /// Starts the model over from `seed`, `prompt` and the image, if any.
    fn reset(&self, seed: u64, prompt: &str, image: Option<Arc<RgbImage>>);

    /// A new prompt, for models that take it outside their steps.
    fn set_prompt(&self, text: &str, transition_s: f64);

    /// The model's compact state, for a checkpoint (after the chunk in flight).
    fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError>;

    /// Puts a saved compact state back (a checkpoint restored).
    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError>;

    /// Bytes its last saved state holds.
    fn saved_state_bytes(&self) -> u64;

    /// Times it was started again after dying or hanging.
    fn restarts(&self) -> u64;

    /// Its process, read from any thread, where it runs in one.
    fn process(&self) -> Option<ProcessHandle>;
}

impl ChunkModel for Worker {
    fn step(&self, frames: Vec<FrameInput>, media: StepMedia, pool: FramePool) -> u64 {
        Worker::step(self, frames, media, pool)
    }

    fn reset(&self, seed: u64, prompt: &str, image: Option<Arc<RgbImage>>) {
        Worker::reset(self, seed, prompt, image)
    }

    fn set_prompt(&self, text: &str, transition_s: f64) {
        Worker::set_prompt(self, text, transition_s)
    }

    fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        Worker::save_state(self)
    }

    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError> {
        Worker::load_state(self, state)
    }

    fn saved_state_bytes(&self) -> u64 {
        self.status().saved_state_bytes
    }

    fn restarts(&self) -> u64 {
        self.status().restarts
    }

    fn process(&self) -> Option<ProcessHandle> {
        Some(self.process_handle())
    }
}

/// An in-process model (`runtime: aoti` or `torchscript`), loaded and stepped on a thread
/// of its own so the model thread keeps pacing the show while a chunk is made, and
/// answering as the worker does. A graph's call cannot be interrupted: a step that hangs
/// holds its thread, and the show goes on repeating frames (counted) as it does for a late
/// worker; every wait on that thread here is bounded.
pub(crate) struct InProcess {
    commands: Option<mpsc::Sender<InProcessCommand>>,
    next_id: AtomicU64,
    state_bytes: Arc<AtomicU64>,
    /// Set when the show ends: the thread skips what is still queued.
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A request whose asker stops waiting: the thread does it only while it is still wanted,
/// and says whether it did, so a late `load_state` never changes the model after the
/// restore that asked for it was refused.
struct Claim(Mutex<ClaimState>);

#[derive(PartialEq)]
enum ClaimState {
    Waiting,
    Done,
    Abandoned,
}

impl Claim {
    fn new() -> Arc<Claim> {
        Arc::new(Claim(Mutex::new(ClaimState::Waiting)))
    }

    /// On the model's thread: runs `f` unless the asker gave up.
    fn run<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let mut state = self.0.lock();
        if *state == ClaimState::Abandoned {
            return None;
        }
        let r = f();
        *state = ClaimState::Done;
        Some(r)
    }

    /// On the asker's side, after its wait ran out: whether the work was done after all.
    fn give_up(&self) -> bool {
        let mut state = self.0.lock();
        if *state == ClaimState::Done {
            return true;
        }
        *state = ClaimState::Abandoned;
        false
    }
}

enum InProcessCommand {
    Step {
        id: u64,
        frames: Vec<FrameInput>,
        pool: FramePool,
    },
    Reset {
        seed: u64,
        image: Option<Arc<RgbImage>>,
    },
    Save(Arc<Claim>, mpsc::Sender<Vec<(String, Tensor)>>),
    Load(
        Vec<(String, Tensor)>,
        Arc<Claim>,
        mpsc::Sender<Result<(), StepError>>,
    ),
}

/// How long a checkpoint waits for the model's thread (a step in flight included).
const IN_PROCESS_REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long the end of a show waits for the call the model's thread is in.
const IN_PROCESS_STOP_LIMIT: Duration = Duration::from_secs(5);

impl InProcess {
    /// Loads `package` on a new thread (at most its `warmup_s`), reset from `seed` and
    /// `image`; what it makes then goes to `events`.
    pub(crate) fn start(
        package: &Package,
        device: tch::Device,
        seed: u64,
        image: Option<Arc<RgbImage>>,
        threads: usize,
        events: impl Fn(WorkerEvent) + Send + 'static,
    ) -> Result<InProcess, EngineError> {
        let (tx, rx) = mpsc::channel::<InProcessCommand>();
        let (loaded_tx, loaded_rx) = mpsc::channel();
        let state_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (bytes, stopped, for_thread) = (state_bytes.clone(), stop.clone(), package.clone());
        let thread = std::thread::Builder::new()
            .name("cuecast-model-graph".into())
            .spawn(move || {
                // As the model thread does: with OpenMP the count is the calling thread's.
                tch::set_num_threads(threads.clamp(1, MAX_MODEL_THREADS) as i32);
                let _guard = tch::no_grad_guard();
                let loaded = catch_unwind(AssertUnwindSafe(|| {
                    InProcessModel::load(&for_thread, device, seed, image.as_deref())
                }))
                .unwrap_or_else(|p| {
                    Err(EngineError::Model {
                        path: for_thread.dir.clone(),
                        message: format!("loading panicked: {}", panic_message(p.as_ref())),
                    })
                });
                let mut model = match loaded {
                    Ok(m) => {
                        bytes.store(m.state_bytes(), Ordering::Relaxed);
                        let _ = loaded_tx.send(Ok(()));
                        m
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                for command in rx {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    serve(&mut model, command, &events);
                    bytes.store(model.state_bytes(), Ordering::Relaxed);
                }
            })
            .map_err(|e| EngineError::Config {
                what: "model".into(),
                message: format!("cannot start the model's thread: {e}"),
            })?;
        match loaded_rx.recv_timeout(package.warmup) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                // Still loading: left to finish on its own, then to end (nothing queued).
                stop.store(true, Ordering::Relaxed);
                return Err(EngineError::Model {
                    path: package.dir.clone(),
                    message: format!(
                        "did not load, reset and make its first chunks within {:.0} s (warmup_s)",
                        package.warmup.as_secs_f64()
                    ),
                });
            }
        }
        Ok(InProcess {
            commands: Some(tx),
            next_id: AtomicU64::new(1),
            state_bytes,
            stop,
            thread: Some(thread),
        })
    }

    fn send(&self, c: InProcessCommand) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(c);
        }
    }
}

/// One request, on the model's thread. A panic in libtorch (out of memory, say) is the
/// request's failure, never the thread's end.
fn serve(model: &mut InProcessModel, command: InProcessCommand, events: &dyn Fn(WorkerEvent)) {
    match command {
        InProcessCommand::Step { id, frames, pool } => {
            let asked = Instant::now();
            let made = catch_unwind(AssertUnwindSafe(|| {
                make_chunk(model, id, &frames, &pool, asked)
            }))
            .unwrap_or_else(|p| {
                Err(StepError(format!(
                    "the model's step panicked: {}",
                    panic_message(p.as_ref())
                )))
            });
            events(WorkerEvent::Chunk(made.map_err(|e| (id, e))));
        }
        InProcessCommand::Reset { seed, image } => {
            let done = catch_unwind(AssertUnwindSafe(|| model.reset(seed, image.as_deref())))
                .unwrap_or_else(|p| {
                    Err(StepError(format!(
                        "reset panicked: {}",
                        panic_message(p.as_ref())
                    )))
                });
            if let Err(error) = done {
                events(WorkerEvent::Failed {
                    request: "reset",
                    error,
                });
            }
        }
        InProcessCommand::Save(claim, reply) => {
            let state = claim.run(|| catch_unwind(AssertUnwindSafe(|| model.save_state())));
            if let Some(Ok(state)) = state {
                let _ = reply.send(state);
            }
        }
        InProcessCommand::Load(state, claim, reply) => {
            let done = claim.run(|| {
                catch_unwind(AssertUnwindSafe(|| model.load_state(&state))).unwrap_or_else(|p| {
                    Err(StepError(format!(
                        "loading the state panicked: {}",
                        panic_message(p.as_ref())
                    )))
                })
            });
            if let Some(done) = done {
                let _ = reply.send(done);
            }
        }
    }
}

/// One step, its frames written into buffers from `pool`; the model's state moves on only
/// once they are.
fn make_chunk(
    model: &mut InProcessModel,
    id: u64,
    frames: &[FrameInput],
    pool: &FramePool,
    asked: Instant,
) -> Result<Chunk, StepError> {
    let started = Instant::now();
    let stepped = model.try_step(frames)?;
    let step = started.elapsed();
    let moved = Instant::now();
    let rgb = stepped.rgb.to_device(tch::Device::Cpu);
    let mut out = Vec::with_capacity(frames.len());
    for i in 0..frames.len() as i64 {
        let mut buf = pool.take();
        let (width, height) = (buf.width(), buf.height());
        let mut image = Image {
            width,
            height,
            data: buf.data_mut(),
        };
        write_image(&mut image, &rgb.get(i))?;
        out.push(buf.freeze());
    }
    let depth = match &stepped.depth {
        Some(d) => {
            let d = d
                .to_kind(tch::Kind::Float)
                .to_device(tch::Device::Cpu)
                .contiguous();
            (0..frames.len() as i64)
                .map(|i| Vec::<f32>::try_from(d.get(i).flatten(0, -1)))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    let transfer = moved.elapsed();
    model.commit(stepped.state);
    Ok(Chunk {
        id,
        frames: out,
        sound: Vec::new(),
        depth,
        step,
        transfer,
        write: Duration::ZERO,
        copy: transfer,
        wall: asked.elapsed(),
    })
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // What is still queued is skipped; the call the thread is in is waited for a
        // while, and a thread that hangs in its graph is left behind rather than holding
        // up the show's end (it holds its memory until the process ends).
        self.stop.store(true, Ordering::Relaxed);
        self.commands = None;
        if let Some(t) = self.thread.take() {
            if !crate::join::join_until(t, Instant::now() + IN_PROCESS_STOP_LIMIT) {
                tracing::warn!("the model's graph did not finish its call: its thread is left");
            }
        }
    }
}

impl ChunkModel for InProcess {
    fn step(&self, frames: Vec<FrameInput>, _: StepMedia, pool: FramePool) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(InProcessCommand::Step { id, frames, pool });
        id
    }

    fn reset(&self, seed: u64, _prompt: &str, image: Option<Arc<RgbImage>>) {
        self.send(InProcessCommand::Reset { seed, image });
    }

    /// Graphs take no text (`prompt: none`): nothing to tell them.
    fn set_prompt(&self, _: &str, _: f64) {}

    fn save_state(&self) -> Result<Vec<(String, Tensor)>, StepError> {
        let (tx, rx) = mpsc::channel();
        let claim = Claim::new();
        self.send(InProcessCommand::Save(claim.clone(), tx));
        match rx.recv_timeout(IN_PROCESS_REQUEST_LIMIT) {
            Ok(state) => Ok(state),
            Err(_) if claim.give_up() => rx
                .recv_timeout(IN_PROCESS_STOP_LIMIT)
                .map_err(|_| StepError("the model could not give its state".into())),
            Err(_) => Err(StepError("the model did not give its state in time".into())),
        }
    }

    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError> {
        let (tx, rx) = mpsc::channel();
        let claim = Claim::new();
        self.send(InProcessCommand::Load(state, claim.clone(), tx));
        match rx.recv_timeout(IN_PROCESS_REQUEST_LIMIT) {
            Ok(done) => done,
            // Done just as the wait ran out: its answer is on its way.
            Err(_) if claim.give_up() => rx
                .recv_timeout(IN_PROCESS_STOP_LIMIT)
                .unwrap_or_else(|_| Err(StepError("the model's answer was lost".into()))),
            Err(_) => Err(StepError(
                "the model did not load the state in time (it is left as it was)".into(),
            )),
        }
    }

    fn saved_state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Relaxed)
    }

    fn restarts(&self) -> u64 {
        0
    }

    fn process(&self) -> Option<ProcessHandle> {
        None
    }
}
