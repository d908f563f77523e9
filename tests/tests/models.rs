//! A python model on air through the daemon: the reference chunked model in a show,
//! steered over the API with keys, mouse and an uploaded image; both reference models
//! playing at their own rate in a 30 fps show and changed by every input kind (against
//! the same show without it); its process killed with the broadcast keeping its rate;
//! and the media folder's upload, which is the one way a file comes into the show from
//! outside.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// A show of the reference model `model` (in models/) with `fallback`; a prompt for the
/// model that takes one.
fn reference_show(model: &str, fallback: &str) -> String {
    let prompt = if model == "kv-chunks" {
        "prompt: a quiet valley\n"
    } else {
        ""
    };
    format!(
        "name: {model}\nbackend: python\nmodel: {}/models/{model}\ndevice: cpu\nmodel_threads: 1\nseed: 5\n{prompt}fallback: {fallback}\n",
        repo().display()
    )
}

fn kv_show(fallback: &str) -> String {
    reference_show("kv-chunks", fallback)
}

/// A POST with a binary body and a content type of the caller's choosing.
fn upload(api: &str, path: &str, kind: &str, body: &[u8], origin: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let origin = origin.map_or(String::new(), |o| format!("origin: {o}\r\n"));
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {api}\r\ncontent-type: {kind}\r\n{origin}connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
    )
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgb);
    e.set_depth(png::BitDepth::Eight);
    let data: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
    e.write_header().unwrap().write_image_data(&data).unwrap();
    out
}

/// The engine tests' probe model (engine/tests/fixtures/probe_model.py) as a package in
/// `dir`: 64x36 at 16 fps, chunks of 4, a 1 s step deadline, and `config` (its faults).
fn probe(dir: &std::path::Path, config: &str) -> std::path::PathBuf {
    let pkg = dir.join("probe");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(
        repo().join("engine/tests/fixtures/probe_model.py"),
        pkg.join("model.py"),
    )
    .unwrap();
    std::fs::write(
        pkg.join("cuecast-model.yaml"),
        format!(
            "contract: 2\nname: probe\nruntime: python\nentry: model:Probe\nwidth: 64\nheight: 36\nfps: 16\n\
             frames_per_step: 4\ninputs: {{keys: [KeyW], mouse: true}}\nprompt: none\nsave_state: true\n\
             step_timeout_s: 1\nconfig: {{{config}}}\n"
        ),
    )
    .unwrap();
    pkg
}

/// A show of the probe with `config` faults; waits for `done` to say the story is told,
/// collecting the stats' fps from the first event that `started` accepts.
fn fault_show(
    name: &str,
    config: &str,
    started: impl Fn(&Value) -> bool,
    done: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, Vec<f64>, Value) {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pkg = probe(&dir, config);
    let show = format!(
        "name: probe\nbackend: python\nmodel: {}\ndevice: cpu\nfallback: hold\n",
        pkg.display()
    );
    let d = Daemon::start_with_show(name, &show, "media: media\n", &[]);
    let events = follow_events(&d.api);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut fps, mut counting) = (Vec::new(), Vec::new(), false);
    while !done(&seen) || fps.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "events {seen:?} fps {fps:?}\n{}",
            d.log()
        );
        let Ok(e) = events.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        counting |= started(&e);
        if e["type"] == "stats" {
            if counting {
                fps.push(e["stats"]["fps"].as_f64().unwrap_or(0.0));
            }
        } else {
            seen.push(e);
        }
    }
    let status = d.get("/api/v1/status");
    let _ = std::fs::remove_dir_all(&dir);
    (seen, fps, status)
}

#[test]
fn a_hung_model_is_killed_at_its_deadline_and_started_again_with_the_broadcast_at_its_rate() {
    let (events, fps, status) = fault_show(
        "hang",
        "hang_at: 12, once: true",
        |e| e["type"] == "model",
        |seen| {
            seen.iter()
                .any(|e| e["type"] == "model" && e["state"] == "running")
        },
    );
    let down = events
        .iter()
        .find(|e| e["type"] == "model" && e["state"] == "restarting")
        .unwrap();
    assert!(
        down["reason"].as_str().unwrap().contains("deadline"),
        "{down}"
    );
    assert!(fps.iter().all(|f| (29.0..=31.0).contains(f)), "fps {fps:?}");
    assert_eq!(status["model_process"]["restarts"], 1, "{status}");
    assert!(
        status["frames_repeated"].as_u64().unwrap() >= 15,
        "the last frame was held: {status}"
    );
}

