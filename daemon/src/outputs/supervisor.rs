//! The supervisor thread: starts outputs, reads their delivery, tears them down on
//! error and restarts them with backoff, one attempt per generation; it is the only
//! owner of every output's state. Building an output's own pipeline is in
//! [`pipeline`].

#[allow(unused_imports)]
use super::*;

pub(super) mod pipeline;

use pipeline::*;

impl Supervisor {
    pub(super) fn run(&mut self, rx: mpsc::Receiver<Message>) {
        loop {
            let next = self
                .outputs
                .values()
                .filter_map(|m| match m.phase {
                    Phase::Retrying { at } => Some(at),
                    _ => None,
                })
                .fold(self.next_check, Instant::min);
            let wait = next.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Message::Command(Command::Shutdown(done))) => {
                    self.shutdown();
                    let _ = done.send(());
                    return;
                }
                Ok(Message::Command(c)) => self.command(c),
                Ok(Message::Failed {
                    name,
                    generation,
                    error,
                }) => self.failed(&name, generation, error),
                Ok(Message::Live { name, generation }) => {
                    if let Some(m) = self.outputs.get_mut(&name) {
                        if m.generation == generation && m.phase.go_live(Instant::now()) {
                            self.tell(&name, OutputState::Connecting);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= self.next_check {
                self.next_check = now + CHECK_EVERY;
                self.check_delivery(now);
            }
            for m in self.outputs.values_mut() {
                if matches!(m.phase, Phase::Live { since, .. } if now.duration_since(since) >= STABLE)
                {
                    m.attempt = 0;
                }
            }
            let due: Vec<String> = self
                .outputs
                .iter()
                .filter(|(_, m)| matches!(m.phase, Phase::Retrying { at } if at <= now))
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                if let Some(m) = self.outputs.get_mut(&name) {
                    m.reconnects += 1;
                }
                self.launch(&name);
            }
            self.publish_all();
        }
    }

    pub(super) fn command(&mut self, c: Command) {
        match c {
            Command::Apply(outputs) => self.apply(outputs),
            Command::Add(output, reply) => {
                let r = if self.outputs.contains_key(&output.name) {
                    Err(OutputError::Exists(output.name))
                } else {
                    self.insert(*output, false);
                    Ok(())
                };
                let _ = reply.send(r);
            }
            Command::Start(name, reply) => {
                let r = match self.outputs.get_mut(&name) {
                    None => Err(OutputError::Unknown(name)),
                    Some(m) => {
                        m.output.enabled = true;
                        m.attempt = 0;
                        if m.phase.run().is_none() {
                            self.launch(&name);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Stop(name, reply) => {
                let r = if let Some(m) = self.outputs.get_mut(&name) {
                    m.output.enabled = false;
                    self.finish(&name);
                    self.enter(&name, Phase::Stopped);
                    Ok(())
                } else {
                    Err(OutputError::Unknown(name))
                };
                let _ = reply.send(r);
            }
            Command::Remove(name, reply) => {
                let r = if self.outputs.contains_key(&name) {
                    self.drop_output(&name);
                    Ok(())
                } else {
                    Err(OutputError::Unknown(name))
                };
                let _ = reply.send(r);
            }
            Command::Shutdown(_) => unreachable!("handled by run"),
        }
    }

    /// The config's outputs changed: only what differs is touched.
    pub(super) fn apply(&mut self, outputs: Vec<Output>) {
        let wanted: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        let gone: Vec<String> = self
            .outputs
            .iter()
            .filter(|(n, m)| m.from_config && !wanted.contains(&n.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            self.drop_output(&name);
        }
        for o in outputs {
            match self.outputs.get(&o.name) {
                Some(m) if m.output == o => {}
                Some(_) => {
                    self.drop_output(&o.name);
                    self.insert(o, true);
                }
                None => self.insert(o, true),
            }
        }
        self.prune_encoders();
    }

    pub(super) fn insert(&mut self, output: Output, from_config: bool) {
        let name = output.name.clone();
        let enabled = output.enabled;
        self.outputs.insert(
            name.clone(),
            Managed {
                output,
                from_config,
                phase: Phase::Stopped,
                generation: 0,
                attempt: 0,
                reconnects: 0,
                last_error: None,
                file: None,
                bytes: Arc::new(AtomicU64::new(0)),
            },
        );
        if enabled {
            self.launch(&name);
        } else {
            self.publish(&name);
        }
    }

    pub(super) fn drop_output(&mut self, name: &str) {
        self.finish(name);
        if let Some(run) = self.outputs.remove(name).and_then(|m| m.phase.into_run()) {
            self.teardown(name, run);
        }
        self.table.lock().remove(name);
        self.events.send(Event::OutputRemoved {
            output: name.to_owned(),
        });
        self.prune_encoders();
    }

    /// Starts (or restarts) an output.
    pub(super) fn launch(&mut self, name: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        m.generation = generation;
        let output = m.output.clone();
        let bytes = m.bytes.clone();
        self.enter(name, Phase::Starting);
        let result = match &output.kind {
            OutputKind::Preview {
                width,
                fps,
                quality,
            } => self.launch_preview(name, generation, *width, *fps, *quality, bytes),
            _ => self.launch_pipeline(&output, generation),
        };
        match result {
            Ok((run, file)) => {
                if let Some(m) = self.outputs.get_mut(name) {
                    m.phase = Phase::Connecting(run);
                    m.file = file;
                }
                self.publish(name);
            }
            Err(e) => self.failed(name, generation, e),
        }
    }

    pub(super) fn launch_preview(
        &mut self,
        name: &str,
        generation: u64,
        width: u32,
        fps: u32,
        quality: u32,
        bytes: Arc<AtomicU64>,
    ) -> Result<(Run, Option<PathBuf>), String> {
        let height = ((width as u64 * self.video.height as u64 / self.video.width as u64) as u32
            & !1)
            .max(2);
        let desc = format!(
            "queue leaky=downstream max-size-buffers=2 max-size-time=0 max-size-bytes=0 ! \
             videoconvert ! videoscale ! videorate drop-only=true skip-to-first=true ! \
             video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 ! \
             jpegenc quality={quality} ! appsink name=jpeg sync=false async=false max-buffers=1 drop=true"
        );
        let bin = gst::parse::bin_from_description(&desc, true).map_err(|e| e.to_string())?;
        bin.set_property("name", format!("preview-{generation}"));
        let sink = appsink(&bin, "jpeg")?;
        let preview = self.preview.clone();
        let tx = self.tx.clone();
        let name = name.to_owned();
        let mut first = true;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        bytes.fetch_add(map.len() as u64, Ordering::Relaxed);
                        preview.send_replace(Some(Bytes::copy_from_slice(&map)));
                    }
                    if std::mem::take(&mut first) {
                        let _ = tx.send(Message::Live {
                            name: name.clone(),
                            generation,
                        });
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let branch = Branch::attach(&self.pipeline, &self.program, bin)?;
        Ok((Run::Preview(PreviewRun { branch }), None))
    }

    /// Reads what each running output's peer has taken: delivered bytes, `live` when
    /// the peer takes data, back to `connecting` when a listener loses its last
    /// receiver, a failed attempt when nothing moves in time.
    pub(super) fn check_delivery(&mut self, now: Instant) {
        let mut changes = Vec::new();
        for (name, m) in &mut self.outputs {
            let Some(Run::Pipeline(r)) = m.phase.run_mut() else {
                continue;
            };
            let reading = r.tracker.probe().read(&r.sink);
            let (delivered, verdict) = r.tracker.update(reading, now);
            m.bytes.fetch_add(delivered, Ordering::Relaxed);
            changes.push((name.clone(), r.generation, verdict));
        }
        for (name, generation, verdict) in changes {
            let Some(m) = self.outputs.get_mut(&name) else {
                continue;
            };
            match verdict {
                Verdict::Delivering if m.phase.go_live(now) => {
                    self.tell(&name, OutputState::Connecting);
                }
                Verdict::Waiting if m.phase.go_connecting() => {
                    self.tell(&name, OutputState::Live);
                }
                Verdict::Failed(reason) => self.failed(&name, generation, reason),
                _ => {}
            }
        }
    }

    /// An output's pipeline failed: tear it down and plan the next attempt.
    pub(super) fn failed(&mut self, name: &str, generation: u64, error: String) {
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        if m.generation != generation || !m.phase.attempting() {
            // An old pipeline's last words, or the later errors of an attempt that has
            // failed already (the first is the root; one attempt counts once).
            return;
        }
        m.attempt += 1;
        m.last_error = Some(error.clone());
        let r = m.output.reconnect;
        let next = if r.max_attempts > 0 && m.attempt > r.max_attempts {
            Phase::Failed
        } else {
            // ±20 % so that outputs failing together do not retry in lockstep.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let jitter = 0.8 + 0.4 * (self.rng % 1000) as f64 / 1000.0;
            let delay = r.delay_s(m.attempt) * jitter;
            Phase::Retrying {
                at: Instant::now() + Duration::from_secs_f64(delay),
            }
        };
        tracing::warn!(
            "output {name}: {error} ({})",
            match next {
                Phase::Failed => "giving up".to_owned(),
                _ => format!("retry {}", m.attempt),
            }
        );
        self.enter(name, next);
    }

    /// Stops an output's pipeline or branch, if running; leaves its record.
    /// Sends end-of-stream into a recording's pipeline, so its muxer writes the file's
    /// index; returns the flag its pipeline raises once that is done. `None` for other
    /// outputs and recordings not running.
    pub(super) fn end_recording(&mut self, name: &str) -> Option<Arc<AtomicBool>> {
        let m = self.outputs.get(name)?;
        let Some(Run::Pipeline(r)) = m.phase.run() else {
            return None;
        };
        if !matches!(m.output.kind, OutputKind::Record { .. }) {
            return None;
        }
        if let Some(enc) = self.encoders.get(&r.encoder) {
            let mut subs = enc.subscribers.lock();
            if let Some(i) = subs.iter().position(|s| s.generation == r.generation) {
                let s = subs.remove(i);
                let _ = s.video.end_of_stream();
                if let Some(a) = &s.audio {
                    let _ = a.end_of_stream();
                }
            }
        }
        Some(r.eos.clone())
    }

    /// Before an output stops: a recording is finished first (up to 3 s), so that a
    /// recording stopped or removed over the API, or by a config edit, is a complete file.
    pub(super) fn finish(&mut self, name: &str) {
        if let Some(eos) = self.end_recording(name) {
            wait_for_eos(&[eos], Duration::from_secs(3));
            if let Some(f) = self.outputs.get(name).and_then(|m| m.file.clone()) {
                tracing::info!("recording complete: {}", crate::tidy(&f).display());
            }
        }
    }

    /// Moves an output to its `next` phase: the run of the phase it leaves is torn down,
    /// and a change of state is told.
    pub(super) fn enter(&mut self, name: &str, next: Phase) {
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        let was = m.phase.state();
        if let Some(run) = std::mem::replace(&mut m.phase, next).into_run() {
            self.teardown(name, run);
        }
        self.tell(name, was);
    }

    /// Stops a run's pipeline or branch.
    pub(super) fn teardown(&mut self, name: &str, run: Run) {
        match run {
            Run::Preview(p) if !self.closing => p.branch.detach(&self.pipeline, &self.program),
            Run::Preview(_) => {}
            Run::Pipeline(r) => {
                if let Some(enc) = self.encoders.get(&r.encoder) {
                    enc.subscribers
                        .lock()
                        .retain(|s| !(s.name == name && s.generation == r.generation));
                }
                let _ = r.pipeline.set_state(gst::State::Null);
            }
        }
        self.prune_encoders();
    }

    /// Removes encoders no output uses any more.
    pub(super) fn prune_encoders(&mut self) {
        let used: Vec<String> = self
            .outputs
            .values()
            .filter_map(|m| match m.phase.run() {
                Some(Run::Pipeline(r)) => Some(r.encoder.clone()),
                _ => None,
            })
            .collect();
        let unused: Vec<String> = self
            .encoders
            .keys()
            .filter(|k| !used.contains(k))
            .cloned()
            .collect();
        for key in unused {
            if let Some(enc) = self.encoders.remove(&key) {
                if !self.closing {
                    enc.branch.detach(&self.pipeline, &self.program);
                    if let Some((branch, tee)) = enc.audio {
                        branch.detach(&self.pipeline, &tee);
                    }
                }
            }
        }
    }

    /// End of show: recordings get end-of-stream and are finished, then all stops.
    pub(super) fn shutdown(&mut self) {
        self.closing = true;
        let names: Vec<String> = self.outputs.keys().cloned().collect();
        let finishing: Vec<_> = names.iter().filter_map(|n| self.end_recording(n)).collect();
        wait_for_eos(&finishing, Duration::from_secs(5));
        let names: Vec<String> = self.outputs.keys().cloned().collect();
        for name in names {
            let Some(m) = self.outputs.get_mut(&name) else {
                continue;
            };
            if let Some(run) = std::mem::replace(&mut m.phase, Phase::Stopped).into_run() {
                self.teardown(&name, run);
            }
            let file = self.outputs[&name].file.clone();
            if let Some(f) = file {
                tracing::info!("recording complete: {}", crate::tidy(&f).display());
            }
        }
    }

    /// Tells the event stream when an output's state changed from `was` (and at every
    /// retry), and publishes its status.
    pub(super) fn tell(&mut self, name: &str, was: OutputState) {
        let Some(m) = self.outputs.get(name) else {
            return;
        };
        let state = m.phase.state();
        if was != state || state == OutputState::Retrying {
            self.events.send(Event::OutputState {
                output: name.to_owned(),
                state,
                attempt: m.attempt,
                error: if state == OutputState::Live {
                    None
                } else {
                    m.last_error.clone()
                },
            });
            if state == OutputState::Live {
                tracing::info!(
                    "output {name} live → {}",
                    m.file.as_ref().map_or_else(
                        || m.output.kind.target(),
                        |f| crate::tidy(f).display().to_string()
                    )
                );
            }
        }
        self.publish(name);
    }

    pub(super) fn publish(&self, name: &str) {
        let Some(m) = self.outputs.get(name) else {
            return;
        };
        let status = OutputStatus {
            name: name.to_owned(),
            kind: m.output.kind.type_name(),
            target: m.output.kind.target(),
            profile: m.output.profile.as_ref().map(|p| p.name.clone()),
            state: m.phase.state(),
            bytes: 0,
            reconnects: m.reconnects,
            attempt: m.attempt,
            last_error: m.last_error.clone(),
            receivers: match m.phase.run() {
                Some(Run::Pipeline(r)) => r.tracker.receivers(),
                _ => None,
            },
            retry_in_s: match m.phase {
                Phase::Retrying { at } => {
                    Some(at.saturating_duration_since(Instant::now()).as_secs_f64())
                }
                _ => None,
            },
            file: m.file.as_ref().map(|f| f.display().to_string()),
            from_config: m.from_config,
        };
        self.table.lock().insert(
            name.to_owned(),
            Entry {
                status,
                bytes: m.bytes.clone(),
            },
        );
    }

    pub(super) fn publish_all(&self) {
        for name in self.outputs.keys() {
            self.publish(name);
        }
        *self.encoder_table.lock() = self.encoders.values().map(|e| e.counts.clone()).collect();
    }
}
