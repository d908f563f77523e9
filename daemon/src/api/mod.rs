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
use cuecast_engine::generator::ParamSpec;
use cuecast_engine::take::{TakeManifest, TakeSummary};
use cuecast_engine::{AppliedCue, Cue, EngineError, ModelInfo, Scene, ShowHandle, Status};
use cuecast_http::{authorize, json_body, post_cues, ApiError, ControlState, CueIds, BODY_LIMIT};
use futures_util::stream::{self, Stream};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::MAX_NAME_CHARS;
use crate::config::{self, RundownItem, Video};
use crate::control::{self as commands, Command, ControlError};
use crate::events::{Events, LiveStats};
use crate::library::{CheckpointInfo, Job, Library, LibraryError, Listed, TakeInfo};
use crate::outputs::{EncoderStatus, OutputControl, OutputError, OutputState, OutputStatus};
use crate::rundown::{Rundown, RundownView};

/// What `GET /api/v1/status` answers: the engine's [`Status`] and the daemon's own.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Status")]
pub struct ShowStatus {
    /// The show preset's name.
    pub show: String,
    #[serde(flatten)]
    pub engine: Status,
    pub outputs: Vec<OutputStatus>,
    pub encoders: Vec<EncoderStatus>,
    /// Live video and sound from outside (cameras, feeds, files, devices, test patterns).
    pub inputs: Vec<crate::inputs::InputStatus>,
    /// The program audio's sources: gain, mute and level each.
    pub audio: Vec<crate::audio::AudioSourceStatus>,
    pub rundown: RundownView,
    /// Config reloads: applied, rejected, the last error, what waits for a restart.
    pub config: ConfigStatus,
    /// The element's counters of the last second (null before the first).
    pub live: Option<LiveStats>,
    /// Whether changes need the bearer token.
    pub auth: bool,
}

/// The config as the API reports it: where it came from and how the last reload went.
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
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
    /// The show's inputs (none until the show sets them).
    pub inputs: crate::inputs::Inputs,
    /// The program audio (none until the show sets it).
    pub audio: Option<crate::audio::ProgramAudio>,
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
    /// The element's counters of the last second (none before the first).
    pub live: Arc<Mutex<Option<LiveStats>>>,
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
                status: {
                    let status = show.status_handle().clone();
                    cuecast_http::status_fn(move || status.get())
                },
                token: token.clone(),
            },
            show,
            outputs,
            inputs: crate::inputs::Inputs::default(),
            audio: None,
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
            live: Arc::default(),
            library: Library::new(config),
        }
    }
}

/// The HTTP adapter of the control service: a refusal's kind becomes its status code.
impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Cue(e) => ApiError::invalid_cue(e),
            ControlError::Rundown(e) => {
                ApiError::new(StatusCode::CONFLICT, "rundown", e.to_string())
            }
            ControlError::Library(e) => library_error(e),
            ControlError::Engine(e) => engine_error(e),
            ControlError::Output(e) => output_error(e),
            e @ ControlError::Folder { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string())
            }
        }
    }
}

/// Runs a command of the control service off the async workers, for those that may
/// wait on the model thread, GStreamer or the disk (cues and rundown steps never do,
/// and run in place).
async fn run<C: Command>(s: &AppState, command: C) -> Result<C::Done, ApiError> {
    let s = s.clone();
    blocking(move || command.run(&s))
        .await
        .map_err(ApiError::from)
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
    pub body: Option<SchemaOf>,
    /// Success status and its schema (none for no body).
    pub ok: (u16, Option<SchemaOf>),
    pub handler: MethodRouter<AppState>,
}

/// Makes a schema in the document's generator: [`of`] for a Rust type, which lands in
/// `components.schemas` and is referred to; a closure for what is not a type (streams,
/// a cue's fields as a body).
pub type SchemaOf = fn(&mut SchemaGenerator) -> Value;