#[test]
fn a_model_that_returns_nan_fails_the_step_starts_over_and_the_broadcast_keeps_its_rate() {
    let (events, fps, status) = fault_show(
        "nan",
        "nan_at: 12, wrong_shape_at: 20",
        |e| e["type"] == "error",
        |seen| {
            seen.iter()
                .filter(|e| e["type"] == "error" && e["model_resets"].is_u64())
                .count()
                >= 2
        },
    );
    let told: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(told.iter().any(|m| m.contains("NaN")), "{told:?}");
    assert!(told.iter().any(|m| m.contains("rgb must be")), "{told:?}");
    assert!(fps.iter().all(|f| (29.0..=31.0).contains(f)), "fps {fps:?}");
    assert_eq!(status["steps_failed"], 2, "{status}");
    assert_eq!(
        status["model_process"]["restarts"], 0,
        "a bad step is not a dead process: {status}"
    );
}

/// A model's code runs with cuecast's environment cut down to what models need, in a
/// sandbox of its own: the show's stream keys and token reach it neither through its
/// environment nor through cuecast's (`/proc` of the daemon, which it cannot see); a
/// name the show lists does; it writes only where the show lets it.
#[test]
fn the_model_process_gets_none_of_the_shows_secrets() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-env-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Writable by the model's user (nobody, where the tests run as root).
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (dump, report) = (out.join("env.txt"), out.join("hunt.json"));
    let pkg = probe(
        &dir,
        &format!(
            "env_dump: {}, hunt: {{report: {}, needles: [live-secret, t0ken-0123456789abcdef]}}",
            dump.display(),
            report.display()
        ),
    );
    let show = format!(
        "name: probe\nbackend: python\nmodel: {}\ndevice: cpu\nmodel_env: [MODEL_WEIGHTS_TOKEN]\n\
         model_folders: [\"{}:rw\"]\n",
        pkg.display(),
        out.display()
    );
    let d = Daemon::start_with_show(
        "probe-env",
        &show,
        "media: media\n",
        &[
            ("YOUTUBE_STREAM_KEY", "live-secret"),
            ("CUECAST_TOKEN", "t0ken-0123456789abcdef"),
            ("MODEL_WEIGHTS_TOKEN", "w"),
        ],
    );
    let names = std::fs::read_to_string(&dump).unwrap();
    let names: Vec<&str> = names.lines().collect();
    assert!(
        names.contains(&"PATH") && names.contains(&"MODEL_WEIGHTS_TOKEN"),
        "{names:?}"
    );
    for secret in ["YOUTUBE_STREAM_KEY", "CUECAST_TOKEN", "CUECAST_PYTHON"] {
        assert!(
            !names.contains(&secret),
            "{secret} reached the model: {names:?}"
        );
    }
    let hunt: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(hunt["found"], json!([]), "{hunt}");
    assert!(
        hunt["processes"].as_array().unwrap().len() <= 1,
        "it saw processes beside its own: {hunt}"
    );
    let status = d.get("/api/v1/status");
    assert!(
        status["model_process"]["sandbox"]
            .as_str()
            .is_some_and(|s| s.starts_with("bubblewrap")),
        "{status}"
    );
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

fn cue(d: &Daemon, cue: Value) -> (u16, Value) {
    d.call(
        "POST",
        "/api/v1/cues?wait=true",
        Some(&cue.to_string()),
        None,
    )
}

