//! The cue API over HTTP, the part every cuecast front door shares.
//!
//! `cuecastsrc control-address=HOST:PORT` serves exactly this router from the element,
//! for gst-launch users with no daemon; the daemon nests the same router in its full API,
//! so a cue means the same thing and fails the same way wherever it is sent.
//!
//! - `POST /api/v1/cues` — one cue or a list. Accepted cues answer `202` with their ids;
//!   with `?wait=true` the answer comes once every cue has been applied, with the frame it
//!   took effect on and its cue-to-frame latency (`timeout_s`, default 5, caps the wait).
//! - `GET /api/v1/status` — the show right now: frame, camera, prompt, params, counters.
//!
//! Errors are JSON `{"error", "detail", "field"}`; nothing in a rejected request is
//! applied. When a token is set, mutating calls need `Authorization: Bearer <token>`.
//! Every request passes [`access`]'s checks first (host, origin, content type), so that
//! no web page can drive the show.

pub mod access;
pub mod server;

pub use access::Access;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cuecast_cue::schedule::{AppliedCue, CueInbox};
use cuecast_cue::{Cue, CueError, CueId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 256 * 1024;
/// The longest `?wait=true` may wait.
pub const MAX_WAIT_S: f64 = 60.0;

/// What `GET /api/v1/status` answers: the show's status now, as JSON. A function rather
/// than the engine's own handle, so that this crate, and whatever serves it, needs the
/// cue language and not libtorch.
pub type StatusFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// A [`StatusFn`] that serializes what `status` returns.
pub fn status_fn<T: Serialize>(status: impl Fn() -> T + Send + Sync + 'static) -> StatusFn {
    Arc::new(move || serde_json::to_value(status()).unwrap_or(Value::Null))
}

/// What the handlers need.
#[derive(Clone)]
pub struct ControlState {
    pub inbox: CueInbox,
    pub status: StatusFn,
    /// Required for mutating calls when set.
    pub token: Option<Arc<str>>,
}

/// A JSON error: `error` is a stable code, `detail` says what was wrong, `field` names
/// the input at fault when there is one.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ApiError {
    #[serde(skip)]
    #[schemars(skip)]
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
            field: None,
        }
    }

    pub fn invalid_cue(e: CueError) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "invalid_cue",
            detail: e.message,
            field: e.field,
        }
    }

    fn body(e: BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_body", e.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// The cue API's routes, for serving alone or nesting in a bigger API.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/api/v1/cues", post(post_cues))
        .route("/api/v1/status", get(get_status))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(Access::default()),
            access::guard,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Checks the bearer token for a mutating call.
pub fn authorize(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = token else { return Ok(()) };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(g) if token_eq(g.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is wrong",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API needs Authorization: Bearer <token> for changes",
        )),
    }
}

/// Compares the SHA-256 digests of both, every byte of them: the time taken depends on
/// neither the token's length nor where a guess first differs from it.
fn token_eq(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The shortest bearer token accepted for an API reachable beyond loopback.
pub const MIN_TOKEN_CHARS: usize = 16;

/// `POST /api/v1/cues`'s query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CueQuery {
    #[serde(default)]
    wait: bool,
    timeout_s: Option<f64>,
}

/// `POST /api/v1/cues`: for routers that nest the cue API in a bigger one.
pub async fn post_cues(
    State(state): State<ControlState>,
    headers: HeaderMap,
    query: Result<Query<CueQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(state.token.as_deref(), &headers)?;
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let value = json_body(body)?;
    let cues = Cue::list_from_value(&value).map_err(ApiError::invalid_cue)?;
    if !query.wait {
        let ids = state
            .inbox
            .submit(cues, None)
            .map_err(ApiError::invalid_cue)?;
        return Ok((StatusCode::ACCEPTED, Json(CueIds::accepted(&ids))).into_response());
    }
    let timeout = query.timeout_s.unwrap_or(5.0);
    if !(0.0..=MAX_WAIT_S).contains(&timeout) {
        return Err(ApiError {
            field: Some("timeout_s".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("timeout_s must be in [0, {MAX_WAIT_S}]"),
            )
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AppliedCue>();
    let watcher = Arc::new(move |a: &AppliedCue| {
        let _ = tx.send(a.clone());
    });
    let ids = state
        .inbox
        .submit(cues, Some(watcher))
        .map_err(ApiError::invalid_cue)?;
    let mut applied: HashMap<u64, AppliedCue> = HashMap::new();
    let collect = async {
        while applied.len() < ids.len() {
            match rx.recv().await {
                Some(a) => {
                    applied.insert(a.id, a);
                }
                None => break,
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs_f64(timeout), collect)
        .await
        .is_ok();
    if !finished || applied.len() < ids.len() {
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "not_applied",
            format!("cues {ids:?} were accepted but not all applied within {timeout} s"),
        ));
    }
    let cues = ids
        .iter()
        .map(|id| {
            let a = &applied[id];
            CueAck {
                id: a.id,
                landed: Some(Landed {
                    kind: a.cue.type_name(),
                    frame: a.frame,
                    shown_frame: a.shown_frame,
                    pts_ns: a.pts_ns,
                    latency_ms: a.latency_ms,
                }),
            }
        })
        .collect();
    Ok((StatusCode::OK, Json(CueIds { cues })).into_response())
}

/// What a call that sends cues answers: each cue's id, in the order sent, and once they
/// were applied (`?wait=true`) where each landed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CueIds {
    pub cues: Vec<CueAck>,
}

impl CueIds {
    /// Cues accepted and not yet applied.
    pub fn accepted(ids: &[CueId]) -> Self {
        CueIds {
            cues: ids.iter().map(|&id| CueAck { id, landed: None }).collect(),
        }
    }
}

/// One cue of a [`CueIds`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct CueAck {
    pub id: CueId,
    #[serde(flatten)]
    pub landed: Option<Landed>,
}

/// Where an applied cue landed: the frame it took effect on, the frame that first
/// showed it, and how long after it arrived.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Landed {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub frame: u64,
    pub shown_frame: u64,
    pub pts_ns: u64,
    pub latency_ms: f64,
}

