//! The model thread: loads the model, then applies cues, steps the model and renders the
//! frames it is asked for, until the engine is dropped. Takes and checkpoints, which it
//! also owns, are in [`recording`]; a chunked model's pacing (its own clock, chunks made
//! ahead in a worker process) is in [`chunked`].

#[allow(unused_imports)]
use super::*;

pub(super) mod chunked;
mod recording;

use crate::generator::package::{Package, Runtime};
use crate::worker::{Worker, WorkerOptions};
use chunked::Chunked;

/// The model, by how it makes frames.
pub(super) enum Model {
    /// One frame when asked, on this thread (procedural, torchscript, pattern).
    Frames(Box<dyn Generator>),
    /// Chunks at its own rate, ahead of the output: in a worker process (python) or on
    /// a thread of its own (aoti, contract 2 torchscript).
    Chunks(Box<Chunked>),
}

/// Everything the model thread owns.
pub(super) struct ModelThread {
    pub(super) model: Model,
    /// The newest show frame asked for (what a chunked model paces against).
    on_air: u64,
    world: World,
    scheduler: Scheduler,
    inbox: CueInbox,
    pool: FramePool,
    /// The last frame the world advanced to.
    last_frame: Option<u64>,
    /// The last frame rendered, before any fade: what a freeze holds.
    last_raw: Option<Frame>,
    /// Applied cues not yet shown (the world was frozen when they applied).
    unshown: Vec<InFlight>,
    /// Watchers of cues shown in the frame just made, told once the status is updated
    /// (so a client told "applied" reads a status that says so).
    to_tell: Vec<(crate::schedule::Watcher, AppliedCue)>,
    log: Arc<Mutex<CueLog>>,
    counters: Arc<Counters>,
    deliver: Deliver,
    backend: String,
    /// Who this model is, for takes and checkpoints.
    model_id: ModelId,
    /// The world's clock minus the show's: zero until a checkpoint is restored, after
    /// which the world continues from the checkpoint's frame while the show's frame
    /// numbers (and timestamps) keep counting.
    shift: i64,
    take: TakeSlot,
    /// Lowers the detail while steps run late, where `adapts` says so.
    detail: DetailControl,
    adapts: bool,
    /// The detail the last step drew at (what the take records for its frame).
    drawn_detail: f32,
    take_ended: Option<TakeEnded>,
    policy: FailurePolicy,
    state_limit: Option<u64>,
    /// Steps failed in a row.
    failing: u64,
    /// Why the model starts over before its next step, when it does.
    reset_next: Option<String>,
    resets: u64,
    last_reset: Option<String>,
    /// The last step began with a policy reset (its frame record says so).
    did_reset: bool,
    /// The take's copy of a checkpoint restored live, for the next frame's record.
    restored: Option<String>,
    /// Who is told what happens.
    events: Subscribers,
}

