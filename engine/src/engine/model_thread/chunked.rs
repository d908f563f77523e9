//! The model thread with a chunked model: one that makes several frames a step, at its
//! own frame rate, in a worker process (the `python` runtime).
//!
//! Two clocks. The show asks for frames at its rate (30 fps, say); the model makes them
//! at its native rate (16 fps) in chunks (4 frames). Model frame `k` ("slot" `k`) is on
//! air from the first show frame at or after `k / native` seconds, `ceil(k * show /
//! native)`, until the next slot's: a 16 fps model in a 30 fps show moves at its true
//! speed, each of its frames shown about twice.
//!
//! The world runs ahead of the air. To ask for a chunk, the model thread advances the
//! world (applying the cues due) frame by frame up to each slot of the chunk and reads
//! that slot's inputs there: axes, keys held, the mouse movement since the slot before,
//! the camera pose, params, the prompt. Scheduled cues and camera paths land on the
//! slot they are timed for; live input is held for the chunk's future frames. A cue
//! takes effect on the first slot built after it, and is reported as applied at the
//! first show frame that shows that slot (plus the model's `latency_frames`). Seeds,
//! scenes and images start the model over before the next chunk; a prompt change is a
//! `set_prompt` before it, for models that take prompts that way.
//!
//! When to ask. One chunk is in flight at a time; the made frames wait in a buffer of
//! twice the largest chunk. The next chunk is asked for once its first frame is due on
//! air within the lead: the slowest of the last 32 chunks (from asking to having it),
//! plus a show frame and 5 ms. So a model whose chunks keep under their duration is
//! never late, and a cue waits at most about a chunk's duration, a step and a frame.
//! A late chunk is not waited for: the show repeats its last frame (counted), and when
//! the chunk comes its frames whose time has passed are skipped, so the model stays on
//! its clock.
//!
//! Show frames between two model frames repeat the first, or, with `frame_blend`, mix
//! the two by where the show frame falls between them.
//!
//! When the worker is down (killed, hung, restarting) the show goes on: the last frame
//! is held (the element repeats it, counted), or the fallback draws: the procedural
//! world from the same camera, or a still.

mod clock;
mod picture;
mod runtime;

use super::*;
use crate::generator::package::{Package, StateRollback};
use crate::generator::FrameInput;
use crate::generator::{write_image, PromptMode};
use crate::media::Images;
use crate::sound::SoundIn;
use crate::take::Size;
use crate::video_in::VideoIn;
use crate::worker::{RgbImage, StepMedia, WorkerEvent};
use clock::{slot_at, slot_frame};
pub(crate) use runtime::{ChunkModel, InProcess};

/// Chunk times kept for the lead.
const WALLS: usize = 32;
/// The least height of the procedural fallback's camera above its ground, in metres.
const FALLBACK_CLEARANCE_M: f64 = 2.0;

/// A model frame made and not yet shown.
struct Made {
    slot: u64,
    frame: Frame,
    depth: Option<Vec<f32>>,
    pose: Pose,
    /// The first frame after the model started over (what its take record says).
    reset: bool,
    /// The sound the model made with it (a model that makes sound).
    sound: Option<Arc<[f32]>>,
}

/// The chunk in flight: its slots and their poses.
struct Asked {
    id: u64,
    slots: Vec<(u64, Pose)>,
    /// The model starts over before it.
    reset: bool,
}

