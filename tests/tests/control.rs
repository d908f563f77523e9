//! The daemon's control side end to end: live config edits, bad cues, the token, OSC,
//! the rundown and `check-config`.

mod support;

use std::time::Duration;

use cuecast::osc::{encode_message, OscArg, OscMessage};
use serde_json::Value;
use support::*;

#[test]
fn config_edits_apply_live_and_bad_ones_change_nothing() {
    let _turn = serial();
    let d = Daemon::start(
        "reload",
        "outputs:\n  - {name: recording, type: record, path: \"rec/a-{time}.mkv\"}\n",
        &[],
    );
    d.wait_state("recording", "live", Duration::from_secs(30));
    let file = d.output("recording")["file"].clone();
    let config = d.dir.join("cuecast.yaml");
    let good = std::fs::read_to_string(&config).unwrap();

    let events = follow_events(&d.api);
    // An invalid edit: refused, with the field named, and nothing touched.
    std::fs::write(&config, format!("{good}  - {{name: extra, type: ftp}}\n")).unwrap();
    wait_until(Duration::from_secs(15), "the bad edit is refused", || {
        d.get("/api/v1/status")["config"]["reloads_rejected"] == 1
    });
    let error = d.get("/api/v1/status")["config"]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("outputs[1].type") && error.contains("ftp"),
        "{error}"
    );
    assert!(d.log().contains("config edit rejected"), "{}", d.log());
    let refused = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(10)).ok())
        .find(|e| e["type"] == "config")
        .expect("a config event on the event stream");
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("outputs[1].type"),
        "{refused}"
    );
    assert_eq!(d.get("/api/v1/outputs").as_array().unwrap().len(), 1);
    let bytes = d.bytes("recording");

    // A valid edit adding an output: it comes up; the recording is undisturbed.
    let srt_port = free_udp_port();
    std::fs::write(
        &config,
        format!("{good}  - {{name: program, type: srt, address: 127.0.0.1:{srt_port}, profile: {SMALL}}}\n"),
    )
    .unwrap();
    // A listener is live once a receiver takes its stream.
    let _receiver = SrtReceiver::call(srt_port);
    d.wait_state("program", "live", Duration::from_secs(30));
    let status = d.get("/api/v1/status");
    assert_eq!(status["config"]["reloads_applied"], 1, "{status}");
    assert_eq!(status["config"]["last_error"], Value::Null);
    let rec = d.output("recording");
    assert_eq!(
        (&rec["file"], &rec["reconnects"], &rec["state"]),
        (&file, &0.into(), &"live".into())
    );
    wait_until(
        Duration::from_secs(10),
        "the recording keeps growing",
        || d.bytes("recording") > bytes,
    );

    // Removing it again stops only it.
    std::fs::write(&config, &good).unwrap();
    wait_until(Duration::from_secs(15), "the output is removed", || {
        d.output("program").is_null()
    });
    assert_eq!(d.output("recording")["file"], file);
}

