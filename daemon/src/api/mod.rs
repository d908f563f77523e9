//! The daemon's HTTP API (`/api/v1`), its OpenAPI document, the event stream, the
//! preview and Prometheus `/metrics`.
//!
//! Every route is one row of [`routes`]: method, path, summary, request and response
//! shapes, and the handler. The router and `/api/v1/openapi.json` are both built from
//! that table, so the document cannot drift from what is served. The cue route is the
//! one `cuecast-http` serves for `cuecastsrc control-address`, nested here so a cue
//! behaves the same wherever it is sent. Any call that changes something needs the
//! bearer token when one is configured (always, beyond loopback); reads do not.

use parking_lot::Mutex;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRef, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use cuecast_engine::{Checkpoint, Cue, EngineError, Scene, ShowHandle};
use cuecast_http::{authorize, json_body, post_cues, ApiError, ControlState, BODY_LIMIT};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::MAX_NAME_CHARS;
use crate::config::{self, RundownItem, Video};
use crate::events::{Event, Events, TakeState};
use crate::library::{Library, LibraryError};
use crate::outputs::{OutputControl, OutputError, OutputState};
use crate::rundown::{Rundown, RundownError};

/// The config as the API reports it: where it came from and how the last reload went.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ConfigStatus {
    pub path: String,
    pub show: String,
    pub reloads_applied: u64,
    pub reloads_rejected: u64,
    /// The last rejected edit's error; cleared by the next good one.
    pub last_error: Option<String>,
    /// Changes in the file that only a restart applies.
    pub pending_restart: Vec<String>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub control: ControlState,
    pub show: ShowHandle,
    pub outputs: Arc<dyn OutputControl>,
    pub events: Events,
    pub rundown: Arc<Mutex<Rundown>>,
    pub scenes: Arc<Mutex<Vec<Scene>>>,
    pub config: Arc<Mutex<ConfigStatus>>,
    /// Where output profiles are looked up for outputs added over the API.
    pub presets: std::path::PathBuf,
    /// The only folder record outputs added over the API write in.
    pub recordings: std::path::PathBuf,
    /// The only folder images are read from and uploaded to.
    pub media: std::path::PathBuf,
    /// The most it may hold, in bytes.
    pub media_quota: u64,
    /// The environment variables outputs added over the API may read (`api.output_secrets`).
    pub output_secrets: Arc<[String]>,
    /// Host names and origins answered beyond loopback and the API's own page.
    pub access: Arc<cuecast_http::Access>,
    /// Wrong tokens lately, to slow guessing.
    pub wrong_tokens: Arc<Mutex<WrongTokens>>,
    /// Whether the model's step has been reported stuck (told once per hang).
    pub model_stuck: Arc<std::sync::atomic::AtomicBool>,
    /// Whether a run of failed steps has been told.
    pub model_failing: Arc<std::sync::atomic::AtomicBool>,
    pub video: Video,
    pub token: Option<Arc<str>>,
    /// The element's latest 1 Hz stats: frames out, fps, repeats, step times.
    pub live: Arc<Mutex<Value>>,
    /// Takes, checkpoints and exports.
    pub library: Library,
}

impl AppState {
    /// The state of a show just started: the config's scenes, rundown and access rules,
    /// nothing told yet.
    pub fn new(
        config: &config::Config,
        show: ShowHandle,
        outputs: Arc<dyn OutputControl>,
        events: Events,
    ) -> AppState {
        let token: Option<Arc<str>> = config.api_token.as_ref().map(|t| t.expose().into());
        AppState {
            control: ControlState {
                inbox: show.inbox().clone(),
                status: show.status_handle().clone(),
                token: token.clone(),
            },
            show,
            outputs,
            events,
            rundown: Arc::new(Mutex::new(Rundown::new(config.show.rundown.clone()))),
            scenes: Arc::new(Mutex::new(config.show.scenes.clone())),
            config: Arc::new(Mutex::new(ConfigStatus {
                path: config.path.display().to_string(),
                show: config.show.name.clone(),
                ..Default::default()
            })),
            presets: config.presets.clone(),
            recordings: config.recordings.clone(),
            media: config.media.clone(),
            media_quota: config.media_quota_bytes,
            output_secrets: config.api_output_secrets.clone().into(),
            access: Arc::new(config.api_access.clone()),
            wrong_tokens: Arc::default(),
            model_stuck: Arc::default(),
            model_failing: Arc::default(),
            video: config.video,
            token,
            live: Arc::new(Mutex::new(json!({}))),
            library: Library::new(config),
        }
    }

