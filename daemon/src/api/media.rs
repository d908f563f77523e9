//! The model and its media: what the running model takes (so a control surface offers
//! keys and mouse, or images, only to a model that uses them), and the media folder that
//! `image` cues read from, with uploads into it and removals from it.
//!
//! An upload is the image file itself as the body (`image/png` or `image/jpeg`, at most
//! [`MAX_IMAGE_BYTES`]). Everything cheap is checked first, in this order: the type, the
//! bytes' signature (a PNG sent as `image/jpeg` is refused, and the file's extension is
//! what the bytes are), the name, whether it exists, the folder's quota. Only then is it
//! decoded, one upload at a time in the whole process, a PNG a row at a time (its
//! pixels are checked, not kept), so a file that is not the image it claims to be is
//! refused with the reason and never reaches the model, and no number of large uploads
//! at once can exhaust memory. It is written atomically under a name the cue language
//! allows (no folders), so nothing is written outside the media folder.

#[allow(unused_imports)]
use super::*;

use cuecast_engine::cue::is_image_name;
use cuecast_engine::media::{self, MAX_IMAGE_BYTES};
use sha2::{Digest, Sha256};

/// The most images the media folder lists.
const MAX_LISTED: usize = 1000;

/// Held from an upload's quota check to its write: uploads at once cannot all pass the
/// quota before any of them is written.
static UPLOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(super) async fn get_model(State(s): State<AppState>) -> Json<ModelInfo> {
    Json(s.show.info().clone())
}

/// An image in the media folder.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct MediaFile {
    name: String,
    bytes: u64,
}

/// An image as it was uploaded: its name and size.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct MediaUploaded {
    name: String,
    width: u32,
    height: u32,
    bytes: u64,
}

pub(super) async fn get_media(State(s): State<AppState>) -> Json<Vec<MediaFile>> {
    let dir = s.media.clone();
    let list = blocking(move || {
        let mut items: Vec<MediaFile> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let meta = e.metadata().ok()?;
                (is_image_name(&name) && meta.is_file()).then_some(MediaFile {
                    name,
                    bytes: meta.len(),
                })
            })
            .take(MAX_LISTED)
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        items
    })
    .await;
    Json(list)
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
    let unsupported = |detail: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            detail,
        )
    };
    let said = match kind.as_deref() {
        Some(k @ ("image/png" | "image/jpeg")) => k,
        _ => {
            return Err(unsupported(
                "send the image as Content-Type: image/png or image/jpeg".into(),
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
    // What the file is, is what its bytes say.
    let (ext, is) = if body.starts_with(b"\x89PNG\r\n\x1a\n") {
        ("png", "image/png")
    } else if body.starts_with(&[0xff, 0xd8, 0xff]) {
        ("jpg", "image/jpeg")
    } else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_image",
            "not a PNG or JPEG image",
        ));
    };
    if said != is {
        return Err(unsupported(format!(
            "the body is {is}, sent as {said}: send it as {is}"
        )));
    }
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
            let digest = Sha256::digest(&body);
            format!("upload-{}.{ext}", &format!("{digest:x}")[..12])
        }
    };
    let dir = s.media.clone();
    crate::control::create_folder(&dir)?;
    let path = dir.join(&name);
    let _one = UPLOADING.lock().await;
    let existing = std::fs::symlink_metadata(&path).ok();
    if existing.is_some() && !q.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("{name} is in the media folder already (force=true replaces it)"),
        ));
    }
    let replaced = existing.filter(|m| m.is_file()).map_or(0, |m| m.len());
    let held = {
        let dir = dir.clone();
        blocking(move || folder_bytes(&dir)).await
    };
    let after = held.saturating_sub(replaced) + body.len() as u64;
    if after > s.media_quota {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota",
            format!(
                "the media folder holds {:.1} MB of its {} MB (media_quota_mb); this image needs {:.1} MB more: remove some first",
                held as f64 / 1e6,
                s.media_quota >> 20,
                body.len() as f64 / 1e6
            ),
        ));
    }
    let data = body.to_vec();
    let (width, height, data) = blocking(move || media::check(&data).map(|(w, h)| (w, h, data)))
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_image", e))?;
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
    tracing::info!("media: {name} uploaded ({width}x{height}, {bytes} bytes)");
    Ok((
        StatusCode::CREATED,
        Json(MediaUploaded {
            name,
            width: width as u32,
            height: height as u32,
            bytes: bytes as u64,
        }),
    )
        .into_response())
}

/// Bytes the media folder's images hold (what its quota counts).
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok().filter(std::fs::Metadata::is_file))
        .map(|m| m.len())
        .sum()
}

pub(super) async fn delete_media(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !is_image_name(&name) {
        return Err(ApiError {
            field: Some("name".into()),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_name",
                format!(
                    "expected the name of a .png or .jpg file in the media folder, got {name:?}"
                ),
            )
        });
    }
    let path = s.media.join(&name);
    // A link is removed itself, never what it names.
    let removed = blocking(move || std::fs::remove_file(&path)).await;
    match removed {
        Ok(()) => {
            tracing::info!("media: {name} removed");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no image {name} in the media folder"),
        )),
        Err(e) => {
            tracing::error!("media: {name} could not be removed: {e}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io",
                format!("{name} could not be removed"),
            ))
        }
    }
}
