//! What the chunk pacing needs of a model that makes its frames off the model thread:
//! asked for a chunk, it answers later, on the model thread's queue, with a
//! [`WorkerEvent`]. The python worker is one ([`Worker`]); [`InProcess`], which steps a
//! compiled model (`aoti`, `torchscript`) on a thread of its own, is the other, paced the
//! same way.

use super::*;
use crate::generator::inprocess::InProcessModel;
use crate::worker::{Chunk, ProcessHandle, StepMedia};
use std::sync::atomic::AtomicU64;

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

/// An in-process model (`runtime: aoti` or `torchscript`), stepped on a thread of its own
/// so the model thread keeps pacing the show while a chunk is made, and answering as the
/// worker does. Its calls cannot be interrupted: a step that hangs holds its thread, and
/// the show goes on repeating frames (counted) as it does for a late worker.
pub(crate) struct InProcess {
    commands: Option<mpsc::Sender<InProcessCommand>>,
    next_id: AtomicU64,
    state_bytes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
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
    Save(mpsc::Sender<Vec<(String, Tensor)>>),
    Load(Vec<(String, Tensor)>, mpsc::Sender<Result<(), StepError>>),
}

/// How long a checkpoint waits for the model's thread (a step in flight included).
const IN_PROCESS_REQUEST_LIMIT: Duration = Duration::from_secs(30);

impl InProcess {
    /// Runs `model` on a new thread; what it makes goes to `events`.
    pub(crate) fn start(
        mut model: InProcessModel,
        threads: usize,
        events: impl Fn(WorkerEvent) + Send + 'static,
    ) -> InProcess {
        let (tx, rx) = mpsc::channel::<InProcessCommand>();
        let state_bytes = Arc::new(AtomicU64::new(model.state_bytes()));
        let bytes = state_bytes.clone();
        let thread = std::thread::Builder::new()
            .name("cuecast-model-graph".into())
            .spawn(move || {
                // libtorch's thread count is per thread.
                tch::set_num_threads(threads.max(1) as i32);
                let _guard = tch::no_grad_guard();
                for command in rx {
                    match command {
                        InProcessCommand::Step { id, frames, pool } => {
                            let asked = Instant::now();
                            let made = catch_unwind(AssertUnwindSafe(|| {
                                make_chunk(&mut model, id, &frames, &pool, asked)
                            }))
                            .unwrap_or_else(|p| {
                                Err(StepError(format!(
                                    "the model's step panicked: {}",
                                    panic_message(p.as_ref())
                                )))
                            });
                            bytes.store(model.state_bytes(), Ordering::Relaxed);
                            events(WorkerEvent::Chunk(made.map_err(|e| (id, e))));
                        }
                        InProcessCommand::Reset { seed, image } => {
                            if let Err(error) = model.reset(seed, image.as_deref()) {
                                events(WorkerEvent::Failed {
                                    request: "reset",
                                    error,
                                });
                            }
                        }
                        InProcessCommand::Save(reply) => {
                            let _ = reply.send(model.save_state());
                        }
                        InProcessCommand::Load(state, reply) => {
                            let _ = reply.send(model.load_state(&state));
                        }
                    }
                }
            })
            .expect("a thread for the model");
        InProcess {
            commands: Some(tx),
            next_id: AtomicU64::new(1),
            state_bytes,
            thread: Some(thread),
        }
    }

    fn send(&self, c: InProcessCommand) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(c);
        }
    }
}

/// One step, its frames written into buffers from `pool`.
fn make_chunk(
    model: &mut InProcessModel,
    id: u64,
    frames: &[FrameInput],
    pool: &FramePool,
    asked: Instant,
) -> Result<Chunk, StepError> {
    let started = Instant::now();
    let stepped = model.step(frames)?;
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
    let depth = match stepped.depth {
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
        // Closing the queue ends the thread after the call it is in; one that hangs is
        // left behind rather than holding up the show's shutdown.
        self.commands = None;
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + IN_PROCESS_REQUEST_LIMIT;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
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
        self.send(InProcessCommand::Save(tx));
        rx.recv_timeout(IN_PROCESS_REQUEST_LIMIT)
            .map_err(|_| StepError("the model did not give its state in time".into()))
    }

    fn load_state(&self, state: Vec<(String, Tensor)>) -> Result<(), StepError> {
        let (tx, rx) = mpsc::channel();
        self.send(InProcessCommand::Load(state, tx));
        rx.recv_timeout(IN_PROCESS_REQUEST_LIMIT)
            .unwrap_or_else(|_| Err(StepError("the model did not load the state in time".into())))
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
