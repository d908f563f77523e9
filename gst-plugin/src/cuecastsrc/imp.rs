//! `cuecastsrc`: a live source whose frames come from a `cuecast_engine::Engine`.
//!
//! Timing, for a live source at frame duration `d` with the latency it reports, `L = d`:
//! slot `n` covers running time `t0 + n d` (t0: the running time of the first frame).
//! As soon as frame `n` is out, the element asks the engine for frame `n + 1` and holds
//! it until its slot starts; it is pushed then, or as soon as it is ready after that. If
//! it is not ready by `t0 + (n + 1) d + L`, the previous frame is pushed again with that
//! slot's timestamps, counted as repeated: the output keeps its rate whatever the model
//! does. A late frame is not lost; it goes out in the next slot. Asking early gives a
//! step up to two frames, less the step before it, so one slow step (a stalled core on
//! a shared machine) costs no repeat, while a cue still waits at most one frame for the
//! next step to begin. Waiting happens on the pipeline clock (so tests can drive it with
//! a `TestClock`): a single-shot wait for the slot start, and an async clock id for the
//! deadline that wakes the same channel the engine delivers frames on.
//!
//! The show's clock starts (t0 is taken) once the model's first frame is made, within
//! five seconds, so a model slow to make its first frame does not open on a repeat.
//!
//! Not live (`is-live=false`), frames are made as fast as downstream takes them, every
//! frame rendered, none repeated.
//!
//! Locks: `settings`, then `state`, then `clock`; `wake_rx` is held only by the
//! streaming thread while it waits, and never with another lock.
//!
//! Why one file of about a thousand lines: it is one GObject subclass, and GStreamer's
//! subclassing puts its properties, state changes, caps and `create` in the one `imp`;
//! they share the element's state and its clock wait, which reads best in one place.

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, LazyLock};
use std::time::Instant;

#[cfg(feature = "control")]
use cuecast_http::{ControlServer, ControlState};

/// The element's cue API server, when built with the `control` feature.
#[cfg(feature = "control")]
type Control = ControlServer;
/// Built without the `control` feature: there is never a server.
#[cfg(not(feature = "control"))]
enum Control {}
mod messages;

use super::settings::{self, Settings};
use cuecast_engine::engine::{Counters, EngineEvent, ModelSettings, SettingError};
use cuecast_engine::generator::Fps;
use cuecast_engine::{
    Cue, CueError, CueFile, CueKind, Engine, EngineConfig, Picture, Pixels, Rendered, Scene,
    ShowHandle,
};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "cuecastsrc",
        gst::DebugColorFlags::empty(),
        Some("cuecast generative video source"),
    )
});

/// The longest the element waits for its model at stop.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest a live element waits for the model's first frame before its clock starts.
const FIRST_FRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What wakes the streaming thread while it waits for a frame.
enum Wake {
    Rendered(Rendered),
    /// The deadline of slot `n` passed.
    Deadline(u64),
    /// `unlock()`: stop waiting if flushing.
    Unlock,
}

/// The negotiated format.
#[derive(Debug, Clone, Copy)]
struct Video {
    width: usize,
    height: usize,
    fps: Fps,
    pixels: Pixels,
}

impl Video {
    /// Running time of slot `n` relative to the first slot, exact for fractional rates.
    fn offset(&self, n: u64) -> gst::ClockTime {
        gst::ClockTime::from_nseconds(self.fps.frame_to_ns(n))
    }

    fn frame_duration(&self) -> gst::ClockTime {
        self.offset(1)
    }
}

/// The last second's figures, for the stats message.
#[derive(Debug, Default)]
struct Window {
    start: Option<gst::ClockTime>,
    pushed: u64,
    repeated: u64,
    step_ms: Vec<f64>,
}