pub(in crate::engine) struct Chunked {
    /// What makes the chunks: the python worker.
    model: Box<dyn ChunkModel>,
    /// Images the model starts from, decoded off this thread.
    images: Images,
    /// The live video the model restyles, for a model that takes one.
    video: Option<VideoIn>,
    /// The program's sound, for a model that takes it.
    sound: Option<SoundIn>,
    package: Package,
    /// Made frames, oldest first, at the model's native size.
    buffer: VecDeque<Made>,
    in_flight: Option<Asked>,
    /// The slot the next chunk starts at, at the earliest.
    next_slot: u64,
    /// The newest show frame asked for that could not be given yet.
    pub(super) pending: Option<u64>,
    /// The next step is the first since the model started (or started over).
    fresh: bool,
    up: bool,
    /// Seconds from asking for a chunk to having it.
    walls: VecDeque<f64>,
    sent_prompt: String,
    /// A seed, scene or image cue applied inside a chunk (or a checkpoint without
    /// compact state restored): the model starts over before the next chunk.
    pub(super) reset_pending: bool,
    /// The process came back reset (it had no state to resume): the next chunk is the
    /// first of a new start.
    restarted_fresh: bool,
    /// Cues waiting for the slot that shows them.
    cues: BTreeMap<u64, Vec<InFlight>>,
    /// The slot on air, its frame at the show's size, pose and depth.
    shown: Option<(u64, Frame, Pose, Option<Vec<f32>>)>,
    pub(super) native: FramePool,
    fallback: Fallback,
    fallback_gen: Option<Box<dyn Generator>>,
    /// Buffers the fallback draws into (RGBx, whatever the show's layout).
    fallback_pool: FramePool,
    still: Option<Frame>,
    pub(super) skipped: u64,
    pub(super) fallback_frames: u64,
    /// Show frames between two model frames mix them, instead of repeating the first.
    blend: bool,
    /// Frames go out on a clock (else as fast as they are made, each one waited for).
    live: bool,
    last_warning: Option<Instant>,
    device: tch::Device,
}

impl Chunked {
    /// The show's pacing of `worker`'s chunks, as `config` says (prompt, fallback,
    /// frame blend, live).
    pub(super) fn new(
        model: Box<dyn ChunkModel>,
        images: Images,
        package: Package,
        config: &EngineConfig,
        device: tch::Device,
    ) -> Chunked {
        let (fallback, prompt) = (
            config.settings.fallback.clone(),
            config.settings.prompt.as_str(),
        );
        let (blend, live) = (config.settings.frame_blend, config.live);
        let info = &package.info;
        // Room for the buffer, the chunk in flight and what is on its way downstream, so
        // that steady chunks reuse memory instead of faulting in fresh pages.
        let c = info.chunking;
        let keep = 3 * c.frames_per_step.max(c.first_step_frames) as usize + 8;
        let native = FramePool::keeping(info.width as usize, info.height as usize, keep);
        let video = info.inputs.video.map(|v| VideoIn::new(v, live));
        let largest = c.frames_per_step.max(c.first_step_frames) as usize;
        let sound = info
            .inputs
            .audio
            .map(|a| SoundIn::new(a, largest * a.per_frame(info.fps)));
        Chunked {
            model,
            images,
            video,
            sound,
            buffer: VecDeque::new(),
            in_flight: None,
            next_slot: 0,
            pending: None,
            fresh: true,
            up: true,
            walls: VecDeque::new(),
            sent_prompt: prompt.to_owned(),
            reset_pending: false,
            restarted_fresh: false,
            cues: BTreeMap::new(),
            shown: None,
            native,
            fallback,
            fallback_gen: None,
            fallback_pool: FramePool::new(0, 0),
            still: None,
            skipped: 0,
            fallback_frames: 0,
            blend,
            live,
            last_warning: None,
            device,
            package,
        }
    }

    pub(super) fn info(&self) -> &ModelInfo {
        &self.package.info
    }

    pub(super) fn device(&self) -> tch::Device {
        self.device
    }

    pub(in crate::engine) fn model(&self) -> &dyn ChunkModel {
        self.model.as_ref()
    }

    /// Where the live video for the model goes, for a model that takes one.
    pub(in crate::engine) fn video_in(&self) -> Option<VideoIn> {
        self.video.clone()
    }

    /// Where the program's sound for the model goes, for a model that takes it.
    pub(in crate::engine) fn sound_in(&self) -> Option<SoundIn> {
        self.sound.clone()
    }

    pub(super) fn has_state(&self) -> bool {
        self.package.save_state
    }

    pub(super) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    pub(super) fn set_still(&mut self, still: Frame) {
        self.still = Some(still);
    }

    /// Forgets what was made ahead (a checkpoint restored, the show's rate changed):
    /// the next chunk starts the model's new stretch, at the slot then on air. Returns
    /// the cues applied and waiting for a slot that will not be shown now: they are told
    /// as shown with the next frame.
    pub(super) fn clear(&mut self) -> Vec<InFlight> {
        self.buffer.clear();
        self.in_flight = None;
        self.shown = None;
        self.fresh = true;
        self.next_slot = 0;
        std::mem::take(&mut self.cues)
            .into_values()
            .flatten()
            .collect()
    }

