//! `cuecastsrc` in real pipelines: the plugin file loaded by `gst-launch-1.0` into an MP4
//! that `ffprobe` reads, and in-process pipelines steered by cue files and over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gst::prelude::*;
use gst_app::AppSink;

#[path = "../../engine/tests/support/mod.rs"]
mod support;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstcuecast::register_static().unwrap();
    });
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cuecast-pipeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The plugin file cargo built beside this test, copied into a folder of its own so
/// GStreamer's scanner sees nothing else.
fn plugin_dir(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let built = [
        deps.join("libgstcuecast.so"),
        deps.parent().unwrap().join("libgstcuecast.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libgstcuecast.so is built with the tests (cdylib of gst-plugin-cuecast)");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    // A hard link where it can (the plugin is 160 MB in a debug build), a copy otherwise.
    let dest = plugins.join("libgstcuecast.so");
    let _ = std::fs::remove_file(&dest);
    if std::fs::hard_link(&built, &dest).is_err() {
        std::fs::copy(&built, &dest).unwrap();
    }
    plugins
}

fn ffprobe(file: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .arg("stream=codec_name,width,height,r_frame_rate,nb_read_frames")
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe (scripts/setup installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["streams"][0].clone()
}

#[test]
fn gst_launch_writes_a_playable_mp4() {
    let dir = tempdir("launch");
    let plugins = plugin_dir(&dir);
    let out = dir.join("out.mp4");
    let status = Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", &plugins)
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .arg("-q")
        .args([
            "cuecastsrc",
            "prompt=snowy mountains at dawn",
            "num-buffers=45",
            "!",
        ])
        .args([
            "video/x-raw,width=320,height=180,framerate=30/1",
            "!",
            "videoconvert",
            "!",
            "x264enc",
            "!",
        ])
        .args(["mp4mux", "!", "filesink"])
        .arg(format!("location={}", out.display()))
        .status()
        .expect("gst-launch-1.0 (scripts/setup installs gstreamer1.0-tools)");
    assert!(status.success());
    let v = ffprobe(&out);
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(v["r_frame_rate"], "30/1");
    assert_eq!(v["nb_read_frames"], "45");
}

/// Pulls `n` frames; returns (frame index, pixels).
fn pull(sink: &AppSink, n: usize) -> Vec<(u64, Vec<u8>)> {
    (0..n)
        .map(|_| {
            let s = sink
                .try_pull_sample(gst::ClockTime::from_seconds(30))
                .expect("a frame within 30 s");
            let b = s.buffer().unwrap();
            let pixels = b.map_readable().unwrap().to_vec();
            (b.offset(), pixels)
        })
        .collect()
}

fn pipeline(desc: &str) -> (gst::Pipeline, AppSink) {
    init();
    let p = gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = p.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    (p, sink)
}

#[test]
fn frames_move_under_an_action_and_hold_without_one_or_frozen() {
    let dir = tempdir("action");
    let cues = dir.join("cues.yaml");
    std::fs::write(
        &cues,
        "- {type: action, forward: 1, yaw: 0.3, at: {frame: 10}}\n- {type: freeze, at: {frame: 20}}\n",
    )
    .unwrap();
    let (p, sink) = pipeline(&format!(
        "cuecastsrc is-live=false prompt=\"rolling green hills\" cues={} ! \
         video/x-raw,width=160,height=90,framerate=30/1 ! appsink name=sink sync=false",
        cues.display()
    ));
    let frames = pull(&sink, 30);
    p.set_state(gst::State::Null).unwrap();
    for (i, (n, _)) in frames.iter().enumerate() {
        assert_eq!(*n, i as u64);
    }
    let same = |a: usize, b: usize| frames[a].1 == frames[b].1;
    // No action: the camera is still and every frame is the same picture.
    assert!(
        (1..10).all(|i| same(0, i)),
        "frames 0..10 should be identical without motion"
    );
    // Under the action every frame differs from the one before.
    assert!(
        (10..20).all(|i| !same(i - 1, i)),
        "frames 10..20 should move"
    );
    // Frozen: the last frame before the freeze holds.
    assert!(
        (20..30).all(|i| same(19, i)),
        "frames 20..30 should hold frame 19"
    );
}

/// One call to the element's cue API (ureq, the client the CLI and the daemon's tests use).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .unwrap();
    let mut response = agent.run(req).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn curl_moves_the_camera_in_a_running_pipeline() {
    let addr = format!("127.0.0.1:{}", free_port());
    let (p, sink) = pipeline(&format!(
        "cuecastsrc control-address={addr} ! video/x-raw,width=160,height=90,framerate=30/1 ! \
         appsink name=sink sync=false max-buffers=4 drop=true"
    ));
    let before = pull(&sink, 3);
    assert_eq!(before[0].1, before[2].1, "still camera, still picture");
    let (status, v) = http(
        &addr,
        "POST",
        "/api/v1/cues?wait=true",
        r#"{"type":"action","forward":1}"#,
    );
    assert_eq!(status, 200, "{v}");
    let applied_at = v["cues"][0]["frame"].as_u64().unwrap();
    let latency = v["cues"][0]["latency_ms"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 5000.0, "{v}");
    // Frames after the cue show the camera moving: away from the still picture, and
    // different from frame to frame (a loaded machine may repeat the odd frame, so the
    // count of changes is checked rather than every pair).
    let after: Vec<_> = pull(&sink, 12)
        .into_iter()
        .filter(|(n, _)| *n > applied_at)
        .collect();
    assert!(after.len() >= 6, "frames after the cue: {}", after.len());
    assert!(
        after.iter().all(|(_, px)| *px != before[0].1),
        "the picture moved"
    );
    let changes = after.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(
        changes * 2 >= after.len(),
        "the picture keeps moving: {changes} changes in {} frames",
        after.len()
    );
    let (status, v) = http(&addr, "GET", "/api/v1/status", "");
    assert_eq!(status, 200);
    assert!(
        v["camera"]["pos"][2].as_f64().unwrap() < 0.0,
        "moved forward (down -Z): {v}"
    );
    // A bad cue is refused with the field named, and the show goes on.
    let (status, v) = http(
        &addr,
        "POST",
        "/api/v1/cues",
        r#"{"type":"action","forward":7}"#,
    );
    assert_eq!((status, v["field"].as_str()), (422, Some("forward")));
    assert_eq!(pull(&sink, 2).len(), 2);
    p.set_state(gst::State::Null).unwrap();
}

#[test]
fn the_example_torchscript_package_runs_through_the_element() {
    let pkg = support::example_package(&tempdir("ts-element"));
    let (p, sink) = pipeline(&format!(
        "cuecastsrc backend=torchscript model={} device=cpu is-live=false num-buffers=12 ! \
         video/x-raw,width=320,height=180,framerate=30/1 ! appsink name=sink sync=false",
        pkg.display()
    ));
    let frames = pull(&sink, 12);
    p.set_state(gst::State::Null).unwrap();
    // Scaled from the model's 256x144 to the negotiated size, and alive frame to frame.
    assert!(frames.iter().all(|(_, px)| px.len() == 320 * 180 * 4));
    assert!(frames.windows(2).all(|w| w[0].1 != w[1].1));
}

#[test]
fn a_compiled_chunked_package_runs_through_the_element_with_no_python() {
    let dir = tempdir("aoti-element");
    let mut export = support::python();
    export
        .arg(support::repo().join("models/compiled/export.py"))
        .args(["--models", "chunks", "--runtimes", "aoti", "--out"])
        .arg(&dir);
    assert!(
        export.status().unwrap().success(),
        "exporting the chunked model"
    );
    let (p, sink) = pipeline(&format!(
        "cuecastsrc backend=aoti model={} device=cpu is-live=false num-buffers=30 ! \
         video/x-raw,format=RGBx,width=256,height=144,framerate=30/1 ! appsink name=sink sync=false",
        dir.join("chunks-aoti").display()
    ));
    let frames = pull(&sink, 30);
    p.set_state(gst::State::Null).unwrap();
    // A 16 fps model in a 30 fps show: about two show frames each, and alive.
    assert!(frames.iter().all(|(_, px)| px.len() == 256 * 144 * 4));
    let distinct = frames.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(
        (12..=18).contains(&distinct),
        "{distinct} changes in 30 frames"
    );
}

#[test]
fn a_model_that_starts_failing_never_stalls_the_live_output() {
    let dir = support::broken_packages(&tempdir("ts-failing"));
    init();
    let p = gst::parse::launch(&format!(
        "cuecastsrc backend=torchscript model={} ! video/x-raw,width=64,height=36,framerate=30/1 ! \
         appsink name=sink sync=false",
        dir.join("throws-after-five").display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = p.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let frames = pull(&sink, 20);
    // Every slot has its frame, in order, though every step from the fifth on fails...
    for (i, (n, _)) in frames.iter().enumerate() {
        assert_eq!(*n, i as u64);
    }
    // ...by showing the last good frame again.
    assert!((5..20).all(|i| frames[i].1 == frames[4].1));
    // And the failure is reported on the bus, with the model's own words.
    let warning = p
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(5))
        .find_map(|m| match m.view() {
            gst::MessageView::Warning(w) => Some(w.error().to_string()),
            _ => None,
        })
        .expect("a warning message");
    assert!(warning.contains("the model gave up"), "{warning}");
    p.set_state(gst::State::Null).unwrap();
}

/// `gst-inspect-1.0 cuecastsrc` lists the values a choice property takes, and a
/// `gst-launch-1.0` user sets it by its name.
#[test]
fn gst_inspect_lists_the_values_of_the_choice_properties() {
    let dir = tempdir("inspect");
    let plugins = plugin_dir(&dir);
    let out = Command::new("gst-inspect-1.0")
        .env("GST_PLUGIN_PATH", &plugins)
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .arg("cuecastsrc")
        .output()
        .expect("gst-inspect-1.0 (scripts/setup installs gstreamer1.0-tools)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split("failure-action")
        .nth(1)
        .expect("a failure-action property");
    let section = &section[..section.len().min(800)];
    assert!(section.contains("GstCuecastFailureAction"), "{section}");
    for value in ["(0): reset", "(1): hold"] {
        assert!(section.contains(value), "{value} in {section}");
    }
    let status = Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", &plugins)
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .args([
            "-q",
            "cuecastsrc",
            "failure-action=hold",
            "num-buffers=3",
            "!",
        ])
        .args(["video/x-raw,width=64,height=36", "!", "fakesink"])
        .status()
        .unwrap();
    assert!(status.success());
}
