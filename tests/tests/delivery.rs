//! `live` means delivered: outputs against peers that take the connection and then
//! nothing, go away, or are not there yet. One failure is one attempt, its root error
//! is kept, and every state change is an event.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

#[test]
fn an_output_is_live_only_while_its_peer_takes_data() {
    let _turn = serial();
    // An "RTMP server" that accepts TCP and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(4) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let (listen_port, call_port) = (free_udp_port(), free_udp_port());
    let receiver = SrtReceiver::listen(call_port);
    let d = Daemon::start(
        "delivery",
        &format!(
            "outputs:\n  - {{name: silent, type: rtmp, url: rtmp://127.0.0.1:{silent_port}/live, key: k, profile: {SMALL}, reconnect: {{first_delay_s: 30}}}}\n  - {{name: listener, type: srt, mode: listener, address: 127.0.0.1:{listen_port}, profile: {SMALL}}}\n  - {{name: caller, type: srt, mode: caller, address: 127.0.0.1:{call_port}, profile: {SMALL}, reconnect: {{first_delay_s: 1, max_delay_s: 1}}}}\n"
        ),
        &[],
    );
    let events = follow_events(&d.api);
    d.wait_state("caller", "live", Duration::from_secs(30));
    assert_eq!(d.output("caller")["receivers"], 1, "{}", d.output("caller"));

    // Nobody has called the listener and the silent server took only TCP: neither is
    // live, and the listener is not an error.
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(3) {
        assert_eq!(d.state("silent"), "connecting", "{}", d.output("silent"));
        assert_eq!(
            d.state("listener"),
            "connecting",
            "{}",
            d.output("listener")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let l = d.output("listener");
    assert_eq!(
        (l["receivers"].as_u64(), l["bytes"].as_u64()),
        (Some(0), Some(0)),
        "{l}"
    );
    assert!(l["last_error"].is_null(), "{l}");
    assert_eq!(d.bytes("silent"), 0, "{}", d.output("silent"));

    // The silent server: one failed attempt with the root reason (rtmp2sink's own
    // time-out, or ours after the start limit).
    d.wait_state("silent", "retrying", Duration::from_secs(20));
    let s = d.output("silent");
    assert_eq!(s["attempt"], 1, "one failure is one attempt: {s}");
    let error = s["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("timed out") || error.contains("did not accept the stream"),
        "{s}"
    );

    // A receiver calls the listener: live, one receiver, bytes delivered.
    let caller_of_listener = SrtReceiver::call(listen_port);
    d.wait_state("listener", "live", Duration::from_secs(20));
    wait_until(
        Duration::from_secs(10),
        "the listener counts delivered bytes",
        || d.bytes("listener") > 10_000,
    );
    assert_eq!(d.output("listener")["receivers"], 1);

    // The caller's receiver goes away: no longer live, one attempt, a reason that
    // names the peer rather than GStreamer's generic flow error.
    let before = d.bytes("caller");
    drop(receiver);
    wait_until(
        Duration::from_secs(20),
        "the caller notices its receiver left",
        || d.state("caller") != "live",
    );
    wait_until(
        Duration::from_secs(20),
        "the caller's attempt fails",
        || !d.output("caller")["last_error"].is_null(),
    );
    let c = d.output("caller");
    let error = c["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(!error.is_empty(), "{c}");
    assert!(!error.contains("Internal data stream error"), "{c}");
    assert!(c["attempt"].as_u64().unwrap() <= 2, "{c}");
    // Delivered bytes stop when acknowledgements stop (a reading may fall in between).
    assert!(d.bytes("caller") < before + 200_000, "{c}");

    // It comes back: a listener on the same port gets the stream again.
    let receiver = SrtReceiver::listen(call_port);
    d.wait_state("caller", "live", Duration::from_secs(40));
    wait_until(
        Duration::from_secs(20),
        "the new receiver gets data",
        || receiver.bytes() > 50_000,
    );

    // The events told the story: each attempt announced itself, and a live event
    // carries no error left over from the attempt before.
    let seen: Vec<Value> = events.try_iter().collect();
    let states = |name: &str| -> Vec<&Value> {
        seen.iter()
            .filter(|e| e["type"] == "output_state" && e["output"] == name)
            .collect()
    };
    let caller = states("caller");
    assert!(
        caller.iter().filter(|e| e["state"] == "connecting").count() >= 2,
        "{caller:?}"
    );
    assert!(
        caller.iter().filter(|e| e["state"] == "live").count() >= 2,
        "{caller:?}"
    );
    for e in seen.iter().filter(|e| e["state"] == "live") {
        assert!(e["error"].is_null(), "a stale error on a live event: {e}");
    }
    let silent = states("silent");
    assert!(
        silent.iter().all(|e| e["state"] != "live"),
        "the silent server was never live: {silent:?}"
    );
    drop(caller_of_listener);
    drop(accepted);
}

/// `kill -9` mid-recording: the files are written through, so each keeps all but the
/// last second (MKV: up to its last frame; MP4: up to its last 1 s fragment), even at
/// a low bitrate where a buffered writer used to hold seconds.
#[test]
fn recordings_cut_by_kill_9_lose_at_most_a_second() {
    let _turn = serial();
    let mut d = Daemon::start(
        "kill9-record",
        &format!(
            "outputs:\n  - {{name: mkv, type: record, path: rec/show.mkv, profile: {SMALL}}}\n  - {{name: mp4, type: record, path: rec/show.mp4, profile: {SMALL}}}\n"
        ),
        &[],
    );
    d.wait_state("mkv", "live", Duration::from_secs(30));
    d.wait_state("mp4", "live", Duration::from_secs(30));
    let live = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let ran = live.elapsed().as_secs_f64();
    let dir = d.dir.clone();
    d.stop_with(libc::SIGKILL);
    for file in ["rec/show.mkv", "rec/show.mp4"] {
        let frames = h264_frames(&dir.join(file));
        let kept = frames as f64 / 30.0;
        // The file started at most half a second before `live` was seen; at most one
        // second may be lost.
        assert!(
            kept >= ran - 1.5,
            "{file}: {kept:.2} s ({frames} frames) kept after {ran:.2} s live"
        );
    }
}

/// Video frames a player reads from a cut file, which must be H.264.
fn h264_frames(path: &std::path::Path) -> u64 {
    let (codec, frames) = video_frames(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(codec, "h264", "{}", path.display());
    frames
}

/// `kill -9` while a take records, a checkpoint is being saved and a recording runs,
/// then the daemon started again on the same folders: it starts cleanly, removes what
/// the killed one left half-written, lists the cut take (readable, with its frames),
/// never overwrites the cut recording (which plays), and takes new names and old ones
/// as before.
#[test]
fn a_daemon_killed_mid_take_and_mid_checkpoint_starts_again_cleanly_on_its_folders() {
    let _turn = serial();
    let d = Daemon::start(
        "kill9-restart",
        &format!(
            "outputs:\n  - {{name: mkv, type: record, path: rec/show.mkv, profile: {SMALL}}}\n"
        ),
        &[],
    );
    d.wait_state("mkv", "live", Duration::from_secs(30));
    let (status, body) = d.call("POST", "/api/v1/takes", Some(r#"{"name": "t1"}"#), None);
    assert_eq!(status, 201, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    // A checkpoint save in flight when the process dies.
    let api = d.api.clone();
    let saving = std::thread::spawn(move || {
        let _ = request(
            &api,
            "POST",
            "/api/v1/checkpoints",
            Some(r#"{"name": "c1"}"#),
            None,
        );
    });
    std::thread::sleep(Duration::from_millis(3));
    let dir = d.kill_9();
    let _ = saving.join();

    let d = Daemon::start_again(dir.clone());
    d.wait_state("mkv", "live", Duration::from_secs(30));
    // The cut take is listed and readable, with the frames it got.
    let takes = d.get("/api/v1/takes");
    let t1 = takes
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "t1"))
        .unwrap_or_else(|| panic!("t1 is not listed: {takes}"))
        .clone();
    assert!(t1["error"].is_null(), "{t1}");
    assert!(t1["frames"].as_u64().unwrap_or(0) >= 30, "{t1}");
    // Checkpoints list without errors: c1 is complete or absent, never half.
    let checkpoints = d.get("/api/v1/checkpoints");
    for c in checkpoints.as_array().into_iter().flatten() {
        assert!(c["error"].is_null(), "a broken checkpoint is listed: {c}");
    }
    let leftovers: Vec<String> = ["takes", "checkpoints"]
        .iter()
        .flat_map(|f| {
            std::fs::read_dir(dir.join(f))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The cut recording plays and was not overwritten: the new one has its own name.
    assert!(h264_frames(&dir.join("rec/show.mkv")) >= 30);
    assert!(d.output("mkv")["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("show-2.mkv")));
    // Names: t1 is taken, a new one works.
    let (status, _) = d.call("POST", "/api/v1/takes", Some(r#"{"name": "t1"}"#), None);
    assert_eq!(status, 409);
    let (status, body) = d.call("POST", "/api/v1/takes", Some(r#"{"name": "t2"}"#), None);
    assert_eq!(status, 201, "{body}");
    let (status, body) = d.call("POST", "/api/v1/takes/stop", None, None);
    assert_eq!(status, 200, "{body}");
}