    /// A chunk that will not come: its slots are asked for again (with the inputs the
    /// world has now), so the frames the show waits for are made.
    fn rewind(&mut self, lost: &Asked) {
        if let Some(&(first, _)) = lost.slots.first() {
            self.next_slot = self.next_slot.min(first);
        }
    }

    fn capacity(&self) -> usize {
        let c = self.package.info.chunking;
        2 * c.frames_per_step.max(c.first_step_frames) as usize + c.latency_frames as usize
    }

    fn lead_s(&self, show_fps: f64, chunk_s: f64) -> f64 {
        let slowest = self.walls.iter().copied().fold(f64::NAN, f64::max);
        let lead = if slowest.is_nan() {
            chunk_s
        } else {
            slowest + 1.0 / show_fps + 0.005
        };
        // A blend needs the next model frame one of its frames early.
        let slot_s = chunk_s / f64::from(self.package.info.chunking.frames_per_step.max(1));
        if self.blend {
            lead + slot_s
        } else {
            lead
        }
    }
}

impl ModelThread {
    fn chunks(&mut self) -> &mut Chunked {
        match &mut self.model {
            Model::Chunks(c) => c,
            Model::Frames(_) => unreachable!("a frame model has no chunks"),
        }
    }

    /// A show frame is asked for: give it when its slot is made, else keep it pending.
    pub(super) fn serve_chunked(&mut self, target: Option<u64>, status: &Mutex<Status>) {
        if let Some(t) = target {
            let c = self.chunks();
            c.pending = Some(c.pending.map_or(t, |p| p.max(t)));
        }
        let Some(n) = self.chunks().pending else {
            return;
        };
        let rendered =
            catch_unwind(AssertUnwindSafe(|| self.show_chunked(n))).unwrap_or_else(|panic| {
                tracing::error!(
                    "the show's world panicked: {}",
                    panic_message(panic.as_ref())
                );
                None
            });
        match rendered {
            Some(rendered) => {
                self.chunks().pending = None;
                self.update_status(status, rendered.frame, rendered.step_time);
                for (watcher, record) in std::mem::take(&mut self.to_tell) {
                    watcher(&record);
                }
                (self.deliver)(rendered);
            }
            // Nothing new to show (a late chunk, a model failing every step): the show
            // repeats its last frame, and the status still says where it is.
            None => self.update_status(status, n, Duration::ZERO),
        }
        self.maybe_ask(n);
    }

