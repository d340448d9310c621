//! `/api/data/{table}/download`, `/api/data/{table}/parts/{part}/download`,
//! `/api/data/{table}/check-access` (spec §3.4): published parquet for readers.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::tables::{resolve_readable, table_data};
use crate::state::AppState;
use agnes_core::{QueryMode, TableSpec};
use agnes_engine::table_data::TableData;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download)).routes(routes!(download_part)).routes(routes!(check_access))
}

fn not_published(spec: &TableSpec) -> ApiError {
    let detail = match spec.query_mode {
        QueryMode::Remote => format!(
            "Table '{}' is remote: its data stays in the source (query it remotely or take a snapshot)",
            spec.id
        ),
        _ => format!("Table '{}' has no published data yet (it is published on the next sync)", spec.id),
    };
    ApiError::new(StatusCode::NOT_FOUND, detail)
}

/// The whole parquet of a single-file table. Ranges, `If-None-Match` and `HEAD` supported.
#[utoipa::path(get, path = "/api/data/{table}/download", tag = "data", params(("table" = String, Path, description = "registry id or name")),
    responses((status = 200, description = "application/octet-stream"), (status = 206), (status = 304), (status = 403), (status = 404), (status = 416)))]
async fn download(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Path(table): Path<String>,
) -> Result<Response, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let data = table_data(&state, &spec).ok_or_else(|| not_published(&spec))?;
    if data.has_parts() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Table '{}' is published in parts: download its parts (listed in the manifest)", spec.id),
        ));
    }
    let hash = match state.store.sync_state().get(&spec.id).await? {
        Some(s) if !s.hash.is_empty() => s.hash,
        _ => return Err(not_published(&spec)),
    };
    let path = data.location();
    Audit::of(&state, &caller, &client)
        .record("data.download", Some(&spec.id), range_params(&headers), "success")
        .await;
    Ok(super::ranges::serve(path, &hash, &format!("{}.parquet", spec.name), &method, &headers).await)
}

/// One part of a table published in parts: a period of a partitioned table, or the base or
/// delta of an incrementally synced one.
#[utoipa::path(get, path = "/api/data/{table}/parts/{part}/download", tag = "data",
    params(("table" = String, Path), ("part" = String, Path, description = "partition key, e.g. 2024_03, or base / delta")),
    responses((status = 200), (status = 206), (status = 304), (status = 403), (status = 404), (status = 416)))]
async fn download_part(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
    Path((table, part)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("Part '{part}' of table '{}' not found", spec.id));
    let data = table_data(&state, &spec).filter(TableData::has_parts).ok_or_else(missing)?;
    let stored =
        state.store.sync_state().parts(&spec.id).await?.into_iter().find(|p| p.part == part).ok_or_else(missing)?;
    let dir = data.location();
    Audit::of(&state, &caller, &client)
        .record("data.download", Some(&spec.id), Some(json!({"part": part})), "success")
        .await;
    // The part name comes from the stored state (digits and underscores), never the URL.
    Ok(super::ranges::serve(
        &dir.join(format!("{}.parquet", stored.part)),
        &stored.hash,
        &format!("{}_{}.parquet", spec.name, stored.part),
        &method,
        &headers,
    )
    .await)
}

fn range_params(headers: &HeaderMap) -> Option<serde_json::Value> {
    headers.get(axum::http::header::RANGE).and_then(|v| v.to_str().ok()).map(|r| json!({"range": r}))
}

/// 204 when the caller may read the table, 403 when not, 404 when there is no such table
/// (for reverse proxies that serve the files themselves).
#[utoipa::path(get, path = "/api/data/{table}/check-access", tag = "data", params(("table" = String, Path)), responses((status = 204), (status = 403), (status = 404)))]
async fn check_access(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(table): Path<String>,
) -> Response {
    let outcome = resolve_readable(&state, &caller, &table).await;
    let result = match &outcome {
        Ok(_) => "success".to_string(),
        Err(e) => format!("error.{}", e.status.as_u16()),
    };
    Audit::of(&state, &caller, &client).record_soon("data.access_check", Some(&table), None, &result);
    match outcome {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
