//! Inputs: live video and sound from outside the show (an SRT caller or listener, an
//! RTMP stream pulled from a server, a file of the media folder, a V4L2 device, an ALSA
//! or PulseAudio device, a test pattern and tone), each decoded in a pipeline and on a
//! thread of its own, supervised like an output; the show preset's `video_input` feeds
//! a model that takes video, and the config's `audio` mix takes inputs' sound.
//!
//! Why a pipeline and a thread each: an input is someone else's stream, and its failures
//! (a sender gone, a file that cannot be decoded, a device unplugged) must touch nothing
//! but itself. Its frames reach the model only through the engine's bounded video input
//! (`cuecast_engine::video_in`: the newest frames one step takes, older ones dropped and
//! counted), so no input can slow the show or build a queue; when one drops, the model
//! gets its last frame again and the show keeps its rate.
//!
//! States: `connecting` (started, no frame yet) → `live` (frames coming) → `retrying` (an
//! error, or no frame for two seconds: torn down, started again after 1, 2, 4, 8, then
//! every 10 s, from 1 s again once it was live for 10 s); `stopped` when not enabled.
//! Every change is an event, a log line, and in status and `/metrics`. A caller, a pull
//! or a file that gives no frame within 10 s is retried too; a listener waits for its
//! sender as long as it takes.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cuecast_engine::video_in::{PixelLayout, VideoIn};
use gst::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::audio::ProgramAudio;
use crate::config::{Input, InputKind, SrtMode, VideoFallback};
use crate::events::{Event, Events};
use crate::serve::first_error;
use cuecast_engine::worker::RgbImage;

/// A live input with no frame for this long is taken for dropped.
const STALE: Duration = Duration::from_secs(2);
/// The longest an input other than a listener may take to give its first frame.
const FIRST_FRAME: Duration = Duration::from_secs(10);
/// Waits between attempts; the last repeats.
const BACKOFF_S: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 10.0];
/// Live this long, an input's next failure starts the backoff again.
const STABLE: Duration = Duration::from_secs(10);
/// The longest a stopping input's thread is waited for (a source stuck in its teardown
/// is left to end by itself).
const STOP_WAIT: Duration = Duration::from_secs(3);
/// The size an input is decoded at when no model takes its frames.
const IDLE_SIZE: (u32, u32) = (320, 180);

/// Where an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputState {
    Connecting,
    Live,
    Retrying,
    Stopped,
}

impl InputState {
    pub const ALL: [InputState; 4] = [
        InputState::Connecting,
        InputState::Live,
        InputState::Retrying,
        InputState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InputState::Connecting => "connecting",
            InputState::Live => "live",
            InputState::Retrying => "retrying",
            InputState::Stopped => "stopped",
        }
    }
}

/// An input as status reports it. No secrets: the source is shown without them.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InputStatus {
    pub name: String,
    /// `srt`, `rtmp`, `file`, `v4l2` or `test`.
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub state: InputState,
    /// Its video feeds the model (the show's `video_input`).
    pub feeds_model: bool,
    /// Frames decoded since the show started.
    pub frames: u64,
    /// Times it was started again after a failure.
    pub reconnects: u64,
    /// Failures in a row now.
    pub attempt: u32,
    /// Why it is not live, naming the input and the field.
    pub error: Option<String>,
}

/// The show's inputs. Clone it freely.
#[derive(Clone, Default)]
pub struct Inputs(Arc<Shared>);

#[derive(Default)]
struct Shared {
    running: Mutex<BTreeMap<String, Running>>,
    feed: Arc<Mutex<Feed>>,
    events: Events,
    /// Where inputs' sound goes.
    audio: Option<ProgramAudio>,
    /// What the model is given while the input feeding it is down, and the media
    /// folder a still is read from.
    fallback: Arc<Mutex<(VideoFallback, std::path::PathBuf)>>,
}

/// Which input feeds the model's video input, if any.
#[derive(Default)]
struct Feed {
    input: Option<String>,
    video: Option<VideoIn>,
}

