//! Outputs against real peers on loopback: nginx-rtmp, srt-live-transmit, ffprobe.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn rtmp_output_carries_h264_and_aac_at_the_profile_size_and_keeps_its_key_secret() {
    let _turn = serial();
    let server = RtmpServer::start();
    let d = Daemon::start(
        "rtmp",
        &format!(
            "outputs:\n  - {{name: platform, type: rtmp, url: {}, key_env: CUECAST_TEST_KEY, profile: {SMALL}}}\n",
            server.app_url()
        ),
        &[("CUECAST_TEST_KEY", "sk_live_4f9a2c")],
    );
    d.wait_state("platform", "live", Duration::from_secs(30));
    let p = ffprobe(&server.url("sk_live_4f9a2c"), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    assert_eq!(p.video_codec.as_deref(), Some("h264"), "{p:?}");
    assert_eq!((p.width, p.height), (320, 180), "{p:?}");
    assert!((p.fps - 30.0).abs() < 0.5, "{p:?}");
    assert_eq!(p.audio_codec.as_deref(), Some("aac"), "{p:?}");
    assert_eq!(p.audio_rate, Some(48000), "{p:?}");
    // The key is used, and shown nowhere.
    for text in [
        d.get("/api/v1/outputs").to_string(),
        d.get("/api/v1/status").to_string(),
        d.log(),
    ] {
        assert!(!text.contains("sk_live_4f9a2c"), "the key leaked: {text}");
    }
    assert!(d.output("platform")["target"]
        .as_str()
        .unwrap()
        .ends_with("/<key>"));
}