#[test]
fn bad_cues_are_refused_with_the_field_named_and_nothing_applied() {
    let _turn = serial();
    let d = Daemon::start("cues", "", &[]);
    let big = format!(r#"{{"type":"prompt","text":"{}"}}"#, "x".repeat(300 * 1024));
    for (body, status, field) in [
        (r#"{"type":"explode"}"#, 422, Some("type")),
        (r#"{"type":"prompt"}"#, 422, Some("text")),
        (r#"{"type":"action","forward":3}"#, 422, Some("forward")),
        (r#"{"type":"scene","name":"atlantis"}"#, 422, Some("name")),
        (
            r#"{"type":"param","name":"time_of_day","value":99}"#,
            422,
            Some("value"),
        ),
        (
            r#"[{"type":"freeze"},{"type":"seed","value":-1}]"#,
            422,
            Some("[1].value"),
        ),
        (big.as_str(), 413, None),
        (r#"{"type": "prompt", "#, 400, None),
    ] {
        let (s, v) = d.call("POST", "/api/v1/cues", Some(body), None);
        assert_eq!(s, status, "{}: {v}", &body[..body.len().min(60)]);
        assert_eq!(v["field"].as_str(), field, "{v}");
        assert!(!v["detail"].as_str().unwrap_or("").is_empty(), "{v}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.get("/api/v1/cues/log"),
        Value::Array(vec![]),
        "nothing was applied"
    );
    assert_eq!(d.get("/api/v1/status")["frozen"], false);

    // A good one, waited for: frame and latency come back.
    let (s, v) = d.call("POST", "/api/v1/cues?wait=true", Some(r#"[{"type":"prompt","text":"desert dunes","transition_s":0},{"type":"marker","label":"take"}]"#), None);
    assert_eq!(s, 200, "{v}");
    // Applied at a frame, shown some milliseconds after it arrived (a cue waits at
    // most for the next step; 5 s is far beyond any healthy show).
    let latency = v["cues"][0]["latency_ms"].as_f64().unwrap();
    assert!(
        v["cues"][0]["frame"].as_u64().is_some() && latency > 0.0 && latency < 5000.0,
        "{v}"
    );
    assert_eq!(d.get("/api/v1/status")["prompt"], "desert dunes");
    let m = d.get("/metrics");
    let text = m.as_str().unwrap();
    assert!(
        text.contains("cuecast_cue_latency_seconds_count 2"),
        "{text}"
    );
}

#[test]
fn rundown_go_and_back_and_osc_steer_the_show() {
    let _turn = serial();
    let osc_port = free_udp_port();
    let d = Daemon::start(
        "rundown",
        &format!("osc: {{listen: 127.0.0.1:{osc_port}}}\n"),
        &[],
    );
    let (s, v) = d.call("POST", "/api/v1/rundown/go", None, None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["current"].as_u64(), v["next"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, v) = d.call("POST", "/api/v1/rundown/go", None, None);
    assert_eq!(v["current"], 1);
    wait_until(Duration::from_secs(10), "the dawn scene is on", || {
        d.get("/api/v1/status")["prompt"] == "snowy mountains at dawn"
    });
    let (_, v) = d.call("POST", "/api/v1/rundown/back", None, None);
    assert_eq!(v["current"], 0);
    wait_until(Duration::from_secs(10), "back on the hills", || {
        d.get("/api/v1/status")["prompt"] == "rolling green hills"
    });

    // OSC: a prompt, and GO from a console.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |address: &str, args: Vec<OscArg>| {
        let msg = encode_message(&OscMessage {
            address: address.into(),
            args,
        });
        socket.send_to(&msg, ("127.0.0.1", osc_port)).unwrap();
    };
    send(
        "/cuecast/prompt",
        vec![OscArg::Str("frozen tundra".into()), OscArg::Float(0.0)],
    );
    wait_until(Duration::from_secs(10), "the OSC prompt is on", || {
        d.get("/api/v1/status")["prompt"] == "frozen tundra"
    });
    send("/cuecast/go", vec![]);
    wait_until(
        Duration::from_secs(10),
        "OSC GO advanced the rundown",
        || d.get("/api/v1/rundown")["current"] == 1,
    );
    send("/cuecast/param/fog", vec![OscArg::Float(0.9)]);
    wait_until(Duration::from_secs(10), "the OSC param is applied", || {
        d.get("/api/v1/status")["params"]["fog"]
            .as_f64()
            .is_some_and(|f| (f - 0.9).abs() < 1e-6)
    });
}

#[test]
fn changes_need_the_token_when_the_api_listens_beyond_loopback() {
    let _turn = serial();
    let d = Daemon::start_with(
        "token",
        "api: {listen: 0.0.0.0:0, token_env: CUECAST_TEST_TOKEN}\n",
        &[("CUECAST_TEST_TOKEN", "t0k3n-abc-0123456789")],
    );
    let body = Some(r#"{"type":"freeze"}"#);
    let (s, v) = d.call("POST", "/api/v1/cues", body, None);
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")), "{v}");
    assert_eq!(d.call("POST", "/api/v1/cues", body, Some("wrong")).0, 401);
    assert_eq!(d.call("POST", "/api/v1/rundown/go", None, None).0, 401);
    assert_eq!(d.call("DELETE", "/api/v1/outputs/x", None, None).0, 401);
    assert_eq!(
        d.call("POST", "/api/v1/cues", body, Some("t0k3n-abc-0123456789"))
            .0,
        202
    );
    // Reads stay open, and never show the token.
    let status = d.get("/api/v1/status");
    assert!(
        !status.to_string().contains("t0k3n-abc-0123456789")
            && !d.log().contains("t0k3n-abc-0123456789")
    );
}

#[test]
fn the_openapi_document_lists_every_route() {
    let _turn = serial();
    let d = Daemon::start("openapi", "", &[]);
    let doc = d.get("/api/v1/openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    // Its cue is the cue language's own schema, not a copy.
    assert_eq!(
        doc["components"]["schemas"]["Cue"],
        cuecast_cue::schema::schema()
    );
    for (path, method) in [
        ("/api/v1/cues", "post"),
        ("/api/v1/status", "get"),
        ("/api/v1/rundown/go", "post"),
        ("/api/v1/outputs/{name}", "delete"),
        ("/api/v1/events", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{path} {method} missing"
        );
    }
    // Every documented GET without parameters answers.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_some()
            && !path.contains('{')
            && !path.ends_with("events")
            && !path.ends_with(".mjpeg")
        {
            let (s, _) = d.call("GET", path, None, None);
            assert_eq!(s, 200, "GET {path}");
        }
    }
}

/// Every documented JSON GET answers what its schema in the OpenAPI document says, and
/// nothing the schema does not list: with outputs, a take, a checkpoint, a cue applied
/// and an export job, so the lists are not empty.
#[test]
fn every_get_answers_what_the_openapi_document_says() {
    let _turn = serial();
    let d = Daemon::start(
        "schema",
        "outputs:\n  - {name: rec, type: record, path: rec.mkv}\n  - {name: preview, type: preview, fps: 5}\n",
        &[],
    );
    let doc = d.get("/api/v1/openapi.json");
    let components = doc["components"]["schemas"].as_object().unwrap().clone();
    let events = follow_events(&d.api.to_string());
    let post = |path: &str, body: &str| {
        let (status, v) = d.call("POST", path, Some(body), None);
        assert!((200..300).contains(&status), "POST {path}: {status} {v}");
        v
    };
    post(
        "/api/v1/cues?wait=true",
        r#"{"type": "marker", "label": "m"}"#,
    );
    post("/api/v1/takes", r#"{"name": "t1"}"#);
    // Some frames in the take.
    std::thread::sleep(Duration::from_millis(500));
    post("/api/v1/takes/stop", "{}");
    post("/api/v1/checkpoints", r#"{"name": "c1"}"#);
    let job = post("/api/v1/takes/t1/export", r#"{"formats": "gltf"}"#);
    let mut checked = 0;
    let mut errors = Vec::new();
    let mut gets: Vec<(String, Value)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(schema) =
            item["get"]["responses"]["200"]["content"]["application/json"].get("schema")
        else {
            continue;
        };
        let path = path.replace("{id}", &job["id"].to_string());
        if path.contains('{') {
            continue;
        }
        gets.push((path, schema.clone()));
    }
    for (path, schema) in gets {
        let (status, value) = d.call("GET", &path, None, None);
        assert_eq!(status, 200, "GET {path}");
        for e in cuecast_tests::schema::check(&value, &schema, &components) {
            errors.push(format!("GET {path} {e}"));
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} GETs checked");
    // And every event the stream sent meanwhile is an `Event` as the document says.
    post("/api/v1/rundown/go", "{}");
    let mut kinds = std::collections::BTreeSet::new();
    let event = serde_json::json!({"$ref": "#/components/schemas/Event"});
    // Stats come every second, so the stream never falls quiet: read for a few seconds.
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while let Ok(e) =
        events.recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
    {
        for err in cuecast_tests::schema::check(&e, &event, &components) {
            errors.push(format!("event {err}"));
        }
        kinds.insert(e["type"].as_str().unwrap_or_default().to_owned());
    }
    for kind in [
        "cue_applied",
        "output_state",
        "take",
        "checkpoint",
        "export",
        "rundown",
        "stats",
    ] {
        assert!(kinds.contains(kind), "no {kind} event among {kinds:?}");
    }
    assert!(
        errors.is_empty(),
        "answers the OpenAPI document does not describe:\n{}",
        errors.join("\n")
    );
}

#[test]
fn check_config_accepts_the_shipped_config_and_names_errors() {
    let bin = env!("CARGO_BIN_EXE_cuecast-e2e");
    let ok = std::process::Command::new(bin)
        .args(["check-config"])
        .arg(repo().join("config/cuecast.yaml"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok"));
    let dir = std::env::temp_dir().join(format!("cuecast-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "presets: {}/presets\noutputs:\n  - {{name: x, type: rtmp, url: rtmp://h/app, key_env: CUECAST_NO_SUCH_VAR, profile: youtube-1080p30}}\n",
            repo().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["check-config"])
        .arg(&bad)
        .env("HOME", &dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("outputs[0].key_env") && err.contains("CUECAST_NO_SUCH_VAR is not set"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check-config` refuses a show preset's unknown device and backend and an output
/// profile's unknown codec, each by its field and value, before anything runs.
#[test]
fn check_config_names_a_bad_device_backend_and_codec() {
    let bin = env!("CARGO_BIN_EXE_cuecast-e2e");
    let dir = std::env::temp_dir().join(format!("cuecast-check-enums-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("presets/outputs")).unwrap();
    let check = |show: &str, profile: &str| {
        std::fs::write(dir.join("show.yaml"), format!("name: t\n{show}")).unwrap();
        std::fs::write(
            dir.join("presets/outputs/p.yaml"),
            format!("name: p\nvideo: {{{profile}width: 640, height: 360, fps: 30, bitrate_kbps: 1000}}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("cuecast.yaml"),
            "show: show.yaml\npresets: presets\noutputs:\n  - {name: r, type: record, path: r.mkv, profile: p}\n",
        )
        .unwrap();
        let out = std::process::Command::new(bin)
            .arg("check-config")
            .arg(dir.join("cuecast.yaml"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check("backend: procedural\n", "");
    assert!(ok, "the good config: {err}");
    for (show, profile, field, value) in [
        ("device: gpu\n", "", "device", "gpu"),
        ("backend: nope\n", "", "backend", "nope"),
        ("", "codec: hevc, ", "video.codec", "hevc"),
    ] {
        let (ok, err) = check(show, profile);
        assert!(!ok, "{show}{profile} accepted");
        assert!(
            err.contains(field) && err.contains(value),
            "{show}{profile}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a shell set up for `gst-launch-1.0` (`GST_PLUGIN_PATH` naming the plugin file),
/// the daemon still starts, with its own copy of the element, and makes frames.
#[test]
fn the_daemon_starts_where_gst_plugin_path_names_the_plugin() {
    let _turn = serial();
    // `cargo test` leaves the cdylib in `deps` beside this test; `cargo build` puts it
    // one folder up.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let built = [
        deps.join("libgstcuecast.so"),
        deps.parent().unwrap().join("libgstcuecast.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libgstcuecast.so is built with the workspace (the cdylib of gst-plugin-cuecast)");
    let plugins = std::env::temp_dir().join(format!("cuecast-plugin-path-{}", std::process::id()));
    std::fs::create_dir_all(&plugins).unwrap();
    // A hard link where it can (the plugin is 160 MB in a debug build), a copy otherwise.
    let dest = plugins.join("libgstcuecast.so");
    let _ = std::fs::remove_file(&dest);
    if std::fs::hard_link(&built, &dest).is_err() {
        std::fs::copy(&built, &dest).unwrap();
    }
    let d = Daemon::start(
        "plugin-path",
        "",
        &[("GST_PLUGIN_PATH", plugins.to_str().unwrap())],
    );
    let first = d.frame();
    wait_until(Duration::from_secs(10), "frames flow", || {
        d.frame() > first + 10
    });
    assert!(!d.log().contains("already been registered"), "{}", d.log());
    drop(d);
    let _ = std::fs::remove_dir_all(&plugins);
}

/// The document's schemas are derived from the types the API answers with and parses
/// with: every reference in it resolves, every route with a JSON body shows an example,
/// and every example fits its body's schema (and a wrong one does not).
#[test]
fn every_request_body_example_fits_its_schema() {
    let doc = cuecast::api::openapi();
    let components = doc["components"]["schemas"].as_object().unwrap().clone();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in &refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(components.contains_key(name), "{r} does not resolve");
    }
    assert!(refs.len() > 20, "{} references", refs.len());
    let mut examples = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(json) = op["requestBody"]["content"].get("application/json") else {
                continue;
            };
            let listed = json["examples"].as_object().cloned().unwrap_or_default();
            assert!(!listed.is_empty(), "{method} {path} shows no example");
            for (name, example) in listed {
                let errors =
                    cuecast_tests::schema::check(&example["value"], &json["schema"], &components);
                assert!(errors.is_empty(), "{method} {path} {name}: {errors:?}");
                examples += 1;
            }
        }
    }
    assert!(examples >= 10, "{examples} examples");
    // The schemas refuse what the API refuses: a field no type has, a wrong kind.
    let body = |route: &str| {
        doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    for (route, wrong) in [
        ("/api/v1/takes", serde_json::json!({"nmae": "typo"})),
        (
            "/api/v1/takes/{name}/export",
            serde_json::json!({"force": "yes"}),
        ),
        (
            "/api/v1/outputs",
            serde_json::json!({"name": "x", "type": "srt"}),
        ),
        (
            "/api/v1/outputs",
            serde_json::json!({"name": "x", "type": "ndi"}),
        ),
        ("/api/v1/params/{name}", serde_json::json!({"ramp_s": 1})),
    ] {
        let errors = cuecast_tests::schema::check(&wrong, &body(route), &components);
        assert!(!errors.is_empty(), "{route} took {wrong}");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.push(r.to_owned());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}
