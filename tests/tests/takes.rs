//! Takes, checkpoints and exports through a running daemon: the API, the event stream
//! and the `cuecast` commands, as a producer and a creator use them.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

fn cuecast(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cuecast-e2e"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    d.call("POST", path, Some(&body.to_string()), None)
}

#[test]
fn a_take_is_recorded_listed_replayed_and_exported() {
    let _turn = serial();
    let d = Daemon::start("takes", "", &[]);
    let events = follow_events(&d.api);
    let (status, v) = post(&d, "/api/v1/takes", json!({"name": "opening"}));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], "opening");
    // One take at a time.
    let (status, v) = post(&d, "/api/v1/takes", json!({"name": "second"}));
    assert_eq!(status, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("opening"), "{v}");
    for cue in [
        json!({"type": "action", "forward": 1, "yaw": 0.3}),
        json!({"type": "marker", "label": "hero shot"}),
    ] {
        assert_eq!(post(&d, "/api/v1/cues", cue).0, 202);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(d.get("/api/v1/status")["take"], "opening");
    std::thread::sleep(Duration::from_millis(800));
    let (status, v) = post(&d, "/api/v1/takes/stop", json!({}));
    assert_eq!(status, 200, "{v}");
    let frames = v["frames"].as_u64().unwrap();
    assert!(frames >= 30, "{v}");
    let (status, v) = post(&d, "/api/v1/takes/stop", json!({}));
    assert_eq!(status, 409, "no take is recording: {v}");
    let list = d.get("/api/v1/takes");
    let take = &list.as_array().unwrap()[0];
    assert_eq!(
        (
            take["name"].as_str(),
            take["complete"].as_bool(),
            take["markers"].as_u64()
        ),
        (Some("opening"), Some(true), Some(1)),
        "{list}"
    );
    let take_dir = d.dir.join("takes/opening");

    // Replayed offline, the frames are the take's, bit for bit.
    let (ok, out) = cuecast(
        &["replay", take_dir.to_str().unwrap(), "--out", "replayed"],
        &d.dir,
    );
    assert!(ok, "{out}");
    assert!(out.contains("identical"), "{out}");
    let (ok, out) = cuecast(
        &["replay", take_dir.to_str().unwrap(), "--out", "replayed"],
        &d.dir,
    );
    assert!(
        !ok && out.contains("replayed") && out.contains("--force"),
        "{out}"
    );

    // Exported over the API as a job, with progress on the event stream.
    let (status, v) = post(
        &d,
        "/api/v1/takes/opening/export",
        json!({"formats": "gltf,usd,png"}),
    );
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = d.get(&format!("/api/v1/jobs/{id}"));
        if job["state"] != "running" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the export never finished: {job}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["state"], "done", "{job}");
    let files: Vec<&str> = job["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "manifest.json",
        "markers.json",
        "camera/scene.glb",
        "camera/camera.usda",
    ] {
        assert!(files.contains(&f), "{f} missing from {files:?}");
    }
    let bundle = d.dir.join("exports/opening-export");
    assert!(bundle.join("plate/rgb.0001.png").is_file() || bundle.join("plate").is_dir());
    let markers: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("markers.json")).unwrap())
            .unwrap();
    assert!(markers.to_string().contains("hero shot"), "{markers}");
    let mut progress = 0;
    while let Ok(e) = events.recv_timeout(Duration::from_millis(500)) {
        if e["type"] == "export" {
            progress += 1;
        }
    }
    assert!(progress >= 2, "export progress on the event stream");
    // Again without force: refused; an unknown format: named.
    let (status, v) = post(&d, "/api/v1/takes/opening/export", json!({}));
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(
        &d,
        "/api/v1/takes/opening/export",
        json!({"formats": "gltf,fbx", "force": true}),
    );
    assert_eq!((status, v["field"].as_str()), (422, Some("formats")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("fbx"), "{v}");
    // The command line lists what the API lists.
    let (ok, out) = cuecast(&["take", "list", "--api", &d.api], &d.dir);
    assert!(ok && out.contains("\"opening\""), "{out}");
}

#[test]
fn names_cannot_leave_their_folders() {
    let _turn = serial();
    let d = Daemon::start("take-names", "", &[]);
    for bad in ["../evil", "a/b", ".hidden", "", "x\u{0}y"] {
        let (status, v) = post(&d, "/api/v1/takes", json!({"name": bad}));
        assert_eq!(
            (status, v["field"].as_str()),
            (422, Some("name")),
            "{bad:?}: {v}"
        );
        let (status, v) = post(&d, "/api/v1/checkpoints", json!({"name": bad}));
        assert_eq!(
            (status, v["field"].as_str()),
            (422, Some("name")),
            "{bad:?}: {v}"
        );
    }
    let (status, _) = post(&d, "/api/v1/takes/..%2Fevil/export", json!({}));
    assert!(status == 422 || status == 404, "{status}");
    assert!(!d.dir.join("evil").exists() && !d.dir.parent().unwrap().join("evil").exists());
    assert!(d.get("/api/v1/status")["take"].is_null(), "nothing started");
}

