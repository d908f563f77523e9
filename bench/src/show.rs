//! Benchmarks of the daemon as a producer runs it: `cuecast serve` in its own process
//! (this binary re-run with `--serve CONFIG`), steered over HTTP, watched over SRT and
//! read through `/metrics`.
//!
//! Why one file over 600 lines: the daemon harness and the three runs that use it (HTTP
//! latency, SRT glass-to-glass, export against ffmpeg) share its start, its requests and
//! its log; split, each would carry a copy of them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use cuecast_tests::peers::free_udp_port;

use crate::percentile;

/// A daemon process for one measurement.
pub struct Daemon {
    pub child: Child,
    pub api: String,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts a daemon with `config` (after the API line) and a show preset: the
    /// repository's default, or `show` written beside the config.
    pub fn start(name: &str, show: Option<&str>, config: &str) -> Result<Daemon> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let dir = std::env::temp_dir().join(format!("cuecast-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("cuecast.yaml");
        let show_path = match show {
            Some(text) => {
                std::fs::write(dir.join("show.yaml"), text)?;
                dir.join("show.yaml")
            }
            None => repo.join("presets/shows/default.yaml"),
        };
        std::fs::write(
            &file,
            format!(
                "show: {}\npresets: {}/presets\napi: {{listen: 127.0.0.1:0}}\n{config}",
                show_path.display(),
                repo.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("daemon.log"))?;
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(&file)
            .arg(&ready)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()?;
        let mut d = Daemon {
            child,
            api: String::new(),
            dir,
        };
        // Once live, the daemon writes the address it bound (port 0: one it picked).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(api) = cuecast_tests::daemon::ready_api(&ready) {
                d.api = api.to_string();
                return Ok(d);
            }
            if Instant::now() > deadline || matches!(d.child.try_wait(), Ok(Some(_))) {
                bail!("the daemon did not start:\n{}", d.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let (_, body) = request(&self.api, "GET", path, "")?;
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    pub fn post(&self, path: &str, body: &str) -> Result<Value> {
        let (status, body) = request(&self.api, "POST", path, body)?;
        let v: Value = serde_json::from_str(&body)?;
        if status >= 300 {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }

    /// CPU seconds (user + system) the daemon has used so far.
    pub fn cpu_s(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .ok_or_else(|| anyhow!("bad /proc stat"))?
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of stat (11 and 12 after the name).
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf with a valid name.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    }

    /// `kill -9`, now; the folder stays until the value is dropped.
    pub fn kill_9(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(format!("/proc/{}/stat", self.child.id()))
            .is_ok_and(|_| Instant::now() < deadline)
        {
            // Dead (a zombie until waited for) is enough: its files are closed.
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
                .unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, s)| s.trim_start().starts_with('Z'))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's server-sent events, parsed, as they come.
    pub fn events(&self) -> Result<mpsc::Receiver<Value>> {
        Ok(cuecast_tests::daemon::follow_events(&self.api)?)
    }

    pub fn wait_live(&self, output: &str) -> Result<()> {
        self.wait_state(output, "live")
    }

    pub fn wait_state(&self, output: &str, state: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let outs = self.get("/api/v1/outputs")?;
            if outs
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["name"] == output && o["state"] == state)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("output {output} never became {state}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let body = (!body.is_empty()).then_some(body);
    Ok(cuecast_tests::http::request_text(
        addr, method, path, body, None,
    )?)
}

/// The upper bound of the histogram bucket holding quantile `q`, from `/metrics`.
fn metric_quantile_ms(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) else {
            continue;
        };
        let (le, n) = rest.split_once("\"} ")?;
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse::<f64>().ok()? * 1e3
        };
        buckets.push((bound, n.trim().parse::<u64>().ok()?));
    }
    let total = buckets.last()?.1;
    let rank = ((q * total as f64).ceil() as u64).max(1);
    buckets.iter().find(|(_, n)| *n >= rank).map(|(b, _)| *b)
}

pub struct Latency {
    /// HTTP accepted → frame, ms, in the order sent.
    pub http: Vec<f64>,
    pub http_p50: f64,
    pub http_p99: f64,
    pub step_p99_bound: f64,
    /// Cue sent → decoded at the SRT receiver, ms, in the order sent.
    pub srt: Vec<f64>,
    pub srt_p50: f64,
    pub srt_p99: f64,
    pub repeated: u64,
}

/// Cue → frame over HTTP, and cue → first decoded frame at an SRT receiver.
pub fn latency(quick: bool) -> Result<Latency> {
    let srt_port = free_udp_port();
    let d = Daemon::start(
        "latency",
        None,
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\noutputs:\n  - {{name: program, type: srt, mode: listener, address: 127.0.0.1:{srt_port}, latency_ms: 120, profile: {{video: {{width: 640, height: 360, fps: 30, bitrate_kbps: 2000, keyframe_s: 1}}}}}}\n"
        ),
    )?;
    // An SRT listener is live once a receiver takes its stream; the receiver calls it
    // below. Until then it is `connecting` with no receiver.
    d.wait_state("program", "connecting")?;
    std::thread::sleep(Duration::from_secs(2));

    // 1. HTTP accepted → first frame showing the cue (the API's own answer).
    let n = if quick { 20 } else { 120 };
    let mut http = Vec::new();
    for i in 0..n {
        let fog = if i % 2 == 0 { 0.25 } else { 0.35 };
        let v = d.post(
            "/api/v1/cues?wait=true",
            &format!(r#"{{"type":"param","name":"fog","value":{fog}}}"#),
        )?;
        http.push(v["cues"][0]["latency_ms"].as_f64().unwrap_or(f64::NAN));
        // Cues land at random phases of the frame interval.
        std::thread::sleep(Duration::from_millis(97 + (i * 37 % 50) as u64));
    }
    let metrics = d.get("/metrics")?;
    let step_p99_bound =
        metric_quantile_ms(metrics.as_str().unwrap_or(""), "cuecast_step_seconds", 0.99)
            .unwrap_or(f64::NAN);

    // 2. Cue sent → first frame decoded at an SRT receiver that shows it: fades to and
    //    from black, detected by the decoded picture's mean luma.
    let viewer = crate::media::Viewer::start(srt_port)?;
    let rx = &viewer.frames;
    // Wait for pictures.
    rx.recv_timeout(Duration::from_secs(20))
        .context("no decoded frames from the SRT output")?;
    let mut srt = Vec::new();
    let rounds = if quick { 6 } else { 30 };
    for i in 0..rounds * 2 {
        let to_black = i % 2 == 0;
        while rx.try_recv().is_ok() {}
        let sent = Instant::now();
        d.post(
            "/api/v1/cues",
            &format!(
                r#"{{"type":"fade","to":"{}","duration_s":0}}"#,
                if to_black { "black" } else { "program" }
            ),
        )?;
        let deadline = sent + Duration::from_secs(5);
        loop {
            let (at, mean) = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("the SRT receiver never showed the cue")?;
            if at >= sent && ((to_black && mean < 20.0) || (!to_black && mean > 40.0)) {
                srt.push(at.duration_since(sent).as_secs_f64() * 1e3);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(150 + (i * 53 % 100) as u64));
    }
    drop(viewer);
    let repeated = d.get("/api/v1/status")?["frames_repeated"]
        .as_u64()
        .unwrap_or(0);
    Ok(Latency {
        http_p50: percentile(&mut http.clone(), 0.5),
        http_p99: percentile(&mut http.clone(), 0.99),
        http,
        step_p99_bound,
        srt_p50: percentile(&mut srt.clone(), 0.5),
        srt_p99: percentile(&mut srt.clone(), 0.99),
        srt,
        repeated,
    })
}

pub struct PreviewDelay {
    /// Cue sent → the page's preview showing it, ms, in the order sent.
    pub visible: Vec<f64>,
    /// Cue sent → the page's preview showing it.
    pub visible_p50: f64,
    pub visible_p99: f64,
    /// The frame showing the cue ready → the page showing it (the preview's own delay).
    pub preview_p50: f64,
    pub preview_p99: f64,
    pub repeated: u64,
}

/// The control surface's preview in headless Chromium: how long from a cue until the
/// page shows it, and how much of that is the preview (MJPEG encode, HTTP, browser).
pub fn preview_delay(quick: bool) -> Result<PreviewDelay> {
    let d = Daemon::start(
        "preview",
        None,
        "video: {width: 640, height: 360, fps: 30}\noutputs:\n  - {name: preview, type: preview, width: 640, fps: 15}\n",
    )?;
    d.wait_live("preview")?;
    let tools =
        std::env::var("CUECAST_NODE_TOOLS").context("CUECAST_NODE_TOOLS: run scripts/setup")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/preview_delay.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(if quick { "8" } else { "30" })
        .env("CUECAST_URL", format!("http://{}", d.api))
        .env("CUECAST_NODE_TOOLS", tools)
        .stderr(Stdio::inherit())
        .output()
        .context("running node")?;
    if !out.status.success() {
        bail!("the preview measurement failed:\n{}", d.log());
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let samples = v["samples"].as_array().cloned().unwrap_or_default();
    let field = |f: &str| -> Vec<f64> { samples.iter().filter_map(|s| s[f].as_f64()).collect() };
    let visible = field("visible_ms");
    let mut preview: Vec<f64> = visible
        .iter()
        .zip(field("cue_ms"))
        .map(|(v, c)| v - c)
        .collect();
    if visible.is_empty() {
        bail!("no samples from the preview measurement");
    }
    let repeated = d.get("/api/v1/status")?["frames_repeated"]
        .as_u64()
        .unwrap_or(0);
    Ok(PreviewDelay {
        visible_p50: percentile(&mut visible.clone(), 0.5),
        visible_p99: percentile(&mut visible.clone(), 0.99),
        visible,
        preview_p50: percentile(&mut preview.clone(), 0.5),
        preview_p99: percentile(&mut preview, 0.99),
        repeated,
    })
}

pub struct Encode {
    pub width: u32,
    pub height: u32,
    pub kbps: u32,
    pub seconds: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub cpu_percent: f64,
    pub repeated: u64,
}

/// `width`x`height` at 30 fps through x264 (zerolatency, veryfast) for `seconds`, the
/// show made by the trivial `pattern` backend so the encoder is what is measured.
pub fn encode(width: u32, height: u32, kbps: u32, seconds: u64) -> Result<Encode> {
    let d = Daemon::start(
        "encode",
        Some("backend: pattern\n"),
        &format!("video: {{width: {width}, height: {height}, fps: 30}}\noutputs:\n  - {{name: recording, type: record, path: rec.mkv, profile: {{video: {{width: {width}, height: {height}, fps: 30, bitrate_kbps: {kbps}, preset: veryfast}}}}}}\n"),
    )?;
    d.wait_live("recording")?;
    std::thread::sleep(Duration::from_secs(3));
    let counts = |d: &Daemon| -> Result<(u64, u64)> {
        let e = &d.get("/api/v1/status")?["encoders"][0];
        Ok((
            e["frames_in"].as_u64().unwrap_or(0),
            e["frames_out"].as_u64().unwrap_or(0),
        ))
    };
    let (in0, out0) = counts(&d)?;
    let cpu0 = d.cpu_s()?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (in1, out1) = counts(&d)?;
    let cpu = d.cpu_s()? - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let repeated = d.get("/api/v1/status")?["frames_repeated"]
        .as_u64()
        .unwrap_or(0);
    Ok(Encode {
        width,
        height,
        kbps,
        seconds,
        frames_in: in1 - in0,
        frames_out: out1 - out0,
        cpu_percent: cpu / wall * 100.0,
        repeated,
    })
}

/// Resident memory of the daemon, from /proc.
pub(crate) fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))?;
    Ok(kb / 1024.0)
}

pub struct Resources {
    pub seconds: u64,
    pub warmup_s: u64,
    /// (seconds since start, RSS MB, CPU % of one core over the last interval, open
    /// files, frames repeated so far).
    pub samples: Vec<(f64, f64, f64, u64, u64)>,
    /// Cues sent (one a second) and answered 202.
    pub cues_sent: u64,
    pub cues_accepted: u64,
    /// Median RSS just after warm-up, and over the last minute (or tenth).
    pub rss_after_warmup: f64,
    pub rss_end: f64,
    pub cpu_mean: f64,
    pub repeated: u64,
    /// Each output's state and bytes at the end.
    pub outputs: Vec<(String, String, u64)>,
    /// Bytes the SRT receiver wrote.
    pub srt_received: u64,
}

/// A show as it goes on air: the procedural world at 640x360, 30 fps, with one SRT
/// output (read by an srt-live-transmit caller), one RTMP output (into nginx-rtmp) and a
/// recording, all three from one x264 + AAC encoder, for `seconds`, steered by a cue a
/// second (the camera's yaw, alternating). Samples the daemon's RSS, CPU, open files and
/// repeated frames every 5 s.
pub fn resources(seconds: u64, warmup_s: u64) -> Result<Resources> {
    use cuecast_tests::peers::{RtmpServer, SrtReceiver};
    let rtmp = RtmpServer::start();
    let srt_port = free_udp_port();
    let profile = "{video: {width: 640, height: 360, fps: 30, bitrate_kbps: 1500, keyframe_s: 2, preset: veryfast}, audio: {}}";
    let d = Daemon::start(
        "resources",
        None,
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\noutputs:\n\
             \x20 - {{name: srt, type: srt, mode: listener, address: 127.0.0.1:{srt_port}, latency_ms: 120, profile: {profile}}}\n\
             \x20 - {{name: rtmp, type: rtmp, url: {:?}, key: bench, profile: {profile}}}\n\
             \x20 - {{name: recording, type: record, path: rec.mkv, profile: {profile}}}\n",
            rtmp.app_url()
        ),
    )?;
    let srt_rx = SrtReceiver::call(srt_port);
    for o in ["srt", "rtmp", "recording"] {
        d.wait_live(o)?;
    }
    let start = Instant::now();
    let pid = d.child.id();
    let mut samples = Vec::new();
    let (mut cpu_prev, mut t_prev) = (d.cpu_s()?, 0.0);
    let (mut cues_sent, mut cues_accepted) = (0u64, 0u64);
    let open_files =
        || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_secs(1));
            let yaw = if cues_sent % 2 == 0 { 0.3 } else { -0.3 };
            let cue = format!(r#"{{"type": "action", "yaw": {yaw}, "duration_s": 0.5}}"#);
            cues_sent += 1;
            if matches!(request(&d.api, "POST", "/api/v1/cues", &cue), Ok((202, _))) {
                cues_accepted += 1;
            }
        }
        let t = start.elapsed().as_secs_f64();
        let cpu = d.cpu_s()?;
        let repeated = d.get("/api/v1/status")?["frames_repeated"]
            .as_u64()
            .unwrap_or(0);
        samples.push((
            t,
            rss_mb(pid)?,
            (cpu - cpu_prev) / (t - t_prev) * 100.0,
            open_files(),
            repeated,
        ));
        (cpu_prev, t_prev) = (cpu, t);
    }
    let window = (seconds as f64 / 10.0).clamp(15.0, 60.0);
    let rss_in = |from: f64, to: f64| -> f64 {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|s| s.0 > from && s.0 <= to)
            .map(|s| s.1)
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            percentile(&mut v, 0.5)
        }
    };
    let rss_after_warmup = rss_in(warmup_s as f64, warmup_s as f64 + window);
    let rss_end = rss_in(seconds as f64 - window, f64::INFINITY);
    let after: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 > warmup_s as f64)
        .map(|s| s.2)
        .collect();
    let cpu_mean = after.iter().sum::<f64>() / after.len().max(1) as f64;
    let status = d.get("/api/v1/status")?;
    let outputs = status["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or("").to_owned(),
                o["state"].as_str().unwrap_or("").to_owned(),
                o["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    Ok(Resources {
        seconds,
        warmup_s,
        samples,
        rss_after_warmup,
        rss_end,
        cpu_mean,
        repeated: status["frames_repeated"].as_u64().unwrap_or(0),
        cues_sent,
        cues_accepted,
        outputs,
        srt_received: srt_rx.bytes(),
    })
}

