//! Handlers for outputs (list, add, start, stop, remove, with the checks an output
//! added over the API must pass), the event stream and the preview.

#[allow(unused_imports)]
use super::*;

pub(super) fn output_error(e: OutputError) -> ApiError {
    let status = match e {
        OutputError::Unknown(_) => StatusCode::NOT_FOUND,
        OutputError::Exists(_) => StatusCode::CONFLICT,
        OutputError::Gone => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, "output", e.to_string())
}

/// Runs a command off the async workers: it may wait on GStreamer, the model thread or
/// the disk.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking API command panicked")
}

pub(super) async fn post_output(
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
    let added = run(&s, commands::AddOutput(output)).await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// What an output added over the API may not do that one in the config may: record
/// outside the recordings folder, or read a secret the config does not offer it.
pub(super) fn check_api_output(value: &Value, secrets: &[String]) -> Result<(), ApiError> {
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

pub(super) async fn start_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<OutputStatus>, ApiError> {
    Ok(Json(run(&s, commands::StartOutput(name)).await?))
}

pub(super) async fn stop_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<OutputStatus>, ApiError> {
    Ok(Json(run(&s, commands::StopOutput(name)).await?))
}

pub(super) async fn remove_output(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    run(&s, commands::RemoveOutput(name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn get_events(
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

pub(super) async fn get_preview(State(s): State<AppState>) -> Result<Response, ApiError> {
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

pub(super) async fn get_openapi() -> Json<Value> {
    Json(openapi())
}

pub(super) async fn get_metrics(State(s): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics(&s)).into_response()
}