impl ModelThread {
    pub(super) fn load(
        config: EngineConfig,
        shared: (
            CueInbox,
            Arc<Mutex<CueLog>>,
            Arc<Counters>,
            TakeSlot,
            Subscribers,
        ),
        deliver: Deliver,
        requests: mpsc::Sender<Request>,
    ) -> Result<(Self, Arc<Mutex<Status>>), EngineError> {
        let (inbox, log, counters, take, events) = shared;
        let device = config.settings.device.resolve()?;
        let mut model = if let Some(package) = config.settings.package()? {
            Model::Chunks(Box::new(load_chunked(&config, package, device, requests)?))
        } else {
            let backend_config = BackendConfig {
                backend: config.settings.backend.to_string(),
                model: config.settings.model.clone(),
                device,
                seed: config.settings.seed,
                prompt: config.settings.prompt.clone(),
            };
            let gen = catch_unwind(AssertUnwindSafe(|| create_generator(&backend_config)))
                .map_err(|p| EngineError::Config {
                    what: "backend".into(),
                    message: format!(
                        "{} panicked while loading: {}",
                        config.settings.backend,
                        panic_message(p.as_ref())
                    ),
                })??;
            Model::Frames(gen)
        };
        let info = model.info().clone();
        let context = ShowContext {
            inputs: info.inputs.clone(),
            media: config.media.clone(),
            params: info.params.clone(),
            scenes: config.scenes.iter().map(|s| s.name.clone()).collect(),
            fps: None,
            audio_sources: Vec::new(),
        };
        for scene in &config.scenes {
            context.check_scene(scene).map_err(EngineError::Cue)?;
        }
        inbox.update_context(|c| *c = context);
        let camera = config.camera.unwrap_or_else(|| {
            let mut pose = Pose::default();
            if let Some(g) = model.ground_height(0.0, 0.0) {
                pose.pos[1] = g + 40.0;
            }
            pose
        });
        let mut world = World::new(
            &info,
            info.fps,
            config.settings.seed,
            &config.settings.prompt,
            config.scenes,
            camera,
        );
        world.set_image(config.settings.image.clone());
        match &mut model {
            Model::Frames(gen) => warm_up(gen.as_mut(), &world)?,
            Model::Chunks(c) => {
                if let Fallback::Still(name) = &config.settings.fallback {
                    let media = config.media.as_deref().ok_or_else(|| EngineError::Config {
                        what: "fallback".into(),
                        message: "a still fallback needs the show's media folder".into(),
                    })?;
                    let (w, h) = (info.width as usize, info.height as usize);
                    let image =
                        crate::media::load(media, name, w, h).map_err(|m| EngineError::Config {
                            what: "fallback".into(),
                            message: m,
                        })?;
                    let pool = FramePool::new(w, h).with_pixels(Pixels::Rgb);
                    let mut buf = pool.take();
                    buf.data_mut().copy_from_slice(&image.data);
                    c.set_still(buf.freeze());
                }
            }
        }
        let pool = FramePool::new(info.width as usize, info.height as usize);
        let status = Arc::new(Mutex::new(Status {
            backend: config.settings.backend.to_string(),
            model: info.name.clone(),
            device: device_name(device),
            model_threads: tch::get_num_threads().max(1) as usize,
            state_bytes: 0,
            failing_steps: 0,
            model_resets: 0,
            last_reset: None,
            frame: 0,
            width: info.width as usize,
            height: info.height as usize,
            fps: info.fps,
            camera: world.camera(),
            prompt: world.prompt().to_owned(),
            params: world.named_params(0),
            seed: world.seed(),
            frozen: false,
            fade: 1.0,
            cues_waiting: 0,
            last_step_ms: 0.0,
            frames_rendered: 0,
            steps_failed: 0,
            frames_repeated: 0,
            take: None,
            detail: 1.0,
            step_running_s: None,
            take_ended: None,
            model_process: None,
            frames_buffered: 0,
            frames_skipped: 0,
            fallback_frames: 0,
            video_in: None,
        }));
        let model_id = ModelId {
            name: info.name.clone(),
            hash: info.hash.clone(),
            backend: config.settings.backend.to_string(),
            package: config
                .settings
                .model
                .as_ref()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
        };
        let adapts = config.adaptive_detail && model.scales_detail();
        let model = ModelThread {
            model,
            on_air: 0,
            world,
            scheduler: Scheduler::default(),
            inbox,
            pool,
            last_frame: None,
            last_raw: None,
            unshown: Vec::new(),
            to_tell: Vec::new(),
            log,
            counters,
            deliver,
            backend: config.settings.backend.to_string(),
            model_id,
            shift: 0,
            take,
            detail: DetailControl::default(),
            adapts,
            drawn_detail: 1.0,
            take_ended: None,
            policy: config.settings.on_failure,
            state_limit: config.settings.state_limit_bytes(),
            failing: 0,
            reset_next: None,
            resets: 0,
            last_reset: None,
            did_reset: false,
            restored: None,
            events,
        };
        Ok((model, status))
    }

