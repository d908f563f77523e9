//! Outputs: where the show's frames go (SRT, RTMP, a recording, the preview), each one
//! unable to hurt the others or the show.
//!
//! The show pipeline ends in a tee (`program`). Each encoder profile in use hangs one
//! branch off it, behind a leaky queue: convert, scale, rate, x264 (+ AAC silence),
//! into appsinks. That is the encode-once part: every output that uses the profile gets
//! the same encoded samples. Each SRT, RTMP or record output is then a pipeline of its
//! own (appsrc → mux → sink), fed from those appsinks through non-blocking, leaky
//! appsrcs. So a network sink that errors, blocks or vanishes only ever takes down its
//! own little pipeline: the tee, the encoders, the generator and the other outputs
//! never see its flow errors (a sink's error inside a shared pipeline would travel
//! back up through the tee and stop the source).
//!
//! One supervisor thread owns all of it. It starts outputs, tears them down on error,
//! and restarts them with OBS-like backoff (2 s, ×1.5, jitter, capped); each output's
//! state is an explicit [`OutputState`]. GStreamer's own sinks never reconnect
//! (`rtmp2sink`, and an SRT caller whose listener left, just error out), so the
//! daemon owns reconnection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cuecast_engine::take::utc_stamp;

use axum::body::Bytes;
use gst::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::config::{Output, OutputKind, Profile, SrtMode, Video};
use crate::delivery::{Probe, Syncer, Tracker, Verdict};
use crate::events::Events;
use crate::lock;

/// Where an output is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    /// Started; the peer has taken nothing yet (or, for an SRT listener, no receiver
    /// is connected).
    Connecting,
    /// The peer takes data: an acknowledged RTMP publish whose bytes flow, SRT
    /// receivers acknowledging, a file growing.
    Live,
    /// Failed; waiting to try again.
    Retrying,
    /// Gave up (too many attempts, or a setting that cannot work); needs a start.
    Failed,
    /// Stopped by the user (or `enabled: false`).
    Stopped,
}

/// What the API and `/metrics` show of an output. No secrets.
#[derive(Debug, Clone, Serialize)]
pub struct OutputStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: String,
    pub profile: Option<String>,
    pub state: OutputState,
    pub bytes: u64,
    pub reconnects: u64,
    pub attempt: u32,
    pub last_error: Option<String>,
    /// Connected SRT receivers (SRT outputs only).
    pub receivers: Option<u32>,
    /// Seconds until the next attempt, when retrying.
    pub retry_in_s: Option<f64>,
    /// The file being written, for recordings.
    pub file: Option<String>,
    /// Whether it came from the config file (`false`: added over the API).
    pub from_config: bool,
}

/// Why an output command was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("no output named {0:?}")]
    Unknown(String),
    #[error("an output named {0:?} exists already")]
    Exists(String),
    #[error("the outputs have shut down")]
    Gone,
}

enum Command {
    /// The config's outputs now: add, remove, restart what changed.
    Apply(Vec<Output>),
    Add(Box<Output>, mpsc::Sender<Result<(), OutputError>>),
    Start(String, mpsc::Sender<Result<(), OutputError>>),
    Stop(String, mpsc::Sender<Result<(), OutputError>>),
    Remove(String, mpsc::Sender<Result<(), OutputError>>),
    /// Finish recordings and close everything.
    Shutdown(mpsc::Sender<()>),
}

enum Message {
    Command(Command),
    /// An output's pipeline reported an error.
    Failed {
        name: String,
        generation: u64,
        error: String,
    },
    /// An output delivered its first buffer.
    Live {
        name: String,
        generation: u64,
    },
}

/// The outputs of one show. Cheap to clone; commands go to the supervisor thread.
#[derive(Clone)]
pub struct Outputs {
    tx: mpsc::Sender<Message>,
    table: Arc<Mutex<BTreeMap<String, Entry>>>,
    encoders: Arc<Mutex<Vec<Arc<EncoderCounts>>>>,
    preview: tokio::sync::watch::Receiver<Option<Bytes>>,
}

/// An output's row in the shared table.
#[derive(Clone)]
struct Entry {
    status: OutputStatus,
    bytes: Arc<AtomicU64>,
}

