//! Inputs through the daemon: a real SRT sender (`gst-launch-1.0`) into an SRT
//! listener input that feeds a model that takes video; its pictures, seen in the
//! preview, follow the sender's; the sender killed and started again: the input
//! `retrying`, then `live`, and the show's rate held throughout.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// The engine tests' probe model taking video (its picture's blue is its input's red).
fn video_probe(dir: &std::path::Path) -> std::path::PathBuf {
    let pkg = dir.join("probe");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(
        repo().join("engine/tests/fixtures/probe_model.py"),
        pkg.join("model.py"),
    )
    .unwrap();
    std::fs::write(
        pkg.join("cuecast-model.yaml"),
        "contract: 2\nname: probe\nruntime: python\nentry: model:Probe\nwidth: 64\nheight: 36\nfps: 15\n\
         frames_per_step: 1\nlatency_frames: 1\ninputs: {video: {width: 32, height: 18}}\nprompt: none\n\
         save_state: true\nstep_timeout_s: 1\n",
    )
    .unwrap();
    pkg
}

/// An SRT caller sending a solid picture of `red` to `port`, as a camera's encoder would.
fn sender(port: u16, red: u8) -> Child {
    Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "is-live=true", "pattern=solid-color"])
        .arg(format!("foreground-color=0xff{red:02x}0000"))
        .args([
            "!",
            "video/x-raw,width=160,height=90,framerate=30/1,format=I420",
        ])
        .args([
            "!",
            "x264enc",
            "tune=zerolatency",
            "speed-preset=ultrafast",
            "key-int-max=15",
        ])
        .args(["!", "mpegtsmux", "alignment=7", "!", "srtsink"])
        .arg(format!("uri=srt://127.0.0.1:{port}?mode=caller"))
        .args(["latency=60", "wait-for-connection=false"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 starts")
}

/// The mean blue of one frame of the preview (MJPEG), in 0..255.
fn preview_blue(api: &str) -> f64 {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/preview.mjpeg HTTP/1.1\r\nhost: {api}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 16384];
    // The second whole JPEG: the first may be from before the last change.
    let jpeg = loop {
        let n = s.read(&mut chunk).expect("the preview streams");
        assert!(n > 0, "the preview ended");
        data.extend_from_slice(&chunk[..n]);
        let starts: Vec<usize> = data
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == &[0xff, 0xd8])
            .map(|(i, _)| i)
            .collect();
        if starts.len() >= 3 {
            break data[starts[1]..starts[2]].to_vec();
        }
    };
    let image = cuecast_engine::media::decode(&jpeg).expect("a JPEG");
    let blue: u64 = image.data.chunks(3).map(|p| u64::from(p[2])).sum();
    blue as f64 / (image.width * image.height) as f64
}

/// Waits until the preview's blue is near `want` (the sender's red through the model).
fn wait_blue(d: &Daemon, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = preview_blue(&d.api);
        if (b - want).abs() < 25.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the picture's blue stayed {b:.0}, not near {want}: {}\n{}",
            d.get("/api/v1/status"),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn input_state(d: &Daemon) -> Value {
    d.get("/api/v1/status")["inputs"][0].clone()
}

#[test]
fn an_srt_input_feeds_the_model_and_comes_back_after_its_sender_does_with_the_rate_held() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pkg = video_probe(&dir);
    let port = free_udp_port();
    let d = Daemon::start_with_show(
        "input-srt",
        &format!(
            "name: v2v\nbackend: python\nmodel: {}\ndevice: cpu\nfallback: hold\nvideo_input: cam\nvideo_fallback: black\n",
            pkg.display()
        ),
        &format!(
            "inputs:\n  - {{name: cam, type: srt, mode: listener, address: 127.0.0.1:{port}, latency_ms: 60}}\n\
             outputs:\n  - {{name: preview, type: preview, width: 160, fps: 10}}\n"
        ),
        &[],
    );
    let events = follow_events(&d.api);
    let s = input_state(&d);
    assert_eq!(
        (s["name"].as_str(), s["state"].as_str()),
        (Some("cam"), Some("connecting")),
        "{s}"
    );
    assert_eq!(s["feeds_model"], true, "{s}");

    let mut camera = sender(port, 200);
    wait_until(Duration::from_secs(20), "the input is live", || {
        input_state(&d)["state"] == "live"
    });
    wait_blue(&d, 200.0);

    // The camera goes away: the input says so; the model is given black (the show's
    // video_fallback), and the show goes on.
    camera.kill().unwrap();
    camera.wait().unwrap();
    wait_until(Duration::from_secs(10), "the input is retrying", || {
        input_state(&d)["state"] == "retrying"
    });
    let s = input_state(&d);
    let error = s["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("inputs.cam.address: "), "{s}");
    wait_blue(&d, 0.0);

    // It comes back, showing something else now.
    let mut camera = sender(port, 60);
    wait_until(Duration::from_secs(30), "the input is live again", || {
        input_state(&d)["state"] == "live"
    });
    wait_blue(&d, 60.0);
    camera.kill().unwrap();
    let _ = camera.wait();

    // Every second of it the show kept its rate; the input's story was told.
    let mut fps = Vec::new();
    let mut states = Vec::new();
    while let Ok(e) = events.recv_timeout(Duration::from_millis(200)) {
        match e["type"].as_str() {
            Some("stats") => fps.push(e["stats"]["fps"].as_f64().unwrap_or(0.0)),
            Some("input_state") => states.push(e["state"].as_str().unwrap_or("").to_owned()),
            _ => {}
        }
    }
    assert!(fps.len() >= 5, "{fps:?}");
    assert!(fps.iter().all(|f| (29.0..=31.0).contains(f)), "fps {fps:?}");
    let story: Vec<&str> = states.iter().map(String::as_str).collect();
    let live_retry_live = story
        .windows(3)
        .any(|w| w[0] == "live" && w[1] == "retrying")
        && story.iter().filter(|s| **s == "live").count() >= 2;
    assert!(live_retry_live, "{story:?}");
    let metrics = d.call("GET", "/metrics", None, None).1;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("cuecast_input_state{input=\"cam\",state=\"live\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("cuecast_video_in_received"), "{metrics}");
    let s = d.get("/api/v1/status");
    assert!(s["video_in"]["received"].as_u64().unwrap() > 30, "{s}");
}

#[test]
fn an_rtmp_input_that_cannot_connect_says_so_without_its_key() {
    let _turn = serial();
    let port = free_port();
    let d = Daemon::start(
        "input-rtmp-down",
        "inputs:\n  - {name: feed, type: rtmp, url_env: FEED_URL}\n",
        &[(
            "FEED_URL",
            &format!("rtmp://127.0.0.1:{port}/live/sk_feed_9f3a"),
        )],
    );
    wait_until(Duration::from_secs(20), "the input is retrying", || {
        input_state(&d)["state"] == "retrying"
    });
    let s = input_state(&d);
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .starts_with("inputs.feed.url: "),
        "{s}"
    );
    assert_eq!(s["source"], format!("rtmp://127.0.0.1:{port}/<stream>"));
    // The show went on, and the key is nowhere.
    assert!(d.frame() > 0);
    for text in [d.get("/api/v1/status").to_string(), d.log()] {
        assert!(!text.contains("sk_feed_9f3a"), "the key leaked: {text}");
    }
}