#[test]
fn a_python_model_is_steered_over_the_api_with_keys_mouse_and_an_uploaded_image() {
    let _turn = serial();
    let d = Daemon::start_with_show("python-show", &kv_show("hold"), "media: media\n", &[]);
    let model = d.get("/api/v1/model");
    assert_eq!(model["name"], "kv-chunks");
    assert_eq!(model["fps"], json!({"num": 16, "den": 1}));
    assert_eq!(
        model["inputs"]["keys"],
        json!(["KeyW", "KeyA", "KeyS", "KeyD"])
    );
    assert_eq!(
        (
            model["inputs"]["mouse"].as_bool(),
            model["inputs"]["image"].as_str()
        ),
        (Some(true), Some("optional"))
    );
    assert_eq!(model["chunking"]["frames_per_step"], 4);

    let (status, v) = cue(
        &d,
        json!({"type": "input", "keys": ["KeyW", "KeyD"], "mouse": {"dx": 12, "dy": -3}}),
    );
    assert_eq!(status, 200, "{v}");
    // Shown on the first show frame of the first chunk made after it arrived.
    let c = &v["cues"][0];
    assert!(c["shown_frame"].as_u64() >= c["frame"].as_u64(), "{v}");
    // An input the model does not take is refused by name, nothing applied.
    let (status, v) = cue(
        &d,
        json!({"type": "input", "keys": ["Tab"], "mouse": {"dx": 1, "dy": 1, "buttons": ["back"]}}),
    );
    assert_eq!(
        (status, v["field"].as_str()),
        (422, Some("mouse.buttons[0]")),
        "{v}"
    );

    // An image: uploaded, listed, then cued.
    let (status, v) = cue(&d, json!({"type": "image", "name": "start.png"}));
    assert_eq!(
        (status, v["field"].as_str()),
        (422, Some("name")),
        "not there yet: {v}"
    );
    let (status, v) = upload(
        &d.api,
        "/api/v1/media?name=start.png",
        "image/png",
        &png(320, 180),
        None,
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(d.get("/api/v1/media")[0]["name"], "start.png");
    let (status, v) = upload(
        &d.api,
        "/api/v1/media?name=start.png",
        "image/png",
        &png(8, 8),
        None,
    );
    assert_eq!((status, v["error"].as_str()), (409, Some("exists")), "{v}");
    let (status, v) = cue(&d, json!({"type": "image", "name": "start.png"}));
    assert_eq!(status, 200, "{v}");

    let s = d.get("/api/v1/status");
    let p = &s["model_process"];
    assert_eq!(
        (p["state"].as_str(), p["restarts"].as_u64()),
        (Some("running"), Some(0)),
        "{s}"
    );
    // A python show's status is what the API's document says a status is.
    let doc = d.get("/api/v1/openapi.json");
    let components = doc["components"]["schemas"].as_object().unwrap();
    let errors = cuecast_tests::schema::check(
        &s,
        &json!({"$ref": "#/components/schemas/Status"}),
        components,
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(s["frames_rendered"].as_u64().unwrap() > 0, "{s}");
    let log = d.get("/api/v1/cues/log");
    let types: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["cue"]["type"].as_str())
        .collect();
    assert_eq!(types, ["input", "image"], "{log}");
}

#[test]
fn uploads_take_only_images_under_a_plain_name_and_refuse_web_pages() {
    let _turn = serial();
    let d = Daemon::start_with_show("python-media", &kv_show("hold"), "media: media\n", &[]);
    let image = png(16, 16);
    for (path, kind, body, origin, status, error) in [
        (
            "/api/v1/media?name=a.png",
            "text/plain",
            image.clone(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/media?name=a.png",
            "application/json",
            image.clone(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/media?name=a.png",
            "image/png",
            image.clone(),
            Some("http://evil.example"),
            403,
            "forbidden_origin",
        ),
        (
            "/api/v1/media?name=../a.png",
            "image/png",
            image.clone(),
            None,
            422,
            "invalid_name",
        ),
        (
            "/api/v1/media?name=a.jpg",
            "image/png",
            image.clone(),
            None,
            422,
            "invalid_name",
        ),
        (
            "/api/v1/media?name=.a.png",
            "image/png",
            image.clone(),
            None,
            422,
            "invalid_name",
        ),
        (
            "/api/v1/media?name=a.png",
            "image/png",
            b"not a png at all".to_vec(),
            None,
            400,
            "invalid_image",
        ),
        // What a file is, its bytes say: a PNG sent as a JPEG is refused.
        (
            "/api/v1/media?name=a.png",
            "image/jpeg",
            image[..40].to_vec(),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/media?name=a.jpg",
            "image/jpeg",
            [0xff, 0xd8, 0xff, 0xe0, 0, 0].to_vec(),
            None,
            400,
            "invalid_image",
        ),
        (
            "/api/v1/media?name=a.png&colour=1",
            "image/png",
            image.clone(),
            None,
            400,
            "invalid_query",
        ),
    ] {
        let (got, v) = upload(&d.api, path, kind, &body, origin);
        assert_eq!(
            (got, v["error"].as_str()),
            (status, Some(error)),
            "{path} as {kind}: {v}"
        );
    }
    // Nothing was written by any of them.
    assert_eq!(d.get("/api/v1/media"), json!([]));
    assert!(!d.dir.join("a.png").exists());
    // Too large is refused before it is read whole.
    let (got, _) = upload(
        &d.api,
        "/api/v1/media?name=big.png",
        "image/png",
        &vec![0u8; 33 << 20],
        None,
    );
    assert_eq!(got, 413);
    // Without a name it is kept under its digest.
    let (got, v) = upload(&d.api, "/api/v1/media", "image/png", &image, None);
    assert_eq!(got, 201, "{v}");
    assert!(v["name"].as_str().unwrap().starts_with("upload-"), "{v}");
}

#[test]
fn killing_the_model_process_keeps_the_broadcast_at_its_rate_and_says_so() {
    let _turn = serial();
    let mut d = Daemon::start_with_show(
        "python-kill",
        &kv_show("procedural"),
        "media: media\noutputs:\n  - {name: preview, type: preview, width: 160, fps: 10}\n",
        &[],
    );
    let events = follow_events(&d.api);
    // A second of show first.
    std::thread::sleep(Duration::from_millis(1500));
    let pid = d.get("/api/v1/status")["model_process"]["pid"]
        .as_u64()
        .unwrap();
    // SAFETY: kill(2) on the pid the daemon reports as its model's worker.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut down, mut up, mut fps) = (None, false, Vec::new());
    while !up || fps.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "down {down:?} up {up} fps {fps:?}\n{}",
            d.log()
        );
        let Ok(e) = events.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        match e["type"].as_str() {
            Some("model") if e["state"] == "restarting" => {
                down = e["reason"].as_str().map(String::from)
            }
            Some("model") if e["state"] == "running" => up = true,
            Some("stats") if down.is_some() => fps.push(e["stats"]["fps"].as_f64().unwrap_or(0.0)),
            _ => {}
        }
    }
    let reason = down.unwrap();
    assert!(reason.contains("signal 9"), "{reason}");
    // Every second while it was down and after, the show kept its 30 frames a second.
    assert!(fps.iter().all(|f| (29.0..=31.0).contains(f)), "fps {fps:?}");
    let s = d.get("/api/v1/status");
    assert_eq!(s["model_process"]["restarts"], 1, "{s}");
    assert!(
        s["fallback_frames"].as_u64().unwrap() > 0,
        "the procedural world drew meanwhile: {s}"
    );
    let metrics = d.call("GET", "/metrics", None, None).1;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("cuecast_model_restarts_total 1"),
        "{metrics}"
    );
    let pid = d.pid();
    assert_eq!(d.terminate(), 0);
    // The worker (and all it started) ended with the show, within the stop's wait.
    assert!(!d.log().contains("left behind"), "{}", d.log());
    let worker_dirs = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("cuecast-worker-{pid}-"))
        })
        .count();
    assert_eq!(worker_dirs, 0, "the worker's folder is removed at stop");
}