impl Outputs {
    /// Starts the supervisor for a show pipeline whose program feed is `program` (a
    /// tee with `allow-not-linked=true`), then applies `outputs`.
    pub fn start(
        pipeline: &gst::Pipeline,
        program: &gst::Element,
        video: Video,
        outputs: Vec<Output>,
        events: Events,
    ) -> Outputs {
        let (tx, rx) = mpsc::channel();
        let table = Arc::new(Mutex::new(BTreeMap::new()));
        let encoders = Arc::new(Mutex::new(Vec::new()));
        let (preview_tx, preview) = tokio::sync::watch::channel(None);
        let mut supervisor = Supervisor {
            pipeline: pipeline.clone(),
            program: program.clone(),
            video,
            tx: tx.clone(),
            table: table.clone(),
            encoder_table: encoders.clone(),
            events,
            outputs: BTreeMap::new(),
            encoders: BTreeMap::new(),
            preview: Arc::new(preview_tx),
            next_generation: 1,
            rng: seed_rng(),
            next_check: Instant::now(),
            closing: false,
        };
        std::thread::Builder::new()
            .name("cuecast-outputs".into())
            .spawn(move || supervisor.run(rx))
            .expect("cannot start the outputs thread");
        let _ = tx.send(Message::Command(Command::Apply(outputs)));
        Outputs {
            tx,
            table,
            encoders,
            preview,
        }
    }

    pub fn apply(&self, outputs: Vec<Output>) {
        let _ = self.tx.send(Message::Command(Command::Apply(outputs)));
    }

    fn ask(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<(), OutputError>>) -> Command,
    ) -> Result<(), OutputError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Message::Command(make(reply)))
            .map_err(|_| OutputError::Gone)?;
        answer.recv().map_err(|_| OutputError::Gone)?
    }

    pub fn add(&self, output: Output) -> Result<(), OutputError> {
        self.ask(|r| Command::Add(Box::new(output), r))
    }

    pub fn start_output(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Start(name.to_owned(), r))
    }

    pub fn stop_output(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Stop(name.to_owned(), r))
    }

    pub fn remove(&self, name: &str) -> Result<(), OutputError> {
        self.ask(|r| Command::Remove(name.to_owned(), r))
    }

    /// Every output, by name.
    pub fn list(&self) -> Vec<OutputStatus> {
        lock(&self.table)
            .values()
            .map(|e| {
                let mut s = e.status.clone();
                s.bytes = e.bytes.load(Ordering::Relaxed);
                s
            })
            .collect()
    }

    /// The encoders running now.
    pub fn encoders(&self) -> Vec<EncoderStatus> {
        lock(&self.encoders)
            .iter()
            .map(|c| EncoderStatus {
                profile: c.profile.clone(),
                frames_in: c.frames_in.load(Ordering::Relaxed),
                frames_out: c.frames_out.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// The newest preview JPEG, and a way to wait for the next.
    pub fn preview(&self) -> tokio::sync::watch::Receiver<Option<Bytes>> {
        self.preview.clone()
    }

    /// Finishes recordings (end-of-stream through the muxer) and closes every output;
    /// returns when done or after `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        let (reply, done) = mpsc::channel();
        if self
            .tx
            .send(Message::Command(Command::Shutdown(reply)))
            .is_ok()
        {
            let _ = done.recv_timeout(timeout);
        }
    }
}

/// A branch hanging off a tee: a bin and the tee pad feeding it.
struct Branch {
    bin: gst::Bin,
    tee_pad: gst::Pad,
}

impl Branch {
    /// The bin is brought to PLAYING before it is linked: a pad of a bin that is not
    /// yet active answers FLUSHING, tee passes that back to the source, and a source
    /// that gets FLUSHING pauses its task for good, the whole show with it.
    fn attach(
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        bin: gst::Bin,
    ) -> Result<Branch, String> {
        pipeline
            .add(&bin)
            .map_err(|e| format!("cannot add {}: {e}", bin.name()))?;
        let abandon = |bin: &gst::Bin| {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(bin);
        };
        // The show pipeline is playing whenever outputs run.
        if let Err(e) = bin.set_state(gst::State::Playing) {
            abandon(&bin);
            return Err(format!("branch did not start: {e}"));
        }
        let Some(sink) = bin.static_pad("sink") else {
            abandon(&bin);
            return Err("branch without a sink pad".to_owned());
        };
        let Some(tee_pad) = tee.request_pad_simple("src_%u") else {
            abandon(&bin);
            return Err("the program tee gave no pad".to_owned());
        };
        if let Err(e) = tee_pad.link(&sink) {
            tee.release_request_pad(&tee_pad);
            abandon(&bin);
            return Err(format!("cannot link {}: {e:?}", bin.name()));
        }
        Ok(Branch { bin, tee_pad })
    }

    /// Unlinks at a moment no buffer is passing (an idle probe), then stops and removes
    /// the bin away from the streaming thread.
    fn detach(self, pipeline: &gst::Pipeline, tee: &gst::Element) {
        let Branch { bin, tee_pad } = self;
        let pipeline = pipeline.clone();
        let tee = tee.clone();
        let sink = bin.static_pad("sink");
        let job = Mutex::new(Some((bin, pipeline, tee)));
        tee_pad.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
            if let Some(sink) = &sink {
                let _ = pad.unlink(sink);
            }
            if let Some((bin, pipeline, tee)) = lock(&job).take() {
                let pad = pad.clone();
                std::thread::spawn(move || {
                    let _ = bin.set_state(gst::State::Null);
                    let _ = pipeline.remove(&bin);
                    tee.release_request_pad(&pad);
                });
            }
            gst::PadProbeReturn::Remove
        });
    }
}

