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

pub(super) fn create_folder(dir: &std::path::Path) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io",
            format!("cannot create {}: {e}", crate::user_path(dir)),
        )
    })
}

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
    let name = Library::new_name("take", name.as_deref()).map_err(library_error)?;
    let dir = s.library.take_dir(&name).map_err(library_error)?;
    create_folder(&s.library.takes)?;
    let (show, d) = (s.show.clone(), dir.clone());
    let manifest = blocking(move || show.start_take(&d, &name))
        .await
        .map_err(engine_error)?;
    tracing::info!("take {:?} recording → {}", manifest.name, dir.display());
    s.events.send(Event::Take {
        state: TakeState::Recording,
        take: manifest.name.clone(),
        start_frame: Some(manifest.start_frame),
        frames: None,
        error: None,
    });
    Ok((StatusCode::CREATED, Json(manifest)).into_response())
}

pub(super) async fn post_take_stop(
    State(s): State<AppState>,
) -> Result<Json<TakeSummary>, ApiError> {
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
    s.events.send(Event::Take {
        state: TakeState::Stopped,
        take: summary.name.clone(),
        start_frame: None,
        frames: Some(summary.frames),
        error: None,
    });
    Ok(Json(summary))
}

pub(super) async fn post_take_export(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let ExportBody { formats, force } = typed_body(body)?;
    let force = force.unwrap_or(false);
    let (library, events) = (s.library.clone(), s.events.clone());
    let job = blocking(move || library.start_export(&name, formats.as_deref(), force, &events))
        .await
        .map_err(library_error)?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
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
    let name = Library::new_name("checkpoint", name.as_deref()).map_err(library_error)?;
    let dir = s.library.checkpoint_dir(&name).map_err(library_error)?;
    create_folder(&s.library.checkpoints)?;
    let (show, d) = (s.show.clone(), dir.clone());
    let m = blocking(move || show.save_checkpoint(&d))
        .await
        .map_err(engine_error)?;
    tracing::info!("checkpoint {name:?} saved → {}", dir.display());
    let saved = CheckpointInfo::new(name.clone(), &m);
    s.events.send(Event::Checkpoint {
        saved: Some(name.clone()),
        frame: m.frame,
        restored: None,
    });
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

pub(super) async fn post_restore(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ShowStatus>, ApiError> {
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
    s.events.send(Event::Checkpoint {
        saved: None,
        frame: None,
        restored: Some(name.clone()),
    });
    Ok(Json(status_now(&s)))
}

pub(super) async fn get_outputs(State(s): State<AppState>) -> Json<Vec<OutputStatus>> {
    Json(s.outputs.list())
}