/// A request body as JSON, or the error that says why it is not.
pub fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(ApiError::body)?;
    serde_json::from_slice::<Strict>(&body)
        .map(|s| s.0)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            )
        })
}

/// JSON whose objects never repeat a key: `{"forward": 0, "forward": 1}` is an error,
/// not whichever one a parser happens to keep.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

async fn get_status(State(state): State<ControlState>) -> Json<Value> {
    Json((state.status)())
}

/// True when every address `addr` resolves to is loopback.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The cue API served on its own thread and runtime. Dropping it stops the server.
pub struct ControlServer {
    server: server::HttpServer,
}

impl ControlServer {
    /// Binds `addr` (`host:port`) now, so a taken port is an error here, and serves
    /// `state` until dropped. Beyond loopback a token is required.
    pub fn start(addr: &str, state: ControlState) -> Result<ControlServer, String> {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr:?} is not a host:port address ({e})"))?
            .next()
            .ok_or_else(|| format!("{addr:?} resolves to no address"))?;
        if !is_loopback(&resolved) {
            match &state.token {
                None => {
                    return Err(format!(
                        "{addr} listens beyond loopback: set a token for the API"
                    ))
                }
                Some(t) if t.chars().count() < MIN_TOKEN_CHARS => {
                    return Err(format!(
                        "{addr} listens beyond loopback: the token must be at least {MIN_TOKEN_CHARS} characters"
                    ))
                }
                Some(_) => {}
            }
        }
        let listener = std::net::TcpListener::bind(resolved)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        // Requests still waiting for cues get a second to finish when it stops.
        let server = server::HttpServer::start(
            listener,
            router(state),
            "cuecast-http",
            server::Limits::default(),
            Duration::from_secs(1),
        )
        .map_err(|e| format!("{addr}: {e}"))?;
        Ok(ControlServer { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use cuecast_cue::model::Fps;
    use cuecast_cue::schedule::Scheduler;
    use cuecast_cue::world::ShowContext;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// The engine's side of the API as these tests play it: the inbox cues go to, and a
    /// model thread that applies what is due on each frame it is told to render (the
    /// engine's own scheduler), with a status that says the frame.
    struct Show {
        inbox: CueInbox,
        scheduler: Mutex<Scheduler>,
        frame: Arc<AtomicU64>,
    }

    impl Show {
        fn status(&self) -> u64 {
            self.frame.load(Ordering::SeqCst)
        }

        fn render(&self, frame: u64) {
            let due = self
                .scheduler
                .lock()
                .unwrap()
                .due(&self.inbox, frame, Fps::new(30, 1));
            self.frame.store(frame, Ordering::SeqCst);
            for cue in due {
                let (applied, watcher) = cue.shown(frame, std::time::Instant::now());
                if let Some(w) = watcher {
                    w(&applied);
                }
            }
        }
    }

    fn engine() -> Show {
        Show {
            inbox: CueInbox::new(ShowContext::default()),
            scheduler: Mutex::default(),
            frame: Arc::default(),
        }
    }

    fn state(show: &Show, token: Option<&str>) -> ControlState {
        let frame = show.frame.clone();
        ControlState {
            inbox: show.inbox.clone(),
            status: Arc::new(
                move || serde_json::json!({"backend": "pattern", "frame": frame.load(Ordering::SeqCst)}),
            ),
            token: token.map(Into::into),
        }
    }

    fn app(show: &Show, token: Option<&str>) -> Router {
        router(state(show, token))
    }

    async fn call(app: Router, uri: &str, body: &str, auth: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::post(uri).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn accepts_one_or_many_cues() {
        let e = engine();
        let (s, v) = call(
            app(&e, None),
            "/api/v1/cues",
            r#"{"type":"action","forward":1}"#,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(v["cues"][0]["id"], 1);
        let (s, v) = call(
            app(&e, None),
            "/api/v1/cues",
            r#"[{"type":"freeze"},{"type":"resume"}]"#,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(v["cues"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn bad_cues_name_the_field_and_apply_nothing() {
        let e = engine();
        for (body, status, error, field) in [
            (r#"{"type":"explode"}"#, 422, "invalid_cue", Some("type")),
            (r#"{"type":"prompt"}"#, 422, "invalid_cue", Some("text")),
            (
                r#"{"type":"action","yaw":9}"#,
                422,
                "invalid_cue",
                Some("yaw"),
            ),
            (
                r#"[{"type":"freeze"},{"type":"scene","name":"nope"}]"#,
                422,
                "invalid_cue",
                Some("[1].name"),
            ),
            (
                r#"{"type":"param","name":"fog","value":1}"#,
                422,
                "invalid_cue",
                Some("name"),
            ),
            (r#"{"type": "#, 400, "malformed_json", None),
        ] {
            let (s, v) = call(app(&e, None), "/api/v1/cues", body, None).await;
            assert_eq!(s.as_u16(), status, "{body}: {v}");
            assert_eq!(v["error"], error, "{body}: {v}");
            assert_eq!(v["field"].as_str(), field, "{body}: {v}");
        }
        // The valid freeze in the rejected batch was not accepted either: the next id is 1.
        let (_, v) = call(app(&e, None), "/api/v1/cues", r#"{"type":"freeze"}"#, None).await;
        assert_eq!(v["cues"][0]["id"], 1);
    }

    #[tokio::test]
    async fn oversized_body_is_refused() {
        let e = engine();
        let big = format!(r#"{{"type":"prompt","text":"{}"}}"#, "x".repeat(BODY_LIMIT));
        let (s, v) = call(app(&e, None), "/api/v1/cues", &big, None).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(v["error"], "body_too_large");
    }

    #[tokio::test]
    async fn token_is_required_when_set() {
        let e = engine();
        let body = r#"{"type":"freeze"}"#;
        let (s, v) = call(app(&e, Some("s3cret")), "/api/v1/cues", body, None).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
        let (s, _) = call(
            app(&e, Some("s3cret")),
            "/api/v1/cues",
            body,
            Some("Bearer wrong"),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call(
            app(&e, Some("s3cret")),
            "/api/v1/cues",
            body,
            Some("Bearer s3cret"),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn wait_returns_the_frame_and_latency() {
        let e = engine();
        let a = app(&e, None);
        // Frames keep coming until the answer does, however slow the machine: the test
        // does not depend on when the request lands.
        let render = async {
            for n in 0.. {
                tokio::time::sleep(Duration::from_millis(5)).await;
                e.render(n);
            }
        };
        let request = call(
            a,
            "/api/v1/cues?wait=true",
            r#"{"type":"seed","value":4}"#,
            None,
        );
        let resp = tokio::select! {
            resp = request => resp,
            () = render => unreachable!("frames are rendered until the answer comes"),
        };
        let (s, v) = resp;
        assert_eq!(s, StatusCode::OK, "{v}");
        let c = &v["cues"][0];
        assert_eq!(c["type"], "seed");
        // The frame it took effect on has been rendered, and (nothing skipped) showed it.
        let frame = c["frame"].as_u64().unwrap();
        assert!(frame <= e.status(), "{v}");
        assert_eq!(c["shown_frame"].as_u64(), Some(frame), "{v}");
        assert!(c["latency_ms"].as_f64().unwrap() >= 0.0);
    }

    #[tokio::test]
    async fn wait_times_out_when_nothing_renders() {
        let e = engine();
        let (s, v) = call(
            app(&e, None),
            "/api/v1/cues?wait=true&timeout_s=0.2",
            r#"{"type":"freeze"}"#,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(v["error"], "not_applied");
    }

    #[test]
    fn server_refuses_public_addresses_without_a_token() {
        let e = engine();
        let state = state(&e, None);
        let err = ControlServer::start("0.0.0.0:0", state).err().unwrap();
        assert!(err.contains("beyond loopback"), "{err}");
    }

    #[test]
    fn server_serves_and_stops() {
        let e = engine();
        let state = state(&e, None);
        let server = ControlServer::start("127.0.0.1:0", state).unwrap();
        let addr = server.local_addr();
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /api/v1/status HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200") && resp.contains("\"backend\":\"pattern\""),
            "{resp}"
        );
        drop(server);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}