/// A python model's show has every feature of any other: a take records what it made
/// (the probe's frames say which keys it was given, so the take shows the cue landing),
/// a checkpoint saves its compact state and restores it, the take exports; only replay
/// says it cannot yet.
#[test]
fn a_python_model_is_recorded_checkpointed_restored_and_exported() {
    let _turn = serial();
    let dir = std::env::temp_dir().join(format!("cuecast-e2e-take-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pkg = probe(&dir, "");
    // At the show's size, so the take holds the probe's marks unscaled.
    let manifest = std::fs::read_to_string(pkg.join("cuecast-model.yaml")).unwrap();
    std::fs::write(
        pkg.join("cuecast-model.yaml"),
        manifest
            .replace("width: 64", "width: 320")
            .replace("height: 36", "height: 180"),
    )
    .unwrap();
    let show = format!(
        "name: probe\nbackend: python\nmodel: {}\ndevice: cpu\n",
        pkg.display()
    );
    let d = Daemon::start_with_show("python-takes", &show, "media: media\n", &[]);
    let post = |path: &str, body: Value| d.call("POST", path, Some(&body.to_string()), None);
    let (status, v) = post("/api/v1/takes", json!({"name": "play"}));
    assert_eq!(status, 201, "{v}");
    std::thread::sleep(Duration::from_millis(500));
    let (status, v) = cue(&d, json!({"type": "input", "keys": ["KeyW"]}));
    assert_eq!(status, 200, "{v}");
    let shown = v["cues"][0]["shown_frame"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (status, saved) = post("/api/v1/checkpoints", json!({"name": "mid"}));
    assert_eq!(status, 201, "{saved}");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(d.dir.join("checkpoints/mid/checkpoint.json")).unwrap(),
    )
    .unwrap();
    let mut tensors: Vec<&str> = manifest["state_tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tensors.sort();
    assert_eq!(
        tensors,
        ["frame", "seed", "steps"],
        "the model's compact state: {saved}"
    );
    let (status, v) = post("/api/v1/takes/stop", json!({}));
    assert_eq!(status, 200, "{v}");

    let take = cuecast_engine::Take::open(&d.dir.join("takes/play")).unwrap();
    assert!(take.frames.len() >= 20, "{}", take.frames.len());
    assert_eq!(take.manifest.model.backend, "python");
    for (i, record) in take.frames.iter().enumerate() {
        let rgb = take.rgb(i).unwrap();
        let keys = rgb[4];
        let want = u8::from(record.frame >= shown);
        assert_eq!(
            keys, want,
            "show frame {} (the cue was shown at {shown})",
            record.frame
        );
    }

    let (status, v) = post("/api/v1/checkpoints/mid/restore", json!({}));
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        "/api/v1/takes/play/export",
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
    assert!(d.dir.join("exports/play-export/camera/scene.glb").is_file());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cuecast-e2e"))
        .args(["replay", "takes/play", "--out", "again"])
        .current_dir(&d.dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("cannot be replayed yet"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A take of the reference model `model` from the start of its show (its daemon named
/// after `label`), about `seconds` long, with the cue `sent` 1.5 s in (an `image` cue's
/// file uploaded first): each frame's show frame and a hash of its pixels, and the show
/// frame the cue was shown from.
fn steered_take(
    model: &str,
    label: &str,
    sent: Option<Value>,
    seconds: f64,
) -> (Vec<(u64, u64)>, Option<u64>) {
    use std::hash::{Hash, Hasher};
    let d = Daemon::start_with_show(
        &format!("steer-{model}-{label}"),
        &reference_show(model, "hold"),
        "media: media\n",
        &[],
    );
    if let Some(name) = sent.as_ref().and_then(|c| c["name"].as_str()) {
        let path = format!("/api/v1/media?name={name}");
        let (status, v) = upload(&d.api, &path, "image/png", &png(320, 180), None);
        assert_eq!(status, 201, "{v}");
    }
    let post = |path: &str, body: Value| d.call("POST", path, Some(&body.to_string()), None);
    let (status, v) = post("/api/v1/takes", json!({"name": "steer"}));
    assert_eq!(status, 201, "{v}");
    std::thread::sleep(Duration::from_millis(1500));
    let shown = sent.map(|c| {
        let (status, v) = cue(&d, c);
        assert_eq!(status, 200, "{v}");
        v["cues"][0]["shown_frame"].as_u64().unwrap()
    });
    std::thread::sleep(Duration::from_secs_f64(seconds - 1.5));
    let (status, v) = post("/api/v1/takes/stop", json!({}));
    assert_eq!(status, 200, "{v}");
    let take = cuecast_engine::Take::open(&d.dir.join("takes/steer")).unwrap();
    let frames = (0..take.frames.len())
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            take.rgb(i).unwrap().hash(&mut h);
            (take.frames[i].frame, h.finish())
        })
        .collect();
    (frames, shown)
}

/// Through the daemon, `model` (native `fps` in a 30 fps show) plays at its own rate,
/// each of its frames on air at its own time, and each kind of input the control
/// surface, the API and OSC send changes what it makes from the frame it is shown at.
fn on_air_at_its_rate_and_steered_by_every_input(model: &str, fps: u64) {
    let _turn = serial();
    let (base, _) = steered_take(model, "none", None, 5.0);
    assert!(base.len() > 100, "{} frames", base.len());

    // Model frame k is on air from show frame ceil(k * 30 / fps): a new picture appears
    // only on those frames, and about fps of them a second.
    let on_grid = |f: u64| (f * fps) / 30 != ((f - 1) * fps) / 30;
    let changes: Vec<u64> = base
        .windows(2)
        .filter(|w| w[1].0 == w[0].0 + 1 && w[1].1 != w[0].1)
        .map(|w| w[1].0)
        .collect();
    let span = base.last().unwrap().0 - base[0].0;
    let off: Vec<u64> = changes.iter().copied().filter(|f| !on_grid(*f)).collect();
    assert!(
        off.is_empty(),
        "new pictures off the {fps} fps grid at {off:?}"
    );
    let expected = span * fps / 30;
    assert!(
        changes.len() as u64 <= expected + 2 && changes.len() as u64 >= expected * 4 / 5,
        "{} new pictures in {span} show frames, {expected} at {fps} fps",
        changes.len()
    );

    let seen: std::collections::HashSet<u64> = base.iter().map(|f| f.1).collect();
    let last = base.last().unwrap().0;
    for (label, cue) in [
        ("keys", json!({"type": "input", "keys": ["KeyW"]})),
        (
            "mouse",
            json!({"type": "input", "mouse": {"dx": 40, "dy": -12}}),
        ),
        ("image", json!({"type": "image", "name": "start.png"})),
    ] {
        let (frames, shown) = steered_take(model, label, Some(cue.clone()), 3.0);
        let shown = shown.unwrap();
        // Before the cue the show is the baseline's (the model is deterministic, so the
        // comparison means something); from the frame it is shown at, at most a tenth of
        // it is.
        let before: Vec<bool> = frames
            .iter()
            .filter(|f| f.0 < shown)
            .map(|f| seen.contains(&f.1))
            .collect();
        let after: Vec<bool> = frames
            .iter()
            .filter(|f| f.0 >= shown + 2 && f.0 + 45 <= last)
            .map(|f| seen.contains(&f.1))
            .collect();
        let same_before = before.iter().filter(|s| **s).count();
        let same_after = after.iter().filter(|s| **s).count();
        assert!(
            before.len() >= 10 && same_before * 5 >= before.len() * 3,
            "{cue}: {same_before} of {} frames before it match the show without it",
            before.len()
        );
        assert!(
            after.len() >= 10 && same_after * 10 <= after.len(),
            "{cue}: {same_after} of {} frames from show frame {shown} are the show without it",
            after.len()
        );
    }
}

#[test]
fn the_chunked_reference_model_plays_at_16_fps_and_every_input_changes_it() {
    on_air_at_its_rate_and_steered_by_every_input("kv-chunks", 16);
}

#[test]
fn the_one_frame_reference_model_plays_at_20_fps_and_every_input_changes_it() {
    on_air_at_its_rate_and_steered_by_every_input("latent-window", 20);
}

/// An 8192 x 8192 16-bit RGB PNG of one colour: 400 MB of pixels in a small file.
fn huge_png(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("huge-upload.png");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut e = png::Encoder::new(file, 8192, 8192);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Sixteen);
        let mut w = e.write_header().unwrap().into_stream_writer().unwrap();
        let row: Vec<u8> = [0xc0u8, 0x00, 0x40, 0x00, 0x20, 0x00].repeat(8192);
        for _ in 0..8192 {
            w.write_all(&row).unwrap();
        }
        w.finish().unwrap();
    }
    let data = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    data
}

/// The media folder is a door from outside into the show: a name is checked before
/// anything is decoded, the folder has a quota, an image can be removed, a link in it
/// is never followed, and a huge picture uploaded and cued leaves the broadcast at its
/// rate.
#[test]
fn the_media_folder_checks_names_first_keeps_a_quota_follows_no_link_and_decodes_off_air() {
    let _turn = serial();
    let d = Daemon::start_with_show(
        "python-media-quota",
        &kv_show("hold"),
        "media: media\nmedia_quota_mb: 1\n",
        &[],
    );
    let media = d.dir.join("media");
    // Noise, so that it does not compress: about 270 KB a file.
    let small = {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, 300, 300);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        let mut x = 12345u32;
        let data: Vec<u8> = (0..300 * 300 * 3)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        e.write_header().unwrap().write_image_data(&data).unwrap();
        out
    };
    let (got, v) = upload(
        &d.api,
        "/api/v1/media?name=one.png",
        "image/png",
        &small,
        None,
    );
    assert_eq!(got, 201, "{v}");
    // Taken: 409 before the body is even decoded (it is not an image at all).
    let (got, v) = upload(
        &d.api,
        "/api/v1/media?name=one.png",
        "image/png",
        b"\x89PNG\r\n\x1a\nbroken",
        None,
    );
    assert_eq!((got, v["error"].as_str()), (409, Some("exists")), "{v}");
    // The quota: 1 MB.
    let mut n = 0;
    let refused = loop {
        n += 1;
        let (got, v) = upload(
            &d.api,
            &format!("/api/v1/media?name=more-{n}.png"),
            "image/png",
            &small,
            None,
        );
        if got != 201 {
            break (got, v);
        }
        assert!(n < 20, "the quota never refused an upload");
    };
    assert_eq!(refused.0, 507, "{}", refused.1);
    assert_eq!(refused.1["error"], "quota", "{}", refused.1);
    // Removing makes room.
    let (got, v) = d.call("DELETE", "/api/v1/media/more-1.png", None, None);
    assert_eq!(got, 204, "{v}");
    assert!(!media.join("more-1.png").exists());
    let (got, v) = d.call("DELETE", "/api/v1/media/more-1.png", None, None);
    assert_eq!((got, v["error"].as_str()), (404, Some("not_found")), "{v}");
    let (got, _) = d.call("DELETE", "/api/v1/media/..%2Fconfig.yaml", None, None);
    assert_eq!(got, 422);
    for n in 2..n {
        d.call("DELETE", &format!("/api/v1/media/more-{n}.png"), None, None);
    }
    // A link in the folder: refused as a cue (an endless file, a picture elsewhere);
    // removing it removes the link only.
    std::os::unix::fs::symlink("/proc/self/pagemap", media.join("endless.png")).unwrap();
    let (got, v) = cue(&d, json!({"type": "image", "name": "endless.png"}));
    assert_eq!((got, v["field"].as_str()), (422, Some("name")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("a link"), "{v}");
    std::os::unix::fs::symlink(media.join("one.png"), media.join("alias.png")).unwrap();
    let (got, _) = d.call("DELETE", "/api/v1/media/alias.png", None, None);
    assert_eq!(got, 204);
    assert!(media.join("one.png").is_file(), "the link's target stays");
    // A 16-bit 8192 x 8192 picture: uploaded and cued, the show keeps its rate.
    d.call("DELETE", "/api/v1/media/one.png", None, None);
    let events = follow_events(&d.api);
    let huge = huge_png(&d.dir);
    let (got, v) = upload(
        &d.api,
        "/api/v1/media?name=huge.png",
        "image/png",
        &huge,
        None,
    );
    assert_eq!(got, 201, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(8192), Some(8192))
    );
    let (got, v) = cue(&d, json!({"type": "image", "name": "huge.png"}));
    assert_eq!(got, 200, "{v}");
    let (got, v) = cue(&d, json!({"type": "seed", "value": 4}));
    assert_eq!(got, 200, "{v}");
    let mut fps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fps.len() < 3 {
        assert!(Instant::now() < deadline, "fps {fps:?}");
        if let Ok(e) = events.recv_timeout(Duration::from_secs(5)) {
            if e["type"] == "stats" {
                fps.push(e["stats"]["fps"].as_f64().unwrap_or(0.0));
            }
        }
    }
    assert!(fps.iter().all(|f| (29.0..=31.0).contains(f)), "fps {fps:?}");
    let s = d.get("/api/v1/status");
    assert_eq!(s["model_process"]["restarts"], 0, "{s}");
}