    pub(super) fn run(&mut self, requests: mpsc::Receiver<Request>, status: Arc<Mutex<Status>>) {
        while let Ok(request) = requests.recv() {
            let mut next = Some(request);
            let mut target = None;
            let mut forced = None;
            let mut forced_reset = false;
            // Take everything queued: settings apply in order, renders collapse to the newest.
            while let Some(r) = next {
                match r {
                    Request::Stop => {
                        if let Some(take) = self.take.lock().take() {
                            let _ = take.finish();
                        }
                        return;
                    }
                    Request::StartTake { dir, name, reply } => {
                        let r = self.start_take(&dir, name);
                        // Status says so before the caller hears back, not a frame later.
                        status.lock().take = self.take.lock().as_ref().map(TakeWriter::name);
                        let _ = reply.send(r);
                    }
                    Request::StopTake(reply) => {
                        let taken = self.take.lock().take();
                        let r = match taken {
                            Some(take) => take.finish().map_err(EngineError::from),
                            None => Err(EngineError::NoTake),
                        };
                        status.lock().take = None;
                        let _ = reply.send(r);
                    }
                    Request::Save(reply) => {
                        let _ = reply.send(self.checkpoint());
                    }
                    Request::Restore {
                        checkpoint,
                        show_clock,
                        reply,
                    } => {
                        let restored = catch_unwind(AssertUnwindSafe(|| {
                            self.restore(*checkpoint, show_clock)
                        }))
                        .unwrap_or_else(|panic| {
                            Err(EngineError::Config {
                                what: "checkpoint".into(),
                                message: format!(
                                    "restoring it panicked: {}",
                                    panic_message(panic.as_ref())
                                ),
                            })
                        });
                        if restored.is_ok() {
                            let frame = self.last_frame.unwrap_or(0);
                            self.update_status(&status, frame, Duration::ZERO);
                        }
                        let _ = reply.send(restored);
                    }
                    Request::Output {
                        width,
                        height,
                        fps,
                        pixels,
                    } => {
                        if self.pool.size() != (width, height) {
                            self.pool = FramePool::new(width, height);
                            self.last_raw = None;
                            // Another size costs differently: start again at full detail.
                            self.detail.reset();
                        }
                        if self.pool.pixels() != pixels {
                            self.pool = self.pool.clone().with_pixels(pixels);
                            self.last_raw = None;
                        }
                        if let Model::Chunks(c) = &mut self.model {
                            c.native = c.native.clone().with_pixels(pixels);
                            if self.world.fps() != fps {
                                // Slots map to other show frames now.
                                let cues = c.clear();
                                self.unshown.extend(cues);
                            }
                        }
                        self.world.set_fps(fps);
                    }
                    Request::Worker(event) => self.on_worker(event),
                    Request::Wake => {}
                    Request::Scenes(scenes) => self.world.set_scenes(scenes),
                    Request::Render {
                        frame,
                        detail,
                        reset,
                    } => {
                        target = Some(target.map_or(frame, |t: u64| t.max(frame)));
                        forced = detail;
                        forced_reset |= reset;
                    }
                }
                next = requests.try_recv().ok();
            }
            if let Model::Chunks(_) = &self.model {
                if let Some(t) = target {
                    self.on_air = self.on_air.max(t);
                }
                self.serve_chunked(target, &status);
                continue;
            }
            if let Some(frame) = target {
                // A panic outside the model's step (a world no check foresaw) is a failed
                // frame, never the end of the show.
                if forced_reset {
                    self.reset_next = Some("replayed from the take".into());
                }
                let rendered = catch_unwind(AssertUnwindSafe(|| self.render(frame, forced)))
                    .unwrap_or_else(|panic| {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        Rendered {
                            frame,
                            picture: Picture::Failed(StepError(format!(
                                "the show's world panicked: {}",
                                panic_message(panic.as_ref())
                            ))),
                            sound: None,
                            applied: Vec::new(),
                            step_time: Duration::ZERO,
                        }
                    });
                self.update_status(&status, rendered.frame, rendered.step_time);
                for (watcher, record) in std::mem::take(&mut self.to_tell) {
                    watcher(&record);
                }
                (self.deliver)(rendered);
            }
        }
    }

    /// The world's frame for show frame `frame`.
    pub(super) fn world_frame(&self, frame: u64) -> u64 {
        (frame as i64 + self.shift).max(0) as u64
    }