#[test]
fn a_checkpoint_restores_the_scene_live() {
    let _turn = serial();
    let d = Daemon::start("checkpoints", "", &[]);
    let (status, _) = post(
        &d,
        "/api/v1/cues?wait=true",
        json!([{"type": "prompt", "text": "red desert dunes", "transition_s": 0},
               {"type": "param", "name": "fog", "value": 0.7}]),
    );
    assert_eq!(status, 200, "applied");
    std::thread::sleep(Duration::from_millis(300));
    let (status, saved) = post(&d, "/api/v1/checkpoints", json!({"name": "dunes"}));
    assert_eq!(status, 201, "{saved}");
    let before = d.get("/api/v1/status");
    // The show moves on: another prompt, the camera flies.
    assert_eq!(
        post(
            &d,
            "/api/v1/cues?wait=true",
            json!([{"type": "prompt", "text": "night coast", "transition_s": 0},
                   {"type": "action", "forward": 1}])
        )
        .0,
        200
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.get("/api/v1/status")["prompt"], "night coast");
    let frame_before_restore = d.frame();
    let (status, v) = post(&d, "/api/v1/checkpoints/dunes/restore", json!({}));
    assert_eq!(status, 200, "{v}");
    let after = d.get("/api/v1/status");
    assert_eq!(after["prompt"], "red desert dunes");
    assert_eq!(after["camera"], before["camera"], "{after}\n{before}");
    assert!((after["params"]["fog"].as_f64().unwrap() - 0.7).abs() < 1e-9);
    assert!(
        d.frame() >= frame_before_restore,
        "the show's frames keep counting"
    );
    let list = d.get("/api/v1/checkpoints");
    assert_eq!(list[0]["name"], "dunes", "{list}");
    // Unknown and corrupt checkpoints: clear errors, nothing changes.
    let (status, v) = post(&d, "/api/v1/checkpoints/nope/restore", json!({}));
    assert_eq!(status, 404, "{v}");
    std::fs::write(d.dir.join("checkpoints/dunes/checkpoint.json"), "{").unwrap();
    let (status, v) = post(&d, "/api/v1/checkpoints/dunes/restore", json!({}));
    assert_eq!(status, 422, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("checkpoint.json"),
        "{v}"
    );
    assert_eq!(d.get("/api/v1/status")["prompt"], "red desert dunes");
}

/// A take whose disk fills up ends at once: the status stops saying it records, an
/// event says why, and its manifest is complete with the frames it holds and the reason.
/// (Needs a tmpfs, mounted as root; skipped with a message where mounting is refused.)
#[test]
fn a_take_on_a_full_disk_ends_at_once_with_a_complete_manifest() {
    let _turn = serial();
    let d = Daemon::start("full-disk", "", &[]);
    let takes = d.dir.join("takes");
    let Some(_disk) = Tmpfs::mount(&takes, "6m", "a take on a full disk") else {
        return;
    };
    let events = follow_events(&d.api);
    let (code, body) = post(&d, "/api/v1/takes", json!({"name": "full"}));
    assert_eq!(code, 201, "{body}");
    wait_until(Duration::from_secs(20), "the take ends by itself", || {
        d.get("/api/v1/status")["take"].is_null()
    });
    let ended = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(10)).ok())
        .find(|e| e["type"] == "take" && e["state"] == "stopped")
        .expect("a take event");
    let reason = ended["error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("No space left"), "{ended}");
    assert!(
        !reason.contains(&*d.dir.to_string_lossy()),
        "a server path in {reason}"
    );
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(takes.join("full/take.json")).unwrap())
            .unwrap();
    assert!(m["stopped_utc"].is_string(), "{m}");
    assert!(
        m["stop_reason"].as_str().unwrap().contains("No space left"),
        "{m}"
    );
    let frames = m["frames"].as_u64().unwrap();
    let lines = std::fs::read_to_string(takes.join("full/frames.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(
        frames > 0 && frames == lines,
        "{frames} frames, {lines} records"
    );
    assert_eq!(
        std::fs::metadata(takes.join("full/rgb.raw")).unwrap().len(),
        frames * 320 * 180 * 4
    );
    // The show goes on, and a take elsewhere works again.
    let frame = d.frame();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.frame() > frame);
}