    /// GO (or BACK) through the rundown, from the API or OSC alike: fires the group,
    /// tells the event stream, and returns the rundown as it now is.
    pub fn rundown_step(&self, go: bool) -> Result<Value, RundownError> {
        let mut r = self.rundown.lock();
        let (fired, ids) = if go {
            r.go(self.show.inbox())
        } else {
            r.back(self.show.inbox())
        }?;
        let view = r.view();
        self.events.send(Event::Rundown {
            fired: Some(json!(fired)),
            cues: Some(ids.clone()),
            rundown: view.clone(),
        });
        Ok(view)
    }
}

impl FromRef<AppState> for ControlState {
    fn from_ref(s: &AppState) -> ControlState {
        s.control.clone()
    }
}

/// One API route: the router and the OpenAPI document are both made from these.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    /// The request body's schema, when there is one.
    pub body: Option<Value>,
    /// Success status and its schema (`null` for no body).
    pub ok: (u16, Value),
    pub handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    summary: &'static str,
    body: Option<Value>,
    ok: (u16, Value),
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        summary,
        body,
        ok,
        handler,
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    let object = json!({"type": "object"});
    vec![
        route(Method::GET, "/api/v1/status", "The show now: frame, camera, prompt, params, counters, outputs, rundown, config", None, (200, schema_ref("Status")), get(get_status)),
        route(Method::POST, "/api/v1/cues", "Send one cue or a list (all or nothing); ?wait=true answers once applied, with frame and latency", Some(json!({"oneOf": [schema_ref("Cue"), {"type": "array", "items": schema_ref("Cue")}]})), (202, schema_ref("CueIds")), post(post_cues)),
        route(Method::GET, "/api/v1/cues/log", "Applied cues, oldest first: arrival, frame, PTS, shown frame, latency. ?after=ID pages forward from a cue, ?limit=N (1..1000, default 1000); camera paths over 32 points show their first and last (points_total)", None, (200, json!({"type": "array", "items": schema_ref("AppliedCue")})), get(get_cue_log)),
        route(Method::GET, "/api/v1/scenes", "The show's scenes", None, (200, json!({"type": "array", "items": schema_ref("Scene")})), get(get_scenes)),
        route(Method::POST, "/api/v1/scenes/{name}", "Go to a scene (a scene cue); body optional: {transition: cut|fade, transition_s}", Some(object.clone()), (202, schema_ref("CueIds")), post(post_scene)),
        route(Method::GET, "/api/v1/params", "The model's params: name, min, max, default, value now", None, (200, json!({"type": "array", "items": schema_ref("Param")})), get(get_params)),
        route(Method::POST, "/api/v1/params/{name}", "Set a param (a param cue): {value, ramp_s}", Some(json!({"type": "object", "required": ["value"], "properties": {"value": {"type": "number"}, "ramp_s": {"type": "number"}}})), (202, schema_ref("CueIds")), post(post_param)),
        route(Method::GET, "/api/v1/rundown", "The rundown: items, current and next", None, (200, schema_ref("Rundown")), get(get_rundown)),
        route(Method::PUT, "/api/v1/rundown", "Load a rundown: [{name, cues}]", Some(json!({"type": "array", "items": schema_ref("RundownItem")})), (200, schema_ref("Rundown")), put(put_rundown)),
        route(Method::POST, "/api/v1/rundown/go", "Fire the next group of cues", None, (200, schema_ref("Rundown")), post(post_go)),
        route(Method::POST, "/api/v1/rundown/back", "Fire the group before the current one again", None, (200, schema_ref("Rundown")), post(post_back)),
        route(Method::GET, "/api/v1/outputs", "Every output: state, target (no secrets), bytes, reconnects, last error", None, (200, json!({"type": "array", "items": schema_ref("Output")})), get(get_outputs)),
        route(Method::POST, "/api/v1/outputs", "Add an output (the same fields as in the config file); it starts at once", Some(object.clone()), (201, schema_ref("Output")), post(post_output)),
        route(Method::POST, "/api/v1/outputs/{name}/start", "Start (or restart) an output", None, (200, schema_ref("Output")), post(start_output)),
        route(Method::POST, "/api/v1/outputs/{name}/stop", "Stop an output", None, (200, schema_ref("Output")), post(stop_output)),
        route(Method::DELETE, "/api/v1/outputs/{name}", "Remove an output", None, (204, Value::Null), delete(remove_output)),
        route(Method::GET, "/api/v1/takes", "Every take: frames, duration, markers, lost frames, or why it cannot be read", None, (200, json!({"type": "array", "items": schema_ref("Take")})), get(get_takes)),
        route(Method::POST, "/api/v1/takes", "Start recording a take; body optional: {name}", Some(json!({"type": "object", "properties": {"name": {"type": "string"}}})), (201, object.clone()), post(post_take)),
        route(Method::POST, "/api/v1/takes/stop", "Stop the take being recorded; answers once its files are complete", None, (200, object.clone()), post(post_take_stop)),
        route(Method::POST, "/api/v1/takes/{name}/export", "Export a take as a job; body optional: {formats: \"gltf,usd,ae,blender,png,exr,prores\", force}", Some(json!({"type": "object", "properties": {"formats": {"type": "string"}, "force": {"type": "boolean"}}})), (202, schema_ref("Job")), post(post_take_export)),
        route(Method::GET, "/api/v1/jobs/{id}", "An export job: stage, progress, files, error", None, (200, schema_ref("Job")), get(get_job)),
        route(Method::GET, "/api/v1/checkpoints", "Every checkpoint: frame, model, prompt, camera", None, (200, json!({"type": "array", "items": object.clone()})), get(get_checkpoints)),
        route(Method::POST, "/api/v1/checkpoints", "Save a checkpoint of the show now; body optional: {name}", Some(json!({"type": "object", "properties": {"name": {"type": "string"}}})), (201, object.clone()), post(post_checkpoint)),
        route(Method::POST, "/api/v1/checkpoints/{name}/restore", "Resume the scene from a checkpoint (same model only)", None, (200, schema_ref("Status")), post(post_restore)),
        route(Method::GET, "/api/v1/events", "Server-sent events: each data line is an Event (cue_applied, stats, output_state, output_removed, config, rundown, take, checkpoint, export, warning, error)", None, (200, json!({"type": "string", "format": "text/event-stream"})), get(get_events)),
        route(Method::GET, "/api/v1/preview.mjpeg", "The preview output as multipart MJPEG (for <img>)", None, (200, json!({"type": "string", "format": "multipart/x-mixed-replace"})), get(get_preview)),
        route(Method::POST, "/api/v1/auth", "Check a token: 204 when it is accepted, 401 when not (status.auth says whether one is needed)", None, (204, Value::Null), post(post_auth)),
        route(Method::GET, "/api/v1/model", "The running model: native size and rate, how it chunks, the inputs it takes (axes, keys, mouse, camera pose, image), its params and prompt", None, (200, schema_ref("Model")), get(get_model)),
        route(Method::GET, "/api/v1/media", "The images in the media folder, which image cues name", None, (200, json!({"type": "array", "items": {"type": "object", "required": ["name", "bytes"], "properties": {"name": {"type": "string"}, "bytes": {"type": "integer"}}}})), get(get_media)),
        route(Method::POST, "/api/v1/media", "Upload an image into the media folder: the file itself as the body (image/png or image/jpeg, as its bytes say, at most 32 MB), decoded before it is kept, within the folder's quota (media_quota_mb); ?name=NAME (else upload-<digest>), &force=true replaces one of that name", Some(json!({"type": "string", "format": "binary", "x-content-types": cuecast_http::access::FILE_ROUTES[0].1})), (201, json!({"type": "object", "properties": {"name": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "bytes": {"type": "integer"}}})), post(post_media).layer(DefaultBodyLimit::max(cuecast_engine::media::MAX_IMAGE_BYTES as usize))),
        route(Method::DELETE, "/api/v1/media/{name}", "Remove an image from the media folder", None, (204, Value::Null), delete(delete_media)),
        route(Method::GET, "/api/v1/openapi.json", "This document", None, (200, object), get(get_openapi)),
        route(Method::GET, "/metrics", "Prometheus metrics", None, (200, json!({"type": "string", "format": metrics::CONTENT_TYPE})), get(get_metrics)),
    ]
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        router = router.route(r.path, r.handler);
    }
    router
        .merge(crate::surface::router())
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(
            state.access.clone(),
            cuecast_http::access::guard,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route (see /api/v1/openapi.json)",
            )
        })
        .with_state(state)
}