    /// Advances the world to `target` and renders it, at `forced` detail if given.
    pub(super) fn render(&mut self, target: u64, forced: Option<f32>) -> Rendered {
        let fps = self.world.fps();
        let first = self.last_frame.map_or(0, |f| f + 1);
        let target = target.max(first);
        let mut reset = false;
        for f in first..=target {
            let wf = self.world_frame(f);
            for cue in self.scheduler.due(&self.inbox, f, fps) {
                reset |= self.world.apply(cue.cue(), wf).reset;
                self.unshown.push(cue);
            }
            let model = &self.model;
            reset |= self
                .world
                .advance(wf, |x, z| model.ground_height(x, z))
                .reset;
        }
        self.last_frame = Some(target);
        let world_target = self.world_frame(target);

        let started = Instant::now();
        let fade = self.world.fade_level(world_target);
        self.did_reset = false;
        let picture = match (self.world.frozen(), self.last_raw.clone()) {
            (true, Some(held)) => Picture::Held(self.faded(held, fade)),
            _ => {
                let policy_reset = self.reset_next.take();
                if let Some(why) = &policy_reset {
                    self.did_reset = true;
                    self.count_reset(why.clone());
                }
                match self.step(world_target, reset || policy_reset.is_some(), forced) {
                    Ok(raw) => {
                        self.last_raw = Some(raw.clone());
                        self.failing = 0;
                        self.check_state_size();
                        Picture::New(self.faded(raw, fade))
                    }
                    Err(e) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        self.failing += 1;
                        self.on_failed_step(&e);
                        Picture::Failed(e)
                    }
                }
            }
        };
        let step_time = match picture {
            Picture::Held(_) => Duration::ZERO,
            _ => started.elapsed(),
        };
        let ready = Instant::now();
        let applied: Vec<AppliedCue> = match picture {
            Picture::Failed(_) => Vec::new(),
            _ => {
                let mut applied = Vec::new();
                for c in std::mem::take(&mut self.unshown) {
                    let (record, watcher) = c.shown(target, ready);
                    if let Some(w) = watcher {
                        self.to_tell.push((w, record.clone()));
                    }
                    applied.push(record);
                }
                applied
            }
        };
        if matches!(picture, Picture::New(_)) {
            self.counters.step_ms.observe(step_time.as_secs_f64() * 1e3);
            if forced.is_none() && self.adapts {
                if let Some(c) = self.detail.observe(step_time, self.world.fps().as_f64()) {
                    tracing::info!(
                        "a step took {:.1} ms of the frame's {:.1} ms: drawing at {:.0} % detail (was {:.0} %)",
                        c.step.as_secs_f64() * 1e3,
                        c.budget.as_secs_f64() * 1e3,
                        c.to * 100.0,
                        c.from * 100.0
                    );
                }
            }
        }
        self.close_frame(&applied);
        if matches!(picture, Picture::New(_)) {
            self.counters.rendered.fetch_add(1, Ordering::Relaxed);
        }
        let depth = match &self.model {
            Model::Frames(gen) if self.take.lock().is_some() => gen.depth().and_then(depth_on_cpu),
            Model::Frames(_) => None,
            Model::Chunks(_) => None,
        };
        let pose = self.world.camera();
        self.record(target, world_target, &picture, &applied, pose, depth);
        Rendered {
            frame: target,
            picture,
            sound: None,
            applied,
            step_time,
        }
    }

    /// The cues a frame shows: their latency observed, logged, and told.
    pub(super) fn close_frame(&mut self, applied: &[AppliedCue]) {
        if applied.is_empty() {
            return;
        }
        let mut log = self.log.lock();
        for a in applied {
            self.counters.cue_latency_ms.observe(a.latency_ms);
            log.push(a.clone());
            self.events
                .emit(EngineEvent::CueApplied(Arc::new(a.clone())));
        }
    }

    /// The model started over, by the failure policy or its state's size (not a cue):
    /// counted, kept for the status, and told.
    pub(super) fn count_reset(&mut self, why: String) {
        self.resets += 1;
        self.last_reset = Some(why.clone());
        self.events.emit(EngineEvent::ModelReset {
            resets: self.resets,
            why,
        });
    }

    /// After a failed step: at the policy's count, an error line and (with `reset`) a
    /// fresh start before the next step.
    pub(super) fn on_failed_step(&mut self, e: &StepError) {
        // At the count, and at every count again while the steps keep failing.
        if self.failing % u64::from(self.policy.after.max(1)) != 0 {
            return;
        }
        let what = match self.policy.action {
            FailureAction::Hold => "holding the last picture",
            FailureAction::Reset => "starting the model over",
        };
        tracing::error!(
            "the model failed {} steps in a row ({e}): {what}",
            self.failing
        );
        if self.policy.action == FailureAction::Reset {
            self.reset_next = Some(format!("{} steps in a row failed: {e}", self.failing));
        }
    }

    /// After a good step: a state past the limit starts the model over before the next.
    pub(super) fn check_state_size(&mut self) {
        let Some(limit) = self.state_limit else {
            return;
        };
        let bytes = self.model.state_bytes();
        if bytes > limit && self.reset_next.is_none() {
            let why = format!(
                "the model's state grew to {:.1} MB, over the limit of {:.1} MB",
                bytes as f64 / 1e6,
                limit as f64 / 1e6
            );
            tracing::error!("{why}: starting the model over");
            self.reset_next = Some(why);
        }
    }

    pub(super) fn step(
        &mut self,
        frame: u64,
        reset: bool,
        forced: Option<f32>,
    ) -> Result<Frame, StepError> {
        let detail = match forced {
            Some(d) if self.model.scales_detail() => d.clamp(detail::COARSEST, 1.0),
            None if self.adapts => self.detail.detail(),
            _ => 1.0,
        };
        self.drawn_detail = detail;
        let fps = self.world.fps();
        let Model::Frames(gen) = &mut self.model else {
            return Err(StepError("a chunked model makes no single frames".into()));
        };
        let mut input = FrameInput::read(&mut self.world, frame, fps, frame, gen.info());
        input.detail = detail;
        // Depth is kept only by a take; with none recording it is not made at all.
        input.depth = self.take.lock().is_some();
        let world = &self.world;
        let mut buf = self.pool.take();
        let (width, height) = (buf.width(), buf.height());
        self.counters.step_begins();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if reset {
                gen.reset(world.seed(), world.prompt())?;
            }
            let mut image = Image {
                width,
                height,
                data: buf.data_mut(),
            };
            gen.step(&input, &mut image)
        }));
        self.counters.step_ends();
        match outcome {
            Ok(Ok(())) => Ok(buf.freeze()),
            Ok(Err(e)) => Err(e),
            Err(panic) => Err(StepError(format!(
                "the step panicked: {}",
                panic_message(panic.as_ref())
            ))),
        }
    }

    /// `raw` scaled towards black by `level` (1 = unchanged, no copy).
    pub(super) fn faded(&self, raw: Frame, level: f64) -> Frame {
        if level >= 1.0 {
            return raw;
        }
        let raw = self.in_show_layout(raw);
        let mut buf = self.pool.take();
        let gain = (level.clamp(0.0, 1.0) * 256.0).round() as u32;
        let n = raw.pixels().bytes();
        for (dst, src) in buf
            .data_mut()
            .chunks_exact_mut(n)
            .zip(raw.data().chunks_exact(n))
        {
            for c in 0..3 {
                dst[c] = ((u32::from(src[c]) * gain) >> 8) as u8;
            }
            if n == 4 {
                dst[3] = src[3];
            }
        }
        buf.freeze()
    }

    /// `frame`, of the show's size, in the show's pixel layout: itself when it is (or
    /// when it is of another size: that is scaled, which lays it out as the show's),
    /// else a copy.
    pub(super) fn in_show_layout(&self, frame: Frame) -> Frame {
        if frame.pixels() == self.pool.pixels()
            || (frame.width(), frame.height()) != self.pool.size()
        {
            return frame;
        }
        let mut buf = self.pool.take();
        let to = buf.pixels();
        crate::frame::relayout(frame.data(), frame.pixels(), buf.data_mut(), to);
        buf.freeze()
    }
}