/// An output pipeline subscribed to an encoder.
struct Subscriber {
    name: String,
    generation: u64,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    /// Until the first keyframe, nothing is sent (a decoder cannot start mid-GOP).
    started: bool,
    /// The PTS of that keyframe: the output's timestamps start at zero from it.
    offset: gst::ClockTime,
    video_caps: Option<gst::Caps>,
    audio_caps: Option<gst::Caps>,
}

type Subscribers = Arc<Mutex<Vec<Subscriber>>>;

/// One profile's encode, shared by its outputs.
struct Encoder {
    branch: Branch,
    video_sink: gst_app::AppSink,
    subscribers: Subscribers,
    counts: Arc<EncoderCounts>,
}

/// Frames into an encoder branch and out of its encoder: the difference (beyond the
/// few in flight) is what its leaky queue dropped because the encoder fell behind.
#[derive(Debug, Default)]
pub struct EncoderCounts {
    pub profile: String,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
}

/// An encoder as `/api/v1/status` and `/metrics` show it.
#[derive(Debug, Clone, Serialize)]
pub struct EncoderStatus {
    pub profile: String,
    pub frames_in: u64,
    pub frames_out: u64,
}

impl Encoder {
    fn build(
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        profile: &Profile,
        n: u64,
    ) -> Result<Encoder, String> {
        let v = &profile.video;
        let keyint = ((v.fps as f64 * v.keyframe_s).round() as u32).max(1);
        let mut desc = format!(
            "queue leaky=downstream max-size-buffers=3 max-size-time=0 max-size-bytes=0 ! \
             videoconvert ! videoscale ! videorate skip-to-first=true ! \
             video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1 ! \
             x264enc tune=zerolatency speed-preset={preset} bitrate={kbps} key-int-max={keyint} ! \
             video/x-h264,profile={hp} ! h264parse config-interval=-1 ! \
             appsink name=video sync=false async=false max-buffers=30 drop=true",
            w = v.width,
            h = v.height,
            fps = v.fps,
            preset = v.preset,
            kbps = v.bitrate_kbps,
            hp = v.h264_profile,
        );
        if let Some(a) = &profile.audio {
            desc.push_str(&format!(
                " audiotestsrc is-live=true do-timestamp=true wave=silence samplesperbuffer=1024 ! \
                 audio/x-raw,rate={rate},channels={ch} ! audioconvert ! \
                 avenc_aac bitrate={bps} ! aacparse ! \
                 appsink name=audio sync=false async=false max-buffers=100 drop=true",
                rate = a.rate,
                ch = a.channels,
                bps = a.bitrate_kbps * 1000,
            ));
        }
        let bin = gst::parse::bin_from_description(&desc, true)
            .map_err(|e| format!("encoder for {}: {e}", profile.name))?;
        bin.set_property("name", format!("encode-{n}-{}", profile.name));
        let subscribers: Subscribers = Arc::new(Mutex::new(Vec::new()));
        let video_sink = appsink(&bin, "video")?;
        let subs = subscribers.clone();
        video_sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    fan_out_video(&subs, &sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        if profile.audio.is_some() {
            let subs = subscribers.clone();
            appsink(&bin, "audio")?.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        fan_out_audio(&subs, &sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        let counts = Arc::new(EncoderCounts {
            profile: profile.name.clone(),
            ..Default::default()
        });
        let count = |pad: Option<gst::Pad>, counter: fn(&EncoderCounts) -> &AtomicU64| {
            let counts = counts.clone();
            if let Some(pad) = pad {
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    counter(&counts).fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            }
        };
        count(bin.static_pad("sink"), |c| &c.frames_in);
        count(video_sink.static_pad("sink"), |c| &c.frames_out);
        let branch = Branch::attach(pipeline, tee, bin)?;
        Ok(Encoder {
            branch,
            video_sink,
            subscribers,
            counts,
        })
    }

    /// Asks x264 for a keyframe now, so a newly started output need not wait a GOP.
    /// Sent from its own thread: the event waits for the encoder's stream lock, and the
    /// supervisor must never wait on a streaming thread.
    fn request_keyframe(&self) {
        let sink = self.video_sink.clone();
        std::thread::spawn(move || {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            sink.send_event(event);
        });
    }
}

fn appsink(bin: &gst::Bin, name: &str) -> Result<gst_app::AppSink, String> {
    bin.by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| format!("no appsink {name}"))
}

/// A sample's presentation time as running time: encoders shift their output segment
/// (x264enc starts at 1000 hours, so DTS can precede PTS), so raw timestamps of audio
/// and video are not comparable; running times are.
fn running_time(sample: &gst::Sample, t: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(t?)
}

/// The buffer with its timestamps as running time minus `offset`: every output's
/// timeline starts at zero from its first keyframe.
fn rebased(sample: &gst::Sample, offset: gst::ClockTime) -> Option<gst::Buffer> {
    let buffer = sample.buffer()?;
    let pts = running_time(sample, buffer.pts())?.checked_sub(offset)?;
    let dts = running_time(sample, buffer.dts()).map(|d| d.saturating_sub(offset));
    let mut out = buffer.to_owned();
    let b = out.make_mut();
    b.set_pts(pts);
    b.set_dts(dts);
    Some(out)
}

fn fan_out_video(subs: &Subscribers, sample: &gst::Sample) {
    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps_owned()) else {
        return;
    };
    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    for s in lock(subs).iter_mut() {
        if !s.started {
            match (keyframe, running_time(sample, buffer.pts())) {
                (true, Some(pts)) => {
                    s.started = true;
                    s.offset = pts;
                }
                _ => continue,
            }
        }
        if s.video_caps.as_ref() != Some(&caps) {
            s.video.set_caps(Some(&caps));
            s.video_caps = Some(caps.clone());
        }
        if let Some(b) = rebased(sample, s.offset) {
            // A full appsrc drops its oldest buffer (leaky): this never blocks.
            let _ = s.video.push_buffer(b);
        }
    }
}

fn fan_out_audio(subs: &Subscribers, sample: &gst::Sample) {
    let Some(caps) = sample.caps_owned() else {
        return;
    };
    for s in lock(subs).iter_mut().filter(|s| s.started) {
        let Some(audio) = &s.audio else { continue };
        if s.audio_caps.as_ref() != Some(&caps) {
            audio.set_caps(Some(&caps));
            s.audio_caps = Some(caps.clone());
        }
        if let Some(b) = rebased(sample, s.offset) {
            let _ = audio.push_buffer(b);
        }
    }
}

/// An output's own pipeline (SRT, RTMP, record) while it runs.
struct Running {
    generation: u64,
    pipeline: gst::Pipeline,
    encoder: String,
    eos: Arc<AtomicBool>,
    sink: gst::Element,
    /// What the peer has taken in this attempt.
    tracker: Tracker,
    /// A recording's once-a-second flush to the disk.
    _syncer: Option<Syncer>,
}

/// A preview branch while it runs.
struct PreviewRun {
    branch: Branch,
}

enum Run {
    Pipeline(Running),
    Preview(PreviewRun),
}

/// The supervisor's record of an output.
/// How often the sinks' delivery counters are read.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long an output must stay live before its attempts count from zero again.
const STABLE: Duration = Duration::from_secs(10);

struct Managed {
    output: Output,
    from_config: bool,
    state: OutputState,
    run: Option<Run>,
    generation: u64,
    attempt: u32,
    /// When it last went live; attempts count from zero again only once it has stayed
    /// live for [`STABLE`] (a server that takes the connection and then refuses the
    /// stream would otherwise reset the count at every try).
    live_since: Option<Instant>,
    retry_at: Option<Instant>,
    reconnects: u64,
    last_error: Option<String>,
    file: Option<PathBuf>,
    bytes: Arc<AtomicU64>,
}

struct Supervisor {
    pipeline: gst::Pipeline,
    program: gst::Element,
    video: Video,
    tx: mpsc::Sender<Message>,
    table: Arc<Mutex<BTreeMap<String, Entry>>>,
    encoder_table: Arc<Mutex<Vec<Arc<EncoderCounts>>>>,
    events: Events,
    outputs: BTreeMap<String, Managed>,
    /// Keyed by [`Profile::encode_key`].
    encoders: BTreeMap<String, Encoder>,
    preview: Arc<tokio::sync::watch::Sender<Option<Bytes>>>,
    next_generation: u64,
    rng: u64,
    /// When the sinks' counters are read next.
    next_check: Instant,
    /// Set at shutdown: branches then stay in the show pipeline and stop with it,
    /// rather than being detached by threads that could outlive the process's main.
    closing: bool,
}

impl Supervisor {
    fn run(&mut self, rx: mpsc::Receiver<Message>) {
        loop {
            let next = self
                .outputs
                .values()
                .filter_map(|m| m.retry_at)
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
                        if m.generation == generation && m.state == OutputState::Connecting {
                            m.live_since = Some(Instant::now());
                            self.set_state(&name, OutputState::Live);
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
                if m.live_since
                    .is_some_and(|t| now.duration_since(t) >= STABLE)
                {
                    m.attempt = 0;
                }
            }
            let due: Vec<String> = self
                .outputs
                .iter()
                .filter(|(_, m)| m.retry_at.is_some_and(|t| t <= now))
                .map(|(n, _)| n.clone())
                .collect();
            for name in due {
                if let Some(m) = self.outputs.get_mut(&name) {
                    m.retry_at = None;
                    m.reconnects += 1;
                }
                self.launch(&name);
            }
            self.publish_all();
        }
    }

