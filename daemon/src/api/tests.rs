//! The API's routes in-process (`oneshot` on the router), against a real engine (the
//! test pattern at 64x36, on the CPU, without GStreamer) and fake outputs behind
//! [`OutputControl`]: what each route answers and refuses, without a daemon process, a
//! network or a media peer. The end-to-end tests drive the same routes on a real show.

use super::*;
use std::collections::BTreeMap;

use axum::http::Request;
use cuecast_engine::{DeviceSpec, Engine, EngineConfig, Fps};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::config::{Config, Output};
use crate::outputs::{EncoderStatus, OutputControl, OutputStatus};

/// Outputs as the API sees them: a table the routes read, and the calls they made.
#[derive(Default)]
struct FakeOutputs {
    table: Mutex<BTreeMap<String, OutputStatus>>,
    calls: Mutex<Vec<String>>,
}

impl FakeOutputs {
    fn set(&self, name: &str, state: OutputState, call: &str) -> Result<(), OutputError> {
        self.calls.lock().push(format!("{call} {name}"));
        let mut table = self.table.lock();
        let o = table
            .get_mut(name)
            .ok_or_else(|| OutputError::Unknown(name.to_owned()))?;
        o.state = state;
        Ok(())
    }
}

impl OutputControl for FakeOutputs {
    fn apply(&self, outputs: Vec<Output>) {
        self.calls.lock().push(format!("apply {}", outputs.len()));
    }

    fn add(&self, output: Output) -> Result<(), OutputError> {
        self.calls.lock().push(format!("add {}", output.name));
        let mut table = self.table.lock();
        if table.contains_key(&output.name) {
            return Err(OutputError::Exists(output.name));
        }
        let status = OutputStatus {
            name: output.name.clone(),
            kind: output.kind.type_name(),
            target: output.kind.target(),
            profile: output.profile.as_ref().map(|p| p.name.clone()),
            state: OutputState::Connecting,
            bytes: 0,
            reconnects: 0,
            attempt: 0,
            last_error: None,
            receivers: None,
            retry_in_s: None,
            file: None,
            from_config: false,
        };
        table.insert(output.name, status);
        Ok(())
    }

    fn start_output(&self, name: &str) -> Result<(), OutputError> {
        self.set(name, OutputState::Connecting, "start")
    }

    fn stop_output(&self, name: &str) -> Result<(), OutputError> {
        self.set(name, OutputState::Stopped, "stop")
    }

    fn remove(&self, name: &str) -> Result<(), OutputError> {
        self.calls.lock().push(format!("remove {name}"));
        self.table
            .lock()
            .remove(name)
            .map(drop)
            .ok_or_else(|| OutputError::Unknown(name.to_owned()))
    }

    fn list(&self) -> Vec<OutputStatus> {
        self.table.lock().values().cloned().collect()
    }

    fn encoders(&self) -> Vec<EncoderStatus> {
        Vec::new()
    }

    fn preview(&self) -> tokio::sync::watch::Receiver<Option<Bytes>> {
        tokio::sync::watch::channel(None).1
    }
}

struct Harness {
    app: Router,
    outputs: Arc<FakeOutputs>,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

/// A show with `config` (YAML, beside a `presets/outputs/web.yaml` profile).
fn harness(config: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let presets = dir.path().join("presets/outputs");
    std::fs::create_dir_all(&presets).unwrap();
    std::fs::write(
        presets.join("web.yaml"),
        "video: {width: 640, height: 360, fps: 30, bitrate_kbps: 1000}\naudio: {}\n",
    )
    .unwrap();
    let path = dir.path().join("cuecast.yaml");
    std::fs::write(&path, format!("presets: presets\nrecordings: rec\ntakes: takes\ncheckpoints: checkpoints\nexports: exports\n{config}")).unwrap();
    let config = Config::load(&path).unwrap();
    let engine = Engine::start(
        EngineConfig {
            settings: cuecast_engine::engine::ModelSettings {
                backend: "pattern".parse().unwrap(),
                device: DeviceSpec::Cpu,
                ..Default::default()
            },
            ..Default::default()
        },
        |_| {},
    )
    .unwrap();
    engine.set_output(64, 36, Fps::new(30, 1));
    let outputs = Arc::new(FakeOutputs::default());
    let state = AppState::new(&config, engine.handle(), outputs.clone(), Events::default());
    Harness {
        app: router(state),
        outputs,
        _engine: engine,
        _dir: dir,
    }
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "127.0.0.1:7070");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    fn calls(&self) -> Vec<String> {
        self.outputs.calls.lock().clone()
    }
}

#[tokio::test]
async fn an_output_added_is_listed_and_a_second_of_its_name_is_refused() {
    let h = harness("");
    let srt = r#"{"name": "obs", "type": "srt", "address": "127.0.0.1:9999", "profile": "web"}"#;
    let (status, v) = h.call("POST", "/api/v1/outputs", Some(srt)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["type"].as_str()),
        (Some("obs"), Some("srt"))
    );
    assert_eq!(v["profile"], "web");
    let (status, v) = h.call("GET", "/api/v1/outputs", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    let (status, v) = h.call("POST", "/api/v1/outputs", Some(srt)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("exists"), "{v}");
    assert_eq!(h.calls(), ["add obs", "add obs"]);
    // The status shows the outputs too.
    let (_, status) = h.call("GET", "/api/v1/status", None).await;
    assert_eq!(status["outputs"][0]["name"], "obs");
}