/// A few steps at the native size before the show starts, so first-call costs
/// (allocation, TorchScript's profiling recompiles, CUDA context) do not land on air.
pub(super) fn warm_up(gen: &mut dyn Generator, world: &World) -> Result<(), EngineError> {
    let info = gen.info().clone();
    let mut data = vec![0u8; info.width as usize * info.height as usize * 4];
    // The show's first frames as they would be, on a copy: warming up changes nothing.
    let mut ahead = world.clone();
    for frame in 0..3 {
        let input = FrameInput::read(&mut ahead, frame, world.fps(), 0, &info);
        let mut image = Image {
            width: info.width as usize,
            height: info.height as usize,
            data: &mut data,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| gen.step(&input, &mut image)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.0,
            Err(p) => format!("panicked: {}", panic_message(p.as_ref())),
        };
        return Err(EngineError::Config {
            what: "model".into(),
            message: format!("{} failed its first step: {failure}", info.name),
        });
    }
    gen.reset(world.seed(), world.prompt())
        .map_err(|e| EngineError::Config {
            what: "model".into(),
            message: format!("{} failed to reset: {e}", info.name),
        })
}

/// Depth a generator gave, as the take keeps it: f32 on the CPU, with its size.
pub(super) fn depth_on_cpu(d: Tensor) -> Option<(crate::take::Size, Vec<f32>)> {
    let d = d
        .to_device(tch::Device::Cpu)
        .to_kind(tch::Kind::Float)
        .contiguous();
    let size = match d.size().as_slice() {
        [h, w] => crate::take::Size {
            width: *w as usize,
            height: *h as usize,
        },
        _ => return None,
    };
    Vec::<f32>::try_from(&d.view([-1])).ok().map(|v| (size, v))
}