/// A type's schema, from its definition.
fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn route(
    method: Method,
    path: &'static str,
    summary: &'static str,
    body: Option<SchemaOf>,
    ok: (u16, Option<SchemaOf>),
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

/// One kind of cue's own fields, from the cue schema the parser's constants make, less
/// those a route's path gives (`type` and `name`): the body of a route that sends one.
fn cue_fields(kind: &str) -> Value {
    let cue = cuecast_engine::schema::schema();
    let mut branch = cue["oneOf"]
        .as_array()
        .and_then(|b| {
            b.iter()
                .find(|b| b["properties"]["type"]["const"] == kind)
                .cloned()
        })
        .unwrap_or_else(|| panic!("the cue schema has a {kind} cue"));
    for taken in ["type", "name"] {
        if let Some(p) = branch["properties"].as_object_mut() {
            p.remove(taken);
        }
        if let Some(r) = branch["required"].as_array_mut() {
            r.retain(|f| f != taken);
        }
    }
    branch
}

/// Request bodies as a user would send them, by `METHOD path`: shown in the document
/// and held to the body's schema by the tests.
pub const BODY_EXAMPLES: &[(&str, &str)] = &[
    (
        "POST /api/v1/cues",
        r#"{"type": "prompt", "text": "a misty harbour at dawn", "transition_s": 2}"#,
    ),
    (
        "POST /api/v1/cues",
        r#"[{"type": "scene", "name": "intro"}, {"type": "marker", "label": "open"}]"#,
    ),
    (
        "POST /api/v1/scenes/{name}",
        r#"{"transition": "fade", "transition_s": 1.5}"#,
    ),
    (
        "POST /api/v1/params/{name}",
        r#"{"value": 0.8, "ramp_s": 2}"#,
    ),
    (
        "PUT /api/v1/rundown",
        r#"[{"name": "open", "cues": [{"type": "scene", "name": "intro"}]}, {"name": "fly", "cues": [{"type": "camera_path", "points": [{"t": 0, "pos": [0, 1.6, 4], "yaw": 0, "pitch": 0}, {"t": 3, "pos": [2, 1.6, 0], "yaw": 45, "pitch": -5}]}]}]"#,
    ),
    (
        "POST /api/v1/outputs",
        r#"{"name": "backup", "type": "srt", "mode": "caller", "address": "10.0.0.5:9000", "profile": "youtube-1080p30"}"#,
    ),
    (
        "POST /api/v1/outputs",
        r#"{"name": "archive", "type": "record", "path": "archive.mkv", "profile": {"video": {"width": 1280, "height": 720, "fps": 30, "bitrate_kbps": 6000}}}"#,
    ),
    (
        "POST /api/v1/outputs",
        r#"{"name": "monitor", "type": "preview", "width": 480, "fps": 10}"#,
    ),
    ("POST /api/v1/takes", r#"{"name": "opening"}"#),
    (
        "POST /api/v1/takes/{name}/export",
        r#"{"formats": "gltf,blender", "force": true}"#,
    ),
    (
        "POST /api/v1/checkpoints",
        r#"{"name": "before-the-storm"}"#,
    ),
];

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    let cues: SchemaOf =
        |_| json!({"oneOf": [schema_ref("Cue"), {"type": "array", "items": schema_ref("Cue")}]});
    vec![
        route(Method::GET, "/api/v1/status", "The show now: frame, camera, prompt, params, counters, outputs, rundown, config", None, (200, Some(of::<ShowStatus>)), get(get_status)),
        route(Method::POST, "/api/v1/cues", "Send one cue or a list (all or nothing); ?wait=true answers once applied, with frame and latency", Some(cues), (202, Some(of::<CueIds>)), post(post_cues)),
        route(Method::GET, "/api/v1/cues/log", "Applied cues, oldest first: arrival, frame, PTS, shown frame, latency. ?after=ID pages forward from a cue, ?limit=N (1..1000, default 1000); camera paths over 32 points show their first and last (points_total)", None, (200, Some(of::<Vec<AppliedCue>>)), get(get_cue_log)),
        route(Method::GET, "/api/v1/scenes", "The show's scenes", None, (200, Some(of::<Vec<Scene>>)), get(get_scenes)),
        route(Method::POST, "/api/v1/scenes/{name}", "Go to a scene (a scene cue); body optional: {transition: cut|fade, transition_s}", Some(|_| cue_fields("scene")), (202, Some(of::<CueIds>)), post(post_scene)),
        route(Method::GET, "/api/v1/params", "The model's params: name, min, max, default, value now", None, (200, Some(of::<Vec<ParamNow>>)), get(get_params)),
        route(Method::POST, "/api/v1/params/{name}", "Set a param (a param cue): {value, ramp_s}", Some(|_| cue_fields("param")), (202, Some(of::<CueIds>)), post(post_param)),
        route(Method::GET, "/api/v1/rundown", "The rundown: items, current and next", None, (200, Some(of::<RundownView>)), get(get_rundown)),
        route(Method::PUT, "/api/v1/rundown", "Load a rundown: [{name, cues}]", Some(of::<Vec<RundownItem>>), (200, Some(of::<RundownView>)), put(put_rundown)),
        route(Method::POST, "/api/v1/rundown/go", "Fire the next group of cues", None, (200, Some(of::<RundownView>)), post(post_go)),
        route(Method::POST, "/api/v1/rundown/back", "Fire the group before the current one again", None, (200, Some(of::<RundownView>)), post(post_back)),
        route(Method::GET, "/api/v1/outputs", "Every output: state, target (no secrets), bytes, reconnects, last error", None, (200, Some(of::<Vec<OutputStatus>>)), get(get_outputs)),
        route(Method::POST, "/api/v1/outputs", "Add an output (the same fields as in the config file; secrets only from the environment variables the config allows); it starts at once", Some(config::output_schema), (201, Some(of::<OutputStatus>)), post(post_output)),
        route(Method::POST, "/api/v1/outputs/{name}/start", "Start (or restart) an output", None, (200, Some(of::<OutputStatus>)), post(start_output)),
        route(Method::POST, "/api/v1/outputs/{name}/stop", "Stop an output", None, (200, Some(of::<OutputStatus>)), post(stop_output)),
        route(Method::DELETE, "/api/v1/outputs/{name}", "Remove an output", None, (204, None), delete(remove_output)),
        route(Method::GET, "/api/v1/takes", "Every take: frames, duration, markers, lost frames, or why it cannot be read", None, (200, Some(of::<Vec<Listed<TakeInfo>>>)), get(get_takes)),
        route(Method::POST, "/api/v1/takes", "Start recording a take; body optional: {name}", Some(of::<NameBody>), (201, Some(of::<TakeManifest>)), post(post_take)),
        route(Method::POST, "/api/v1/takes/stop", "Stop the take being recorded; answers once its files are complete", None, (200, Some(of::<TakeSummary>)), post(post_take_stop)),
        route(Method::POST, "/api/v1/takes/{name}/export", "Export a take as a job; body optional: {formats: \"gltf,usd,ae,blender,png,exr,prores\", force}", Some(of::<ExportBody>), (202, Some(of::<Job>)), post(post_take_export)),
        route(Method::GET, "/api/v1/jobs/{id}", "An export job: stage, progress, files, error", None, (200, Some(of::<Job>)), get(get_job)),
        route(Method::GET, "/api/v1/checkpoints", "Every checkpoint: frame, model, prompt, camera", None, (200, Some(of::<Vec<Listed<CheckpointInfo>>>)), get(get_checkpoints)),
        route(Method::POST, "/api/v1/checkpoints", "Save a checkpoint of the show now; body optional: {name}", Some(of::<NameBody>), (201, Some(of::<CheckpointInfo>)), post(post_checkpoint)),
        route(Method::POST, "/api/v1/checkpoints/{name}/restore", "Resume the scene from a checkpoint (same model only)", None, (200, Some(of::<ShowStatus>)), post(post_restore)),
        route(Method::GET, "/api/v1/events", "Server-sent events: each data line is an Event (cue_applied, stats, output_state, output_removed, config, rundown, take, checkpoint, export, model, warning, error)", None, (200, Some(|_| json!({"type": "string", "format": "text/event-stream"}))), get(get_events)),
        route(Method::GET, "/api/v1/preview.mjpeg", "The preview output as multipart MJPEG (for <img>)", None, (200, Some(|_| json!({"type": "string", "format": "multipart/x-mixed-replace"}))), get(get_preview)),
        route(Method::POST, "/api/v1/auth", "Check a token: 204 when it is accepted, 401 when not (status.auth says whether one is needed)", None, (204, None), post(post_auth)),
        route(Method::GET, "/api/v1/model", "The running model: native size and rate, how it chunks, the inputs it takes (axes, keys, mouse, camera pose, image), its params and prompt", None, (200, Some(of::<ModelInfo>)), get(get_model)),
        route(Method::GET, "/api/v1/media", "The images in the media folder, which image cues name", None, (200, Some(of::<Vec<MediaFile>>)), get(get_media)),
        route(Method::POST, "/api/v1/media", "Upload an image into the media folder: the file itself as the body (image/png or image/jpeg, as its bytes say, at most 32 MB), decoded before it is kept, within the folder's quota (media_quota_mb); ?name=NAME (else upload-<digest>), &force=true replaces one of that name", Some(|_| json!({"type": "string", "format": "binary", "x-content-types": cuecast_http::access::FILE_ROUTES[0].1})), (201, Some(of::<MediaUploaded>)), post(post_media).layer(DefaultBodyLimit::max(cuecast_engine::media::MAX_IMAGE_BYTES as usize))),
        route(Method::DELETE, "/api/v1/media/{name}", "Remove an image from the media folder", None, (204, None), delete(delete_media)),
        route(Method::GET, "/api/v1/openapi.json", "This document", None, (200, Some(|_| json!({"type": "object"}))), get(get_openapi)),
        route(Method::GET, "/metrics", "Prometheus metrics", None, (200, Some(|_| json!({"type": "string", "format": metrics::CONTENT_TYPE}))), get(get_metrics)),
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

/// The OpenAPI 3.1 document: the route table, and the schemas of the types the routes
/// take and answer, derived from their definitions.
pub fn openapi() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for r in routes() {
        let ok = match r.ok.1 {
            None => json!({"description": "done"}),
            Some(schema) => {
                let schema = schema(&mut g);
                // Streams and text name their own media type in `format`.
                let media = schema["format"]
                    .as_str()
                    .filter(|f| f.contains('/'))
                    .unwrap_or("application/json")
                    .to_owned();
                json!({"description": "ok", "content": {media: {"schema": schema}}})
            }
        };
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "responses": {
                r.ok.0.to_string(): ok,
                "4XX": {"description": "the request was wrong; nothing changed", "content": {"application/json": {"schema": of::<ApiError>(&mut g)}}},
            },
        });
        if let Some(body) = r.body {
            let body = body(&mut g);
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
                    let at = format!("{} {}", r.method, r.path);
                    let examples: Map<String, Value> = BODY_EXAMPLES
                        .iter()
                        .filter(|(route, _)| *route == at)
                        .enumerate()
                        .map(|(i, (_, text))| {
                            let value: Value = serde_json::from_str(text)
                                .unwrap_or_else(|e| panic!("the example for {at}: {e}"));
                            (format!("example{}", i + 1), json!({"value": value}))
                        })
                        .collect();
                    content.insert(
                        "application/json".into(),
                        json!({"schema": body, "examples": examples}),
                    );
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
    // The events stream's data lines: not a route's body, but named in the document.
    let event = crate::events::schema(&mut g);
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    schemas.insert("Event".into(), event);
    // The cue language's schema is made from the parser's own constants (and checked
    // against it by property tests): the parser is its definition, not a Rust type.
    schemas.insert("Cue".into(), cuecast_engine::schema::schema());
    let mut schemas = Value::Object(schemas);
    plain_descriptions(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "cuecast", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Steer a live generative show with cues; manage its outputs."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    })
}

/// Descriptions come from the types' doc comments: the document shows them as plain
/// text, without rustdoc's links (`[`Status`]` becomes `` `Status` ``) or line wraps.
fn plain_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(d)) = m.get_mut("description") {
                *d = d.replace("[`", "`").replace("`]", "`").replace('\n', " ");
            }
            m.values_mut().for_each(plain_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
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
