//! The daemon's HTTP API (`/api/v1`), its OpenAPI document, the event stream, the
//! preview and Prometheus `/metrics`.
//!
//! Every route is one row of [`routes`]: method, path, summary, request and response
//! shapes, and the handler. The router and `/api/v1/openapi.json` are both built from
//! that table, so the document cannot drift from what is served. The cue route is the
//! one `cuecast-control` serves for `cuecastsrc control-address`, nested here so a cue
//! behaves the same wherever it is sent. Any call that changes something needs the
//! bearer token when one is configured (always, beyond loopback); reads do not.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
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
use cuecast_control::{authorize, json_body, post_cues, ApiError, ControlState, BODY_LIMIT};
use cuecast_engine::metrics::HistogramSnapshot;
use cuecast_engine::{Checkpoint, Cue, EngineError, Scene, ShowHandle};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::MAX_NAME_CHARS;
use crate::config::{self, RundownItem, Video};
use crate::events::Events;
use crate::library::{Library, LibraryError};
use crate::lock;
use crate::outputs::{OutputError, OutputState, Outputs};
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
    pub outputs: Outputs,
    pub events: Events,
    pub rundown: Arc<Mutex<Rundown>>,
    pub scenes: Arc<Mutex<Vec<Scene>>>,
    pub config: Arc<Mutex<ConfigStatus>>,
    /// Where output profiles are looked up for outputs added over the API.
    pub presets: std::path::PathBuf,
    /// The only folder record outputs added over the API write in.
    pub recordings: std::path::PathBuf,
    /// The environment variables outputs added over the API may read (`api.output_secrets`).
    pub output_secrets: Arc<[String]>,
    /// Host names and origins answered beyond loopback and the API's own page.
    pub access: Arc<cuecast_control::Access>,
    /// Wrong tokens lately, to slow guessing.
    pub wrong_tokens: Arc<Mutex<WrongTokens>>,
    /// Whether the model's step has been reported stuck (told once per hang).
    pub model_stuck: Arc<std::sync::atomic::AtomicBool>,
    /// Model resets told of, and whether a run of failed steps has been told.
    pub model_resets_told: Arc<std::sync::atomic::AtomicU64>,
    pub model_failing: Arc<std::sync::atomic::AtomicBool>,
    /// The last take that ended by itself and has been told of.
    pub take_ended: Arc<Mutex<Option<String>>>,
    pub video: Video,
    pub token: Option<Arc<str>>,
    /// The element's latest 1 Hz stats: frames out, fps, repeats, step times.
    pub live: Arc<Mutex<Value>>,
    /// Takes, checkpoints and exports.
    pub library: Library,
}

impl AppState {
    /// GO (or BACK) through the rundown, from the API or OSC alike: fires the group,
    /// tells the event stream, and returns the rundown as it now is.
    pub fn rundown_step(&self, go: bool) -> Result<Value, RundownError> {
        let mut r = lock(&self.rundown);
        let (fired, ids) = if go {
            r.go(self.show.inbox())
        } else {
            r.back(self.show.inbox())
        }?;
        let view = r.view();
        self.events
            .send(json!({"type": "rundown", "fired": fired, "cues": ids, "rundown": view}));
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
        route(Method::GET, "/api/v1/events", "Server-sent events: cue_applied, output_state, config, rundown, take, checkpoint, export, warning", None, (200, json!({"type": "string", "format": "text/event-stream"})), get(get_events)),
        route(Method::GET, "/api/v1/preview.mjpeg", "The preview output as multipart MJPEG (for <img>)", None, (200, json!({"type": "string", "format": "multipart/x-mixed-replace"})), get(get_preview)),
        route(Method::POST, "/api/v1/auth", "Check a token: 204 when it is accepted, 401 when not (status.auth says whether one is needed)", None, (204, Value::Null), post(post_auth)),
        route(Method::GET, "/api/v1/openapi.json", "This document", None, (200, object), get(get_openapi)),
        route(Method::GET, "/metrics", "Prometheus metrics", None, (200, json!({"type": "string", "format": "text/plain; version=0.0.4"})), get(get_metrics)),
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
            cuecast_control::access::guard,
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
        let mut w = lock(&state.wrong_tokens);
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
                    json!({"description": "ok", "content": {"application/json": {"schema": r.ok.1}}})
                },
                "4XX": {"description": "the request was wrong; nothing changed", "content": {"application/json": {"schema": schema_ref("Error")}}},
            },
        });
        if let Some(body) = r.body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
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
                {"name": "timeout_s", "in": "query", "schema": {"type": "number", "maximum": cuecast_control::MAX_WAIT_S}},
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

