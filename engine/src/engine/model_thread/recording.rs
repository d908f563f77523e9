//! The model thread's takes and checkpoints: recording each frame, starting a take,
//! saving and restoring the model's state, and the status it publishes.

#[allow(unused_imports)]
use super::*;

impl ModelThread {
    /// Hands the frame to the take being recorded, if any.
    /// `pose` and `depth` are those of the picture (a chunked model's frames carry
    /// their own: the world has moved on since they were asked for).
    pub(super) fn record(
        &mut self,
        frame: u64,
        world_frame: u64,
        picture: &Picture,
        applied: &[AppliedCue],
        pose: Pose,
        depth: Option<(Size, Vec<f32>)>,
    ) {
        let failure = self.take.lock().as_ref().and_then(TakeWriter::failure);
        if let Some(reason) = failure {
            self.end_failed_take(reason);
        }
        let slot = self.take.clone();
        let mut slot = slot.lock();
        let Some(take) = slot.as_mut() else { return };
        take.cues(applied);
        let (shown, held) = match picture {
            Picture::New(f) => (f, false),
            Picture::Held(f) => (f, true),
            Picture::Failed(_) => return,
        };
        let record = FrameRecord {
            index: 0,
            frame,
            world_frame,
            pose,
            held,
            detail: self.drawn_detail,
            reset: self.did_reset,
            restored: self.restored.take(),
            hash: None,
        };
        take.frame(record, shown, depth);
    }

    /// Ends a take whose files could not be written: its manifest is completed with the
    /// frames it holds, those it lost and why, and the status says so.
    pub(super) fn end_failed_take(&mut self, reason: String) {
        let Some(take) = self.take.lock().take() else {
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
        let ended = TakeEnded {
            name,
            reason,
            frames,
        };
        self.events.emit(EngineEvent::TakeEnded(ended.clone()));
        self.take_ended = Some(ended);
    }

    pub(super) fn start_take(
        &mut self,
        dir: &Path,
        name: String,
    ) -> Result<TakeManifest, EngineError> {
        if let Some(t) = self.take.lock().as_ref() {
            return Err(EngineError::TakeInProgress {
                name: t.name().to_owned(),
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
        *self.take.lock() = Some(writer);
        // A restore kept for a take that ended before its next frame is not this take's.
        self.restored = None;
        Ok(manifest)
    }

    /// The show as of the last frame made.
    pub(super) fn checkpoint(&self) -> Result<Checkpoint, EngineError> {
        let failed = |e: StepError| EngineError::Config {
            what: "checkpoint".into(),
            message: format!("{} could not give its state: {e}", self.model_id.name),
        };
        let state = match &self.model {
            Model::Frames(gen) => gen.state(),
            Model::Chunks(c) if c.has_state() => c.model().save_state(),
            Model::Chunks(_) => Ok(Vec::new()),
        };
        let state: Vec<(String, Tensor)> = state
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
                software: Software::current(&device_name(self.model.device())),
                state_tensors: state.iter().map(|(k, _)| k.clone()).collect(),
                world: w.clone(),
            },
            state,
        })
    }

    /// Resumes from `checkpoint`: the next frame made is the one that followed it.
    pub(super) fn restore(
        &mut self,
        checkpoint: Checkpoint,
        show_clock: bool,
    ) -> Result<(), EngineError> {
        let m = &checkpoint.manifest;
        if m.model.hash != self.model_id.hash {
            return Err(EngineError::OtherModel {
                made_by: format!("{:?} (hash {})", m.model.name, m.model.hash),
                running: format!("{:?} (hash {})", self.model_id.name, self.model_id.hash),
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
            .check(self.model.info())
            .map_err(|e| refuse(format!("{e}")))?;
        if (m.seed, m.prompt.as_str(), m.camera) != (world.seed(), world.prompt(), world.camera()) {
            return Err(refuse(
                "its summary (seed, prompt, camera) disagrees with its world: the file was edited"
                    .into(),
            ));
        }
        let prompt = world.prompt_state(m.world_frame.unwrap_or(0));
        let refused = |e: StepError| EngineError::Config {
            what: "checkpoint".into(),
            message: format!("{} refused the saved state: {e}", self.model_id.name),
        };
        match &mut self.model {
            Model::Frames(gen) => {
                let state = checkpoint.state_on(gen.device());
                gen.restore(&state, &prompt).map_err(refused)?;
            }
            Model::Chunks(c) => {
                if c.has_state() && !checkpoint.state.is_empty() {
                    let state = checkpoint.state_on(tch::Device::Cpu);
                    c.model().load_state(state).map_err(refused)?;
                } else {
                    // No compact state: the model starts over from the checkpoint's
                    // seed, prompt and image (read below, once the world is restored).
                    c.reset_pending = true;
                }
                let cues = c.clear();
                self.unshown.extend(cues);
            }
        }
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
    pub(super) fn keep_restore_in_take(&mut self, checkpoint: &Checkpoint, frame: u64) {
        let Some(take_dir) = self.take.lock().as_ref().map(|t| t.dir().to_owned()) else {
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

    pub(super) fn update_status(&self, status: &Mutex<Status>, frame: u64, step: Duration) {
        let w = &self.world;
        let wf = self.world_frame(frame);
        let (width, height) = self.pool.size();
        let mut s = status.lock();
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
        s.take = self.take.lock().as_ref().map(TakeWriter::name);
        s.cues_waiting = self.scheduler.waiting();
        s.detail = self.drawn_detail;
        s.take_ended.clone_from(&self.take_ended);
        if step > Duration::ZERO {
            s.last_step_ms = step.as_secs_f64() * 1e3;
        }
        s.frames_rendered = self.counters.rendered.load(Ordering::Relaxed);
        s.steps_failed = self.counters.failed.load(Ordering::Relaxed);
        s.backend.clone_from(&self.backend);
        s.state_bytes = self.model.state_bytes();
        if let Model::Chunks(c) = &self.model {
            s.frames_buffered = c.buffered();
            s.frames_skipped = c.skipped;
            s.fallback_frames = c.fallback_frames;
        }
        s.failing_steps = self.failing;
        s.model_resets = self.resets;
        s.last_reset.clone_from(&self.last_reset);
    }
}
