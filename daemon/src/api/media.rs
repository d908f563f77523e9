//! The model and its media: what the running model takes (so a control surface offers
//! keys and mouse, or images, only to a model that uses them), and the media folder that
//! `image` cues read from, with uploads into it.
//!
//! An upload is the image file itself as the body (`image/png` or `image/jpeg`, at most
//! [`MAX_IMAGE_BYTES`]), decoded before it is kept, so a file that is not the image it
//! claims to be is refused with the reason and never reaches the model. It is written
//! atomically under a name the cue language allows (no folders), so nothing is written
//! outside the media folder.

#[allow(unused_imports)]
use super::*;

use cuecast_engine::cue::is_image_name;
use cuecast_engine::media::{self, MAX_IMAGE_BYTES};
use sha2::{Digest, Sha256};

/// The most images the media folder lists.
const MAX_LISTED: usize = 1000;

pub(super) async fn get_model(State(s): State<AppState>) -> Json<Value> {
    Json(json!(s.show.info()))
}

pub(super) async fn get_media(State(s): State<AppState>) -> Json<Value> {
    let dir = s.media.clone();
    let list = blocking(move || {
        let mut items: Vec<Value> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let meta = e.metadata().ok()?;
                (is_image_name(&name) && meta.is_file())
                    .then(|| json!({"name": name, "bytes": meta.len()}))
            })
            .take(MAX_LISTED)
            .collect();
        items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        items
    })
    .await;
    Json(json!(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UploadQuery {
    name: Option<String>,
    #[serde(default)]
    force: bool,
}

pub(super) async fn post_media(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let kind = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let ext = match kind.as_deref() {
        Some("image/png") => "png",
        Some("image/jpeg") => "jpg",
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the image as Content-Type: image/png or image/jpeg",
            ))
        }
    };
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an image may be at most {} MB ({e})", MAX_IMAGE_BYTES >> 20),
        )
    })?;
    let data = body.to_vec();
    let image = blocking(move || media::decode(&data).map(|i| (i, data)))
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_image", e))?;
    let (image, data) = image;
    let name = match q.name {
        Some(n) => {
            let matches = n.rsplit_once('.').is_some_and(|(_, e)| {
                e.eq_ignore_ascii_case(ext) || (ext == "jpg" && e.eq_ignore_ascii_case("jpeg"))
            });
            if !is_image_name(&n) || !matches {
                return Err(ApiError {
                    field: Some("name".into()),
                    ..ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_name",
                        format!("expected a .{ext} file name of letters, digits, '.', '_' and '-' (no folders), got {n:?}"),
                    )
                });
            }
            n
        }
        None => {
            let digest = Sha256::digest(&data);
            format!("upload-{}.{ext}", &format!("{digest:x}")[..12])
        }
    };
    let dir = s.media.clone();
    create_folder(&dir)?;
    let path = dir.join(&name);
    if path.exists() && !q.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("{name} is in the media folder already (force=true replaces it)"),
        ));
    }
    let bytes = data.len();
    blocking(move || cuecast_engine::files::write(&path, &data))
        .await
        .map_err(|e| {
            tracing::error!("media upload {name}: {e}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io",
                format!("{name} could not be written"),
            )
        })?;
    tracing::info!(
        "media: {name} uploaded ({}x{}, {bytes} bytes)",
        image.width,
        image.height
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "width": image.width, "height": image.height, "bytes": bytes})),
    )
        .into_response())
}