/// What exists only between `start()` and `stop()`.
#[derive(Default)]
struct State {
    engine: Option<Engine>,
    /// The engine's events, posted on the bus as they come (see `messages`).
    events: Option<std::sync::mpsc::Receiver<EngineEvent>>,
    control: Option<Control>,
    /// The cue file's cues, submitted once the frame rate is known.
    pending_cues: Vec<Cue>,
    video: Option<Video>,
    /// The next slot to fill.
    slot: u64,
    /// Running time of slot 0.
    t0: Option<gst::ClockTime>,
    /// How much earlier than its slot a frame is stamped, and added to the latency: for
    /// `cuecastfilter`, the time from an input frame to its restyled frame's slot, so
    /// that each frame carries the time of the input it shows. Fixed once the first
    /// frame is out.
    shift: gst::ClockTime,
    /// The highest frame asked of the engine.
    requested: Option<u64>,
    /// The last buffer pushed: what a repeat sends again.
    last: Option<gst::Buffer>,
    pushed: u64,
    window: Window,
    last_warning: Option<Instant>,
}

#[derive(Default)]
struct ClockWait {
    wait: Option<gst::SingleShotClockId>,
    deadline: Option<gst::SingleShotClockId>,
    flushing: bool,
}

#[derive(Default)]
pub struct CuecastSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    clock: Mutex<ClockWait>,
    wake_tx: Mutex<Option<mpsc::Sender<Wake>>>,
    wake_rx: Mutex<Option<mpsc::Receiver<Wake>>>,
    /// The last run's engine counters and frames pushed: what the read-only `frames`,
    /// `rendered`, `repeated` and `failed` properties read, also after the stop.
    counters: Mutex<Option<Arc<Counters>>>,
    frames: AtomicU64,
    /// Where the sound a model makes with its frames goes, with the running time it is
    /// heard from (an application's program audio; see `CuecastSrc::set_sound_sink`).
    sound_sink: Mutex<Option<SoundSink>>,
}

/// Takes a model's sound and the running time its frame is stamped with.
pub(crate) type SoundSink =
    Arc<dyn Fn(gst::ClockTime, &cuecast_engine::engine::Sound) + Send + Sync>;

#[glib::object_subclass]
impl ObjectSubclass for CuecastSrc {
    const NAME: &'static str = "GstCuecastSrc";
    type Type = super::CuecastSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for CuecastSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        settings::specs()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(settings::DEFAULT_IS_LIVE);
        obj.set_format(gst::Format::Time);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let name = pspec.name();
        if name == "is-live" {
            self.obj().set_live(value.get().unwrap());
            return;
        }
        let set = self.settings.lock().set(name, value);
        match set {
            Ok(true) => {}
            Ok(false) => unreachable!("unknown property {name}"),
            Err(e) => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "{name}: {e}; the element will not start until it is set to a value it can be"
                );
                return;
            }
        }
        // Changed while playing: the show is told by a cue.
        match name {
            "seed" => self.cue_if_running(CueKind::Seed {
                value: value.get().unwrap(),
            }),
            "prompt" => {
                let text = self.settings.lock().model.prompt.clone();
                self.cue_if_running(CueKind::Prompt {
                    text,
                    transition_s: 1.0,
                });
            }
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "frames" => self.frames.load(Ordering::Relaxed).to_value(),
            "rendered" | "repeated" | "failed" => {
                let counters = self.counters.lock();
                let Some(c) = counters.as_ref() else {
                    return 0u64.to_value();
                };
                match pspec.name() {
                    "rendered" => &c.rendered,
                    "repeated" => &c.repeated,
                    _ => &c.failed,
                }
                .load(Ordering::Relaxed)
                .to_value()
            }
            "is-live" => self.obj().is_live().to_value(),
            name => self
                .settings
                .lock()
                .get(name)
                .unwrap_or_else(|| unreachable!("unknown property {name}")),
        }
    }
}

impl GstObjectImpl for CuecastSrc {}

impl ElementImpl for CuecastSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "cuecast world-model source",
                "Source/Video",
                "Live video from a generative world model (procedural, TorchScript, or a model's own \
                 Python in a supervised worker), steered by cues: prompts, camera moves, keys and \
                 mouse, images, params, scenes",
                "cuecast",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| vec![src_template()]);
        TEMPLATES.as_ref()
    }
}

