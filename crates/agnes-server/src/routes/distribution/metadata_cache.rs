//! The metadata cache of remote BigQuery tables (spec §3.5): its state for any user, and
//! a refresh now for admins, of one table or all.

use crate::auth::access::Caller;
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::remote_metadata::{freshness, is_remote_bq, refresh};
use crate::routes::audit::Audit;
use crate::routes::tables::{may_read, readable_ids};
use crate::state::AppState;
use agnes_core::api::{MetadataCacheEntry, MetadataCacheStatus, MetadataRefreshed};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(refresh_table)).routes(routes!(refresh_all))
}

/// The cache entry of every remote BigQuery table the caller may read.
#[utoipa::path(get, path = "/api/v2/metadata-cache/status", tag = "catalog",
    responses((status = 200, body = MetadataCacheStatus)))]
async fn status(State(state): State<AppState>, caller: Caller) -> Result<Json<MetadataCacheStatus>, ApiError> {
    let interval = state.bigquery.as_ref().map(|b| b.source().metadata_refresh()).unwrap_or_default();
    let readable = readable_ids(&state, &caller).await?;
    let cached: std::collections::HashMap<String, agnes_store::bq_metadata::CachedMetadata> =
        state.store.bq_metadata().list().await?.into_iter().map(|c| (c.table_id.clone(), c)).collect();
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    let tables = state
        .store
        .registry()
        .list()
        .await?
        .into_iter()
        .filter(|t| is_remote_bq(t) && may_read(&readable, &t.id))
        .map(|t| {
            let c = cached.get(&t.id);
            let m = c.map(|c| c.metadata.clone()).unwrap_or_default();
            MetadataCacheEntry {
                metadata_freshness: freshness(c, interval).into(),
                table_id: t.id,
                path: m.path,
                entity_type: m.entity_type,
                rows: m.rows,
                size_bytes: m.size_bytes,
                partition_by: m.partition_by,
                clustered_by: m.clustered_by,
                columns: m.columns.len(),
                refreshed_at: time(c.and_then(|c| c.refreshed_at)),
                error_at: time(c.and_then(|c| c.error_at)),
                error: c.and_then(|c| c.error.clone()),
            }
        })
        .collect();
    Ok(Json(MetadataCacheStatus { refresh_interval_seconds: interval.as_secs(), tables }))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct RefreshQuery {
    /// The remote BigQuery table to refresh.
    table: String,
}

fn refreshed(done: Vec<String>, failed: Vec<(String, String)>) -> MetadataRefreshed {
    MetadataRefreshed {
        refreshed: done,
        errors: failed
            .into_iter()
            .map(|(table, error)| BTreeMap::from([("table".to_string(), table), ("error".to_string(), error)]))
            .collect(),
    }
}

/// Ask BigQuery about one remote table now.
#[utoipa::path(post, path = "/api/v2/metadata-cache/refresh", tag = "catalog", params(RefreshQuery),
    responses((status = 200, body = MetadataRefreshed), (status = 400), (status = 404)))]
async fn refresh_table(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Query(q): Query<RefreshQuery>,
) -> Result<Json<MetadataRefreshed>, ApiError> {
    let spec = state
        .store
        .registry()
        .resolve(&q.table)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' not found", q.table)))?;
    if !is_remote_bq(&spec) || state.bigquery.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Table '{}' is not a remote BigQuery table: only those have cached metadata", spec.id),
        ));
    }
    let (done, failed) = refresh(&state.store, state.bigquery.as_ref(), |t, _| t.id == spec.id).await?;
    Audit::of(&state, &caller, &client)
        .record("metadata_cache.refresh", Some(&spec.id), None, if failed.is_empty() { "success" } else { "error" })
        .await;
    Ok(Json(refreshed(done, failed)))
}

/// Ask BigQuery about every remote table now (one refresh runs at a time).
#[utoipa::path(post, path = "/api/admin/run-bq-metadata-refresh", tag = "catalog",
    responses((status = 200, body = MetadataRefreshed)))]
async fn refresh_all(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
) -> Result<Json<MetadataRefreshed>, ApiError> {
    let (done, failed) = refresh(&state.store, state.bigquery.as_ref(), |_, _| true).await?;
    Audit::of(&state, &caller, &client)
        .record(
            "metadata_cache.refresh",
            None,
            Some(json!({"refreshed": done.len(), "failed": failed.len()})),
            if failed.is_empty() { "success" } else { "error" },
        )
        .await;
    Ok(Json(refreshed(done, failed)))
}