fn schemas() -> Value {
    let num = json!({"type": "number"});
    json!({
        "Cue": cuecast_engine::schema::schema(),
        "CueIds": {"type": "object", "properties": {"cues": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "frame": {"type": "integer"}, "latency_ms": num}}}}},
        "AppliedCue": {"type": "object", "properties": {"id": {"type": "integer"}, "cue": schema_ref("Cue"), "arrived_unix_ms": {"type": "integer"}, "frame": {"type": "integer"}, "pts_ns": {"type": "integer"}, "shown_frame": {"type": "integer"}, "latency_ms": num}},
        "Scene": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "prompt": {"type": "string"}, "seed": {"type": "integer"}, "camera": {"type": "object"}, "params": {"type": "object", "additionalProperties": num}}},
        "Param": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "min": num, "max": num, "default": num, "value": num}},
        "RundownItem": {"type": "object", "required": ["name", "cues"], "properties": {"name": {"type": "string"}, "cues": {"type": "array", "items": schema_ref("Cue")}}},
        "Rundown": {"type": "object", "properties": {"items": {"type": "array", "items": schema_ref("RundownItem")}, "current": {"type": ["integer", "null"]}, "next": {"type": ["integer", "null"]}}},
        "Output": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"enum": ["srt", "rtmp", "record", "preview"]}, "target": {"type": "string"}, "profile": {"type": ["string", "null"]}, "state": {"enum": ["connecting", "live", "retrying", "failed", "stopped"]}, "bytes": {"type": "integer"}, "reconnects": {"type": "integer"}, "attempt": {"type": "integer"}, "last_error": {"type": ["string", "null"]}, "receivers": {"type": ["integer", "null"]}, "retry_in_s": {"type": ["number", "null"]}, "file": {"type": ["string", "null"]}}},
        "Status": {"type": "object", "properties": {"frame": {"type": "integer"}, "auth": {"type": "boolean", "description": "whether changes need the bearer token"}, "camera": {"type": "object"}, "prompt": {"type": "string"}, "params": {"type": "object"}, "detail": {"type": "number", "description": "the detail frames are drawn at: 1 full, lower while steps run late"}, "step_running_s": {"type": "number", "description": "seconds the model's step in progress has run, once over a second (absent otherwise)"}, "model_threads": {"type": "integer", "description": "libtorch threads of the model's step"}, "state_bytes": {"type": "integer", "description": "bytes the model's state holds"}, "failing_steps": {"type": "integer", "description": "model steps failed in a row now"}, "model_resets": {"type": "integer", "description": "times the model was started over (failing steps, state over its limit)"}, "last_reset": {"type": ["string", "null"], "description": "why the model was last started over"}, "outputs": {"type": "array", "items": schema_ref("Output")}, "rundown": schema_ref("Rundown"), "config": {"type": "object"}}},
        "Take": {"type": "object", "properties": {"name": {"type": "string"}, "frames": {"type": "integer"}, "complete": {"type": "boolean"}, "duration_s": num, "markers": {"type": "integer"}, "lost_frames": {"type": "integer"}, "error": {"type": "string"}}},
        "Job": {"type": "object", "properties": {"id": {"type": "integer"}, "take": {"type": "string"}, "out": {"type": "string"}, "state": {"enum": ["running", "done", "failed"]}, "stage": {"type": "string"}, "done": {"type": "integer"}, "total": {"type": "integer"}, "error": {"type": ["string", "null"]}, "files": {"type": "array", "items": {"type": "string"}}}},
        "Error": {"type": "object", "required": ["error", "detail"], "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": ["string", "null"]}}},
    })
}

// --- handlers ----------------------------------------------------------------------

async fn get_status(State(s): State<AppState>) -> Json<Value> {
    let mut v = serde_json::to_value(s.show.status()).unwrap_or_else(|_| json!({}));
    v["show"] = json!(lock(&s.config).show);
    v["outputs"] = json!(s.outputs.list());
    v["encoders"] = json!(s.outputs.encoders());
    v["rundown"] = lock(&s.rundown).view();
    v["config"] = json!(*lock(&s.config));
    v["live"] = lock(&s.live).clone();
    v["auth"] = json!(s.token.is_some());
    Json(v)
}