#[tokio::test]
async fn a_wrong_output_is_refused_by_field_and_never_reaches_the_outputs() {
    let h = harness("");
    for (body, field) in [
        (
            r#"{"name": "r", "type": "record", "path": "../escape.mkv", "profile": "web"}"#,
            "path",
        ),
        (
            r#"{"name": "r", "type": "record", "path": "/etc/x.mkv", "profile": "web"}"#,
            "path",
        ),
        (
            r#"{"name": "y", "type": "rtmp", "url": "rtmp://h/app", "key_env": "HOME", "profile": "web"}"#,
            "key_env",
        ),
        (
            r#"{"name": "s", "type": "srt", "address": "127.0.0.1:1", "profile": "web", "colour": "red"}"#,
            "colour",
        ),
    ] {
        let (status, v) = h.call("POST", "/api/v1/outputs", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        let named = v["field"].as_str().unwrap_or_default().contains(field)
            || v["detail"].as_str().unwrap_or_default().contains(field);
        assert!(named, "{body}: the error should name {field}: {v}");
    }
    let (status, v) = h.call("POST", "/api/v1/outputs", Some("{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(h.calls().is_empty(), "{:?}", h.calls());
}

#[tokio::test]
async fn start_stop_and_remove_answer_the_output_or_name_the_unknown_one() {
    let h = harness("");
    let srt = r#"{"name": "obs", "type": "srt", "address": "127.0.0.1:9999", "profile": "web"}"#;
    h.call("POST", "/api/v1/outputs", Some(srt)).await;
    let (status, v) = h.call("POST", "/api/v1/outputs/obs/stop", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "stopped");
    let (status, v) = h.call("POST", "/api/v1/outputs/obs/start", None).await;
    assert_eq!(
        (status, v["state"].as_str()),
        (StatusCode::OK, Some("connecting"))
    );
    for (method, uri) in [
        ("POST", "/api/v1/outputs/nope/start"),
        ("POST", "/api/v1/outputs/nope/stop"),
        ("DELETE", "/api/v1/outputs/nope"),
    ] {
        let (status, v) = h.call(method, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("\"nope\""), "{v}");
    }
    let (status, _) = h.call("DELETE", "/api/v1/outputs/obs", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, v) = h.call("GET", "/api/v1/outputs", None).await;
    assert_eq!(v, json!([]));
}

#[tokio::test]
async fn metrics_show_each_output_state_in_openmetrics() {
    let h = harness("");
    let srt = r#"{"name": "obs", "type": "srt", "address": "127.0.0.1:9999", "profile": "web"}"#;
    h.call("POST", "/api/v1/outputs", Some(srt)).await;
    let (status, v) = h.call("GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = v.as_str().unwrap();
    for line in [
        "# TYPE cuecast_frames_generated counter",
        "cuecast_output_state{output=\"obs\",state=\"connecting\"} 1",
        "cuecast_output_state{output=\"obs\",state=\"live\"} 0",
        "cuecast_output_bytes_total{output=\"obs\"} 0",
        "cuecast_step_seconds_bucket{le=\"+Inf\"}",
        "# EOF",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[tokio::test]
async fn unknown_routes_queries_and_scenes_are_refused_by_name() {
    let h = harness("");
    let (status, v) = h.call("GET", "/api/v1/nope", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, v) = h.call("GET", "/api/v1/cues/log?limit=0", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "limit");
    let (status, v) = h.call("GET", "/api/v1/cues/log?colour=red", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = h.call("POST", "/api/v1/scenes/nowhere", None).await;
    assert!(status.is_client_error(), "{status}: {v}");
    assert!(v["detail"].as_str().unwrap().contains("nowhere"), "{v}");
    let (status, v) = h.call("POST", "/api/v1/takes/nope/export", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, v) = h.call("GET", "/api/v1/jobs/99", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn a_take_in_progress_and_no_take_are_conflicts_with_their_own_codes() {
    let h = harness("");
    let (status, v) = h.call("POST", "/api/v1/takes/stop", None).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("no_take")),
        "{v}"
    );
    let (status, v) = h
        .call("POST", "/api/v1/takes", Some(r#"{"name": "one"}"#))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = h
        .call("POST", "/api/v1/takes", Some(r#"{"name": "two"}"#))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "take_in_progress");
    assert!(v["detail"].as_str().unwrap().contains("one"), "{v}");
    let (status, v) = h.call("POST", "/api/v1/takes/stop", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = h
        .call("POST", "/api/v1/takes", Some(r#"{"name": "one"}"#))
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("exists")),
        "{v}"
    );
    // No server path in any answer.
    assert!(
        !v.to_string().contains(h._dir.path().to_str().unwrap()),
        "{v}"
    );
}

#[tokio::test]
async fn request_bodies_are_typed_and_a_wrong_field_is_named() {
    let h = harness("");
    for (uri, body, field) in [
        ("/api/v1/takes", r#"{"name": 5}"#, "name"),
        ("/api/v1/takes", r#"{"colour": "red"}"#, "colour"),
        ("/api/v1/checkpoints", r#"{"name": ["a"]}"#, "name"),
        ("/api/v1/takes/t/export", r#"{"force": "yes"}"#, "force"),
        (
            "/api/v1/takes/t/export",
            r#"{"formats": "png", "fast": true}"#,
            "fast",
        ),
    ] {
        let (status, v) = h.call("POST", uri, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri} {body}: {v}"
        );
        assert_eq!(v["field"], field, "{uri} {body}: {v}");
        assert_eq!(v["error"], "bad_body", "{v}");
    }
    for body in ["[1]", "\"name\""] {
        let (status, v) = h.call("POST", "/api/v1/takes", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    // Nothing was started by any of them.
    let (_, status) = h.call("GET", "/api/v1/status", None).await;
    assert_eq!(status["take"], Value::Null);
}