    /// Show frame `n`, if what it shows exists.
    fn show_chunked(&mut self, n: u64) -> Option<Rendered> {
        let wf = self.world_frame(n);
        let building = self.chunks().up && !self.world.frozen();
        if !building && self.last_frame.is_none_or(|l| l < n) {
            // Nothing is being built this far (the model is down, or frozen): the world
            // keeps time with the show, so its cues still apply, and a cue that starts
            // the model over does so when it is back.
            if self.advance_world_to(n, None) {
                self.chunks().reset_pending = true;
            }
        }
        let (show, native) = (self.world.fps(), self.chunks().info().fps);
        let k = slot_at(wf, show, native);
        let c = self.chunks();
        // The newest made slot that is due: later ones wait, older ones are skipped.
        let due = c.buffer.iter().rposition(|m| m.slot <= k);
        let mut fresh: Option<Made> = None;
        if let Some(i) = due {
            let newer = c.buffer.split_off(i + 1);
            let mut older = std::mem::replace(&mut c.buffer, newer);
            fresh = older.pop_back();
            c.skipped += older.len() as u64;
            // A start-over mark on a skipped frame goes to the one shown.
            if let Some(f) = fresh.as_mut() {
                f.reset |= older.iter().any(|m| m.reset);
            }
        }
        self.did_reset = fresh.as_ref().is_some_and(|m| m.reset);
        let started = Instant::now();
        // A frame's sound is heard from when the frame first goes on air; a skipped
        // frame's is lost with it (the model stays on its clock).
        let format = self.chunks().info().audio;
        let sound = fresh
            .as_ref()
            .and_then(|m| m.sound.clone())
            .zip(format)
            .map(|(samples, format)| Sound { samples, format });
        let frame_and_pose = match fresh {
            Some(m) => {
                let frame = self.to_show_size(&m.frame);
                let c = self.chunks();
                c.shown = Some((m.slot, frame.clone(), m.pose, m.depth));
                Some(frame)
            }
            None => {
                let c = self.chunks();
                match &c.shown {
                    // The same slot again: the model's rate is below the show's.
                    Some((slot, frame, ..)) if *slot == k => Some(frame.clone()),
                    _ => None,
                }
            }
        };
        // Between two model frames, blended (when the show asks for it and the next is
        // made): motion without the judder of showing each frame twice or thrice.
        let frame_and_pose = match frame_and_pose {
            Some(frame) if self.chunks().blend => self.blended(frame, wf, k),
            other => other,
        };
        let fade = self.world.fade_level(wf);
        let picture = match frame_and_pose {
            Some(frame) => {
                self.last_raw = Some(frame.clone());
                Picture::New(self.faded(frame, fade))
            }
            None if self.world.frozen() && self.last_raw.is_some() => {
                let held = self.last_raw.clone().unwrap();
                Picture::Held(self.faded(held, fade))
            }
            None => match self.fallback_picture(wf) {
                Some(frame) => Picture::New(self.faded(frame, fade)),
                None => return None,
            },
        };
        let step_time = started.elapsed();
        // The cues whose slot is now on air (or passed), and those the world applied
        // while nothing was built.
        let shows = self.chunks().shown.as_ref().map(|s| s.0);
        let mut flights = std::mem::take(&mut self.unshown);
        if let Some(s) = shows.filter(|s| *s <= k) {
            let c = self.chunks();
            let later = c.cues.split_off(&(s + 1));
            for (_, v) in std::mem::replace(&mut c.cues, later) {
                flights.extend(v);
            }
        }
        let ready = Instant::now();
        let mut applied = Vec::new();
        for c in flights {
            let (record, watcher) = c.shown(n, ready);
            if let Some(w) = watcher {
                self.to_tell.push((w, record.clone()));
            }
            applied.push(record);
        }
        self.close_frame(&applied);
        let (pose, depth) = match &self.chunks().shown {
            Some((_, _, pose, depth)) => (*pose, depth.clone()),
            None => (self.world.camera(), None),
        };
        let info = self.chunks().info();
        let depth = depth.map(|d| {
            (
                Size {
                    width: info.width as usize,
                    height: info.height as usize,
                },
                d,
            )
        });
        self.record(n, wf, &picture, &applied, pose, depth);
        Some(Rendered {
            frame: n,
            picture,
            sound,
            applied,
            step_time,
        })
    }

    /// Advances the world through show frame `to`, applying the cues due; with `slot`,
    /// the cues are kept for the slot that shows them. Returns whether the model must
    /// start over (a seed, scene or image cue).
    fn advance_world_to(&mut self, to: u64, slot: Option<u64>) -> bool {
        let fps = self.world.fps();
        let first = self.last_frame.map_or(0, |f| f + 1);
        let mut reset = false;
        // An image is decoded off this thread, from when its cue arrives; a live show's
        // cue then waits (with the cues after it) until its image is ready, and starts
        // the model over without a stall; a show that is not live waits for it, so that
        // the cue lands on its frame every run.
        let (images, live) = match &self.model {
            Model::Chunks(c) => (Some(c.images.clone()), c.live),
            Model::Frames(_) => (None, true),
        };
        let image_of = |cue: &crate::cue::Cue| match (&cue.kind, &images) {
            (crate::cue::CueKind::Image { name }, Some(images)) => Some((images, name.clone())),
            _ => None,
        };
        let arrived = |cue: &crate::cue::Cue| {
            if let Some((images, name)) = image_of(cue) {
                let _ = images.poll(&name);
            }
        };
        let hold = |cue: &crate::cue::Cue| match image_of(cue) {
            Some((images, name)) if live => images.poll(&name).is_none(),
            Some((images, name)) => {
                let _ = images.wait(&name);
                false
            }
            None => false,
        };
        for f in first..=to {
            let wf = self.world_frame(f);
            for cue in self
                .scheduler
                .due_unless(&self.inbox, f, fps, arrived, hold)
            {
                reset |= self.world.apply(cue.cue(), wf).reset;
                match (slot, &mut self.model) {
                    (Some(s), Model::Chunks(c)) => c.cues.entry(s).or_default().push(cue),
                    _ => self.unshown.push(cue),
                }
            }
            reset |= self.world.advance(wf, |_, _| None).reset;
        }
        if first <= to {
            self.last_frame = Some(to);
        }
        reset
    }