/// The token check itself is the middleware's; reaching here means it passed.
async fn post_auth() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /api/v1/cues/log`'s query: a page of the log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    /// Cues applied after the cue with this id (else the most recent).
    after: Option<u64>,
    /// At most this many (1..=1000, default 1000).
    limit: Option<usize>,
}

/// Camera paths longer than this are shown as their first and last points.
const LOG_PATH_POINTS: usize = 32;

async fn get_cue_log(
    State(s): State<AppState>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError {
            field: Some("limit".into()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_query",
                format!("limit must be 1..1000, got {limit}"),
            )
        });
    }
    let page = s.show.cue_log(q.after, limit);
    let entries: Vec<Value> = page
        .iter()
        .map(|c| {
            let mut v = json!(c.as_ref());
            let n = v["cue"]["points"].as_array().map_or(0, Vec::len);
            if n > LOG_PATH_POINTS {
                let points = &v["cue"]["points"];
                v["cue"]["points"] = json!([points[0], points[n - 1]]);
                v["cue"]["points_total"] = json!(n);
            }
            v
        })
        .collect();
    Ok(Json(Value::Array(entries)))
}

async fn get_scenes(State(s): State<AppState>) -> Json<Value> {
    Json(json!(*lock(&s.scenes)))
}

fn submit(s: &AppState, cues: Vec<Cue>) -> Result<Response, ApiError> {
    let ids = s
        .show
        .inbox()
        .submit(cues, None)
        .map_err(ApiError::invalid_cue)?;
    let list: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"cues": list}))).into_response())
}

/// An optional JSON object body (absent or empty means `{}`).
/// An optional JSON object body.
fn object_body(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    if matches!(&body, Ok(b) if b.iter().all(u8::is_ascii_whitespace)) {
        return Ok(Map::new());
    }
    match json_body(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the body must be a JSON object",
        )),
    }
}

/// An optional JSON object body with only the `known` fields.
fn fields_body(
    body: Result<Bytes, BytesRejection>,
    known: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let m = object_body(body)?;
    if let Some(unknown) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError {
            field: Some(unknown.clone()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_body",
                format!(
                    "unknown field {unknown:?} (known: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        });
    }
    Ok(m)
}

async fn post_scene(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut m = object_body(body)?;
    m.insert("type".into(), "scene".into());
    m.insert("name".into(), name.into());
    let cue = Cue::from_value(&Value::Object(m)).map_err(ApiError::invalid_cue)?;
    submit(&s, vec![cue])
}

async fn get_params(State(s): State<AppState>) -> Json<Value> {
    let now = s.show.status().params;
    let list: Vec<Value> = s
        .show
        .info()
        .params
        .iter()
        .map(|p| {
            json!({"name": p.name, "min": p.min, "max": p.max, "default": p.default,
                   "description": p.description,
                   "value": now.get(&p.name).copied().unwrap_or(p.default)})
        })
        .collect();
    Json(Value::Array(list))
}

async fn post_param(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut m = object_body(body)?;
    m.insert("type".into(), "param".into());
    m.insert("name".into(), name.into());
    let cue = Cue::from_value(&Value::Object(m)).map_err(ApiError::invalid_cue)?;
    submit(&s, vec![cue])
}

async fn get_rundown(State(s): State<AppState>) -> Json<Value> {
    Json(lock(&s.rundown).view())
}

async fn put_rundown(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Value::Array(items) = json_body(body)? else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "a rundown is a JSON list of {name, cues}",
        ));
    };
    let invalid = |field: String, message: String| ApiError {
        field: Some(field),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rundown", message)
    };
    if items.len() > MAX_RUNDOWN_ITEMS {
        return Err(invalid(
            String::new(),
            format!("at most {MAX_RUNDOWN_ITEMS} items, got {}", items.len()),
        ));
    }
    let mut rundown = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = |f: &str| format!("[{i}].{f}");
        let Some(obj) = item.as_object() else {
            return Err(invalid(
                format!("[{i}]"),
                "every item is {name, cues}".into(),
            ));
        };
        if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "name" | "cues")) {
            return Err(invalid(
                field(k),
                format!("unknown field {k:?} (known: name, cues)"),
            ));
        }
        let name = item["name"]
            .as_str()
            .ok_or_else(|| invalid(field("name"), "every item has a name".into()))?;
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                field("name"),
                format!("1 to {MAX_NAME_CHARS} characters, no control characters"),
            ));
        }
        let cues = Cue::list_from_value(&item["cues"])
            .map_err(|e| ApiError::invalid_cue(e.within(&format!("[{i}].cues"))))?;
        s.show
            .inbox()
            .check(&cues)
            .map_err(|e| ApiError::invalid_cue(e.within(&format!("[{i}].cues"))))?;
        rundown.push(RundownItem {
            name: name.to_owned(),
            cues,
        });
    }
    let mut r = lock(&s.rundown);
    *r = Rundown::new(rundown);
    let view = r.view();
    s.events.send(json!({"type": "rundown", "rundown": view}));
    Ok(Json(view))
}

fn rundown_step(s: &AppState, go: bool) -> Result<Json<Value>, ApiError> {
    match s.rundown_step(go) {
        Ok(view) => Ok(Json(view)),
        Err(RundownError::Cue(e)) => Err(ApiError::invalid_cue(e)),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "rundown",
            e.to_string(),
        )),
    }
}

async fn post_go(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    rundown_step(&s, true)
}

async fn post_back(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    rundown_step(&s, false)
}

fn library_error(e: LibraryError) -> ApiError {
    match e {
        LibraryError::Name(m) => ApiError {
            field: Some("name".into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_name", m)
        },
        LibraryError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        LibraryError::Exists(m) => ApiError::new(StatusCode::CONFLICT, "exists", m),
        LibraryError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        LibraryError::Format(m) => ApiError {
            field: Some("formats".into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_format", m)
        },
    }
}

fn engine_error(e: EngineError) -> ApiError {
    match &e {
        // Files are named as the user knows them, not by the server's absolute paths.
        EngineError::File(f) => {
            let message = format!("{}: {}", crate::user_path(&f.path), f.message);
            if f.message.contains("exists") {
                ApiError::new(StatusCode::CONFLICT, "exists", message)
            } else {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "file", message)
            }
        }
        EngineError::Stopped(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopped", e.to_string())
        }
        EngineError::NotResponding { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_responding",
            e.to_string(),
        ),
        _ => ApiError::new(StatusCode::CONFLICT, "refused", e.to_string()),
    }
}

/// The most items a rundown may have.
const MAX_RUNDOWN_ITEMS: usize = 1000;

/// An optional string field of an object body.
fn opt_str<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError {
            field: Some(field.into()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_body",
                format!("{field} must be a string"),
            )
        }),
    }
}

fn create_folder(dir: &std::path::Path) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io",
            format!("cannot create {}: {e}", crate::user_path(dir)),
        )
    })
}

async fn get_takes(State(s): State<AppState>) -> Json<Value> {
    let library = s.library.clone();
    let mut takes = blocking(move || library.list_takes()).await;
    // Incomplete is either recording now or cut short by a crash; the show knows which.
    let recording = s.show.status().take;
    for t in &mut takes {
        t["recording"] = json!(recording.is_some() && t["name"].as_str() == recording.as_deref());
    }
    Json(json!(takes))
}

async fn post_take(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let m = fields_body(body, &["name"])?;
    let name = Library::new_name("take", opt_str(&m, "name")?).map_err(library_error)?;
    let dir = s.library.take_dir(&name).map_err(library_error)?;
    create_folder(&s.library.takes)?;
    let (show, d) = (s.show.clone(), dir.clone());
    let manifest = blocking(move || show.start_take(&d, &name))
        .await
        .map_err(engine_error)?;
    tracing::info!("take {:?} recording → {}", manifest.name, dir.display());
    s.events.send(
        json!({"type": "take", "state": "recording", "take": manifest.name, "start_frame": manifest.start_frame}),
    );
    Ok((StatusCode::CREATED, Json(json!(manifest))).into_response())
}

async fn post_take_stop(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let show = s.show.clone();
    let summary = blocking(move || show.stop_take())
        .await
        .map_err(engine_error)?;
    tracing::info!(
        "take {:?} complete: {} frames ({} lost) in {}",
        summary.name,
        summary.frames,
        summary.lost_frames.len(),
        summary.dir.display()
    );
    s.events.send(
        json!({"type": "take", "state": "stopped", "take": summary.name, "frames": summary.frames}),
    );
    Ok(Json(json!(summary)))
}

async fn post_take_export(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let m = fields_body(body, &["force", "formats"])?;
    let force = match m.get("force") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError {
                field: Some("force".into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_body",
                    "force must be true or false",
                )
            })
        }
    };
    let formats = opt_str(&m, "formats")?.map(str::to_owned);
    let (library, events) = (s.library.clone(), s.events.clone());
    let job = blocking(move || library.start_export(&name, formats.as_deref(), force, &events))
        .await
        .map_err(library_error)?;
    Ok((StatusCode::ACCEPTED, Json(json!(job))).into_response())
}

async fn get_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| s.library.job(id))
        .map(|j| Json(json!(j)))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no job {id:?}")))
}

async fn get_checkpoints(State(s): State<AppState>) -> Json<Value> {
    let library = s.library.clone();
    Json(json!(blocking(move || library.list_checkpoints()).await))
}

async fn post_checkpoint(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let m = fields_body(body, &["name"])?;
    let name = Library::new_name("checkpoint", opt_str(&m, "name")?).map_err(library_error)?;
    let dir = s.library.checkpoint_dir(&name).map_err(library_error)?;
    create_folder(&s.library.checkpoints)?;
    let (show, d) = (s.show.clone(), dir.clone());
    let m = blocking(move || show.save_checkpoint(&d))
        .await
        .map_err(engine_error)?;
    tracing::info!("checkpoint {name:?} saved → {}", dir.display());
    let saved = json!({"name": name, "frame": m.frame, "model": m.model.name, "hash": m.model.hash,
                       "prompt": m.prompt, "seed": m.seed, "camera": m.camera, "created_utc": m.created_utc});
    s.events
        .send(json!({"type": "checkpoint", "saved": name, "frame": m.frame}));
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

async fn post_restore(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dir = s.library.checkpoint_dir(&name).map_err(library_error)?;
    if !dir.is_dir() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no checkpoint {name:?}"),
        ));
    }
    let show = s.show.clone();
    blocking(move || show.restore(Checkpoint::load(&dir)?))
        .await
        .map_err(engine_error)?;
    tracing::info!("checkpoint {name:?} restored");
    s.events
        .send(json!({"type": "checkpoint", "restored": name}));
    Ok(Json(json!(s.show.status())))
}

async fn get_outputs(State(s): State<AppState>) -> Json<Value> {
    Json(json!(s.outputs.list()))
}

fn output_error(e: OutputError) -> ApiError {
    let status = match e {
        OutputError::Unknown(_) => StatusCode::NOT_FOUND,
        OutputError::Exists(_) => StatusCode::CONFLICT,
        OutputError::Gone => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, "output", e.to_string())
}

fn one_output(s: &AppState, name: &str) -> Result<Json<Value>, ApiError> {
    s.outputs
        .list()
        .into_iter()
        .find(|o| o.name == name)
        .map(|o| Json(json!(o)))
        .ok_or_else(|| output_error(OutputError::Unknown(name.to_owned())))
}

/// Runs a command off the async workers: it may wait on GStreamer, the model thread or
/// the disk.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking API command panicked")
}

async fn post_output(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = json_body(body)?;
    check_api_output(&value, &s.output_secrets)?;
    let yaml = serde_yaml::to_value(&value)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string()))?;
    // Relative paths resolve beside this "file": inside the recordings folder.
    let here = s.recordings.join("request");
    let secrets = s.output_secrets.clone();
    let env = move |v: &str| {
        secrets
            .iter()
            .any(|allowed| allowed == v)
            .then(|| std::env::var(v).ok())
            .flatten()
    };
    let output =
        config::output(&here, &s.presets, 0, yaml, s.video, &env).map_err(|e| ApiError {
            field: e
                .field
                .as_deref()
                .map(|f| {
                    f.trim_start_matches("outputs[0]")
                        .trim_start_matches('.')
                        .to_owned()
                })
                .filter(|f| !f.is_empty()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_output",
                e.message.clone(),
            )
        })?;
    let name = output.name.clone();
    let outputs = s.outputs.clone();
    blocking(move || outputs.add(output))
        .await
        .map_err(output_error)?;
    let one = one_output(&s, &name)?;
    Ok((StatusCode::CREATED, one).into_response())
}

/// What an output added over the API may not do that one in the config may: record
/// outside the recordings folder, or read a secret the config does not offer it.
fn check_api_output(value: &Value, secrets: &[String]) -> Result<(), ApiError> {
    let refuse = |field: &str, message: String| ApiError {
        field: Some(field.into()),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_output", message)
    };
    for field in ["key_env", "passphrase_env"] {
        if let Some(name) = value.get(field).and_then(Value::as_str) {
            if !secrets.iter().any(|s| s == name) {
                let offered = if secrets.is_empty() {
                    "none".to_owned()
                } else {
                    secrets.join(", ")
                };
                return Err(refuse(
                    field,
                    format!("outputs added over the API may read only the secrets the config's api.output_secrets lists ({offered})"),
                ));
            }
        }
    }
    if value.get("type").and_then(Value::as_str) == Some("record") {
        if let Some(path) = value.get("path").and_then(Value::as_str) {
            let p = std::path::Path::new(path);
            let why = if path.is_empty() || path.chars().count() > 255 {
                Some("1 to 255 characters")
            } else if path.chars().any(char::is_control) {
                Some("no control characters")
            } else if p.is_absolute() {
                Some("a path relative to the recordings folder, not an absolute one")
            } else if p
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                Some("a path inside the recordings folder: no .. or .")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(refuse("path", format!("{why} (got {path:?})")));
            }
        }
    }
    Ok(())
}

async fn start_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (outputs, n) = (s.outputs.clone(), name.clone());
    blocking(move || outputs.start_output(&n))
        .await
        .map_err(output_error)?;
    one_output(&s, &name)
}

async fn stop_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (outputs, n) = (s.outputs.clone(), name.clone());
    blocking(move || outputs.stop_output(&n))
        .await
        .map_err(output_error)?;
    one_output(&s, &name)
}

async fn remove_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let outputs = s.outputs.clone();
    blocking(move || outputs.remove(&name))
        .await
        .map_err(output_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.events.subscribe();
    let events = stream::unfold(rx, |mut rx| async move {
        use tokio::sync::broadcast::error::RecvError;
        let event = match rx.recv().await {
            Ok(v) => SseEvent::default()
                .event(v["type"].as_str().unwrap_or("event"))
                .data(v.to_string()),
            Err(RecvError::Lagged(n)) => SseEvent::default()
                .event("lagged")
                .data(json!({"type": "lagged", "missed": n}).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn get_preview(State(s): State<AppState>) -> Result<Response, ApiError> {
    let has_preview = s
        .outputs
        .list()
        .iter()
        .any(|o| o.kind == "preview" && o.state != OutputState::Stopped);
    if !has_preview {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_preview",
            "no preview output is running (add one of type preview)",
        ));
    }
    let rx = s.outputs.preview();
    let parts = stream::unfold((rx, true), |(mut rx, first)| async move {
        // The first part is the newest frame at once; then each new one.
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let jpeg = rx.borrow_and_update().clone();
        let part = match jpeg {
            Some(j) => {
                let mut p = format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    j.len()
                )
                .into_bytes();
                p.extend_from_slice(&j);
                p.extend_from_slice(b"\r\n");
                Bytes::from(p)
            }
            None => Bytes::new(),
        };
        Some((Ok::<_, Infallible>(part), (rx, false)))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "multipart/x-mixed-replace; boundary=frame",
            ),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        Body::from_stream(parts),
    )
        .into_response())
}

async fn get_openapi() -> Json<Value> {
    Json(openapi())
}

async fn get_metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics(&s),
    )
        .into_response()
}

/// Prometheus text exposition.
pub fn metrics(s: &AppState) -> String {
    let status = s.show.status();
    let c = s.show.counters();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    use std::sync::atomic::Ordering::Relaxed;
    counter(
        "cuecast_frames_generated_total",
        "Frames the model rendered.",
        c.rendered.load(Relaxed),
    );
    counter(
        "cuecast_frames_repeated_total",
        "Frame slots filled by repeating the previous frame (a step missed its deadline).",
        c.repeated.load(Relaxed),
    );
    counter(
        "cuecast_steps_failed_total",
        "Model steps that failed.",
        c.failed.load(Relaxed),
    );
    let cfg = lock(&s.config).clone();
    counter(
        "cuecast_config_reloads_applied_total",
        "Config edits applied live.",
        cfg.reloads_applied,
    );
    counter(
        "cuecast_config_reloads_rejected_total",
        "Config edits rejected (the show kept its config).",
        cfg.reloads_rejected,
    );
    let frames_out = lock(&s.live)["frames"].as_u64().unwrap_or(0);
    let _ = writeln!(out, "# HELP cuecast_frames_out_total Frames sent downstream (rendered or repeated).\n# TYPE cuecast_frames_out_total counter\ncuecast_frames_out_total {frames_out}");
    let _ = writeln!(
        out,
        "# HELP cuecast_frame Current frame index.\n# TYPE cuecast_frame gauge\ncuecast_frame {}",
        status.frame
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_detail The detail frames are drawn at (1 full; lower while steps run late).\n# TYPE cuecast_detail gauge\ncuecast_detail {}",
        status.detail
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_state_bytes Bytes the model's state holds.\n# TYPE cuecast_model_state_bytes gauge\ncuecast_model_state_bytes {}",
        status.state_bytes
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_failing_steps Model steps failed in a row now.\n# TYPE cuecast_model_failing_steps gauge\ncuecast_model_failing_steps {}",
        status.failing_steps
    );
    let _ = writeln!(
        out,
        "# HELP cuecast_model_resets_total Times the model was started over (failing steps, state over its limit).\n# TYPE cuecast_model_resets_total counter\ncuecast_model_resets_total {}",
        status.model_resets
    );
    histogram(
        &mut out,
        "cuecast_step_seconds",
        "Time in the model's step per rendered frame.",
        &c.step_ms.snapshot(),
    );
    histogram(
        &mut out,
        "cuecast_cue_latency_seconds",
        "From a cue's arrival to the first frame showing it.",
        &c.cue_latency_ms.snapshot(),
    );
    let outputs = s.outputs.list();
    let _ = writeln!(out, "# HELP cuecast_output_state 1 for the state each output is in.\n# TYPE cuecast_output_state gauge");
    for o in &outputs {
        for st in ["connecting", "live", "retrying", "failed", "stopped"] {
            let now = json!(o.state) == json!(st);
            let _ = writeln!(
                out,
                "cuecast_output_state{{output=\"{}\",state=\"{st}\"}} {}",
                label(&o.name),
                u8::from(now)
            );
        }
    }
    let _ = writeln!(out, "# HELP cuecast_output_bytes_total Bytes handed to each output's sink.\n# TYPE cuecast_output_bytes_total counter");
    for o in &outputs {
        let _ = writeln!(
            out,
            "cuecast_output_bytes_total{{output=\"{}\"}} {}",
            label(&o.name),
            o.bytes
        );
    }
    let encoders = s.outputs.encoders();
    let _ = writeln!(out, "# HELP cuecast_encoder_frames_in_total Frames into each encoder branch.\n# TYPE cuecast_encoder_frames_in_total counter");
    for e in &encoders {
        let _ = writeln!(
            out,
            "cuecast_encoder_frames_in_total{{profile=\"{}\"}} {}",
            label(&e.profile),
            e.frames_in
        );
    }
    let _ = writeln!(out, "# HELP cuecast_encoder_frames_out_total Frames out of each encoder (in - out = dropped while behind, plus a few in flight).\n# TYPE cuecast_encoder_frames_out_total counter");
    for e in &encoders {
        let _ = writeln!(
            out,
            "cuecast_encoder_frames_out_total{{profile=\"{}\"}} {}",
            label(&e.profile),
            e.frames_out
        );
    }
    let _ = writeln!(out, "# HELP cuecast_output_reconnects_total Restarts after a failure.\n# TYPE cuecast_output_reconnects_total counter");
    for o in &outputs {
        let _ = writeln!(
            out,
            "cuecast_output_reconnects_total{{output=\"{}\"}} {}",
            label(&o.name),
            o.reconnects
        );
    }
    out
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, n) in &h.buckets {
        let le = if bound.is_infinite() {
            "+Inf".to_owned()
        } else {
            format!("{}", bound / 1e3)
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum / 1e3, h.count);
}