#[test]
fn srt_outputs_work_as_listener_and_as_caller() {
    let _turn = serial();
    let (listen_port, call_port) = (free_udp_port(), free_udp_port());
    // The receiver listens first for the caller output; the listener output waits for
    // ffprobe to call it.
    let receiver = SrtReceiver::listen(call_port);
    let d = Daemon::start(
        "srt",
        &format!(
            "outputs:\n  - {{name: listener, type: srt, mode: listener, address: 127.0.0.1:{listen_port}, profile: {SMALL}}}\n  - {{name: caller, type: srt, mode: caller, address: 127.0.0.1:{call_port}, latency_ms: 120, profile: {SMALL}}}\n"
        ),
        &[],
    );
    d.wait_state("caller", "live", Duration::from_secs(30));
    let url = format!("srt://127.0.0.1:{listen_port}?mode=caller&latency=120000");
    let p = ffprobe(&url, Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
    assert_eq!(
        (
            p.video_codec.as_deref(),
            p.width,
            p.height,
            p.audio_codec.as_deref()
        ),
        (Some("h264"), 320, 180, Some("aac")),
        "{p:?}"
    );
    wait_until(
        Duration::from_secs(20),
        "the SRT receiver gets a readable stream",
        || {
            receiver.bytes() > 100_000
                && ffprobe_file(receiver.path())
                    .is_ok_and(|(p, frames, _)| p.width == 320 && frames > 0)
        },
    );
}

#[test]
fn a_dead_rtmp_server_only_takes_its_own_output_down_and_it_comes_back() {
    let _turn = serial();
    let mut server = RtmpServer::start();
    let port = server.port;
    let srt_port = free_udp_port();
    let d = Daemon::start(
        "failover",
        &format!(
            "outputs:\n  - {{name: platform, type: rtmp, url: {}, key: k1, profile: {SMALL}, reconnect: {{first_delay_s: 1, max_delay_s: 3}}}}\n  - {{name: program, type: srt, mode: listener, address: 127.0.0.1:{srt_port}, profile: {SMALL}}}\n  - {{name: recording, type: record, path: \"rec/show-{{time}}.mkv\"}}\n",
            server.app_url()
        ),
        &[],
    );
    // A receiver keeps calling the SRT listener output throughout.
    let receiver = SrtReceiver::call(srt_port);
    d.wait_state("platform", "live", Duration::from_secs(30));
    d.wait_state("recording", "live", Duration::from_secs(30));
    wait_until(
        Duration::from_secs(20),
        "SRT data reaches the receiver",
        || receiver.bytes() > 50_000,
    );
    let file = d.output("recording")["file"].clone();

    server.kill();
    let mut frames = vec![d.frame()];
    let (srt0, rec0) = (receiver.bytes(), d.bytes("recording"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.state("platform") != "retrying" {
        assert!(
            Instant::now() < deadline,
            "never retrying: {}\n{}",
            d.output("platform"),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
        frames.push(d.frame());
    }
    let error = d.output("platform")["last_error"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        !error.is_empty(),
        "a retrying output says why: {}",
        d.output("platform")
    );
    // While the server is down: the show and the other outputs carry on.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        frames.push(d.frame());
    }
    assert!(receiver.bytes() > srt0, "SRT stopped while RTMP was down");
    assert!(
        d.bytes("recording") > rec0,
        "the recording stopped while RTMP was down"
    );
    assert_eq!(d.state("program"), "live");
    assert_eq!(d.state("recording"), "live");

    let _server = RtmpServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(40);
    while d.state("platform") != "live" {
        assert!(
            Instant::now() < deadline,
            "never live again: {}\n{}",
            d.output("platform"),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
        frames.push(d.frame());
    }
    assert!(d.output("platform")["reconnects"].as_u64().unwrap() >= 1);
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "the generator's frame counter paused: {frames:?}"
    );
    // Same recording file throughout: it was never restarted.
    assert_eq!(d.output("recording")["file"], file);
    assert_eq!(d.output("recording")["reconnects"], 0);
    assert_eq!(d.output("program")["reconnects"], 0);
}

#[test]
fn sigterm_finishes_recordings_into_playable_files() {
    let _turn = serial();
    let mut d = Daemon::start(
        "sigterm",
        "outputs:\n  - {name: mkv, type: record, path: rec/show.mkv}\n  - {name: mp4, type: record, path: rec/show.mp4, profile: {video: {width: 320, height: 180, fps: 30, bitrate_kbps: 800}, audio: {}}}\n",
        &[],
    );
    d.wait_state("mkv", "live", Duration::from_secs(30));
    d.wait_state("mp4", "live", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let dir = d.dir.clone();
    assert_eq!(d.terminate(), 0, "{}", d.log());
    assert!(d.log().contains("recording complete"), "{}", d.log());
    for f in ["rec/show.mkv", "rec/show.mp4"] {
        let (p, frames, duration) =
            ffprobe_file(&dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{}", d.log()));
        assert_eq!(
            (p.video_codec.as_deref(), p.width, p.height),
            (Some("h264"), 320, 180),
            "{f}: {p:?}"
        );
        assert!(
            frames >= 60 && duration >= 2.0,
            "{f}: {frames} frames, {duration} s"
        );
    }
}

/// A server that takes the connection and refuses the stream (a wrong or expired key)
/// used to make the output flap live/retrying for ever with its attempts reset at each
/// try; every try counts now, until the output gives up.
#[test]
fn a_server_that_refuses_the_stream_counts_every_try_and_gives_up() {
    let _turn = serial();
    let server = RtmpServer::start();
    let d = Daemon::start(
        "refused",
        &format!(
            "outputs:\n  - {{name: push, type: rtmp, url: {}, key: k, profile: {SMALL}, reconnect: {{first_delay_s: 0.2, multiplier: 1, max_delay_s: 0.2, max_attempts: 3}}}}\n",
            server.closed_app_url()
        ),
        &[],
    );
    d.wait_state("push", "failed", Duration::from_secs(60));
    let o = d.output("push");
    assert_eq!(o["attempt"], 4, "{o}");
    assert!(!o["last_error"].is_null(), "{o}");
}

/// Closing the terminal that runs the show (SIGHUP) finishes it as Ctrl-C does; SIGUSR1,
/// which used to end it with nothing finished, is ignored.
#[test]
fn sighup_finishes_recordings_and_sigusr1_is_ignored() {
    let _turn = serial();
    let mut d = Daemon::start(
        "sighup",
        "outputs:\n  - {name: mkv, type: record, path: rec/show.mkv}\n",
        &[],
    );
    d.wait_state("mkv", "live", Duration::from_secs(30));
    d.send(libc::SIGUSR1);
    d.send(libc::SIGUSR2);
    d.send(libc::SIGPIPE);
    std::thread::sleep(Duration::from_secs(2));
    let frame = d.frame();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        d.frame() > frame,
        "the show stopped after SIGUSR1:\n{}",
        d.log()
    );
    assert!(d.log().contains("ignored"), "{}", d.log());
    let dir = d.dir.clone();
    assert_eq!(d.stop_with(libc::SIGHUP), 0, "{}", d.log());
    assert!(d.log().contains("recording complete"), "{}", d.log());
    let (_, frames, duration) = ffprobe_file(&dir.join("rec/show.mkv")).unwrap();
    assert!(
        frames >= 60 && duration >= 2.0,
        "{frames} frames, {duration} s"
    );
}

/// A model whose step never returns: the picture is held at the output's rate, the hang
/// is told once as an error event and in the status, requests that need the model fail
/// fast, and SIGTERM still finishes the recording and ends the process.
#[test]
fn a_hung_model_is_reported_and_the_show_still_stops_cleanly() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-hang-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let models = broken_packages(&dir);
    let show = format!(
        "name: hang\nbackend: torchscript\nmodel: {}\ndevice: cpu\n",
        models.join("hangs-after-five").display()
    );
    let mut d = Daemon::start_with_show(
        "hang",
        &show,
        "outputs:\n  - {name: mkv, type: record, path: rec/show.mkv}\n",
        &[],
    );
    let events = follow_events(&d.api);
    d.wait_state("mkv", "live", Duration::from_secs(30));
    let error = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(20)).ok())
        .find(|e| e["type"] == "error")
        .expect("an error event for the stuck model");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not responding"),
        "{error}"
    );
    let status = d.get("/api/v1/status");
    assert!(
        status["step_running_s"].as_f64().unwrap() >= 5.0,
        "{status}"
    );
    // Frames keep going out, held.
    let out = |d: &Daemon| {
        d.get("/api/v1/status")["live"]["frames"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = out(&d);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(out(&d) > before, "the output stalled");
    let asked = Instant::now();
    let (code, body) = d.call("POST", "/api/v1/checkpoints", Some("{}"), None);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "not_responding", "{body}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let dir = d.dir.clone();
    let stopping = Instant::now();
    assert_eq!(d.terminate(), 0, "{}", d.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "{:?}",
        stopping.elapsed()
    );
    assert!(d.log().contains("recording complete"), "{}", d.log());
    let (_, frames, _) = ffprobe_file(&dir.join("rec/show.mkv")).unwrap();
    assert!(frames >= 30, "{frames} frames");
}

/// A recording stopped or removed over the API is a complete file (it used to be cut
/// with no index), and starting it again opens a new file beside the first.
#[test]
fn recordings_stopped_or_removed_over_the_api_are_complete_files() {
    let _turn = serial();
    let d = Daemon::start(
        "stop-recording",
        "outputs:\n  - {name: mkv, type: record, path: rec/show.mkv}\n  - {name: mp4, type: record, path: rec/show.mp4}\n",
        &[],
    );
    d.wait_state("mkv", "live", Duration::from_secs(30));
    d.wait_state("mp4", "live", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = d.call("POST", "/api/v1/outputs/mkv/stop", None, None);
    assert_eq!(code, 200, "{body}");
    let (code, body) = d.call("DELETE", "/api/v1/outputs/mp4", None, None);
    assert_eq!(code, 204, "{body}");
    for f in ["rec/show.mkv", "rec/show.mp4"] {
        let (_, frames, duration) =
            ffprobe_file(&d.dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{}", d.log()));
        assert!(
            frames >= 60 && duration >= 2.0,
            "{f}: {frames} frames, {duration} s"
        );
    }
    // Started again, it records into a new file and leaves the first one whole.
    let first = std::fs::read(d.dir.join("rec/show.mkv")).unwrap();
    let (code, body) = d.call("POST", "/api/v1/outputs/mkv/start", None, None);
    assert_eq!(code, 200, "{body}");
    d.wait_state("mkv", "live", Duration::from_secs(30));
    wait_until(Duration::from_secs(10), "a second file", || {
        d.dir.join("rec/show-2.mkv").exists()
    });
    assert_eq!(std::fs::read(d.dir.join("rec/show.mkv")).unwrap(), first);
}

/// A recording on a full disk says so and leaves no empty files behind, however often it
/// retries. (Needs a tmpfs, mounted as root; skipped with a message where refused.)
#[test]
fn a_recording_on_a_full_disk_says_so_and_litters_nothing() {
    let _turn = serial();
    let d = Daemon::start("full-disk-rec", "recordings: rec\n", &[]);
    let rec = d.dir.join("rec");
    let Some(_disk) = Tmpfs::mount(&rec, "4m", "a recording on a full disk") else {
        return;
    };
    let body = r#"{"name": "r", "type": "record", "path": "show.mkv",
                   "reconnect": {"first_delay_s": 0.2, "multiplier": 1, "max_delay_s": 0.2}}"#;
    let (code, answer) = d.call("POST", "/api/v1/outputs", Some(body), None);
    assert_eq!(code, 201, "{answer}");
    wait_until(Duration::from_secs(15), "a few attempts", || {
        d.output("r")["attempt"].as_u64().unwrap_or(0) >= 3
    });
    let o = d.output("r");
    let error = o["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("disk full") && error.contains("MB free"),
        "{o}"
    );
    let files: Vec<_> = std::fs::read_dir(&rec)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(files.is_empty(), "files left on the full disk: {files:?}");
}

/// Ctrl-C (SIGINT) and Ctrl-\ (SIGQUIT) finish the recording and end the process, as
/// SIGTERM and SIGHUP do.
#[test]
fn sigint_and_sigquit_finish_recordings_too() {
    let _turn = serial();
    for (signal, name) in [(libc::SIGINT, "sigint"), (libc::SIGQUIT, "sigquit")] {
        let mut d = Daemon::start(
            name,
            "outputs:\n  - {name: mkv, type: record, path: rec/show.mkv}\n",
            &[],
        );
        d.wait_state("mkv", "live", Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(2));
        let dir = d.dir.clone();
        assert_eq!(d.stop_with(signal), 0, "{name}: {}", d.log());
        assert!(
            d.log().contains("recording complete"),
            "{name}: {}",
            d.log()
        );
        let (_, frames, duration) = ffprobe_file(&dir.join("rec/show.mkv")).unwrap();
        assert!(
            frames >= 45 && duration >= 1.5,
            "{name}: {frames} frames, {duration} s"
        );
    }
}