    fn command(&mut self, c: Command) {
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
                        m.retry_at = None;
                        if m.run.is_none() {
                            self.launch(&name);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Stop(name, reply) => {
                let r = if self.outputs.contains_key(&name) {
                    self.finish(&name);
                    if let Some(m) = self.outputs.get_mut(&name) {
                        m.output.enabled = false;
                    }
                    self.set_state(&name, OutputState::Stopped);
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
    fn apply(&mut self, outputs: Vec<Output>) {
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

    fn insert(&mut self, output: Output, from_config: bool) {
        let name = output.name.clone();
        let enabled = output.enabled;
        self.outputs.insert(
            name.clone(),
            Managed {
                output,
                from_config,
                state: OutputState::Stopped,
                run: None,
                generation: 0,
                attempt: 0,
                live_since: None,
                retry_at: None,
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

    fn drop_output(&mut self, name: &str) {
        self.finish(name);
        self.outputs.remove(name);
        lock(&self.table).remove(name);
        self.events
            .send(json!({"type": "output_removed", "output": name}));
        self.prune_encoders();
    }

    /// Starts (or restarts) an output.
    fn launch(&mut self, name: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        m.generation = generation;
        let output = m.output.clone();
        let bytes = m.bytes.clone();
        self.set_state(name, OutputState::Connecting);
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
                    m.run = Some(run);
                    m.file = file;
                }
                self.publish(name);
            }
            Err(e) => self.failed(name, generation, e),
        }
    }

    fn launch_preview(
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

    fn launch_pipeline(
        &mut self,
        output: &Output,
        generation: u64,
    ) -> Result<(Run, Option<PathBuf>), String> {
        let profile = output
            .profile
            .as_ref()
            .ok_or("this output needs an encoder profile")?;
        let has_audio = profile.audio.is_some();
        let (mux, sink, file) = match &output.kind {
            OutputKind::Srt { .. } => (
                "mpegtsmux name=mux alignment=7".to_owned(),
                "srtsink name=sink wait-for-connection=false async=false sync=false".to_owned(),
                None,
            ),
            OutputKind::Rtmp { .. } => (
                "flvmux name=mux streamable=true".to_owned(),
                "rtmp2sink name=sink async=false sync=false".to_owned(),
                None,
            ),
            OutputKind::Record { path } => {
                let file = record_path(path);
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    // No new file on a disk that cannot take one: the attempt fails with
                    // the reason, and the next one looks again.
                    if let Some(free) = free_bytes(dir).filter(|b| *b < MIN_FREE_BYTES) {
                        return Err(format!(
                            "disk full: {} has {} MB free (a recording needs {} MB to start)",
                            crate::user_path(dir),
                            free >> 20,
                            MIN_FREE_BYTES >> 20
                        ));
                    }
                }
                let mux = if file.extension().is_some_and(|e| e == "mp4") {
                    // Fragmented: a recording cut short by a crash stays playable.
                    "mp4mux name=mux fragment-duration=1000"
                } else {
                    "matroskamux name=mux"
                };
                (
                    mux.to_owned(),
                    "filesink name=sink sync=false async=false buffer-mode=unbuffered".to_owned(),
                    Some(file),
                )
            }
            OutputKind::Preview { .. } => unreachable!("previews are branches"),
        };
        let mut desc = format!(
            "appsrc name=video is-live=true format=time do-timestamp=false ! queue ! \
             h264parse ! {mux} ! {sink}"
        );
        if has_audio {
            desc.push_str(" appsrc name=audio is-live=true format=time do-timestamp=false ! queue ! aacparse ! mux.");
        }
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| format!("cannot build the output: {e}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_owned())?;
        pipeline.set_property("name", format!("output-{}-{generation}", output.name));
        let sink_el = pipeline.by_name("sink").ok_or("no sink")?;
        match &output.kind {
            OutputKind::Srt {
                mode,
                address,
                latency_ms,
                passphrase,
                streamid,
            } => {
                let mode = match mode {
                    SrtMode::Listener => "listener",
                    SrtMode::Caller => "caller",
                };
                sink_el.set_property("uri", format!("srt://{address}?mode={mode}"));
                sink_el.set_property("latency", *latency_ms as i32);
                if let Some(p) = passphrase {
                    sink_el.set_property("passphrase", p.expose());
                }
                if let Some(id) = streamid {
                    sink_el.set_property("streamid", id);
                }
            }
            OutputKind::Rtmp { url, key } => {
                let location = match key {
                    Some(k) => format!("{url}/{}", k.expose()),
                    None => url.clone(),
                };
                sink_el.set_property("location", location);
            }
            OutputKind::Record { .. } => {
                if let Some(f) = &file {
                    sink_el.set_property("location", f.to_string_lossy().as_ref());
                }
            }
            OutputKind::Preview { .. } => {}
        }
        let source = |n: &str| -> Result<gst_app::AppSrc, String> {
            let src = pipeline
                .by_name(n)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| format!("no appsrc {n}"))?;
            // A stalled network never blocks the encoder: the oldest data is dropped.
            src.set_property("block", false);
            src.set_property_from_str("leaky-type", "downstream");
            src.set_property("max-time", 2_000_000_000u64);
            src.set_property("max-bytes", 0u64);
            Ok(src)
        };
        let video_src = source("video")?;
        let audio_src = if has_audio {
            Some(source("audio")?)
        } else {
            None
        };
        let probe = match (&output.kind, &file) {
            (OutputKind::Srt { mode, .. }, _) => Probe::Srt {
                listener: *mode == SrtMode::Listener,
            },
            (OutputKind::Rtmp { .. }, _) => Probe::Rtmp,
            (_, Some(f)) => Probe::File(f.clone()),
            _ => unreachable!("every pipeline output is SRT, RTMP or a file"),
        };
        let tracker = Tracker::new(probe, output.kind.target(), Instant::now());
        let syncer = file.clone().map(Syncer::start);
        let eos = Arc::new(AtomicBool::new(false));
        let bus = pipeline.bus().ok_or("no bus")?;
        let tx = self.tx.clone();
        let name = output.name.clone();
        let eos_flag = eos.clone();
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = tx.send(Message::Failed {
                        name: name.clone(),
                        generation,
                        error: root_error(&e.error(), e.debug().as_deref()),
                    });
                }
                gst::MessageView::Eos(_) => eos_flag.store(true, Ordering::SeqCst),
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("did not start: {e}"));
        }
        let key = profile.encode_key();
        if !self.encoders.contains_key(&key) {
            let n = generation;
            let encoder = match Encoder::build(&self.pipeline, &self.program, profile, n) {
                Ok(e) => e,
                Err(e) => {
                    let _ = pipeline.set_state(gst::State::Null);
                    return Err(e);
                }
            };
            self.encoders.insert(key.clone(), encoder);
        }
        let encoder = &self.encoders[&key];
        lock(&encoder.subscribers).push(Subscriber {
            name: output.name.clone(),
            generation,
            video: video_src,
            audio: audio_src,
            started: false,
            offset: gst::ClockTime::ZERO,
            video_caps: None,
            audio_caps: None,
        });
        encoder.request_keyframe();
        Ok((
            Run::Pipeline(Running {
                generation,
                pipeline,
                encoder: key,
                eos,
                sink: sink_el,
                tracker,
                _syncer: syncer,
            }),
            file,
        ))
    }

    /// Reads what each running output's peer has taken: delivered bytes, `live` when
    /// the peer takes data, back to `connecting` when a listener loses its last
    /// receiver, a failed attempt when nothing moves in time.
    fn check_delivery(&mut self, now: Instant) {
        let mut changes = Vec::new();
        for (name, m) in &mut self.outputs {
            let Some(Run::Pipeline(r)) = &mut m.run else {
                continue;
            };
            let reading = r.tracker.probe().read(&r.sink);
            let (delivered, verdict) = r.tracker.update(reading, now);
            m.bytes.fetch_add(delivered, Ordering::Relaxed);
            changes.push((name.clone(), r.generation, verdict));
        }
        for (name, generation, verdict) in changes {
            let state = self.outputs[&name].state;
            match verdict {
                Verdict::Delivering if state == OutputState::Connecting => {
                    if let Some(m) = self.outputs.get_mut(&name) {
                        m.live_since = Some(now);
                    }
                    self.set_state(&name, OutputState::Live);
                }
                Verdict::Waiting if state == OutputState::Live => {
                    if let Some(m) = self.outputs.get_mut(&name) {
                        m.live_since = None;
                    }
                    self.set_state(&name, OutputState::Connecting);
                }
                Verdict::Failed(reason) => self.failed(&name, generation, reason),
                _ => {}
            }
        }
    }

    /// An output's pipeline failed: tear it down and plan the next attempt.
    fn failed(&mut self, name: &str, generation: u64, error: String) {
        let Some(m) = self.outputs.get(name) else {
            return;
        };
        if m.generation != generation
            || !matches!(m.state, OutputState::Connecting | OutputState::Live)
        {
            // An old pipeline's last words, or the later errors of an attempt that has
            // failed already (the first is the root; one attempt counts once).
            return;
        }
        self.halt(name);
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        m.attempt += 1;
        m.live_since = None;
        m.last_error = Some(error.clone());
        let r = m.output.reconnect;
        let state = if r.max_attempts > 0 && m.attempt > r.max_attempts {
            OutputState::Failed
        } else {
            // ±20 % so that outputs failing together do not retry in lockstep.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let jitter = 0.8 + 0.4 * (self.rng % 1000) as f64 / 1000.0;
            let delay = r.delay_s(m.attempt) * jitter;
            m.retry_at = Some(Instant::now() + Duration::from_secs_f64(delay));
            OutputState::Retrying
        };
        tracing::warn!(
            "output {name}: {error} ({})",
            match state {
                OutputState::Failed => "giving up".to_owned(),
                _ => format!("retry {}", self.outputs[name].attempt),
            }
        );
        self.set_state(name, state);
    }

    /// Stops an output's pipeline or branch, if running; leaves its record.
    /// Sends end-of-stream into a recording's pipeline, so its muxer writes the file's
    /// index; returns the flag its pipeline raises once that is done. `None` for other
    /// outputs and recordings not running.
    fn end_recording(&mut self, name: &str) -> Option<Arc<AtomicBool>> {
        let m = self.outputs.get(name)?;
        let Some(Run::Pipeline(r)) = &m.run else {
            return None;
        };
        if !matches!(m.output.kind, OutputKind::Record { .. }) {
            return None;
        }
        if let Some(enc) = self.encoders.get(&r.encoder) {
            let mut subs = lock(&enc.subscribers);
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

    /// Stops an output; a recording is finished first (up to 3 s), so that a recording
    /// stopped or removed over the API, or by a config edit, is a complete file.
    fn finish(&mut self, name: &str) {
        if let Some(eos) = self.end_recording(name) {
            wait_for_eos(&[eos], Duration::from_secs(3));
            if let Some(f) = self.outputs.get(name).and_then(|m| m.file.clone()) {
                tracing::info!("recording complete: {}", f.display());
            }
        }
        self.halt(name);
    }

    fn halt(&mut self, name: &str) {
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        m.retry_at = None;
        m.live_since = None;
        let Some(run) = m.run.take() else { return };
        match run {
            Run::Preview(p) if !self.closing => p.branch.detach(&self.pipeline, &self.program),
            Run::Preview(_) => {}
            Run::Pipeline(r) => {
                if let Some(enc) = self.encoders.get(&r.encoder) {
                    lock(&enc.subscribers)
                        .retain(|s| !(s.name == name && s.generation == r.generation));
                }
                let _ = r.pipeline.set_state(gst::State::Null);
            }
        }
        self.prune_encoders();
    }

    /// Removes encoders no output uses any more.
    fn prune_encoders(&mut self) {
        let used: Vec<String> = self
            .outputs
            .values()
            .filter_map(|m| match &m.run {
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
                }
            }
        }
    }

    /// End of show: recordings get end-of-stream and are finished, then all stops.
    fn shutdown(&mut self) {
        self.closing = true;
        let names: Vec<String> = self.outputs.keys().cloned().collect();
        let finishing: Vec<_> = names.iter().filter_map(|n| self.end_recording(n)).collect();
        wait_for_eos(&finishing, Duration::from_secs(5));
        let names: Vec<String> = self.outputs.keys().cloned().collect();
        for name in names {
            self.halt(&name);
            let file = self.outputs[&name].file.clone();
            if let Some(f) = file {
                tracing::info!("recording complete: {}", f.display());
            }
        }
    }

    fn set_state(&mut self, name: &str, state: OutputState) {
        let Some(m) = self.outputs.get_mut(name) else {
            return;
        };
        let changed = m.state != state;
        m.state = state;
        if changed || state == OutputState::Retrying {
            self.events.send(json!({
                "type": "output_state",
                "output": name,
                "state": state,
                "attempt": m.attempt,
                "error": if state == OutputState::Live { None } else { m.last_error.as_ref() },
            }));
            if state == OutputState::Live {
                tracing::info!(
                    "output {name} live → {}",
                    m.file
                        .as_ref()
                        .map_or_else(|| m.output.kind.target(), |f| f.display().to_string())
                );
            }
        }
        self.publish(name);
    }

    fn publish(&self, name: &str) {
        let Some(m) = self.outputs.get(name) else {
            return;
        };
        let status = OutputStatus {
            name: name.to_owned(),
            kind: m.output.kind.type_name(),
            target: m.output.kind.target(),
            profile: m.output.profile.as_ref().map(|p| p.name.clone()),
            state: m.state,
            bytes: 0,
            reconnects: m.reconnects,
            attempt: m.attempt,
            last_error: m.last_error.clone(),
            receivers: match &m.run {
                Some(Run::Pipeline(r)) => r.tracker.receivers(),
                _ => None,
            },
            retry_in_s: m
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64()),
            file: m.file.as_ref().map(|f| f.display().to_string()),
            from_config: m.from_config,
        };
        lock(&self.table).insert(
            name.to_owned(),
            Entry {
                status,
                bytes: m.bytes.clone(),
            },
        );
    }

    fn publish_all(&self) {
        for name in self.outputs.keys() {
            self.publish(name);
        }
        *lock(&self.encoder_table) = self.encoders.values().map(|e| e.counts.clone()).collect();
    }
}

/// An error as the user should read it: GStreamer's message, plus the sink's own
/// reason where its debug text has one ("Could not write to resource. (… No space
/// left on device)"), without the source location and element path before it.
fn root_error(error: &gst::glib::Error, debug: Option<&str>) -> String {
    let message = error.to_string();
    let detail = debug
        .and_then(|d| {
            d.lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .last()
        })
        .filter(|d| !message.contains(d));
    match detail {
        Some(d) => format!("{message} ({d})"),
        None => message,
    }
}

/// Waits until every flag is up, or `timeout`.
fn wait_for_eos(flags: &[Arc<AtomicBool>], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while flags.iter().any(|e| !e.load(Ordering::SeqCst)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The least free space a recording starts with.
const MIN_FREE_BYTES: u64 = 16 << 20;

/// Bytes free for an unprivileged writer in the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// `{time}` in a recording path becomes the UTC start time, so a restarted recording
/// opens a new file instead of overwriting the last. A file that holds anything is
/// never overwritten: `-2`, `-3`, ... goes before the extension instead (an empty one,
/// left by an attempt that failed at once, is reused rather than littered).
fn record_path(template: &Path) -> PathBuf {
    let text = template.to_string_lossy();
    let path = PathBuf::from(text.replace("{time}", &utc_stamp(SystemTime::now())));
    let free = |p: &PathBuf| std::fs::metadata(p).map_or(true, |m| m.len() == 0);
    if free(&path) {
        return path;
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().unwrap_or_default().to_string_lossy();
    (2..)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(free)
        .expect("some numbered name is free")
}

fn seed_rng() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_get_their_start_time() {
        let p = record_path(Path::new("rec/show-{time}.mkv"));
        let s = p.to_string_lossy();
        assert!(
            s.starts_with("rec/show-")
                && s.ends_with(".mkv")
                && s.len() == "rec/show-.mkv".len() + 15,
            "{s}"
        );
        assert_eq!(record_path(Path::new("a.mkv")), PathBuf::from("a.mkv"));
    }

    #[test]
    fn a_recording_never_overwrites_a_file() {
        let dir = std::env::temp_dir().join(format!("cuecast-record-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("show.mkv");
        std::fs::write(&first, b"kept").unwrap();
        assert_eq!(record_path(&first), dir.join("show-2.mkv"));
        std::fs::write(dir.join("show-2.mkv"), b"kept").unwrap();
        assert_eq!(record_path(&first), dir.join("show-3.mkv"));
        assert_eq!(std::fs::read(&first).unwrap(), b"kept");
        // An empty file (an attempt that failed at once) is taken again, not littered.
        std::fs::write(dir.join("show-3.mkv"), b"").unwrap();
        assert_eq!(record_path(&first), dir.join("show-3.mkv"));
        assert!(free_bytes(&dir).is_some_and(|b| b > 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
