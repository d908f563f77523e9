//! What a hostile web page, API client or cue must not be able to do to a running show:
//! drive it from another site, write files outside the recordings folder, read secrets
//! the config did not offer, or freeze the model thread.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

#[test]
fn a_web_page_on_another_site_cannot_drive_or_read_the_api() {
    let _turn = serial();
    let d = Daemon::start("web", "", &[]);
    let host = format!("host: {}\r\n", d.api);
    let cue = r#"{"type":"prompt","text":"desert dunes"}"#;
    let prompt = || d.get("/api/v1/status")["prompt"].clone();
    let before = prompt();

    // What a page can send cross-origin without a preflight: text/plain, a form, nothing.
    for kind in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let (status, body) = raw_request(
            &d.api,
            "POST",
            "/api/v1/cues",
            &format!("{host}content-type: {kind}\r\n"),
            cue,
        );
        assert_eq!(status, 415, "{kind}: {body}");
        assert_eq!(body["error"], "unsupported_media_type", "{body}");
    }
    let (status, _) = raw_request(&d.api, "POST", "/api/v1/cues", &host, cue);
    assert_eq!(status, 415, "a body without a content type");

    // JSON from another site's page, and any request under a rebound name.
    let (status, body) = raw_request(
        &d.api,
        "POST",
        "/api/v1/cues",
        &format!("{host}origin: http://evil.example\r\ncontent-type: application/json\r\n"),
        cue,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden_origin");
    let rebound = format!("host: evil.example:{}\r\n", d.port);
    let (status, body) = raw_request(&d.api, "GET", "/api/v1/status", &rebound, "");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden_host");
    assert_eq!(prompt(), before, "a refused request changed the show");

    // The API's own page, and tools that are not browsers, still work.
    let (status, body) = raw_request(
        &d.api,
        "POST",
        "/api/v1/cues",
        &format!(
            "{host}origin: http://{}\r\ncontent-type: application/json\r\n",
            d.api
        ),
        cue,
    );
    assert_eq!(status, 202, "{body}");
    let (status, body) = raw_request(&d.api, "POST", "/api/v1/rundown/go", &host, "");
    assert_eq!(status, 200, "a body-less POST as curl sends it: {body}");
}

