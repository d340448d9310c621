//! `/api/upload/sessions` and `/api/upload/local-md` (spec §3.11): what an analyst's
//! workspace sends back — session transcripts and personal notes — stored per user.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{LocalMd, Uploaded};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const MAX_SESSION_BYTES: u64 = 50 * 1024 * 1024;
pub const MAX_LOCAL_MD_BYTES: usize = 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_session))
        .routes(routes!(upload_local_md))
        // Room for the largest transcript plus the multipart envelope; the handler counts
        // the file's own bytes.
        .route_layer(DefaultBodyLimit::max(MAX_SESSION_BYTES as usize + 64 * 1024))
}

fn valid_filename(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("File too large (max {} MiB)", MAX_SESSION_BYTES >> 20))
}

/// A new private (0600) file, and its private (0700) directory: uploads are the analyst's.
async fn create_private(dir: &Path, name: &str) -> std::io::Result<tokio::fs::File> {
    tokio::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).await?;
    tokio::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dir.join(name)).await
}

/// Write `bytes` to `dir/name` through a hidden temporary.
async fn replace(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = format!(".{name}.upload");
    let mut file = create_private(dir, &tmp).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    tokio::fs::rename(dir.join(&tmp), dir.join(name)).await
}

/// Upload a session transcript (multipart field `file`, at most 50 MiB).
#[utoipa::path(post, path = "/api/upload/sessions", tag = "upload", request_body(content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 200, body = Uploaded), (status = 400), (status = 413)))]
async fn upload_session(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    mut form: Multipart,
) -> Result<Json<Uploaded>, ApiError> {
    let dir = state.layout.user_sessions_dir(&caller.user.id);
    while let Some(mut field) = form.next_field().await.map_err(|e| ApiError::new(e.status(), e.body_text()))? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().unwrap_or_default().to_string();
        if !valid_filename(&filename) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "Invalid filename: use 1-200 of A-Z a-z 0-9 . _ - (not starting with a dot)",
            ));
        }
        let target = dir.join(&filename);
        let tmp = dir.join(format!(".{filename}.upload"));
        let mut file = create_private(&dir, &format!(".{filename}.upload")).await.map_err(ApiError::internal)?;
        let mut size: u64 = 0;
        let outcome: Result<(), ApiError> = async {
            while let Some(chunk) = field.chunk().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(e.status(), e.body_text())
                }
            })? {
                size += chunk.len() as u64;
                if size > MAX_SESSION_BYTES {
                    return Err(too_large());
                }
                file.write_all(&chunk).await.map_err(ApiError::internal)?;
            }
            file.flush().await.map_err(ApiError::internal)
        }
        .await;
        drop(file);
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, &target).await.map_err(ApiError::internal)?;
        Audit::of(&state, &caller, &client)
            .record("session.upload", Some(&filename), Some(json!({"size": size})), "success")
            .await;
        return Ok(Json(Uploaded { status: "uploaded".into(), filename: Some(filename), size }));
    }
    Err(ApiError::new(StatusCode::BAD_REQUEST, "Missing multipart field 'file'"))
}

/// Store the analyst's `CLAUDE.local.md` (at most 1 MiB).
#[utoipa::path(post, path = "/api/upload/local-md", tag = "upload", request_body = LocalMd, responses((status = 200, body = Uploaded), (status = 413)))]
async fn upload_local_md(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(body): ApiJson<LocalMd>,
) -> Result<Json<Uploaded>, ApiError> {
    if body.content.len() > MAX_LOCAL_MD_BYTES {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "CLAUDE.local.md too large (max 1 MiB)"));
    }
    let dir = state.layout.user_local_md_dir();
    replace(&dir, &format!("{}.md", caller.user.id), body.content.as_bytes()).await.map_err(ApiError::internal)?;
    Audit::of(&state, &caller, &client)
        .record("session.upload_local_md", None, Some(json!({"size": body.content.len()})), "success")
        .await;
    Ok(Json(Uploaded { status: "uploaded".into(), filename: None, size: body.content.len() as u64 }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn filenames() {
        for ok in ["a.jsonl", "session-1_2.jsonl", &"a".repeat(200)] {
            assert!(super::valid_filename(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "a b", &"a".repeat(201), "ü.txt"] {
            assert!(!super::valid_filename(bad), "{bad}");
        }
    }
}