impl Model {
    pub(super) fn info(&self) -> &ModelInfo {
        match self {
            Model::Frames(g) => g.info(),
            Model::Chunks(c) => c.info(),
        }
    }

    pub(super) fn device(&self) -> tch::Device {
        match self {
            Model::Frames(g) => g.device(),
            Model::Chunks(c) => c.device(),
        }
    }

    fn scales_detail(&self) -> bool {
        matches!(self, Model::Frames(g) if g.scales_detail())
    }

    fn ground_height(&self, x: f64, z: f64) -> Option<f64> {
        match self {
            Model::Frames(g) => g.ground_height(x, z),
            // A chunked model's world is its own: the camera goes where it is steered.
            Model::Chunks(_) => None,
        }
    }

    pub(super) fn state_bytes(&self) -> u64 {
        match self {
            Model::Frames(g) => g.state_bytes(),
            Model::Chunks(c) => c.model().saved_state_bytes(),
        }
    }
}

/// Starts a contract 2 package, loaded and reset: a `python` package's worker process, or
/// a compiled package's thread.
fn load_chunked(
    config: &EngineConfig,
    package: Package,
    device: tch::Device,
    requests: mpsc::Sender<Request>,
) -> Result<Chunked, EngineError> {
    let info = &package.info;
    let (w, h) = (info.width as usize, info.height as usize);
    let wake = requests.clone();
    let images = crate::media::Images::new(config.media.clone(), w, h, move || {
        let _ = wake.send(Request::Wake);
    });
    let image = match &config.settings.image {
        Some(name) => Some(images.load(name).map_err(|m| EngineError::Config {
            what: "image".into(),
            message: m,
        })?),
        None => None,
    };
    if info.inputs.image == crate::generator::ImageInput::None && image.is_some() {
        return Err(EngineError::Config {
            what: "image".into(),
            message: format!("model {} takes no image", info.name),
        });
    }
    if info.inputs.image == crate::generator::ImageInput::Required && image.is_none() {
        return Err(EngineError::Config {
            what: "image".into(),
            message: format!(
                "model {} needs an image to start from: give the show an image (a file in its media folder)",
                info.name
            ),
        });
    }
    let threads = config
        .settings
        .model_threads
        .map_or_else(default_model_threads, |n| n as usize);
    if !matches!(package.runtime, Runtime::Python { .. }) {
        let runner = chunked::InProcess::start(
            &package,
            device,
            config.settings.seed,
            image.clone(),
            threads,
            move |e| {
                let _ = requests.send(Request::Worker(e));
            },
        )?;
        return Ok(Chunked::new(
            Box::new(runner),
            images,
            package,
            config,
            device,
        ));
    }
    let options = WorkerOptions {
        python: config.settings.python.clone(),
        device,
        threads,
        seed: config.settings.seed,
        prompt: config.settings.prompt.clone(),
        image,
        restart_max_s: config
            .settings
            .restart_max_s
            .unwrap_or(10.0)
            .clamp(0.0, 3600.0),
        env: config.settings.model_env.clone(),
        network: config.settings.model_network,
        folders: config.settings.model_folders.clone(),
        sandbox: true,
    };
    let worker = Worker::start(&package, options, move |e| {
        let _ = requests.send(Request::Worker(e));
    })?;
    Ok(Chunked::new(
        Box::new(worker),
        images,
        package,
        config,
        device,
    ))
}