    /// Asks for the next chunk when it is due within the lead and there is room.
    pub(super) fn maybe_ask(&mut self, on_air: u64) {
        let (show, native) = (self.world.fps(), self.chunks().info().fps);
        let wf_air = self.world_frame(on_air);
        let k_air = slot_at(wf_air, show, native);
        let c = self.chunks();
        if !c.up || c.in_flight.is_some() {
            return;
        }
        let chunking = c.info().chunking;
        let waiting = c.pending.is_some();
        let first = c.next_slot.max(k_air);
        let size = |fresh: bool| {
            if fresh {
                chunking.first_step_frames
            } else {
                chunking.frames_per_step
            }
        };
        let ahead = c.buffer.iter().filter(|m| m.slot > k_air).count();
        if ahead + size(c.fresh) as usize > c.capacity() {
            return;
        }
        let chunk_s = f64::from(size(c.fresh)) / native.as_f64();
        let due_in = (slot_frame(first, show, native) as f64 - wf_air as f64 + 1.0) / show.as_f64();
        if !waiting && due_in > c.lead_s(show.as_f64(), chunk_s) {
            return;
        }
        if self.world.frozen() {
            return;
        }
        self.ask(first);
    }

    /// Builds the chunk starting at slot `first` (advancing the world through it) and
    /// asks the worker for it.
    fn ask(&mut self, first: u64) {
        let (show, native) = (self.world.fps(), self.chunks().info().fps);
        let info = self.chunks().info().clone();
        let latency = u64::from(info.chunking.latency_frames);
        let policy = self.reset_next.take();
        if let Some(why) = policy.as_ref() {
            // Started over by the failure policy (not by a cue): counted and told.
            self.count_reset(why.clone());
        }
        let mut reset = policy.is_some() || std::mem::take(&mut self.chunks().reset_pending);
        let mut count = if reset || self.chunks().fresh {
            info.chunking.first_step_frames
        } else {
            info.chunking.frames_per_step
        } as u64;
        let mut frames = Vec::new();
        let mut slots = Vec::new();
        let mut j = first;
        while j < first + count {
            let wf = slot_frame(j, show, native);
            let to = (wf as i64 - self.shift).max(0) as u64;
            if self.advance_world_to(to, Some(j + latency)) {
                if j == first {
                    if !reset && info.chunking.first_step_frames != info.chunking.frames_per_step {
                        count = u64::from(info.chunking.first_step_frames);
                    }
                    reset = true;
                } else {
                    // Lands on the next chunk: a chunk is made by one model run.
                    self.chunks().reset_pending = true;
                }
            }
            if j == first && self.world.frozen() {
                return;
            }
            frames.push(FrameInput::read(&mut self.world, j, native, wf, &info));
            slots.push((j, self.world.camera()));
            j += 1;
        }
        if reset {
            let image = self.start_image();
            let Model::Chunks(c) = &mut self.model else {
                return;
            };
            c.model.reset(self.world.seed(), self.world.prompt(), image);
            c.sent_prompt = self.world.prompt().to_owned();
            c.fresh = true;
        }
        let Model::Chunks(c) = &mut self.model else {
            return;
        };
        match info.prompt {
            // One prompt for the chunk, the world's newest: each frame says how far it
            // is from the one before (a prompt cue inside the chunk lands on its slot).
            PromptMode::Text => {
                for f in &mut frames {
                    let wf = slot_frame(f.frame, show, native);
                    f.prompt = self.world.prompt_state(wf);
                }
            }
            PromptMode::SetPrompt if c.sent_prompt != self.world.prompt() => {
                c.model
                    .set_prompt(self.world.prompt(), self.world.prompt_transition_s());
                c.sent_prompt = self.world.prompt().to_owned();
            }
            _ => {}
        }
        let c = self.chunks();
        // The newest input video: a model reset does not flush it, as what waits is
        // already no more than one step's newest frames, the best a fresh start can see.
        let video = c.video.as_ref().map(VideoIn::take).unwrap_or_default();
        // The program's sound for the chunk's span: its newest, as much as it lasts.
        let sound = c
            .sound
            .as_ref()
            .map(|s| s.take(frames.len() * s.format().per_frame(native)))
            .unwrap_or_default();
        let media = StepMedia { video, sound };
        let id = c.model.step(frames, media, c.native.clone());
        let reset = reset || std::mem::take(&mut c.restarted_fresh);
        c.in_flight = Some(Asked { id, slots, reset });
        c.next_slot = first + count;
    }