pub struct TakeCost {
    pub window_s: u64,
    /// Per window, alternating: repeated frames without a take, and with one recording.
    pub repeated_without: Vec<u64>,
    pub repeated_with: Vec<u64>,
    pub cpu_without: f64,
    pub cpu_with: f64,
    pub lost_frames: u64,
    pub take_frames: u64,
    pub take_dir: std::path::PathBuf,
    /// Kept alive so the take's folder stays until the export is measured.
    pub daemon: Daemon,
}

/// Repeated frames of a live 1280x720 30 fps show (the `pattern` backend, so recording
/// is what is measured) in alternating windows without and with a take recording.
pub fn take_cost(window_s: u64, rounds: usize) -> Result<TakeCost> {
    let d = Daemon::start(
        "takes",
        Some("backend: pattern\n"),
        "video: {width: 1280, height: 720, fps: 30}\ntakes: takes\noutputs: []\n",
    )?;
    std::thread::sleep(Duration::from_secs(3));
    let repeated = |d: &Daemon| -> Result<u64> {
        Ok(d.get("/api/v1/status")?["frames_repeated"]
            .as_u64()
            .unwrap_or(0))
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut cpu_without, mut cpu_with) = (0.0, 0.0);
    let (mut lost, mut frames) = (0, 0);
    let mut take_dir = std::path::PathBuf::new();
    for round in 0..rounds {
        for recording in [false, true] {
            let name = format!("bench-{round}");
            if recording {
                d.post("/api/v1/takes", &format!("{{\"name\": \"{name}\"}}"))?;
            }
            let (r0, c0, t0) = (repeated(&d)?, d.cpu_s()?, Instant::now());
            std::thread::sleep(Duration::from_secs(window_s));
            let (r1, c1) = (repeated(&d)?, d.cpu_s()?);
            let cpu = (c1 - c0) / t0.elapsed().as_secs_f64() * 100.0;
            if recording {
                let s = d.post("/api/v1/takes/stop", "{}")?;
                lost += s["lost_frames"].as_array().map_or(0, Vec::len) as u64;
                frames = s["frames"].as_u64().unwrap_or(0);
                take_dir = d.dir.join("takes").join(&name);
                with.push(r1 - r0);
                cpu_with += cpu / rounds as f64;
                // Keep only the last take on disk (720p frames are 3.7 MB each).
                if round + 1 < rounds {
                    std::fs::remove_dir_all(&take_dir)?;
                }
            } else {
                without.push(r1 - r0);
                cpu_without += cpu / rounds as f64;
            }
        }
    }
    Ok(TakeCost {
        window_s,
        repeated_without: without,
        repeated_with: with,
        cpu_without,
        cpu_with,
        lost_frames: lost,
        take_frames: frames,
        take_dir,
        daemon: d,
    })
}