/// The source pad's template: RGBx or RGB at any size and rate the model can be shown
/// at (RGB only at widths that are a multiple of four, so that rows need no padding).
pub(crate) fn src_template() -> gst::PadTemplate {
    let mut caps = video_caps(Pixels::Rgb);
    caps.make_mut().append(video_caps(Pixels::Rgbx));
    gst::PadTemplate::new(
        "src",
        gst::PadDirection::Src,
        gst::PadPresence::Always,
        &caps,
    )
    .unwrap()
}

/// Raw video laid out as `pixels`, at any size and rate the model can be shown at.
fn video_caps(pixels: Pixels) -> gst::Caps {
    let width = match pixels {
        Pixels::Rgb => gst::IntRange::with_step(16, 8192, 4),
        Pixels::Rgbx => gst::IntRange::new(16, 8192),
    };
    gst::Caps::builder("video/x-raw")
        .field("format", pixels.caps_name())
        .field("width", width)
        .field("height", gst::IntRange::new(16, 8192))
        .field(
            "framerate",
            gst::FractionRange::new(gst::Fraction::new(1, 1), gst::Fraction::new(240, 1)),
        )
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

impl CuecastSrc {
    /// Serves the cue API on `addr` for `engine`.
    #[cfg(feature = "control")]
    fn start_control(
        &self,
        addr: &str,
        token: Option<&str>,
        engine: &Engine,
    ) -> Result<Control, gst::ErrorMessage> {
        let state = ControlState {
            inbox: engine.inbox().clone(),
            status: {
                let status = engine.status_handle();
                cuecast_http::status_fn(move || status.get())
            },
            token: token.map(Into::into),
        };
        let server = ControlServer::start(addr, state).map_err(|e| {
            gst::error_msg!(gst::ResourceError::OpenReadWrite, ("control-address: {e}"))
        })?;
        gst::info!(
            CAT,
            imp = self,
            "cue API on http://{}/api/v1/cues",
            server.local_addr()
        );
        Ok(server)
    }

    /// Built without the `control` feature: a `control-address` is refused by name.
    #[cfg(not(feature = "control"))]
    fn start_control(
        &self,
        _addr: &str,
        _token: Option<&str>,
        _engine: &Engine,
    ) -> Result<Control, gst::ErrorMessage> {
        Err(gst::error_msg!(
            gst::ResourceError::Settings,
            ("control-address: this cuecastsrc was built without its cue API (the `control` feature)")
        ))
    }

    pub(super) fn show(&self) -> Option<ShowHandle> {
        self.state.lock().engine.as_ref().map(Engine::handle)
    }

    pub(super) fn set_scenes(&self, scenes: Vec<Scene>) -> Result<(), CueError> {
        let show = self.show();
        if let Some(show) = &show {
            show.set_scenes(scenes.clone())?;
        }
        self.settings.lock().scenes = scenes;
        Ok(())
    }

    /// The model's settings, whole (what an application hands over in one call).
    pub(super) fn set_model_settings(&self, model: ModelSettings) -> Result<(), SettingError> {
        model.check()?;
        let mut settings = self.settings.lock();
        settings.model = model;
        // Every model property is now as given.
        settings.refused.clear();
        Ok(())
    }

    pub(super) fn sound_in(&self) -> Option<cuecast_engine::sound::SoundIn> {
        self.state.lock().engine.as_ref()?.sound_in().cloned()
    }

    pub(super) fn set_sound_sink(&self, sink: Option<SoundSink>) {
        *self.sound_sink.lock() = sink;
    }

    /// The live video into the model, for a model that takes one (while started).
    pub(super) fn video_in(&self) -> Option<cuecast_engine::video_in::VideoIn> {
        self.state.lock().engine.as_ref()?.video_in().cloned()
    }

    /// The frame duration negotiated, once it is.
    pub(super) fn frame_duration(&self) -> Option<gst::ClockTime> {
        self.state.lock().video.map(|v| v.frame_duration())
    }

    /// Stamps frames `shift` before their slot and adds it to the latency (see
    /// `State::shift`); refused (false) once the first frame is out.
    pub(super) fn set_shift(&self, shift: gst::ClockTime) -> bool {
        let mut state = self.state.lock();
        if state.t0.is_some() {
            return state.shift == shift;
        }
        let changed = state.shift != shift;
        state.shift = shift;
        drop(state);
        if changed && self.obj().is_live() {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        true
    }

    pub(super) fn model_settings(&self) -> ModelSettings {
        self.settings.lock().model.clone()
    }

    /// Sends a cue when the show is running (a property changed while playing).
    fn cue_if_running(&self, kind: CueKind) {
        let state = self.state.lock();
        if let Some(engine) = &state.engine {
            if let Err(e) = engine.inbox().submit_one(Cue::now(kind)) {
                gst::warning!(CAT, imp = self, "property change not applied: {e}");
            }
        }
    }

    /// Waits on the clock until `time`, unless flushing.
    fn wait_until(&self, clock: &gst::Clock, time: gst::ClockTime) -> Result<(), gst::FlowError> {
        let id = clock.new_single_shot_id(time);
        {
            let mut cw = self.clock.lock();
            if cw.flushing {
                return Err(gst::FlowError::Flushing);
            }
            cw.wait = Some(id.clone());
        }
        let (result, _jitter) = id.wait();
        let mut cw = self.clock.lock();
        cw.wait = None;
        match result {
            Err(gst::ClockError::Unscheduled) => Err(gst::FlowError::Flushing),
            _ if cw.flushing => Err(gst::FlowError::Flushing),
            _ => Ok(()),
        }
    }

    /// Arranges for `Wake::Deadline(n)` at `time`.
    fn schedule_deadline(
        &self,
        clock: &gst::Clock,
        time: gst::ClockTime,
        n: u64,
    ) -> Result<(), gst::FlowError> {
        let tx = self
            .wake_tx
            .lock()
            .clone()
            .ok_or(gst::FlowError::Flushing)?;
        let id = clock.new_single_shot_id(time);
        let mut cw = self.clock.lock();
        if cw.flushing {
            return Err(gst::FlowError::Flushing);
        }
        id.wait_async(move |_, _, _| {
            let _ = tx.send(Wake::Deadline(n));
        })
        .map_err(|_| gst::FlowError::Error)?;
        cw.deadline = Some(id);
        Ok(())
    }

    fn cancel_deadline(&self) {
        if let Some(id) = self.clock.lock().deadline.take() {
            id.unschedule();
        }
    }

    /// The first frame, waited for at most `limit` of wall-clock time (before the
    /// show's clock has started there is no slot to miss); `None` if it did not come.
    fn wait_first_frame(
        &self,
        limit: std::time::Duration,
    ) -> Result<Option<Rendered>, gst::FlowError> {
        let rx = self.wake_rx.lock();
        let rx = rx.as_ref().ok_or(gst::FlowError::Flushing)?;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Wake::Rendered(r)) => return Ok(Some(r)),
                Ok(Wake::Deadline(_)) => {}
                Ok(Wake::Unlock) => {
                    if self.clock.lock().flushing {
                        return Err(gst::FlowError::Flushing);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gst::FlowError::Flushing),
            }
        }
    }

    /// Waits for frame `n` (or, live, for its deadline). Returns the newest frame that
    /// arrived, with the cues of every frame that arrived, or `None` if nothing did.
    fn wait_for_frame(&self, n: u64) -> Result<Option<Rendered>, gst::FlowError> {
        let rx = self.wake_rx.lock();
        let rx = rx.as_ref().ok_or(gst::FlowError::Flushing)?;
        let mut fresh: Option<Rendered> = None;
        loop {
            match rx.recv() {
                Ok(Wake::Rendered(r)) => {
                    let done = r.frame >= n;
                    fresh = Some(match fresh.take() {
                        Some(mut older) if matches!(r.picture, Picture::Failed(_)) => {
                            older.applied.extend(r.applied);
                            older
                        }
                        Some(older) => Rendered {
                            applied: [older.applied, r.applied].concat(),
                            ..r
                        },
                        None => r,
                    });
                    if done {
                        return Ok(fresh);
                    }
                }
                Ok(Wake::Deadline(k)) if k == n => return Ok(fresh),
                Ok(Wake::Deadline(_)) => {}
                Ok(Wake::Unlock) => {
                    if self.clock.lock().flushing {
                        return Err(gst::FlowError::Flushing);
                    }
                }
                Err(_) => return Err(gst::FlowError::Flushing),
            }
        }
    }

    fn black(video: &Video) -> gst::Buffer {
        let bytes = video.width * video.height * video.pixels.bytes();
        let mut buffer = gst::Buffer::with_size(bytes).expect("buffer");
        buffer.get_mut().unwrap().map_writable().unwrap().fill(0);
        buffer
    }
}