/// Wrong bearer tokens in the current second: past [`WRONG_TOKENS_PER_S`] no token is
/// checked until the second is over (429), so guessing goes no faster than that.
#[derive(Debug)]
pub struct WrongTokens {
    second: std::time::Instant,
    count: u32,
}

impl Default for WrongTokens {
    fn default() -> Self {
        WrongTokens {
            second: std::time::Instant::now(),
            count: 0,
        }
    }
}

/// The most wrong tokens answered 401 in one second.
pub const WRONG_TOKENS_PER_S: u32 = 10;

/// Calls that change something need the token, when there is one.
async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    if changes && state.token.is_some() {
        let mut w = state.wrong_tokens.lock();
        if w.second.elapsed() >= Duration::from_secs(1) {
            *w = WrongTokens::default();
        }
        if w.count >= WRONG_TOKENS_PER_S {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_wrong_tokens",
                "too many wrong tokens in the last second: try again in a second",
            ));
        }
        if let Err(e) = authorize(state.token.as_deref(), request.headers()) {
            w.count += 1;
            return Err(e);
        }
    }
    Ok(next.run(request).await)
}

/// The OpenAPI 3.1 document, made from [`routes`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "responses": {
                r.ok.0.to_string(): if r.ok.1.is_null() {
                    json!({"description": "done"})
                } else {
                    // Streams and text name their own media type in `format`.
                    let media = r.ok.1["format"]
                        .as_str()
                        .filter(|f| f.contains('/'))
                        .unwrap_or("application/json");
                    json!({"description": "ok", "content": {media: {"schema": r.ok.1}}})
                },
                "4XX": {"description": "the request was wrong; nothing changed", "content": {"application/json": {"schema": schema_ref("Error")}}},
            },
        });
        if let Some(body) = r.body {
            let mut content = Map::new();
            match body["x-content-types"].as_array() {
                Some(types) => {
                    for t in types.iter().filter_map(Value::as_str) {
                        content.insert(
                            t.into(),
                            json!({"schema": {"type": "string", "format": "binary"}}),
                        );
                    }
                }
                None => {
                    content.insert("application/json".into(), json!({"schema": body}));
                }
            }
            op["requestBody"] = json!({"required": true, "content": content});
        }
        if r.method != Method::GET {
            op["security"] = json!([{"bearer": []}]);
        }
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if r.path == "/api/v1/cues" {
            op["parameters"] = json!([
                {"name": "wait", "in": "query", "schema": {"type": "boolean"}},
                {"name": "timeout_s", "in": "query", "schema": {"type": "number", "maximum": cuecast_http::MAX_WAIT_S}},
            ]);
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "cuecast", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Steer a live generative show with cues; manage its outputs."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

/// What `GET /api/v1/status` answers.
fn status_schema() -> Value {
    let num = json!({"type": "number"});
    json!({"type": "object", "properties": {
            "show": {"type": "string", "description": "the show preset's name"},
            "backend": {"type": "string"}, "model": {"type": "string"}, "device": {"type": "string"},
            "model_threads": {"type": "integer", "description": "libtorch threads of the model's step"},
            "state_bytes": {"type": "integer", "description": "bytes the model's state holds"},
            "failing_steps": {"type": "integer", "description": "model steps failed in a row now"},
            "model_resets": {"type": "integer", "description": "times the model was started over (failing steps, state over its limit)"},
            "last_reset": {"type": ["string", "null"], "description": "why the model was last started over"},
            "frame": {"type": "integer"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "fps": schema_ref("Fps"),
            "camera": schema_ref("Pose"), "prompt": {"type": "string"}, "params": {"type": "object", "additionalProperties": num},
            "seed": {"type": "integer"}, "frozen": {"type": "boolean"}, "fade": {"type": "number", "description": "0 program, 1 black"},
            "cues_waiting": {"type": "integer"}, "last_step_ms": num, "frames_rendered": {"type": "integer"},
            "steps_failed": {"type": "integer"}, "frames_repeated": {"type": "integer"},
            "take": {"type": ["string", "null"], "description": "the take being recorded"},
            "detail": {"type": "number", "description": "the detail frames are drawn at: 1 full, lower while steps run late"},
            "take_ended": {"type": "object", "required": ["name", "reason", "frames"], "properties": {"name": {"type": "string"}, "reason": {"type": "string"}, "frames": {"type": "integer"}}, "description": "a take that ended by itself (a full disk), until the next starts"},
            "step_running_s": {"type": "number", "description": "seconds the model's step in progress has run, once over a second (absent otherwise)"},
            "model_process": {"type": "object", "description": "a python model's worker process (absent for other models)", "properties": {
                "state": {"enum": ["starting", "running", "restarting", "stopped"]}, "pid": {"type": ["integer", "null"]},
                "python": {"type": "string"}, "restarts": {"type": "integer", "description": "times it was started again after dying or hanging"},
                "last_exit": {"type": ["string", "null"], "description": "how the last process ended"}, "up_s": num,
                "last_step_ms": num, "last_transfer_ms": num, "saved_state_bytes": {"type": "integer"},
                "sandbox": {"type": "string", "description": "how the process is confined: bubblewrap (as nobody where cuecast runs as root), or none: why"},
                "network": {"type": "boolean", "description": "whether it may reach the network"},
                "memory_bytes": {"type": "integer", "description": "memory its processes and its folder's files hold"},
                "memory_cap_bytes": {"type": ["integer", "null"], "description": "the most they may hold (from the manifest's memory_gb)"},
                "processes": {"type": "integer", "description": "its processes, the worker included"}}},
            "frames_buffered": {"type": "integer", "description": "a chunked model's frames made ahead of the output"},
            "frames_skipped": {"type": "integer", "description": "a chunked model's frames never shown: they came after their time"},
            "fallback_frames": {"type": "integer", "description": "frames the fallback drew while a python model's process was down"},
            "auth": {"type": "boolean", "description": "whether changes need the bearer token"},
            "outputs": {"type": "array", "items": schema_ref("Output")},
            "encoders": {"type": "array", "items": {"type": "object", "properties": {"profile": {"type": "string"}, "frames_in": {"type": "integer"}, "frames_out": {"type": "integer"}}}},
            "rundown": schema_ref("Rundown"),
            "live": {"description": "the element's counters of the last second (null before the first)", "type": ["object", "null"]},
            "config": {"type": "object", "description": "config reloads: applied, rejected, last error, what waits for a restart"}}})
}

fn schemas() -> Value {
    let num = json!({"type": "number"});
    json!({
        "Cue": cuecast_engine::schema::schema(),
        "Event": crate::events::schema(),
        "CueIds": {"type": "object", "properties": {"cues": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "frame": {"type": "integer"}, "latency_ms": num}}}}},
        "AppliedCue": {"type": "object", "properties": {"id": {"type": "integer"}, "cue": schema_ref("Cue"), "arrived_unix_ms": {"type": "integer"}, "frame": {"type": "integer"}, "pts_ns": {"type": "integer"}, "shown_frame": {"type": "integer"}, "latency_ms": num}},
        "Scene": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "prompt": {"type": "string"}, "seed": {"type": "integer"}, "camera": {"type": "object"}, "params": {"type": "object", "additionalProperties": num}}},
        "Param": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "min": num, "max": num, "default": num, "value": num}},
        "RundownItem": {"type": "object", "required": ["name", "cues"], "properties": {"name": {"type": "string"}, "cues": {"type": "array", "items": schema_ref("Cue")}}},
        "Rundown": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("RundownItem")}, "current": {"type": ["integer", "null"]}, "next": {"type": ["integer", "null"]}}},
        "Output": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"enum": ["srt", "rtmp", "record", "preview"]}, "target": {"type": "string", "description": "where it goes, without secrets"}, "profile": {"type": ["string", "null"]}, "state": {"enum": ["connecting", "live", "retrying", "failed", "stopped"]}, "bytes": {"type": "integer", "description": "bytes delivered (acknowledged, for SRT)"}, "reconnects": {"type": "integer"}, "attempt": {"type": "integer"}, "last_error": {"type": ["string", "null"]}, "receivers": {"type": ["integer", "null"], "description": "SRT receivers connected"}, "retry_in_s": {"type": ["number", "null"]}, "file": {"type": ["string", "null"]}, "from_config": {"type": "boolean", "description": "from the config file (else added over the API)"}}},
        "Pose": {"type": "object", "required": ["pos", "yaw", "pitch", "fov"], "properties": {"pos": {"type": "array", "items": num, "minItems": 3, "maxItems": 3}, "yaw": num, "pitch": num, "fov": num}},
        "Fps": {"type": "object", "required": ["num", "den"], "properties": {"num": {"type": "integer"}, "den": {"type": "integer"}}},
        "Status": status_schema(),
        "Model": {"type": "object", "properties": {
            "name": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "fps": schema_ref("Fps"),
            "any_size": {"type": "boolean"}, "actions": {"type": "array", "items": {"type": "string"}},
            "params": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "default": num, "min": num, "max": num, "description": {"type": "string"}}}},
            "prompt": {"enum": ["text", "set_prompt", "none"]}, "pitch_limit": num, "depth": {"type": "boolean"}, "hash": {"type": "string"},
            "inputs": {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "string"}}, "mouse": {"type": "boolean"}, "camera_pose": {"type": "boolean"}, "image": {"enum": ["none", "optional", "required"]}}},
            "chunking": {"type": "object", "properties": {"frames_per_step": {"type": "integer"}, "first_step_frames": {"type": "integer"}, "latency_frames": {"type": "integer"}}}}},
        "Take": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "frames": {"type": "integer"}, "complete": {"type": "boolean"}, "recording": {"type": "boolean"}, "width": {"type": "integer"}, "height": {"type": "integer"}, "fps": schema_ref("Fps"), "duration_s": num, "start_frame": {"type": "integer"}, "started_utc": {"type": "string"}, "stopped_utc": {"type": ["string", "null"]}, "markers": {"type": "integer"}, "lost_frames": {"type": "integer"}, "model": {"type": "string"}, "error": {"type": "string", "description": "why the folder cannot be read as a take"}}},
        "Job": {"type": "object", "properties": {"id": {"type": "integer"}, "take": {"type": "string"}, "out": {"type": "string"}, "state": {"enum": ["running", "done", "failed"]}, "stage": {"type": "string"}, "done": {"type": "integer"}, "total": {"type": "integer"}, "error": {"type": ["string", "null"]}, "files": {"type": "array", "items": {"type": "string"}}, "seconds": {"type": ["number", "null"]}}},
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": ["string", "null"]}}},
    })
}

mod cues;
mod library;
mod media;
mod metrics;
mod outputs;
#[cfg(test)]
mod tests;

#[allow(unused_imports)]
use cues::*;
#[allow(unused_imports)]
use library::*;
#[allow(unused_imports)]
use media::*;
pub use metrics::metrics;
#[allow(unused_imports)]
use outputs::*;