/// Records a take of about `seconds` of the default show (the procedural world, which
/// makes depth) at 1280x720, 30 fps, into `takes`, and stops the show: the take the
/// export comparison exports, on an otherwise quiet machine.
pub fn procedural_take(seconds: u64, takes: &Path) -> Result<std::path::PathBuf> {
    let d = Daemon::start(
        "export",
        None,
        &format!(
            "video: {{width: 1280, height: 720, fps: 30}}\ntakes: {}\noutputs: []\n",
            takes.display()
        ),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    d.post("/api/v1/takes", "{\"name\": \"export\"}")?;
    std::thread::sleep(Duration::from_secs(seconds));
    let stopped = d.post("/api/v1/takes/stop", "{}")?;
    let log = std::fs::read_to_string(d.dir.join("daemon.log")).unwrap_or_default();
    drop(d);
    let dir = stopped["dir"].as_str().map(PathBuf::from);
    dir.with_context(|| format!("the take did not stop: {stopped}\n{log}"))
}

/// Keeps one core busy (a spinning thread) until dropped: the other work a newcomer's
/// laptop always has beside the show.
pub struct BusyCore {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    pub fn start() -> BusyCore {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut x = 0u64;
            while !s.load(Ordering::Relaxed) {
                for i in 0..100_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
            }
        });
        BusyCore {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One window of the default show.
pub struct DefaultShowWindow {
    pub busy: bool,
    pub seconds: f64,
    pub frames_out: u64,
    pub repeated: u64,
    pub repeats_per_minute: f64,
    /// The detail status reported, sampled every second.
    pub detail: Vec<f64>,
}

/// The default config as `scripts/show` runs it (the default show preset, 1280x720 at
/// 30 fps, a recording and a preview), quiet and then with one core kept busy beside it:
/// repeated frames per minute, and the detail the show drew at.
pub fn default_show(seconds: u64) -> Result<Vec<DefaultShowWindow>> {
    let d = Daemon::start(
        "default-show",
        None,
        "video: {width: 1280, height: 720, fps: 30}\noutputs:\n\
         \x20 - {name: recording, type: record, path: \"show-{time}.mkv\"}\n\
         \x20 - {name: preview, type: preview, width: 640, fps: 15}\n",
    )?;
    d.wait_live("recording")?;
    std::thread::sleep(Duration::from_secs(5));
    let counts = |d: &Daemon| -> Result<(u64, u64)> {
        let s = d.get("/api/v1/status")?;
        let out = d.get("/metrics")?;
        let metrics = out.as_str().unwrap_or_default();
        let frames = metrics
            .lines()
            .find_map(|l| l.strip_prefix("cuecast_frames_out_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok((frames, s["frames_repeated"].as_u64().unwrap_or(0)))
    };
    let mut windows = Vec::new();
    for busy in [false, true] {
        let _load = busy.then(BusyCore::start);
        let (f0, r0) = counts(&d)?;
        let start = Instant::now();
        let mut detail = Vec::new();
        while start.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_secs(1));
            detail.push(
                d.get("/api/v1/status")?["detail"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
        }
        let (f1, r1) = counts(&d)?;
        let secs = start.elapsed().as_secs_f64();
        windows.push(DefaultShowWindow {
            busy,
            seconds: secs,
            frames_out: f1 - f0,
            repeated: r1 - r0,
            repeats_per_minute: (r1 - r0) as f64 * 60.0 / secs,
            detail,
        });
    }
    Ok(windows)
}