#[test]
fn one_absurd_cue_is_refused_by_field_and_the_show_goes_on() {
    let _turn = serial();
    let d = Daemon::start("absurd", "", &[]);
    let path = |yaw: f64, y: f64| {
        json!({"type": "camera_path", "points": [
            {"t": 0, "pos": [0, 100, 0], "yaw": 0, "pitch": 0},
            {"t": 1, "pos": [0, y, 0], "yaw": yaw, "pitch": 0}]})
        .to_string()
    };
    let (status, body) = d.call("POST", "/api/v1/cues", Some(&path(1e300, 100.0)), None);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "points[1].yaw", "{body}");
    let (status, body) = d.call("POST", "/api/v1/cues", Some(&path(0.0, 1e308)), None);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "points[1].pos", "{body}");
    // A wide turn is fine, and the show keeps rendering and answering.
    let (status, body) = d.call(
        "POST",
        "/api/v1/cues?wait=true",
        Some(&path(3600.0, 100.0)),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let frame = d.frame();
    let until = Instant::now() + Duration::from_secs(10);
    while d.frame() < frame + 15 {
        assert!(Instant::now() < until, "the show stopped rendering");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = d.call(
        "POST",
        "/api/v1/checkpoints",
        Some(r#"{"name":"after"}"#),
        None,
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn outputs_added_over_the_api_record_only_in_the_recordings_folder_and_read_no_other_secret() {
    let _turn = serial();
    let d = Daemon::start_with(
        "api-outputs",
        "api: {listen: 127.0.0.1:0, output_secrets: [CUECAST_TEST_STREAM_KEY]}\nrecordings: recordings\n",
        &[("CUECAST_TEST_STREAM_KEY", "k3y"), ("CUECAST_TEST_OTHER", "s3cret")],
    );
    let victim = d.dir.join("victim.conf");
    std::fs::write(&victim, "keep me").unwrap();
    let record = |path: &str| json!({"name": "rec", "type": "record", "path": path}).to_string();
    for path in [
        format!("{}.mkv", victim.display()),
        "../victim.conf.mkv".into(),
        "a/../../victim.mkv".into(),
        "./x.mkv".into(),
        "victim.conf\u{0}.mkv".into(),
        "line\nbreak.mkv".into(),
    ] {
        let (status, body) = d.call("POST", "/api/v1/outputs", Some(&record(&path)), None);
        assert_eq!(status, 422, "{path:?}: {body}");
        assert_eq!(body["field"], "path", "{path:?}: {body}");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(d.get("/api/v1/outputs").as_array().unwrap().is_empty());

    // A relative path records inside the recordings folder.
    let (status, body) = d.call(
        "POST",
        "/api/v1/outputs",
        Some(&record("sub/take.mkv")),
        None,
    );
    assert_eq!(status, 201, "{body}");
    d.wait_state("rec", "live", Duration::from_secs(30));
    let target = d.output("rec")["target"].as_str().unwrap().to_owned();
    assert!(
        std::path::Path::new(&target).starts_with(d.dir.join("recordings")),
        "{target}"
    );

    // Secrets: only the one the config offers; the answer is the same whether another
    // variable exists or not.
    let rtmp = |env: &str| {
        json!({"name": "push", "type": "rtmp", "url": "rtmp://127.0.0.1:9/live",
               "key_env": env, "profile": "youtube-1080p30"})
        .to_string()
    };
    let (s1, set) = d.call(
        "POST",
        "/api/v1/outputs",
        Some(&rtmp("CUECAST_TEST_OTHER")),
        None,
    );
    let (s2, unset) = d.call(
        "POST",
        "/api/v1/outputs",
        Some(&rtmp("CUECAST_TEST_NOT_SET")),
        None,
    );
    assert_eq!((s1, s2), (422, 422), "{set} {unset}");
    assert_eq!(set["field"], "key_env");
    assert_eq!(set["detail"], unset["detail"], "an existence oracle");
    assert!(set["detail"]
        .as_str()
        .unwrap()
        .contains("CUECAST_TEST_STREAM_KEY"));
    let (status, body) = d.call(
        "POST",
        "/api/v1/outputs",
        Some(&rtmp("CUECAST_TEST_STREAM_KEY")),
        None,
    );
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("k3y"), "{body}");
}

#[test]
fn bodies_are_strict_and_the_cue_log_is_bounded_and_paged() {
    let _turn = serial();
    let d = Daemon::start("strict", "", &[]);
    // A repeated key is an error, not whichever value a parser keeps.
    let (status, body) = d.call(
        "POST",
        "/api/v1/cues",
        Some(r#"{"type":"action","forward":0,"forward":1}"#),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("duplicate key"),
        "{body}"
    );
    // Unknown fields in take, checkpoint and export bodies are named.
    for (path, body) in [
        ("/api/v1/takes", r#"{"name":"t1","nmae":"x"}"#),
        ("/api/v1/checkpoints", r#"{"frame":3}"#),
    ] {
        let (status, answer) = d.call("POST", path, Some(body), None);
        assert_eq!(status, 422, "{path}: {answer}");
        assert!(
            answer["field"] == "nmae" || answer["field"] == "frame",
            "{answer}"
        );
    }
    assert!(d.get("/api/v1/takes").as_array().unwrap().is_empty());
    let (status, answer) = d.call(
        "PUT",
        "/api/v1/rundown",
        Some(r#"[{"name":"open","cues":[],"colour":"red"}]"#),
        None,
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "[0].colour", "{answer}");
    let long = "n".repeat(65);
    let (status, answer) = d.call(
        "PUT",
        "/api/v1/rundown",
        Some(&format!(r#"[{{"name":"{long}","cues":[]}}]"#)),
        None,
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "[0].name", "{answer}");

    // Cues a day or more ahead are refused.
    let (status, answer) = d.call(
        "POST",
        "/api/v1/cues",
        Some(r#"{"type":"freeze","at":{"frame":9223372036854775808}}"#),
        None,
    );
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "at.frame", "{answer}");

    // A long camera path is summarised in the log, which pages.
    let points: Vec<_> = (0..100)
        .map(|i| json!({"t": i, "pos": [i, 100, 0], "yaw": 0, "pitch": 0}))
        .collect();
    let path = json!({"type": "camera_path", "points": points}).to_string();
    let (status, answer) = d.call("POST", "/api/v1/cues?wait=true", Some(&path), None);
    assert_eq!(status, 200, "{answer}");
    let marker = r#"{"type":"marker","label":"after the path"}"#;
    let (status, answer) = d.call("POST", "/api/v1/cues?wait=true", Some(marker), None);
    assert_eq!(status, 200, "{answer}");
    let log = d.get("/api/v1/cues/log?limit=2");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["cue"]["points_total"], 100, "{:?}", log[0]);
    assert_eq!(log[0]["cue"]["points"].as_array().unwrap().len(), 2);
    let after = log[0]["id"].as_u64().unwrap();
    let next = d.get(&format!("/api/v1/cues/log?after={after}&limit=1"));
    assert_eq!(next[0]["cue"]["label"], "after the path", "{next}");
    let (status, _) = d.call("GET", "/api/v1/cues/log?limit=0", None, None);
    assert_eq!(status, 422);
}

#[test]
fn tokens_are_compared_whole_any_case_of_bearer_and_guessing_is_slowed() {
    let _turn = serial();
    let token = "0123456789abcdef-token";
    let d = Daemon::start_with(
        "token-rules",
        &format!("api: {{listen: 127.0.0.1:0, token: {token}}}\n"),
        &[],
    );
    let host = format!("host: {}\r\n", d.api);
    let auth = |value: &str| {
        raw_request(
            &d.api,
            "POST",
            "/api/v1/auth",
            &format!("{host}authorization: {value}\r\n"),
            "",
        )
        .0
    };
    assert_eq!(auth(&format!("Bearer {token}")), 204);
    assert_eq!(auth(&format!("bearer {token}")), 204);
    assert_eq!(auth(&format!("BEARER {token}")), 204);
    assert_eq!(auth("Bearer 0123456789abcdef-toke"), 401, "a prefix");
    // Guessing: past ten wrong tokens in a second, nothing is checked until it is over.
    std::thread::sleep(Duration::from_millis(1100));
    let codes: Vec<u16> = (0..15)
        .map(|i| auth(&format!("Bearer guess-{i}")))
        .collect();
    assert!(codes[..10].iter().all(|c| *c == 401), "{codes:?}");
    assert!(codes[10..].iter().all(|c| *c == 429), "{codes:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(auth(&format!("Bearer {token}")), 204);
}

#[test]
fn an_empty_or_truncated_config_edit_removes_nothing() {
    let _turn = serial();
    let d = Daemon::start(
        "truncate",
        "outputs:\n  - {name: preview, type: preview, width: 160, fps: 5}\n",
        &[],
    );
    let config = d.dir.join("cuecast.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let rejected = || {
        d.get("/api/v1/status")["config"]["reloads_rejected"]
            .as_u64()
            .unwrap()
    };
    // What an editor that truncates before writing leaves for a moment.
    std::fs::write(&config, "").unwrap();
    wait_until(Duration::from_secs(15), "the empty file is refused", || {
        rejected() == 1
    });
    assert_eq!(d.get("/api/v1/outputs").as_array().unwrap().len(), 1);
    // A file cut short before its outputs.
    let cut = &good[..good.find("outputs:").unwrap()];
    std::fs::write(&config, cut).unwrap();
    wait_until(Duration::from_secs(15), "the cut file is refused", || {
        rejected() == 2
    });
    let error = d.get("/api/v1/status")["config"]["last_error"].clone();
    assert!(error.as_str().unwrap().contains("outputs: []"), "{error}");
    assert_eq!(d.get("/api/v1/outputs").as_array().unwrap().len(), 1);
    // Saying so removes them.
    std::fs::write(&config, format!("{cut}outputs: []\n")).unwrap();
    wait_until(Duration::from_secs(15), "outputs: [] is applied", || {
        d.get("/api/v1/outputs").as_array().unwrap().is_empty()
    });
}
