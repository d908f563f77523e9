//! Handlers for takes, checkpoints and export jobs, and how the engine's and the
//! library's refusals become HTTP answers.

#[allow(unused_imports)]
use super::*;

pub(super) fn library_error(e: LibraryError) -> ApiError {
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

/// The engine's refusals as HTTP answers, by kind: the status and `error` code come from
/// the error's type, never from its text.
pub(super) fn engine_error(e: EngineError) -> ApiError {
    use cuecast_engine::FileErrorKind;
    match &e {
        // Files are named as the user knows them, not by the server's absolute paths.
        EngineError::File(f) => {
            let message = format!("{}: {}", crate::user_path(&f.path), f.message);
            match f.kind {
                FileErrorKind::Exists => ApiError::new(StatusCode::CONFLICT, "exists", message),
                FileErrorKind::NotFound => {
                    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
                }
                FileErrorKind::Invalid => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "file", message)
                }
                FileErrorKind::Io => {
                    tracing::error!("{}: {}", f.path.display(), f.message);
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", message)
                }
            }
        }
        EngineError::TakeInProgress { .. } => {
            ApiError::new(StatusCode::CONFLICT, "take_in_progress", e.to_string())
        }
        EngineError::NoTake => ApiError::new(StatusCode::CONFLICT, "no_take", e.to_string()),
        EngineError::OtherModel { .. } => {
            ApiError::new(StatusCode::CONFLICT, "other_model", e.to_string())
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
pub(super) const MAX_RUNDOWN_ITEMS: usize = 1000;

pub(super) async fn get_takes(State(s): State<AppState>) -> Json<Vec<Listed<TakeInfo>>> {
    let library = s.library.clone();
    let mut takes = blocking(move || library.list_takes()).await;
    // Incomplete is either recording now or cut short by a crash; the show knows which.
    let recording = s.show.status().take;
    for t in &mut takes {
        if let Listed::Read(t) = t {
            t.recording = recording.as_deref() == Some(t.name.as_str());
        }
    }
    Json(takes)
}

pub(super) async fn post_take(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NameBody { name } = typed_body(body)?;
    let manifest = run(&s, commands::StartTake { name }).await?;
    Ok((StatusCode::CREATED, Json(manifest)).into_response())
}

pub(super) async fn post_take_stop(
    State(s): State<AppState>,
) -> Result<Json<TakeSummary>, ApiError> {
    Ok(Json(run(&s, commands::StopTake).await?))
}

pub(super) async fn post_take_export(
    State(s): State<AppState>,
    Path(take): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ExportBody { formats, force } = typed_body(body)?;
    let export = commands::Export {
        take,
        formats,
        force: force.unwrap_or(false),
    };
    Ok((StatusCode::ACCEPTED, Json(run(&s, export).await?)).into_response())
}

pub(super) async fn get_job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    id.parse()
        .ok()
        .and_then(|id| s.library.job(id))
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no job {id:?}")))
}

pub(super) async fn get_checkpoints(
    State(s): State<AppState>,
) -> Json<Vec<Listed<CheckpointInfo>>> {
    let library = s.library.clone();
    Json(blocking(move || library.list_checkpoints()).await)
}

pub(super) async fn post_checkpoint(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let NameBody { name } = typed_body(body)?;
    let saved = run(&s, commands::SaveCheckpoint { name }).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

pub(super) async fn post_restore(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ShowStatus>, ApiError> {
    run(&s, commands::RestoreCheckpoint { name }).await?;
    Ok(Json(status_now(&s)))
}

pub(super) async fn get_outputs(State(s): State<AppState>) -> Json<Vec<OutputStatus>> {
    Json(s.outputs.list())
}
