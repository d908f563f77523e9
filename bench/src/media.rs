//! Media in and out through the daemon, as a show runs them: a camera's picture sent
//! over SRT into a video-to-video model and its restyled picture received over SRT
//! (glass to glass), a fast input into a slow model for minutes (does anything queue?),
//! and a model's sound against its picture at an SRT receiver (does it drift?).
//!
//! The "camera" is a GStreamer pipeline in this process whose picture is black or white
//! on demand, so the moment a change leaves it is known; the receiver decodes the
//! daemon's SRT output and sees the change by the picture's mean luma.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gst::prelude::*;
use serde_json::{json, Value};

use cuecast_tests::peers::{free_udp_port, SrtReceiver};

use crate::percentile;
use crate::show::Daemon;

/// SRT latency on both legs (the sender's input and the program output), ms.
const SRT_LATENCY_MS: u64 = 120;
/// The input's rate.
const INPUT_FPS: u64 = 30;
/// The show's rate.
const SHOW_FPS: f64 = 30.0;

/// A camera: black or white at 30 fps, H.264 in MPEG-TS over SRT to `port`.
struct Camera {
    pipeline: gst::Pipeline,
    level: Arc<AtomicU8>,
    /// When the first frame at the current level was handed to the encoder.
    changed: Arc<parking_lot::Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Camera {
    /// A camera as a producer's encoder would send it: 160x90 H.264 to an SRT listener.
    fn start(port: u16) -> Result<Camera> {
        Self::start_with(
            160,
            90,
            &format!(
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={INPUT_FPS} ! \
                 mpegtsmux alignment=7 ! \
                 srtsink uri=srt://127.0.0.1:{port}?mode=caller latency={SRT_LATENCY_MS} wait-for-connection=false"
            ),
        )
    }

    /// A camera of `width` x `height` whose I420 frames go into `chain`.
    fn start_with(width: usize, height: usize, chain: &str) -> Result<Camera> {
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=src is-live=true format=time do-timestamp=true \
             caps=video/x-raw,format=GRAY8,width={width},height={height},framerate={INPUT_FPS}/1 ! \
             videoconvert ! video/x-raw,format=I420 ! {chain}"
        ))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("no appsrc"))?;
        pipeline.set_state(gst::State::Playing)?;
        let level = Arc::new(AtomicU8::new(0));
        let changed = Arc::new(parking_lot::Mutex::new(Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (level, changed, stop) = (level.clone(), changed.clone(), stop.clone());
            std::thread::spawn(move || {
                let period = Duration::from_nanos(1_000_000_000 / INPUT_FPS);
                let mut next = Instant::now();
                let mut last = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    let v = level.load(Ordering::Relaxed);
                    let buffer = gst::Buffer::from_slice(vec![v; width * height]);
                    if v != last {
                        *changed.lock() = Instant::now();
                        last = v;
                    }
                    if src.push_buffer(buffer).is_err() {
                        break;
                    }
                    next += period;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Ok(Camera {
            pipeline,
            level,
            changed,
            stop,
            thread: Some(thread),
        })
    }

    /// Turns the picture black or white; returns when the first such frame was sent.
    fn show(&self, white: bool) -> Instant {
        let v = if white { 255 } else { 0 };
        let before = *self.changed.lock();
        self.level.store(v, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let at = *self.changed.lock();
            if at != before || Instant::now() > deadline {
                return at;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Where a viewer's decoded pictures end: their mean luma, read as they arrive.
const LUMA_SINK: &str = "videoconvert ! video/x-raw,format=GRAY8 ! appsink name=sink sync=false";

/// Decodes the program's SRT output (an SRT caller, 120 ms) and reports each frame's
/// mean luma as it arrives.
pub(crate) struct Viewer {
    pipeline: Option<gst::Pipeline>,
    /// An FFmpeg receiver's process, for one that is not GStreamer's.
    ffmpeg: Option<std::process::Child>,
    pub(crate) frames: mpsc::Receiver<(Instant, f64)>,
}

impl Viewer {
    pub(crate) fn start(port: u16) -> Result<Viewer> {
        Self::start_with(port, "avdec_h264")
    }

    /// A viewer decoding with `decoder`.
    fn start_with(port: u16, decoder: &str) -> Result<Viewer> {
        Self::srt_with(port, decoder, SRT_LATENCY_MS)
    }

    /// A viewer decoding with `decoder`, its SRT latency `latency_ms`.
    fn srt_with(port: u16, decoder: &str, latency_ms: u64) -> Result<Viewer> {
        let pipeline = gst::parse::launch(&format!(
            "srtsrc uri=srt://127.0.0.1:{port}?mode=caller latency={latency_ms} ! tsdemux ! h264parse ! \
             {decoder} ! {LUMA_SINK}"
        ))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
        let viewer = Self::reading(pipeline)?;
        if let Some(p) = &viewer.pipeline {
            p.set_state(gst::State::Playing)?;
        }
        Ok(viewer)
    }

    /// A viewer that is FFmpeg (`libavformat`'s MPEG-TS demuxer and `libavcodec`'s
    /// H.264 decoder, what OBS's media source uses) with its low-delay flags and one
    /// decoding thread: each picture's mean luma as `ffmpeg` writes it out.
    fn ffmpeg(port: u16, latency_ms: u64) -> Result<Viewer> {
        use std::io::Read;
        const SIDE: (usize, usize) = (64, 36);
        let mut child = std::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-fflags",
                "nobuffer",
                "-flags",
                "low_delay",
            ])
            .args(["-probesize", "32", "-analyzeduration", "0", "-threads", "1"])
            .arg("-i")
            .arg(format!(
                "srt://127.0.0.1:{port}?mode=caller&latency={}",
                latency_ms * 1000
            ))
            .args([
                "-vf",
                &format!("scale={}:{}", SIDE.0, SIDE.1),
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
            ])
            // Each decoded picture once (no frames made up for a rate it was not told).
            .args(["-fps_mode", "passthrough", "-flush_packets", "1", "-"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("ffmpeg (apt install ffmpeg)")?;
        let mut out = child.stdout.take().context("no ffmpeg output")?;
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            let mut picture = vec![0u8; SIDE.0 * SIDE.1];
            while out.read_exact(&mut picture).is_ok() {
                let mean =
                    picture.iter().map(|&v| f64::from(v)).sum::<f64>() / picture.len() as f64;
                if tx.send((Instant::now(), mean)).is_err() {
                    break;
                }
            }
        });
        Ok(Viewer {
            pipeline: None,
            ffmpeg: Some(child),
            frames,
        })
    }

    /// A viewer of the appsink named `sink` in `pipeline` (ended with [`LUMA_SINK`]).
    fn reading(pipeline: gst::Pipeline) -> Result<Viewer> {
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| anyhow!("no appsink"))?;
        let (tx, frames) = mpsc::channel();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let now = Instant::now();
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        let mean =
                            map.iter().map(|&v| v as f64).sum::<f64>() / map.len().max(1) as f64;
                        let _ = tx.send((now, mean));
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(Viewer {
            pipeline: Some(pipeline),
            ffmpeg: None,
            frames,
        })
    }

    /// The mean luma of the frames in the next `d`.
    fn settle(&self, d: Duration) -> Result<f64> {
        let end = Instant::now() + d;
        let mut last = None;
        while let Ok((at, mean)) = self.frames.recv_timeout(Duration::from_secs(10)) {
            last = Some(mean);
            if at >= end {
                break;
            }
        }
        last.context("no decoded frames from the program's SRT output")
    }

    /// When the first frame after `since` on the far side of `threshold` arrived.
    fn crossing(&self, since: Instant, white: bool, threshold: f64) -> Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (at, mean) = self
                .frames
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("the program never showed the input's change")?;
            if at >= since && (mean > threshold) == white {
                return Ok(at);
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        if let Some(p) = &self.pipeline {
            let _ = p.set_state(gst::State::Null);
        }
        if let Some(c) = &mut self.ffmpeg {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Resident memory of a process and everything it started (the model's worker), MB.
fn tree_rss_mb(pid: u32) -> f64 {
    let mut parents = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, s)| s.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        parents.push((p, ppid));
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    // A process that ended meanwhile counts nothing.
    tree.iter()
        .filter_map(|p| crate::show::rss_mb(*p).ok())
        .sum()
}

/// The restyle reference model at `fps` (its own rate), copied into `work`.
fn restyle_at(work: &Path, fps: u32) -> Result<PathBuf> {
    let src = crate::models::repo().join("models/restyle");
    let pkg = work.join(format!("restyle-{fps}"));
    std::fs::create_dir_all(&pkg)?;
    std::fs::copy(src.join("model.py"), pkg.join("model.py"))?;
    let manifest = std::fs::read_to_string(src.join("cuecast-model.yaml"))?;
    anyhow::ensure!(
        manifest.contains("\nfps: 15\n"),
        "models/restyle no longer declares fps: 15"
    );
    std::fs::write(
        pkg.join("cuecast-model.yaml"),
        manifest.replace("\nfps: 15\n", &format!("\nfps: {fps}\n")),
    )?;
    Ok(pkg)
}

/// A camera over SRT into the restyle model at `model_fps`, its program out over SRT,
/// for `seconds`: the picture toggled every `toggle` (plus a little, so changes land at
/// every phase of the frame), each change's time from leaving the camera to being
/// decoded at the receiver; the daemon's memory (with its worker) and its video
/// input's counts sampled as it goes.
pub fn v2v(work: &Path, model_fps: u32, seconds: u64, toggle: Duration) -> Result<Value> {
    let pkg = restyle_at(work, model_fps)?;
    let (in_port, out_port) = (free_udp_port(), free_udp_port());
    let d = Daemon::start(
        &format!("v2v-{model_fps}"),
        Some(&format!(
            "name: v2v\nbackend: python\nmodel: {}\ndevice: cpu\nmodel_threads: 1\nvideo_input: cam\nvideo_fallback: hold\n",
            pkg.display()
        )),
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\n\
             inputs:\n  - {{name: cam, type: srt, mode: listener, address: 127.0.0.1:{in_port}, latency_ms: {SRT_LATENCY_MS}}}\n\
             outputs:\n  - {{name: program, type: srt, mode: listener, address: 127.0.0.1:{out_port}, latency_ms: {SRT_LATENCY_MS}, \
             profile: {{video: {{width: 640, height: 360, fps: 30, bitrate_kbps: 2000, keyframe_s: 1}}}}}}\n"
        ),
    )?;
    let camera = Camera::start(in_port)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.get("/api/v1/status")?["inputs"][0]["state"] != "live" {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the camera input never became live:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let viewer = Viewer::start(out_port)?;
    // What black and white look like through the model: the threshold is between.
    camera.show(false);
    let black = viewer.settle(Duration::from_secs(3))?;
    camera.show(true);
    let white = viewer.settle(Duration::from_secs(3))?;
    anyhow::ensure!(
        white - black > 40.0,
        "the model's output does not follow its input (black {black:.0}, white {white:.0})"
    );
    let threshold = (black + white) / 2.0;

    let start = Instant::now();
    let counts = |d: &Daemon| -> Result<Value> {
        let s = d.get("/api/v1/status")?;
        Ok(json!({
            "t": start.elapsed().as_secs_f64(),
            "rss_mb": tree_rss_mb(d.child.id()),
            "video_in": s["video_in"],
            "frames_repeated": s["frames_repeated"],
        }))
    };
    let first = counts(&d)?;
    let mut samples = Vec::new();
    let mut resources = vec![first.clone()];
    let mut last_sample = Instant::now();
    let mut white_now = true;
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(toggle + Duration::from_millis(i * 37 % 100));
        white_now = !white_now;
        let sent = camera.show(white_now);
        let seen = viewer.crossing(sent, white_now, threshold)?;
        samples.push(json!([
            start.elapsed().as_secs_f64(),
            seen.duration_since(sent).as_secs_f64() * 1e3
        ]));
        if last_sample.elapsed() >= Duration::from_secs(10) {
            resources.push(counts(&d)?);
            last_sample = Instant::now();
        }
        i += 1;
    }
    let last = counts(&d)?;
    resources.push(last.clone());
    drop(viewer);
    drop(camera);
    let ms: Vec<f64> = samples.iter().map(|s| crate::f(&s[1])).collect();
    let window = |from: f64, to: f64| -> f64 {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|s| (from..to).contains(&crate::f(&s[0])))
            .map(|s| crate::f(&s[1]))
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            percentile(&mut v, 0.5)
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    let minute = (elapsed / 5.0).min(60.0);
    let delta = |k: &str| {
        last["video_in"][k].as_u64().unwrap_or(0) - first["video_in"][k].as_u64().unwrap_or(0)
    };
    Ok(json!({
        "model_fps": model_fps, "input_fps": INPUT_FPS, "show_fps": SHOW_FPS,
        "srt_latency_ms": SRT_LATENCY_MS, "seconds": elapsed,
        "lag_ms": 1000.0 / model_fps as f64,
        "black": black, "white": white,
        "n": ms.len(),
        "p50_ms": percentile(&mut ms.clone(), 0.5), "p99_ms": percentile(&mut ms.clone(), 0.99),
        "first_window_p50_ms": window(0.0, minute), "last_window_p50_ms": window(elapsed - minute, elapsed + 1.0),
        "window_s": minute,
        "received": delta("received"), "used": delta("used"), "dropped": delta("dropped"),
        "repeated_inputs": delta("repeated"),
        "show_repeated": last["frames_repeated"].as_u64().unwrap_or(0) - first["frames_repeated"].as_u64().unwrap_or(0),
        "rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"],
        "samples": samples, "resources": resources,
    }))
}

/// The click model's sound and picture at an SRT receiver for `seconds`: each click's
/// offset from its flash, read from the received stream's own time stamps.
pub fn av_offset(seconds: u64) -> Result<Value> {
    let repo = crate::models::repo();
    let port = free_udp_port();
    let d = Daemon::start(
        "av-offset",
        Some(&format!(
            "name: click\nbackend: python\nmodel: {}/models/click\ndevice: cpu\nmodel_threads: 1\n",
            repo.display()
        )),
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\naudio:\n  - {{model: true}}\n\
             outputs:\n  - {{name: program, type: srt, mode: listener, address: 127.0.0.1:{port}, latency_ms: {SRT_LATENCY_MS}, \
             profile: {{video: {{width: 640, height: 360, fps: 30, bitrate_kbps: 2000, keyframe_s: 1}}, audio: {{}}}}}}\n"
        ),
    )?;
    let receiver = SrtReceiver::call(port);
    d.wait_live("program")?;
    std::thread::sleep(Duration::from_secs(seconds));
    let repeated = d.get("/api/v1/status")?["frames_repeated"]
        .as_u64()
        .unwrap_or(0);
    let underruns = d.get("/api/v1/status")?["audio"][0]["underruns"].clone();
    drop(d);
    let seen = cuecast_tests::sync::flashes_and_clicks(receiver.path()).map_err(|e| anyhow!(e))?;
    let offsets = seen.offsets();
    anyhow::ensure!(
        offsets.len() > 10,
        "too few clicks at the receiver: {seen:?}"
    );
    let t0 = offsets[0].0;
    let span = offsets.last().map_or(0.0, |o| o.0) - t0;
    let window = (span / 5.0).min(60.0);
    let median_in = |from: f64, to: f64| {
        let mut v: Vec<f64> = offsets
            .iter()
            .filter(|(t, _)| (from..to).contains(&(t - t0)))
            .map(|(_, o)| o * 1e3)
            .collect();
        percentile(&mut v, 0.5)
    };
    let mut ms: Vec<f64> = offsets.iter().map(|(_, o)| o * 1e3).collect();
    let abs: Vec<f64> = ms.iter().map(|o| o.abs()).collect();
    Ok(json!({
        "seconds": span, "clicks": seen.clicks.len(), "flashes": seen.flashes.len(),
        "n": offsets.len(),
        "p50_ms": percentile(&mut ms, 0.5), "abs_p99_ms": percentile(&mut abs.clone(), 0.99),
        "abs_max_ms": abs.iter().cloned().fold(0.0, f64::max),
        "first_window_p50_ms": median_in(0.0, window),
        "last_window_p50_ms": median_in(span - window, span + 1.0),
        "window_s": window,
        "frame_ms": 1000.0 / SHOW_FPS,
        "show_repeated": repeated, "audio_underruns": underruns,
        "samples": offsets.iter().map(|(t, o)| json!([t - t0, o * 1e3])).collect::<Vec<_>>(),
    }))
}

/// The daemon's own video encode (its default profile's settings).
const X264: &str = "x264enc tune=zerolatency speed-preset=veryfast bitrate=2000 key-int-max=30 ! \
                        h264parse config-interval=-1";

/// A camera (640x360) sending over SRT to a listener at `port`: muxed as cuecast's SRT
/// output does (`cuecast`: whole frames cut into 7-packet messages) or with
/// `mpegtsmux alignment=7`.
fn srt_camera(port: u16, latency: u64, cuecast: bool) -> Result<Camera> {
    let sink = format!(
        "srtsink uri=srt://127.0.0.1:{port}?mode=listener latency={latency} \
         wait-for-connection=false sync=false async=false"
    );
    if !cuecast {
        return Camera::start_with(
            640,
            360,
            &format!("{X264} ! mpegtsmux alignment=7 ! {sink}"),
        );
    }
    let camera = Camera::start_with(
        640,
        360,
        &format!(
            "{X264} ! mpegtsmux alignment=0 ! appsink name=muxed sync=false async=false \
             appsrc name=messages is-live=true format=time ! {sink}"
        ),
    )?;
    let by = |n: &str| camera.pipeline.by_name(n).context("no relay element");
    let muxed = by("muxed")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| anyhow!("not an appsink"))?;
    let out = by("messages")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| anyhow!("not an appsrc"))?;
    cuecast::outputs::ts::relay(&muxed, out);
    Ok(camera)
}

/// Black/white changes from `camera` to `viewer`: `n` of them, ms each, after both
/// levels were read.
fn changes(camera: &Camera, viewer: &Viewer, n: usize) -> Result<Vec<f64>> {
    camera.show(false);
    let black = viewer.settle(Duration::from_secs(2))?;
    camera.show(true);
    let white = viewer.settle(Duration::from_secs(2))?;
    let threshold = (black + white) / 2.0;
    let mut white_now = true;
    let mut ms = Vec::new();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(300 + (i as u64 * 37 % 100)));
        white_now = !white_now;
        let sent = camera.show(white_now);
        let seen = viewer.crossing(sent, white_now, threshold)?;
        ms.push(seen.duration_since(sent).as_secs_f64() * 1e3);
    }
    Ok(ms)
}

