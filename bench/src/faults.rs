//! Faults, measured: how long outputs take to come back after their peer does, how soon
//! a hung model is told, and how much of a recording `kill -9` costs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use cuecast_tests::peers::{free_udp_port, video_frames, RtmpServer, SrtReceiver};

use crate::show::Daemon;

const PROFILE: &str = "{video: {width: 640, height: 360, fps: 30, bitrate_kbps: 1500, keyframe_s: 1, preset: veryfast}, audio: {}}";

fn output(d: &Daemon, name: &str) -> Result<Value> {
    let outs = d.get("/api/v1/outputs")?;
    Ok(outs
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name)
        .cloned()
        .unwrap_or(Value::Null))
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !f()? {
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A show at 640x360 with one RTMP output into `server`.
fn rtmp_show(name: &str, server: &RtmpServer) -> Result<Daemon> {
    Daemon::start(
        name,
        None,
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\noutputs:\n  - {{name: rtmp, type: rtmp, url: {:?}, key: bench, profile: {PROFILE}}}\n",
            server.app_url()
        ),
    )
}

/// nginx-rtmp killed, started again after `down_s`: seconds from its return until the
/// output is `live` again (the backoff's next attempt decides most of it).
pub fn rtmp_back(rounds: usize, down_s: f64) -> Result<Value> {
    let mut server = RtmpServer::start();
    let port = server.port;
    let d = rtmp_show("fault-rtmp", &server)?;
    d.wait_live("rtmp")?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        server.kill();
        wait("the RTMP output notices", Duration::from_secs(30), || {
            Ok(output(&d, "rtmp")?["state"] != "live")
        })?;
        std::thread::sleep(Duration::from_secs_f64(down_s));
        server = RtmpServer::start_on(port);
        let back = Instant::now();
        wait(
            "the RTMP output is live again",
            Duration::from_secs(60),
            || Ok(output(&d, "rtmp")?["state"] == "live"),
        )?;
        times.push(back.elapsed().as_secs_f64());
        // Stay live long enough for the attempts to count from zero again.
        std::thread::sleep(Duration::from_secs(11));
    }
    Ok(json!({"rounds": rounds, "down_s": down_s, "seconds": times}))
}

/// nginx-rtmp frozen (SIGSTOP) with the connection open: seconds until the output
/// stops being `live`. RTMP acknowledges only every few megabytes, so this is the
/// time the connection's buffers take to fill at the output's bitrate.
pub fn rtmp_frozen(rounds: usize) -> Result<Value> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let server = RtmpServer::start();
        let d = rtmp_show("fault-rtmp-frozen", &server)?;
        d.wait_live("rtmp")?;
        std::thread::sleep(Duration::from_secs(2));
        server.freeze(true);
        let frozen = Instant::now();
        let told = wait(
            "the RTMP output notices the frozen server",
            Duration::from_secs(240),
            || Ok(output(&d, "rtmp")?["state"] != "live"),
        );
        server.freeze(false);
        told?;
        times.push(frozen.elapsed().as_secs_f64());
    }
    Ok(json!({"rounds": rounds, "seconds": times}))
}

/// An SRT receiver (listener) killed and started again after `down_s`: seconds from its
/// return until its file grows again.
pub fn srt_back(rounds: usize, down_s: f64) -> Result<Value> {
    let port = free_udp_port();
    let mut receiver = Some(SrtReceiver::listen(port));
    let d = Daemon::start(
        "fault-srt",
        None,
        &format!(
            "video: {{width: 640, height: 360, fps: 30}}\noutputs:\n  - {{name: srt, type: srt, mode: caller, address: 127.0.0.1:{port}, profile: {PROFILE}, reconnect: {{first_delay_s: 1, max_delay_s: 2}}}}\n"
        ),
    )?;
    d.wait_live("srt")?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        drop(receiver.take());
        wait("the SRT output notices", Duration::from_secs(30), || {
            Ok(output(&d, "srt")?["state"] != "live")
        })?;
        std::thread::sleep(Duration::from_secs_f64(down_s));
        let rx = SrtReceiver::listen(port);
        let back = Instant::now();
        wait(
            "bytes reach the new receiver",
            Duration::from_secs(60),
            || Ok(rx.bytes() > 0),
        )?;
        times.push(back.elapsed().as_secs_f64());
        receiver = Some(rx);
        std::thread::sleep(Duration::from_secs(3));
    }
    Ok(json!({"rounds": rounds, "down_s": down_s, "seconds": times}))
}

/// A TorchScript model whose step never returns (from its sixth step): how long the
/// step had run when the `error` event came, `rounds` times.
pub fn hang_told(python: &str, work: &Path, rounds: usize) -> Result<Value> {
    let packages = work.join("broken-packages");
    let status = std::process::Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("engine/tests/fixtures/broken_models.py"),
        )
        .arg(&packages)
        .status()?;
    if !status.success() {
        bail!("broken_models.py failed");
    }
    let show = format!(
        "name: hang\nbackend: torchscript\nmodel: {}\ndevice: cpu\n",
        packages.join("hangs-after-five").display()
    );
    let mut told_after = Vec::new();
    for _ in 0..rounds {
        let d = Daemon::start("fault-hang", Some(&show), "")?;
        let events = d.events()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = events.recv_timeout(left)?;
            if e["type"] == "error"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not responding"))
            {
                let running = d.get("/api/v1/status")?["step_running_s"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                told_after.push(running);
                break;
            }
        }
    }
    Ok(json!({"rounds": rounds, "step_running_s": told_after}))
}

/// `kill -9` at a moment 3-6 s into a recording: seconds of it lost (since the file's
/// first byte, minus what the cut file plays), at a bitrate and in a container.
pub fn kill9_loss(kbps: u32, ext: &str, rounds: usize) -> Result<Value> {
    let mut lost = Vec::new();
    let mut rates = Vec::new();
    for round in 0..rounds {
        let profile = format!("{{video: {{width: 1280, height: 720, fps: 30, bitrate_kbps: {kbps}, keyframe_s: 1, preset: ultrafast}}}}");
        let d = Daemon::start(
            "fault-kill9",
            None,
            &format!(
                "video: {{width: 1280, height: 720, fps: 30}}\noutputs:\n  - {{name: rec, type: record, path: rec.{ext}, profile: {profile}}}\n"
            ),
        )?;
        let file = d.dir.join(format!("rec.{ext}"));
        wait(
            "the recording's first byte",
            Duration::from_secs(60),
            || Ok(std::fs::metadata(&file).is_ok_and(|m| m.len() > 0)),
        )?;
        let first = Instant::now();
        // Not on a fragment boundary: 3.2, 4.3, 5.4 s, ...
        std::thread::sleep(Duration::from_secs_f64(3.2 + (round % 3) as f64 * 1.1));
        let ran = first.elapsed().as_secs_f64();
        d.kill_9();
        let frames = video_frames(&file).map_or(0, |(_, n)| n);
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        let kept = frames as f64 / 30.0;
        lost.push((ran - kept).max(0.0));
        rates.push(bytes as f64 * 8.0 / kept.max(0.001) / 1e6);
    }
    Ok(json!({"kbps": kbps, "container": ext, "rounds": rounds, "lost_s": lost, "mbps": rates}))
}
