//! Starting a worker process: the command (in the sandbox where there is one), the
//! socket it connects to, the thread that reads it, and bringing the model to where a
//! step can run (hello, load, then resume or reset), all within `warmup_s`.

use super::*;

impl Supervisor {
    /// Starts a worker process and brings the model to where a step can run: loaded, and
    /// resumed from the saved state or reset. Bounded by the manifest's `warmup_s`.
    /// Returns whether it resumed from saved state.
    pub(in crate::worker) fn start_process(&mut self) -> Result<bool, String> {
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
                        Ok(v) => {
                            Reply::from_value(v).map_err(|e| Down::Kill(format!("{e}: killed")))
                        }
                        // What it sent broke the framing (a message over the limit, or
                        // not JSON): a broken worker.
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                            Err(Down::Kill(format!("it sent {e}: killed")))
                        }
                        // Closed or reset: it is ending (its exit says how).
                        Err(_) => Err(Down::SocketClosed),
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
            Err(why) => match self.process.take() {
                Some((mut p, _)) => Err(why.end(&mut p)),
                None => Err(why.words()),
            },
        }
    }

    /// The command that starts the worker: the interpreter running the worker script,
    /// in the sandbox when there is one.
    pub(super) fn start_command(&self, socket: &Path) -> std::process::Command {
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
    pub(super) fn bring_up(&mut self, deadline: Instant) -> Result<bool, Down> {
        let hello = self.await_reply(deadline, "say hello")?;
        if hello
            != (Reply::Hello {
                protocol: protocol::PROTOCOL,
            })
        {
            return Err(Down::Kill(format!(
                "it does not speak worker protocol {}: {hello:?}",
                protocol::PROTOCOL
            )));
        }
        let info = &self.package.info;
        let l = self.shm.layout;
        let load = Request::Load(protocol::Load {
            package: self
                .package
                .dir
                .canonicalize()
                .unwrap_or_else(|_| self.package.dir.clone()),
            entry: self.entry.clone(),
            device: crate::device::device_name(self.device),
            width: info.width,
            height: info.height,
            fps: info.fps.as_f64(),
            prompt: info.prompt.manifest_name(),
            state_rollback: self.package.state_rollback.as_str(),
            save_state: self.package.save_state,
            state_limit_bytes: MAX_STATE_BYTES,
            vram_gb: self.package.vram_gb,
            threads: self.threads,
            config: self.package.config.clone(),
            shm: protocol::ShmAt {
                fd: self.shm.fd(),
                bytes: l.bytes,
            },
        });
        self.write_now(&load)?;
        match self.await_reply(deadline, "load the model")? {
            Reply::Loaded => {}
            other => return Err(Down::Kill(refused(other))),
        }
        let resume = self.state_file.clone();
        if let Some(path) = &resume {
            self.write_now(&Request::LoadState {
                path: self.view(path),
            })?;
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
            other => Err(Down::Kill(format!("reset() failed: {}", refused(other)))),
        }
    }

    pub(super) fn write_now(&mut self, m: &Request) -> Result<(), Down> {
        let (_, stream) = self.process.as_mut().ok_or(Down::Exited)?;
        protocol::write(stream, m)
            .and_then(|()| stream.flush())
            .map_err(|_| Down::SocketClosed)
    }

    /// The next message from the current process other than a heartbeat; commands that
    /// arrive meanwhile wait their turn.
    pub(super) fn await_reply(&mut self, deadline: Instant, what: &str) -> Result<Reply, Down> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Down::Kill(format!(
                    "it did not {what} within warmup_s ({} s)",
                    self.package.warmup.as_secs()
                )));
            }
            match self.inbound.recv_timeout(left) {
                Ok(Inbound::Command(Command::Quit)) => {
                    self.quit = true;
                    return Err(Down::Kill("cuecast is stopping".into()));
                }
                Ok(Inbound::Command(c)) => self.pending.push_back(c),
                Ok(Inbound::Worker(g, m)) if g == self.generation => match m {
                    Ok(Reply::Alive) => {}
                    Ok(v) => return Ok(v),
                    Err(e) => return Err(e),
                },
                Ok(Inbound::Worker(..)) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Down::Kill("cuecast is stopping".into()))
                }
            }
        }
    }
}