impl BaseSrcImpl for CuecastSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().clone();
        if let Some(why) = settings.refusal() {
            return Err(gst::error_msg!(gst::ResourceError::Settings, ("{why}")));
        }
        let cue_file = match settings.cues.as_deref() {
            Some(path) => CueFile::load(path.as_ref())
                .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("cues: {e}")))?,
            None => CueFile::default(),
        };
        let config = EngineConfig {
            settings: settings.model.clone(),
            scenes: cue_file.scenes.into_iter().chain(settings.scenes).collect(),
            camera: None,
            adaptive_detail: settings.adaptive_detail && self.obj().is_live(),
            media: settings.media.as_ref().map(PathBuf::from),
            live: self.obj().is_live(),
        };
        let (tx, rx) = mpsc::channel();
        let deliver = tx.clone();
        let engine = Engine::start(config, move |r| {
            let _ = deliver.send(Wake::Rendered(r));
        })
        .map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("cannot start the {} backend: {e}", settings.model.backend)
            )
        })?;
        // Cues in the file are checked against the model now, so a bad file fails here.
        engine.inbox().check(&cue_file.cues).map_err(|e| {
            gst::error_msg!(gst::ResourceError::Settings, ("cues: {}", e.within("cues")))
        })?;
        let control = match settings.control_address.as_deref() {
            Some(addr) => {
                Some(self.start_control(addr, settings.control_token.as_deref(), &engine)?)
            }
            None => None,
        };
        let info = engine.info();
        gst::info!(
            CAT,
            imp = self,
            "{} on {}: native {}x{} at {}/{} fps",
            info.name,
            cuecast_engine::device::device_name(engine.device()),
            info.width,
            info.height,
            info.fps.num,
            info.fps.den
        );
        *self.wake_tx.lock() = Some(tx);
        *self.wake_rx.lock() = Some(rx);
        *self.counters.lock() = Some(engine.counters().clone());
        self.frames.store(0, Ordering::Relaxed);
        *self.state.lock() = State {
            events: Some(engine.handle().subscribe()),
            engine: Some(engine),
            control,
            pending_cues: cue_file.cues,
            ..Default::default()
        };
        self.clock.lock().flushing = false;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock());
        // The server goes first, so no cue arrives at a stopping engine.
        #[cfg_attr(not(feature = "control"), allow(clippy::drop_non_drop))]
        drop(state.control);
        // The pipeline reaches NULL within a second whatever the model does: one stuck
        // in a step is left behind (and its take finished without it).
        if let Some(engine) = state.engine {
            engine.stop_within(STOP_WAIT);
        }
        self.wake_tx.lock().take();
        self.wake_rx.lock().take();
        gst::info!(CAT, imp = self, "stopped after {} frames", state.pushed);
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    /// What the engine's frames can be: a worker's model writes RGB, shown where it
    /// lies when downstream takes RGB (preferred, first), else RGBx; every other model
    /// draws RGBx.
    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let preferred = self.state.lock().engine.as_ref().map(|e| e.native_pixels());
        let caps = match preferred {
            Some(Pixels::Rgbx) => video_caps(Pixels::Rgbx),
            // The template's: RGB first, then RGBx.
            _ => self.obj().static_pad("src")?.pad_template_caps(),
        };
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn fixate(&self, mut caps: gst::Caps) -> gst::Caps {
        let native = self.state.lock().engine.as_ref().map(|e| e.info().clone());
        caps.truncate();
        if let (Some(info), Some(s)) = (native, caps.make_mut().structure_mut(0)) {
            s.fixate_field_nearest_int("width", info.width as i32);
            s.fixate_field_nearest_int("height", info.height as i32);
            s.fixate_field_nearest_fraction(
                "framerate",
                gst::Fraction::new(info.fps.num as i32, info.fps.den as i32),
            );
        }
        self.parent_fixate(caps)
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {caps}"))?;
        let (num, den) = (info.fps().numer(), info.fps().denom());
        if num <= 0 || den <= 0 {
            return Err(gst::loggable_error!(
                CAT,
                "needs a fixed frame rate, got {num}/{den}"
            ));
        }
        let pixels = match info.format() {
            gst_video::VideoFormat::Rgb => Pixels::Rgb,
            _ => Pixels::Rgbx,
        };
        let video = Video {
            width: info.width() as usize,
            height: info.height() as usize,
            fps: Fps::new(num as u32, den as u32),
            pixels,
        };
        let mut state = self.state.lock();
        let cues = std::mem::take(&mut state.pending_cues);
        let Some(engine) = &state.engine else {
            return Err(gst::loggable_error!(CAT, "caps set before start"));
        };
        engine.set_output_as(video.width, video.height, video.fps, video.pixels);
        if !cues.is_empty() {
            if let Err(e) = engine.inbox().submit(cues, None) {
                let e = e.within("cues");
                gst::element_imp_error!(self, gst::ResourceError::Settings, ("{e}"));
                return Err(gst::loggable_error!(
                    CAT,
                    "cue file rejected at {num}/{den} fps: {e}"
                ));
            }
        }
        let changed = state.video.is_none_or(|v| v.fps != video.fps);
        state.video = Some(video);
        drop(state);
        gst::debug!(
            CAT,
            imp = self,
            "negotiated {}x{} at {num}/{den}",
            video.width,
            video.height
        );
        if changed && self.obj().is_live() {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let video = self.state.lock().video;
            return match video {
                Some(v) if self.obj().is_live() => {
                    // A frame is due one frame duration after its slot starts, and is
                    // stamped `shift` before its slot.
                    let latency = v.frame_duration() + self.state.lock().shift;
                    q.set(true, latency, Some(latency));
                    true
                }
                Some(_) => {
                    q.set(false, gst::ClockTime::ZERO, gst::ClockTime::NONE);
                    true
                }
                None => false,
            };
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        let mut cw = self.clock.lock();
        cw.flushing = true;
        if let Some(id) = cw.wait.take() {
            id.unschedule();
        }
        if let Some(id) = cw.deadline.take() {
            id.unschedule();
        }
        drop(cw);
        if let Some(tx) = self.wake_tx.lock().as_ref() {
            let _ = tx.send(Wake::Unlock);
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.clock.lock().flushing = false;
        Ok(())
    }
}

impl PushSrcImpl for CuecastSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let obj = self.obj();
        let live = obj.is_live();
        let clock = if live {
            obj.clock().zip(obj.base_time())
        } else {
            None
        };
        // Live, the show's clock starts with the model's first frame, not before it: a
        // model whose first frame takes a while (a chunk, a warm cache) does not open
        // the show on a black, repeated slot.
        let mut early = None;
        if clock.is_some() {
            let mut state = self.state.lock();
            if state.t0.is_none() && state.requested.is_none() {
                if let Some(engine) = &state.engine {
                    if engine.render(0).is_ok() {
                        state.requested = Some(0);
                        drop(state);
                        early = self.wait_first_frame(FIRST_FRAME_WAIT)?;
                    }
                }
            }
        }
        let mut shortened = false;
        let (n, video, t0, shift) = {
            let mut state = self.state.lock();
            let Some(video) = state.video else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("no format was negotiated")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let first = state.t0.is_none();
            let t0 = *state.t0.get_or_insert_with(|| {
                clock.as_ref().map_or(gst::ClockTime::ZERO, |(c, base)| {
                    c.time().saturating_sub(*base)
                })
            });
            // Stamps start at zero, never below: a shift longer than the time before the
            // first frame is cut to it (and the latency with it), so no two frames share
            // a stamp.
            if first && state.shift > t0 {
                state.shift = t0;
                shortened = true;
            }
            (state.slot, video, t0, state.shift)
        };
        if shortened && live {
            let _ = obj.post_message(gst::message::Latency::builder().src(&*obj).build());
        }
        let pts = t0 + video.offset(n);
        let duration = t0 + video.offset(n + 1) - pts;

        // The slot starts: its frame was asked for when the last one went out (except the
        // first, and after a frame the model was still busy with).
        if let Some((c, base)) = &clock {
            self.wait_until(c, *base + pts)?;
        }
        {
            let mut state = self.state.lock();
            if state.requested.is_none_or(|r| r < n) {
                state
                    .engine
                    .as_ref()
                    .ok_or(gst::FlowError::Flushing)?
                    .render(n)
                    .map_err(|_| gst::FlowError::Error)?;
                state.requested = Some(n);
            }
        }
        let fresh = match early {
            Some(first) => Some(first),
            None => {
                if let Some((c, base)) = &clock {
                    self.schedule_deadline(c, *base + pts + video.frame_duration(), n)?;
                }
                let fresh = self.wait_for_frame(n);
                self.cancel_deadline();
                fresh?
            }
        };

        let mut state = self.state.lock();
        // The next frame starts rendering now, while this one travels downstream; live,
        // it is held until its slot. (Unless the model is still busy with this one.)
        if state.requested.is_none_or(|r| r <= n) {
            if let Some(engine) = &state.engine {
                if engine.render(n + 1).is_ok() {
                    state.requested = Some(n + 1);
                }
            }
        }
        let (picture, step_ms) = match &fresh {
            Some(r) => (Some(&r.picture), r.step_time.as_secs_f64() * 1e3),
            None => (None, 0.0),
        };
        let repeated = !matches!(picture, Some(Picture::New(_) | Picture::Held(_)));
        let mut buffer = match picture {
            Some(Picture::New(frame) | Picture::Held(frame)) => {
                if frame.pixels() == video.pixels {
                    gst::Buffer::from_slice(frame.clone())
                } else {
                    // Made before the layout was negotiated: converted once.
                    gst::Buffer::from_mut_slice(frame.laid_out(video.pixels).into_owned())
                }
            }
            other => {
                if let Some(Picture::Failed(e)) = other {
                    let now = Instant::now();
                    if state
                        .last_warning
                        .is_none_or(|t| now.duration_since(t).as_secs() >= 1)
                    {
                        state.last_warning = Some(now);
                        gst::element_imp_warning!(
                            self,
                            gst::StreamError::Failed,
                            ("model step failed at frame {n}: {e}")
                        );
                    }
                }
                if let Some(engine) = &state.engine {
                    engine.counters().repeated.fetch_add(1, Ordering::Relaxed);
                }
                gst::debug!(
                    CAT,
                    imp = self,
                    "frame {n} not ready by its deadline: repeating"
                );
                match &state.last {
                    Some(last) => last.copy(),
                    None => Self::black(&video),
                }
            }
        };
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(pts.saturating_sub(shift));
            b.set_duration(duration);
            b.set_offset(n);
            b.set_offset_end(n + 1);
        }
        self.maybe_post_stats(&mut state, pts);
        self.post_engine_events(&state);
        state.last = Some(buffer.clone());
        state.slot = n + 1;
        state.pushed += 1;
        self.frames.fetch_add(1, Ordering::Relaxed);
        state.window.pushed += 1;
        state.window.repeated += u64::from(repeated);
        if step_ms > 0.0 {
            state.window.step_ms.push(step_ms);
        }
        drop(state);
        if let Some(r) = &fresh {
            self.post_cue_applied(r, t0.saturating_sub(shift), &video);
            let sink = self.sound_sink.lock().clone();
            if let (Some(sound), Some(sink)) = (&r.sound, sink) {
                sink(pts.saturating_sub(shift), sound);
            }
        }
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