struct Running {
    input: Input,
    status: Arc<Mutex<InputStatus>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Inputs {
    /// Starts `inputs`; `feed` names the one whose video goes into `video` (the model's
    /// video input).
    pub fn start(
        inputs: Vec<Input>,
        feed: Option<String>,
        video: Option<VideoIn>,
        audio: Option<ProgramAudio>,
        fallback: (VideoFallback, std::path::PathBuf),
        events: Events,
    ) -> Inputs {
        let me = Inputs(Arc::new(Shared {
            running: Mutex::default(),
            feed: Arc::new(Mutex::new(Feed { input: None, video })),
            events,
            audio,
            fallback: Arc::new(Mutex::new(fallback.clone())),
        }));
        me.apply(inputs, feed, fallback.0);
        me
    }

    /// Makes the running inputs these (a config edit): an input whose settings changed
    /// starts again, one no longer named stops, the rest run on undisturbed.
    pub fn apply(&self, inputs: Vec<Input>, feed: Option<String>, fallback: VideoFallback) {
        self.0.fallback.lock().0 = fallback;
        {
            let mut f = self.0.feed.lock();
            if f.input != feed {
                // The model sees only the new input's frames from now.
                if let Some(v) = &f.video {
                    v.flush();
                }
                f.input = feed.clone();
            }
        }
        let gone: Vec<Running> = {
            let mut running = self.0.running.lock();
            let changed: Vec<String> = running
                .iter()
                .filter(|(n, r)| !inputs.iter().any(|i| &i.name == *n && *i == r.input))
                .map(|(n, _)| n.clone())
                .collect();
            changed
                .into_iter()
                .filter_map(|n| running.remove(&n))
                .collect()
        };
        // Stopped with the table unlocked: status answers meanwhile.
        for r in gone
            .iter()
            .filter(|r| !inputs.iter().any(|i| i.name == r.input.name))
        {
            tracing::info!("input {:?} removed", r.input.name);
        }
        stop_all(gone);
        let mut running = self.0.running.lock();
        for input in inputs {
            if let Some(r) = running.get(&input.name) {
                r.status.lock().feeds_model = feed.as_ref() == Some(&input.name);
                continue;
            }
            let r = self.launch(input, feed.as_deref());
            running.insert(r.input.name.clone(), r);
        }
    }

    fn launch(&self, input: Input, feed: Option<&str>) -> Running {
        let status = Arc::new(Mutex::new(InputStatus {
            name: input.name.clone(),
            kind: input.kind.type_name().into(),
            source: input.kind.source(),
            state: if input.enabled {
                InputState::Connecting
            } else {
                InputState::Stopped
            },
            feeds_model: feed == Some(input.name.as_str()),
            frames: 0,
            reconnects: 0,
            attempt: 0,
            error: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = input.enabled.then(|| {
            let supervisor = Supervisor {
                input: input.clone(),
                status: status.clone(),
                stop: stop.clone(),
                feed: self.0.feed.clone(),
                events: self.0.events.clone(),
                audio: self.0.audio.clone(),
                fallback: self.0.fallback.clone(),
            };
            std::thread::Builder::new()
                .name(format!("cuecast-in-{}", input.name))
                .spawn(move || supervisor.run())
                .map_err(|e| tracing::error!("input {:?} cannot start: {e}", input.name))
                .ok()
        });
        Running {
            input,
            status,
            stop,
            thread: thread.flatten(),
        }
    }

    /// Every input, by name.
    pub fn list(&self) -> Vec<InputStatus> {
        self.0
            .running
            .lock()
            .values()
            .map(|r| r.status.lock().clone())
            .collect()
    }

    /// Stops every input (the show ends).
    pub fn shutdown(&self) {
        let all: Vec<Running> = std::mem::take(&mut *self.0.running.lock())
            .into_values()
            .collect();
        stop_all(all);
    }
}

/// Stops inputs, waiting for their threads together, a while at most.
fn stop_all(all: Vec<Running>) {
    for r in &all {
        r.stop.store(true, Ordering::Relaxed);
    }
    let deadline = Instant::now() + STOP_WAIT;
    for r in all {
        stop(r, deadline);
    }
}

/// Waits (until `deadline`) for a stopped input's thread.
fn stop(mut r: Running, deadline: Instant) {
    r.stop.store(true, Ordering::Relaxed);
    if let Some(t) = r.thread.take() {
        if !cuecast_engine::join::join_until(t, deadline) {
            tracing::warn!(
                "input {:?} did not stop within {} s: left to end by itself",
                r.input.name,
                STOP_WAIT.as_secs()
            );
        }
    }
}

/// One input's thread: its pipeline, started again with backoff while it fails.
struct Supervisor {
    input: Input,
    status: Arc<Mutex<InputStatus>>,
    stop: Arc<AtomicBool>,
    feed: Arc<Mutex<Feed>>,
    events: Events,
    audio: Option<ProgramAudio>,
    fallback: Arc<Mutex<(VideoFallback, std::path::PathBuf)>>,
}

/// When one run of an input's pipeline last gave a frame.
struct Frames {
    last: Mutex<Option<Instant>>,
}

impl Supervisor {
    fn run(self) {
        let mut attempt = 0u32;
        while !self.stopped() {
            let started = Instant::now();
            let (outcome, live_since) = self.session();
            let Err(why) = outcome else {
                // Played through (a file played once): what feeds the model is over.
                if !self.stopped() {
                    self.fall_back();
                }
                break;
            };
            let why = self.scrubbed(why);
            if live_since.is_some_and(|t| t.elapsed() >= STABLE) {
                attempt = 0;
            }
            attempt += 1;
            self.fall_back();
            let error = format!(
                "inputs.{}.{}: {why}",
                self.input.name,
                self.input.kind.field()
            );
            tracing::warn!("input {:?}: {error}; retrying", self.input.name);
            {
                let mut s = self.status.lock();
                s.state = InputState::Retrying;
                s.attempt = attempt;
                s.reconnects += 1;
                s.error = Some(error);
            }
            self.tell();
            let wait = BACKOFF_S[(attempt as usize - 1).min(BACKOFF_S.len() - 1)];
            let until = started.max(Instant::now()) + Duration::from_secs_f64(wait);
            while Instant::now() < until && !self.stopped() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.status.lock().state = InputState::Stopped;
    }

    /// The input is down: when it feeds the model, the model is given the show's
    /// `video_fallback` (held: its last frame stays, as the model's video input does
    /// by itself).
    fn fall_back(&self) {
        let video = {
            let f = self.feed.lock();
            f.video
                .clone()
                .filter(|_| f.input.as_ref() == Some(&self.input.name))
        };
        let Some(video) = video else { return };
        let (w, h) = (video.input().width as usize, video.input().height as usize);
        let (fallback, media) = self.fallback.lock().clone();
        let picture = match &fallback {
            VideoFallback::Hold => return,
            VideoFallback::Black => Ok(RgbImage {
                width: w,
                height: h,
                data: vec![0; w * h * 3],
            }),
            VideoFallback::Still(name) => cuecast_engine::media::load(&media, name, w, h),
        };
        match picture {
            Ok(p) => video.push(p),
            Err(e) => tracing::warn!(
                "input {:?} is down and its fallback could not be read ({e}): the model keeps its last frame",
                self.input.name
            ),
        }
    }

    /// `text` without the input's secrets: a GStreamer error may quote its location,
    /// and an RTMP URL holds the stream's key.
    fn scrubbed(&self, text: String) -> String {
        let mut text = text;
        match &self.input.kind {
            InputKind::Rtmp { url } => {
                let u = url.expose();
                text = text.replace(u, &self.input.kind.source());
                // And its parts, wherever a message quotes them on their own: the
                // path's last part (the key) and a user's password.
                let rest = u.split_once("://").map_or(u, |(_, r)| r);
                let key = rest.rsplit('/').next().unwrap_or_default();
                let authority = rest.split('/').next().unwrap_or_default();
                let user = authority.rsplit_once('@').map(|(user, _)| user);
                for secret in [Some(key), user].into_iter().flatten() {
                    if secret.len() >= 4 && !authority.ends_with(secret) {
                        text = text.replace(secret, "<secret>");
                    }
                }
            }
            InputKind::Srt {
                passphrase: Some(p),
                ..
            } => text = text.replace(p.expose(), "<passphrase>"),
            _ => {}
        }
        text
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn tell(&self) {
        let s = self.status.lock().clone();
        self.events.send(Event::InputState {
            input: s.name,
            state: s.state,
            attempt: s.attempt,
            error: s.error,
        });
    }

    fn set_state(&self, state: InputState) {
        let changed = {
            let mut s = self.status.lock();
            let changed = s.state != state;
            s.state = state;
            if state == InputState::Live {
                s.error = None;
                s.attempt = 0;
            }
            changed
        };
        if changed {
            if state == InputState::Live {
                tracing::info!("input {:?} is live", self.input.name);
            }
            self.tell();
        }
    }

    /// One run of the pipeline, until it fails (why) or the input stops (`Ok`); and
    /// when it went live.
    fn session(&self) -> (Result<(), String>, Option<Instant>) {
        self.set_state(InputState::Connecting);
        let frames = Arc::new(Frames {
            last: Mutex::new(None),
        });
        let pipeline = match self.build(frames.clone()) {
            Ok(p) => p,
            Err(e) => return (Err(e), None),
        };
        let result = self.watch(&pipeline, &frames);
        let _ = pipeline.set_state(gst::State::Null);
        result
    }

    fn watch(
        &self,
        pipeline: &gst::Pipeline,
        frames: &Frames,
    ) -> (Result<(), String>, Option<Instant>) {
        if pipeline.set_state(gst::State::Playing).is_err() {
            return (
                Err(first_error(pipeline).unwrap_or_else(|| "cannot start".into())),
                None,
            );
        }
        let Some(bus) = pipeline.bus() else {
            return (Err("no bus".into()), None);
        };
        let started = Instant::now();
        let mut live_since = None;
        let waits = !matches!(
            self.input.kind,
            InputKind::Srt {
                mode: SrtMode::Listener,
                ..
            }
        );
        loop {
            if self.stopped() {
                return (Ok(()), live_since);
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
                match msg.view() {
                    gst::MessageView::Error(e) => {
                        return (Err(e.error().to_string()), live_since);
                    }
                    gst::MessageView::Application(a)
                        if a.structure().is_some_and(|s| s.name() == ENDED) =>
                    {
                        match self.input.kind {
                            InputKind::File { looped: false, .. } => return (Ok(()), live_since),
                            InputKind::File { looped: true, .. } => {
                                let pad = a.structure().and_then(|s| s.get::<gst::Pad>("pad").ok());
                                let seek = gst::event::Seek::new(
                                    1.0,
                                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                                    gst::SeekType::Set,
                                    gst::ClockTime::ZERO,
                                    gst::SeekType::None,
                                    gst::ClockTime::NONE,
                                );
                                if !pad.is_some_and(|p| p.send_event(seek)) {
                                    return (
                                        Err("the file cannot be looped (seek refused)".into()),
                                        live_since,
                                    );
                                }
                            }
                            _ => return (Err("the stream ended".into()), live_since),
                        }
                    }
                    gst::MessageView::Eos(_) => match self.input.kind {
                        // Played once: done, not failed.
                        InputKind::File { looped: false, .. } => return (Ok(()), live_since),
                        InputKind::File { looped: true, .. } => {
                            let seek = pipeline.seek_simple(
                                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                                gst::ClockTime::ZERO,
                            );
                            if seek.is_err() {
                                return (
                                    Err("the file cannot be looped (seek refused)".into()),
                                    live_since,
                                );
                            }
                        }
                        _ => return (Err("the stream ended".into()), live_since),
                    },
                    gst::MessageView::Application(a)
                        if a.structure().is_some_and(|s| s.name() == NO_MEDIA) =>
                    {
                        let what = a
                            .structure()
                            .and_then(|s| s.get::<String>("what").ok())
                            .unwrap_or_default();
                        return (Err(what), live_since);
                    }
                    _ => {}
                }
            }
            let last = *frames.last.lock();
            match last {
                Some(t) if t.elapsed() >= STALE => {
                    return (
                        Err(format!("nothing came for {} s", STALE.as_secs())),
                        live_since,
                    );
                }
                Some(_) if live_since.is_none() => {
                    live_since = Some(Instant::now());
                    self.set_state(InputState::Live);
                }
                None if waits && started.elapsed() >= FIRST_FRAME => {
                    return (
                        Err(format!("nothing came within {} s", FIRST_FRAME.as_secs())),
                        None,
                    );
                }
                _ => {}
            }
        }
    }

    /// The input's pipeline: its source, decoded where it needs to be; its pictures
    /// converted to RGB at the model's input size into an appsink that feeds the model
    /// (when this input is the show's `video_input`); its sound to 48 kHz stereo into
    /// one that feeds the program audio (when the mix takes it). Both branches are made
    /// before the pipeline starts (so they get its clock and base time as it does), and
    /// a decoded stream's pads are linked to them as they appear.
    fn build(&self, frames: Arc<Frames>) -> Result<gst::Pipeline, String> {
        let make = |factory: &str| {
            gst::ElementFactory::make(factory).build().map_err(|_| {
                format!("GStreamer has no {factory} element (is its plugin installed?)")
            })
        };
        let pipeline = gst::Pipeline::with_name(&format!("input-{}", self.input.name));
        let (w, h) = self
            .feed
            .lock()
            .video
            .as_ref()
            .map(|v| (v.input().width, v.input().height))
            .unwrap_or(IDLE_SIZE);
        let taps = Taps {
            name: self.input.name.clone(),
            feed: self.feed.clone(),
            status: self.status.clone(),
            audio: self.audio.clone(),
            frames,
            // A file plays at its own rate; a live source is taken as it comes.
            sync: matches!(self.input.kind, InputKind::File { .. }),
            size: (w, h),
        };
        let source = match &self.input.kind {
            InputKind::Test { pattern, tone_hz } => {
                let src = gst::ElementFactory::make("videotestsrc")
                    .property("is-live", true)
                    .property_from_str("pattern", pattern)
                    .build()
                    .map_err(|e| e.to_string())?;
                pipeline.add(&src).map_err(|e| e.to_string())?;
                src.link(&taps.video(&pipeline)?)
                    .map_err(|e| e.to_string())?;
                if let Some(hz) = tone_hz {
                    let tone = gst::ElementFactory::make("audiotestsrc")
                        .property("is-live", true)
                        .property("freq", *hz)
                        .property("volume", 0.5)
                        .build()
                        .map_err(|e| e.to_string())?;
                    pipeline.add(&tone).map_err(|e| e.to_string())?;
                    tone.link(&taps.audio(&pipeline)?)
                        .map_err(|e| e.to_string())?;
                }
                return Ok(pipeline);
            }
            InputKind::Alsa { .. } | InputKind::Pulse { .. } => {
                let src = match &self.input.kind {
                    InputKind::Alsa { device } => {
                        let src = make("alsasrc")?;
                        src.set_property("device", device);
                        src
                    }
                    InputKind::Pulse { device } => {
                        let src = make("pulsesrc")?;
                        if let Some(d) = device {
                            src.set_property("device", d);
                        }
                        src
                    }
                    _ => unreachable!(),
                };
                pipeline.add(&src).map_err(|e| e.to_string())?;
                src.link(&taps.audio(&pipeline)?)
                    .map_err(|e| e.to_string())?;
                return Ok(pipeline);
            }
            InputKind::Srt {
                mode,
                address,
                latency_ms,
                passphrase,
                streamid,
            } => {
                let mode = mode.as_str();
                let src = make("srtsrc")?;
                src.set_property("uri", format!("srt://{address}?mode={mode}"));
                src.set_property("latency", *latency_ms as i32);
                if let Some(p) = passphrase {
                    src.set_property("passphrase", p.expose());
                }
                if let Some(id) = streamid {
                    src.set_property("streamid", id);
                }
                src
            }
            InputKind::Rtmp { url } => {
                let src = make("rtmp2src")?;
                src.set_property("location", url.expose());
                src
            }
            InputKind::File { path, .. } => {
                // Not following links: a link in the media folder may name any file.
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.is_file() => {}
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err("a link, not a file of the media folder".into())
                    }
                    _ => return Err("no such file in the media folder".into()),
                }
                let src = make("filesrc")?;
                src.set_property("location", path);
                src
            }
            InputKind::V4l2 { device } => {
                if !device.exists() {
                    return Err("no such device".into());
                }
                let src = make("v4l2src")?;
                src.set_property("device", device);
                src
            }
        };
        let decode = make("decodebin")?;
        pipeline
            .add_many([&source, &decode])
            .map_err(|e| e.to_string())?;
        source.link(&decode).map_err(|e| e.to_string())?;
        let sink_of = |made: Result<gst::Element, String>| -> Result<gst::Pad, String> {
            made?
                .static_pad("sink")
                .ok_or_else(|| "a branch without a sink".to_owned())
        };
        let video_sink = sink_of(taps.video(&pipeline))?;
        let audio_sink = sink_of(taps.audio(&pipeline))?;
        let weak = pipeline.downgrade();
        let (v, a) = (video_sink.clone(), audio_sink.clone());
        let (ended, linked) = (Arc::new(Mutex::new(0usize)), Arc::new(Mutex::new(0usize)));
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = weak.upgrade() else {
                return;
            };
            let kind = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_default();
            let to = if kind.starts_with("video/") {
                Some(&v)
            } else if kind.starts_with("audio/") {
                Some(&a)
            } else {
                None
            };
            if let Some(to) = to.filter(|p| !p.is_linked()) {
                if pad.link(to).is_ok() {
                    // The stream's end, told once every stream taken has ended: the
                    // pipeline's own EOS would wait for a branch no stream came for.
                    *linked.lock() += 1;
                    let (ended, linked, weak) = (ended.clone(), linked.clone(), weak.clone());
                    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
                        let eos = matches!(&info.data, Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos);
                        if eos {
                            let mut n = ended.lock();
                            *n += 1;
                            if *n >= *linked.lock() {
                                *n = 0;
                                if let Some(p) = weak.upgrade() {
                                    // With a stream's pad: a seek sent up it loops the file
                                    // (the pipeline's own would be refused by the branch no
                                    // stream came for).
                                    let s = gst::Structure::builder(ENDED).field("pad", pad.clone()).build();
                                    let _ = p.post_message(gst::message::Application::builder(s).build());
                                }
                            }
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                return;
            }
            // Anything else (a second stream): taken and dropped.
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
            {
                if pipeline.add(&sink).is_ok() {
                    let _ = sink.sync_state_with_parent();
                    if let Some(p) = sink.static_pad("sink") {
                        let _ = pad.link(&p);
                    }
                }
            }
        });
        let weak = pipeline.downgrade();
        let feeds_model = self.status.lock().feeds_model;
        decode.connect_no_more_pads(move |_| {
            let (video, sound) = (video_sink.is_linked(), audio_sink.is_linked());
            let missing = if !video && !sound {
                "the stream has neither video nor sound"
            } else if feeds_model && !video {
                "the stream has no video"
            } else {
                return;
            };
            if let Some(pipeline) = weak.upgrade() {
                let s = gst::Structure::builder(NO_MEDIA)
                    .field("what", missing)
                    .build();
                let _ = pipeline.post_message(gst::message::Application::builder(s).build());
            }
        });
        Ok(pipeline)
    }
}

/// Where an input's decoded pictures and sound go: the model's video input and the
/// program audio. Any of them arriving keeps the input live.
#[derive(Clone)]
struct Taps {
    name: String,
    feed: Arc<Mutex<Feed>>,
    status: Arc<Mutex<InputStatus>>,
    audio: Option<ProgramAudio>,
    frames: Arc<Frames>,
    sync: bool,
    /// The size pictures are made at.
    size: (u32, u32),
}

impl Taps {
    /// Pictures to RGB at the model's input size, into the model's video input when
    /// this input feeds it. Returns the branch's first element.
    fn video(&self, pipeline: &gst::Pipeline) -> Result<gst::Element, String> {
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", self.size.0 as i32)
            .field("height", self.size.1 as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let (first, sink) = chain(pipeline, &["videoconvert", "videoscale"], caps, self.sync)?;
        let me = self.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    *me.frames.last.lock() = Some(Instant::now());
                    me.status.lock().frames += 1;
                    let video = {
                        let f = me.feed.lock();
                        f.video
                            .clone()
                            .filter(|_| f.input.as_ref() == Some(&me.name))
                    };
                    if let Some(video) = video {
                        push(&video, &sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(first)
    }

    /// Sound to 48 kHz stereo, into the program audio when the mix takes this input.
    fn audio(&self, pipeline: &gst::Pipeline) -> Result<gst::Element, String> {
        let caps = gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("rate", crate::audio::RATE as i32)
            .field("channels", crate::audio::CHANNELS as i32)
            .field("layout", "interleaved")
            .build();
        let (first, sink) = chain(
            pipeline,
            &["audioconvert", "audioresample"],
            caps,
            self.sync,
        )?;
        let me = self.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    *me.frames.last.lock() = Some(Instant::now());
                    if let (Some(program), Some(buffer)) = (&me.audio, sample.buffer()) {
                        if let Ok(map) = buffer.map_readable() {
                            let samples: Vec<f32> = map
                                .chunks_exact(4)
                                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                                .collect();
                            program.push(&me.name, &samples);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(first)
    }
}

/// `factories ! capsfilter(caps) ! appsink` in `pipeline`: its first element and sink.
fn chain(
    pipeline: &gst::Pipeline,
    factories: &[&str],
    caps: gst::Caps,
    sync: bool,
) -> Result<(gst::Element, gst_app::AppSink), String> {
    let mut elements = Vec::new();
    for f in factories {
        elements.push(
            gst::ElementFactory::make(f)
                .build()
                .map_err(|_| format!("GStreamer has no {f} element (is its plugin installed?)"))?,
        );
    }
    elements.push(
        gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()
            .map_err(|e| e.to_string())?,
    );
    // Not part of the pipeline's preroll: a branch whose stream never comes (a file
    // without sound) must not hold the pipeline out of PLAYING.
    let sink = gst_app::AppSink::builder()
        .max_buffers(8)
        .drop(true)
        .sync(sync)
        .async_(false)
        .build();
    elements.push(sink.clone().upcast());
    pipeline.add_many(&elements).map_err(|e| e.to_string())?;
    gst::Element::link_many(&elements).map_err(|e| e.to_string())?;
    Ok((elements[0].clone(), sink))
}

/// The message an input's pipeline posts when its stream turns out to lack what it is
/// for (`what` says which).
const NO_MEDIA: &str = "cuecast-input-no-media";
/// The message an input's pipeline posts when every stream it takes has ended.
const ENDED: &str = "cuecast-input-ended";

/// A decoded RGB frame into the model's video input.
fn push(video: &VideoIn, sample: &gst::Sample) {
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
        return;
    };
    let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
        return;
    };
    let Ok(map) = buffer.map_readable() else {
        return;
    };
    let _ = video.push_raw(
        &map,
        info.width() as usize,
        info.height() as usize,
        info.stride()[0] as usize,
        PixelLayout::Rgb,
    );
}
