//! Handlers for the show itself: status, cues and their log, scenes, params, the
//! rundown; and the request-body helpers every handler shares.

#[allow(unused_imports)]
use super::*;

// --- handlers ----------------------------------------------------------------------

pub(super) async fn get_status(State(s): State<AppState>) -> Json<ShowStatus> {
    Json(status_now(&s))
}

/// The show now, as `GET /api/v1/status` answers it.
pub(super) fn status_now(s: &AppState) -> ShowStatus {
    let config = s.config.lock().clone();
    ShowStatus {
        show: config.show.clone(),
        engine: s.show.status(),
        outputs: s.outputs.list(),
        encoders: s.outputs.encoders(),
        inputs: s.inputs.list(),
        audio: s.audio.as_ref().map(|a| a.status()).unwrap_or_default(),
        rundown: s.rundown.lock().view(),
        config,
        live: s.live.lock().clone(),
        auth: s.token.is_some(),
    }
}

/// The token check itself is the middleware's; reaching here means it passed.
pub(super) async fn post_auth() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `GET /api/v1/cues/log`'s query: a page of the log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    /// Cues applied after the cue with this id (else the most recent).
    after: Option<u64>,
    /// At most this many (1..=1000, default 1000).
    limit: Option<usize>,
}

/// Camera paths longer than this are shown as their first and last points.
pub(super) const LOG_PATH_POINTS: usize = 32;

pub(super) async fn get_cue_log(
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

pub(super) async fn get_scenes(State(s): State<AppState>) -> Json<Vec<Scene>> {
    Json(s.scenes.lock().clone())
}

pub(super) fn submit(s: &AppState, cues: Vec<Cue>) -> Result<Response, ApiError> {
    // Cues and rundown steps never wait (a queue, a lock): run in place, as OSC does.
    let ids = commands::Cues(cues).run(s)?;
    Ok((StatusCode::ACCEPTED, Json(CueIds::accepted(&ids))).into_response())
}

/// An optional JSON object body (absent or empty means `{}`).
pub(super) fn object_body(
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Value>, ApiError> {
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

/// An optional JSON object body read as `T` (absent or empty is `{}`, so every field of
/// `T` must be optional). A field of the wrong type, or one `T` does not have, is
/// refused by name.
pub(super) fn typed_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let m = object_body(body)?;
    serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown field is reported at the object itself: its name is in the message.
        let field = match path.as_str() {
            "." => message.split('`').nth(1).map(str::to_owned),
            p => Some(p.to_owned()),
        };
        ApiError {
            field,
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_body", message)
        }
    })
}

/// `{name}`: what a new take or checkpoint is called (else `<kind>-<UTC time>`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NameBody {
    pub name: Option<String>,
}

/// `{formats, force}`: what an export makes, and whether it may replace a bundle.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportBody {
    /// Comma-separated: gltf, usd, ae, blender, png, exr, prores (else all).
    pub formats: Option<String>,
    /// Replace an export bundle of the same take.
    pub force: Option<bool>,
}

pub(super) async fn post_scene(
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

/// A model's param and its value now, as `GET /api/v1/params` lists it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Param")]
pub(super) struct ParamNow {
    #[serde(flatten)]
    spec: ParamSpec,
    value: f64,
}

pub(super) async fn get_params(State(s): State<AppState>) -> Json<Vec<ParamNow>> {
    let now = s.show.status().params;
    let list = s
        .show
        .info()
        .params
        .iter()
        .cloned()
        .map(|p| ParamNow {
            value: now.get(&p.name).copied().unwrap_or(p.default),
            spec: p,
        })
        .collect();
    Json(list)
}

pub(super) async fn post_param(
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

pub(super) async fn get_rundown(State(s): State<AppState>) -> Json<RundownView> {
    Json(s.rundown.lock().view())
}

pub(super) async fn put_rundown(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RundownView>, ApiError> {
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
        rundown.push(RundownItem {
            name: name.to_owned(),
            cues,
        });
    }
    Ok(Json(commands::LoadRundown(rundown).run(&s)?))
}

pub(super) async fn post_go(State(s): State<AppState>) -> Result<Json<RundownView>, ApiError> {
    Ok(Json(commands::Step::Go.run(&s)?))
}

pub(super) async fn post_back(State(s): State<AppState>) -> Result<Json<RundownView>, ApiError> {
    Ok(Json(commands::Step::Back.run(&s)?))
}