    /// The image the model starts from now: the world's, decoded once (off this
    /// thread: its cue waited for it) and kept.
    pub(super) fn start_image(&mut self) -> Option<Arc<RgbImage>> {
        let name = self.world.image()?.to_owned();
        match self.chunks().images.poll(&name) {
            Some(Ok(image)) => Some(image),
            Some(Err(e)) => {
                tracing::error!("image {name:?} could not be read: {e}; starting without it");
                None
            }
            None => {
                tracing::error!("image {name:?} is still being read; starting without it");
                None
            }
        }
    }

    /// What the worker said.
    pub(super) fn on_worker(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Chunk(Ok(chunk)) => {
                let c = self.chunks();
                let Some(asked) = c.in_flight.take_if(|a| a.id == chunk.id) else {
                    return;
                };
                if c.walls.len() == WALLS {
                    c.walls.pop_front();
                }
                c.walls.push_back(chunk.wall.as_secs_f64());
                c.fresh = false;
                let made = chunk.frames.len() as u64;
                let mut depth = chunk.depth.into_iter();
                // Each frame's share of the chunk's sound.
                let per_frame = c
                    .package
                    .info
                    .audio
                    .map_or(0, |a| a.per_frame(c.package.info.fps) * a.channels as usize);
                let mut sound = chunk.sound.chunks(per_frame.max(1));
                let slots = asked.slots.into_iter().zip(chunk.frames).enumerate();
                for (i, ((slot, pose), frame)) in slots {
                    c.buffer.push_back(Made {
                        slot,
                        frame,
                        depth: depth.next(),
                        pose,
                        reset: asked.reset && i == 0,
                        sound: sound.next().filter(|_| per_frame > 0).map(Arc::from),
                    });
                }
                self.failing = 0;
                self.counters.rendered.fetch_add(made, Ordering::Relaxed);
                self.counters
                    .step_ms
                    .observe(chunk.step.as_secs_f64() * 1e3);
                self.counters
                    .chunk_ms
                    .observe(chunk.wall.as_secs_f64() * 1e3);
                self.counters
                    .transfer_ms
                    .observe(chunk.transfer.as_secs_f64() * 1e3);
            }
            WorkerEvent::Chunk(Err((id, e))) => {
                let c = self.chunks();
                let Some(lost) = c.in_flight.take_if(|a| a.id == id) else {
                    return;
                };
                c.rewind(&lost);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.failing += 1;
                let now = Instant::now();
                let c = self.chunks();
                if c.last_warning
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    c.last_warning = Some(now);
                    tracing::warn!("model step failed: {e}");
                }
                let in_place = c.package.state_rollback == StateRollback::None;
                self.on_failed_step(&e);
                if in_place && self.reset_next.is_none() {
                    // Its state was changed in place by the failed step: it cannot be
                    // trusted, so the model starts over before the next.
                    self.reset_next = Some(format!(
                        "a step failed ({e}) and the model's state changes in place"
                    ));
                    self.last_reset = self.reset_next.clone();
                }
            }
            WorkerEvent::Failed { request, error } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("model {request} failed: {error}");
            }
            WorkerEvent::Down { reason } => {
                let c = self.chunks();
                c.up = false;
                if let Some(lost) = c.in_flight.take() {
                    c.rewind(&lost);
                }
                let restarts = c.model.restarts();
                tracing::warn!("the model is down ({reason}): the show goes on");
                self.events
                    .emit(EngineEvent::ProcessDown { restarts, reason });
            }
            WorkerEvent::Up { resumed } => {
                let c = self.chunks();
                c.up = true;
                c.fresh = true;
                c.restarted_fresh = !resumed;
                let restarts = c.model.restarts();
                self.events
                    .emit(EngineEvent::ProcessUp { restarts, resumed });
            }
        }
    }
}
