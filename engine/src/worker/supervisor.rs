//! The supervisor: the thread that owns a worker process. It sends one request at a
//! time, copies each chunk out of shared memory, watches the heartbeat, the deadlines,
//! the memory and the process itself, and starts the process again with backoff when
//! it dies, hangs, grows past its cap or breaks the protocol.

mod answers;
mod start;

use super::memory::disk_bytes;
use super::*;
use protocol::Request;

pub(super) enum Command {
    Step {
        id: u64,
        frames: Vec<FrameInput>,
        media: StepMedia,
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

pub(super) enum Inbound {
    Command(Command),
    /// A message from worker process `generation`, or why it cannot be read (its socket
    /// closed, or it broke the protocol).
    Worker(u64, Result<Reply, Down>),
}

/// The request in flight, and when it must be answered by.
pub(super) enum Op {
    Step {
        id: u64,
        frames: usize,
        pool: FramePool,
        /// The slot its frames go into (free again if the step fails).
        claim: Claim,
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

pub(super) struct Supervisor {
    pub(super) package: Package,
    pub(super) entry: String,
    pub(super) python: PathBuf,
    pub(super) device: Device,
    pub(super) threads: usize,
    pub(super) inbound: Receiver<Inbound>,
    pub(super) inbound_tx: Sender<Inbound>,
    pub(super) events: Box<dyn Fn(WorkerEvent) + Send>,
    pub(super) status: Arc<Mutex<ModelProcess>>,
    pub(super) shm: Shm,
    pub(super) dir: RuntimeDir,
    pub(super) process: Option<(Process, UnixStream)>,
    pub(super) generation: u64,
    pub(super) pending: VecDeque<Command>,
    pub(super) op: Option<Op>,
    /// What a restart without saved state resets to: the last reset's, with the prompt
    /// changes since.
    pub(super) seed: u64,
    pub(super) prompt: String,
    pub(super) image: Option<Arc<RgbImage>>,
    /// The last compact state saved, which a restart resumes from.
    pub(super) state_file: Option<PathBuf>,
    pub(super) steps_since_save: u32,
    pub(super) save_every: u32,
    pub(super) attempt: usize,
    pub(super) restart_max_s: f64,
    /// The model's process's environment: [`PASSED_ENV`] and what the show names.
    pub(super) env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    /// The sandbox the process runs in, if one could be made.
    pub(super) sandbox: Option<Sandbox>,
    pub(super) network: bool,
    pub(super) folders: Vec<ModelFolder>,
    pub(super) memory_cap: Option<u64>,
    pub(super) memory_checked: Instant,
    /// A failed step's successor waits for this: a model that fails at once costs at
    /// most its step rate, not a core.
    pub(super) step_not_before: Option<Instant>,
    pub(super) next_start: Option<Instant>,
    pub(super) last_alive: Instant,
    pub(super) quit: bool,
}

/// Why a worker process goes down, which says how it is ended and in what words.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Down {
    /// Its socket closed (or could not be written): it is likely ending by itself, and
    /// is given a moment so that its own exit status is told.
    SocketClosed,
    /// It was seen to have exited.
    Exited,
    /// cuecast ends it at once, for this reason (a deadline, no heartbeat, its memory,
    /// what it sent, a refusal while it started).
    Kill(String),
}

impl Down {
    /// Ends `p` as this calls for (with everything it started), and says why it went
    /// down: its exit, or cuecast's reason.
    fn end(&self, p: &mut Process) -> String {
        match self {
            Down::SocketClosed => format!("its process {}", p.stop(Duration::from_millis(500))),
            Down::Exited => format!("its process {}", p.kill()),
            Down::Kill(why) => {
                p.kill();
                why.clone()
            }
        }
    }

    /// In words, where there is no process left to tell its exit.
    fn words(&self) -> String {
        match self {
            Down::SocketClosed => "its socket closed".into(),
            Down::Exited => "it exited".into(),
            Down::Kill(why) => why.clone(),
        }
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

    pub(super) fn run(mut self) {
        while !self.quit {
            // Nothing the worker sends may stop the supervisor: a panic here is a bug
            // met by a broken worker, and is handled as that worker's death.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.turn())) {
                let why = Down::Kill(format!(
                    "cuecast's supervisor failed on what it sent ({}): killed",
                    crate::engine::panic_message(panic.as_ref())
                ));
                if catch_unwind(AssertUnwindSafe(|| self.down(why))).is_err() {
                    self.process = None;
                    self.op = None;
                    self.schedule_restart(FAILED_START_WAIT);
                }
            }
        }
        if let Some((mut p, mut stream)) = self.process.take() {
            let _ = protocol::write(&mut stream, &Request::Quit);
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
                media,
                pool,
            } => {
                let claim = self.shm.claim();
                let m = self.step_message(id, &frames, &media, claim.offset());
                let op = Op::Step {
                    id,
                    frames: frames.len(),
                    pool,
                    claim,
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
                let m = Request::SetPrompt {
                    text: text.clone(),
                    transition_s,
                };
                self.prompt = text;
                (m, Op::SetPrompt(limit))
            }
            Command::Save(reply) => {
                let path = self.dir.model.join("checkpoint.safetensors");
                let m = Request::SaveState {
                    path: self.view(&path),
                    state_limit_bytes: MAX_STATE_BYTES,
                };
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
                let m = Request::LoadState {
                    path: self.view(&path),
                };
                (m, Op::Load(limit, path, reply))
            }
        };
        self.send(message, op);
    }

    fn send(&mut self, message: Request, op: Op) {
        let Some((_, stream)) = self.process.as_mut() else {
            return;
        };
        match protocol::write(stream, &message) {
            Ok(()) => self.op = Some(op),
            Err(e) => {
                self.op = Some(op);
                tracing::debug!("model {}: its socket failed: {e}", self.name());
                self.down(Down::SocketClosed);
            }
        }
    }

    /// Kills a worker that overran its request, stopped sending heartbeats or holds
    /// more memory than its cap; notices one that exited (even while helpers it started
    /// hold its socket open).
    fn check_health(&mut self) {
        let Some((p, _)) = &self.process else {
            return;
        };
        if p.has_exited() {
            self.down(Down::Exited);
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
                self.down(Down::Kill(format!(
                    "it held {:.2} GB ({:.2} GB of it in files in its /tmp and folder), over \
                     its cap of {:.2} GB (what its manifest says it needs, with a margin): killed",
                    bytes as f64 / 1e9,
                    files as f64 / 1e9,
                    cap as f64 / 1e9
                )));
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
                self.down(Down::Kill(format!("{what}: killed")));
                return;
            }
        }
        let stepping = matches!(self.op, Some(Op::Step { .. }));
        if !stepping && now.duration_since(self.last_alive) > HEARTBEAT_LIMIT {
            self.down(Down::Kill(format!(
                "no heartbeat for {} s: killed",
                HEARTBEAT_LIMIT.as_secs()
            )));
        }
    }

    /// The process is gone or must go: kill it, fail what was in flight, tell the model
    /// thread, and plan the restart.
    fn down(&mut self, why: Down) {
        let Some((mut p, _)) = self.process.take() else {
            return;
        };
        let reason = why.end(&mut p);
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
}