/// The daemon's encode and SRT path taken apart: the same camera (640x360 at 30 fps)
/// and the same change timing, each row one stage more than the one before, all in one
/// run, so that the difference between rows is what that stage costs.
pub fn stages(n: usize) -> Result<Value> {
    let mut rows = Vec::new();
    let mut row = |stage: &str, ms: Vec<f64>| {
        eprintln!(
            "stage {stage}: p50 {:.1} ms",
            percentile(&mut ms.clone(), 0.5)
        );
        rows.push(json!({
            "stage": stage, "n": ms.len(),
            "p50_ms": percentile(&mut ms.clone(), 0.5), "p99_ms": percentile(&mut ms.clone(), 0.99),
            "samples": ms,
        }));
    };
    let local = [
        ("raw frames, no encoder", LUMA_SINK.to_owned()),
        ("the same through videorate at the same rate (what the encoder branch had)", format!("videorate skip-to-first=true ! video/x-raw,framerate=30/1 ! {LUMA_SINK}")),
        ("+ x264 (the daemon's settings) and avdec_h264, one thread", format!("{X264} ! avdec_h264 max-threads=1 ! {LUMA_SINK}")),
        ("the same, avdec_h264 with its default frame threads", format!("{X264} ! avdec_h264 ! {LUMA_SINK}")),
        ("+ MPEG-TS mux and demux (one thread decoding)", format!("{X264} ! mpegtsmux alignment=7 ! tsdemux ! h264parse ! avdec_h264 max-threads=1 ! {LUMA_SINK}")),
        ("the same, the muxer passing whole frames on (alignment=0)", format!("{X264} ! mpegtsmux alignment=0 ! tsdemux ! h264parse ! avdec_h264 max-threads=1 ! {LUMA_SINK}")),
    ];
    for (stage, chain) in local {
        let camera = Camera::start_with(640, 360, &chain)?;
        let viewer = Viewer::reading(camera.pipeline.clone())?;
        row(stage, changes(&camera, &viewer, n)?);
    }
    // (SRT latency, sent as cuecast does: whole frames cut into 7-packet messages;
    // received by FFmpeg)
    for (latency, cuecast, ffmpeg) in [
        (20, false, false),
        (SRT_LATENCY_MS, false, false),
        (SRT_LATENCY_MS, true, false),
        (SRT_LATENCY_MS, true, true),
        (SRT_LATENCY_MS, false, true),
    ] {
        let port = free_udp_port();
        let camera = srt_camera(port, latency, cuecast)?;
        let viewer = if ffmpeg {
            Viewer::ffmpeg(port, latency)?
        } else {
            Viewer::srt_with(port, "avdec_h264 max-threads=1", latency)?
        };
        let stage = match (latency, cuecast, ffmpeg) {
            (20, ..) => "+ MPEG-TS over SRT on loopback at 20 ms (alignment=7, one thread decoding)".to_owned(),
            (_, false, false) => format!("the same at {latency} ms"),
            (_, true, false) => "the same, as cuecast's SRT output sends it (frames muxed whole, cut into 7-packet messages)".to_owned(),
            (_, true, true) => "the same, received by FFmpeg (as OBS) with its low-delay flags, one thread".to_owned(),
            (_, false, true) => "the same with alignment=7".to_owned(),
        };
        row(&stage, changes(&camera, &viewer, n)?);
    }
    Ok(json!({"srt_latency_ms": SRT_LATENCY_MS, "rows": rows}))
}

/// SRT alone, no cuecast: the daemon's own encoder settings (640x360, x264 zerolatency
/// veryfast, 2 Mb/s, MPEG-TS muxed and sent as its SRT output does, an SRT listener at
/// 120 ms) from a camera straight to the
/// viewer, `n` changes timed as in [`v2v`]; with the viewer's decoder as shipped
/// (`avdec_h264`, frame threads) and with one thread. What is left of a cue's time to
/// the receiver beyond this is cuecast's.
pub fn transport(n: usize) -> Result<Value> {
    let mut rows = Vec::new();
    for decoder in ["avdec_h264", "avdec_h264 max-threads=1"] {
        let port = free_udp_port();
        let camera = srt_camera(port, SRT_LATENCY_MS, true)?;
        let viewer = Viewer::start_with(port, decoder)?;
        let ms = changes(&camera, &viewer, n)?;
        rows.push(json!({
            "decoder": decoder, "n": n,
            "p50_ms": percentile(&mut ms.clone(), 0.5), "p99_ms": percentile(&mut ms.clone(), 0.99),
            "samples": ms,
        }));
    }
    Ok(json!({"srt_latency_ms": SRT_LATENCY_MS, "rows": rows}))
}
