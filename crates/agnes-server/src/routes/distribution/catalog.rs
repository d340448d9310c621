//! `/api/v2/catalog`, `/api/v2/schema/{table}`, `/api/v2/sample/{table}`, the legacy
//! `/api/catalog/tables`, and `/api/welcome` (spec §3.5, §3.11). Every answer is
//! filtered for the caller on each request; nothing is cached across callers.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::tables::{may_read, published_data, readable_ids, resolve_readable};
use crate::state::AppState;
use agnes_core::api::{
    Catalog, CatalogTable, ColumnInfo, LegacyTable, LegacyTables, MetricRef, ProfileRefreshed, Sample, TableProfile,
    TableSchema, Welcome,
};
use agnes_core::{QueryMode, SourceType, TableSpec};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalog))
        .routes(routes!(schema))
        .routes(routes!(sample))
        .routes(routes!(legacy_tables))
        .routes(routes!(welcome))
        .routes(routes!(profile))
        .routes(routes!(refresh_profile))
}

/// A table's profile (spec §7): column statistics, alerts and sample rows.
#[utoipa::path(get, path = "/api/catalog/profile/{table}", tag = "catalog", params(("table" = String, Path)),
    responses((status = 200, body = TableProfile), (status = 403), (status = 404)))]
async fn profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(table): Path<String>,
) -> Result<Json<TableProfile>, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let mut profile = state.store.profiles().get(&spec.id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No profile for table '{}' yet: it is profiled after its next sync", spec.id),
        )
    })?;
    // Read at request time: metrics change without the table being profiled again.
    let metrics = state.store.metric_definitions().using_table(&spec.id, &spec.name).await?;
    profile.used_by_metrics = metrics
        .into_iter()
        .map(|m| MetricRef { id: m.definition.id, name: m.definition.name, display_name: m.definition.display_name })
        .collect();
    Ok(Json(profile))
}

/// Profile a table again now (admin).
#[utoipa::path(post, path = "/api/catalog/profile/{table}/refresh", tag = "catalog", params(("table" = String, Path)),
    responses((status = 200, body = ProfileRefreshed), (status = 403), (status = 404)))]
async fn refresh_profile(
    State(state): State<AppState>,
    crate::auth::authenticate::Admin(caller): crate::auth::authenticate::Admin,
    client: ClientInfo,
    Path(table): Path<String>,
) -> Result<Json<ProfileRefreshed>, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let profiled = state.sync.profile_table(&spec).await.map_err(ApiError::internal)?.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' has no published data yet", spec.id))
    })?;
    Audit::of(&state, &caller, &client).record("catalog.profile_refresh", Some(&spec.id), None, "success").await;
    Ok(Json(ProfileRefreshed { status: "ok".into(), table: spec.id, columns: profiled.column_count }))
}

fn sql_flavor(t: &TableSpec) -> &'static str {
    if t.source_type == Some(SourceType::Bigquery) && t.query_mode == QueryMode::Remote {
        "bigquery"
    } else {
        "duckdb"
    }
}

fn size_hint(bytes: i64) -> &'static str {
    const MIB: i64 = 1 << 20;
    match bytes {
        b if b <= 100 * MIB => "small",
        b if b <= 1024 * MIB => "medium",
        b if b <= 10 * 1024 * MIB => "large",
        _ => "very_large",
    }
}

async fn visible(state: &AppState, caller: &Caller) -> Result<Vec<TableSpec>, ApiError> {
    let readable = readable_ids(state, caller).await?;
    Ok(state.store.registry().list().await?.into_iter().filter(|t| may_read(&readable, &t.id)).collect())
}

/// Every table the caller may use, with how to fetch it and how big it is.
#[utoipa::path(get, path = "/api/v2/catalog", tag = "catalog", responses((status = 200, body = Catalog)))]
async fn catalog(State(state): State<AppState>, caller: Caller, client: ClientInfo) -> Result<Json<Catalog>, ApiError> {
    let states: crate::sync::States =
        state.store.sync_state().list().await?.into_iter().map(|s| (s.table_id.clone(), s)).collect();
    let visible = visible(&state, &caller).await?;
    let freshness: std::collections::HashMap<String, crate::sync::Freshness> = state
        .sync
        .freshness_of(visible.clone(), &states, &state.config.scheduler)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|f| (f.id.clone(), f))
        .collect();
    let tables: Vec<CatalogTable> = visible
        .into_iter()
        .map(|t| {
            let s = states.get(&t.id);
            let published = s.is_some_and(|s| !s.hash.is_empty());
            let fresh = freshness.get(&t.id);
            let fetch_via = match t.query_mode {
                QueryMode::Remote => format!("agnes snapshot create {} --select … --where … --limit …", t.id),
                _ if published => "already local".to_string(),
                _ => "not yet published: available after the next sync".to_string(),
            };
            let published = s.filter(|_| published);
            CatalogTable {
                sql_flavor: sql_flavor(&t).into(),
                where_examples: Vec::new(),
                fetch_via,
                rough_size_hint: published.map(|s| size_hint(s.file_size_bytes).into()),
                rows: published.map(|s| s.rows),
                size_bytes: published.map(|s| s.file_size_bytes),
                clustered_by: Vec::new(),
                entity_type: None,
                metadata_freshness: "not_applicable".into(),
                last_sync: s.and_then(|s| s.last_sync).map(|d| d.to_rfc3339()),
                schedule: fresh.and_then(|f| f.schedule.clone()),
                next_sync_at: fresh.and_then(|f| f.next_sync_at).map(|d| d.to_rfc3339()),
                overdue: fresh.is_some_and(|f| f.overdue),
                id: t.id,
                name: t.name,
                description: t.description,
                source_type: t.source_type,
                query_mode: t.query_mode,
                partition_by: t.partition_by,
                folder: t.folder,
            }
        })
        .collect();
    Audit::of(&state, &caller, &client)
        .record("catalog.list", None, Some(json!({"tables": tables.len()})), "success")
        .await;
    Ok(Json(Catalog { tables, server_time: chrono::Utc::now().to_rfc3339() }))
}

/// Columns of a table, with types and nullability.
#[utoipa::path(get, path = "/api/v2/schema/{table}", tag = "catalog", params(("table" = String, Path)), responses((status = 200, body = TableSchema), (status = 403), (status = 404)))]
async fn schema(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(table): Path<String>,
) -> Result<Json<TableSchema>, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let data = published_data(&state, &spec).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' has no published data yet", spec.id))
    })?;
    let columns = tokio::task::spawn_blocking(move || agnes_engine::inspect::describe_table(&data))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let columns = columns
        .into_iter()
        .map(|c| ColumnInfo {
            name: c.name,
            column_type: c.column_type,
            nullable: c.nullable,
            description: String::new(),
        })
        .collect();
    Audit::of(&state, &caller, &client).record("catalog.schema", Some(&spec.id), None, "success").await;
    Ok(Json(TableSchema {
        sql_flavor: sql_flavor(&spec).into(),
        table_id: spec.id,
        source_type: spec.source_type,
        columns,
        partition_by: spec.partition_by,
        clustered_by: Vec::new(),
        where_dialect_hints: Default::default(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SampleQuery {
    /// Rows to return, 1 to 100 (default 5).
    n: Option<i64>,
}

/// A few rows of a table.
#[utoipa::path(get, path = "/api/v2/sample/{table}", tag = "catalog", params(("table" = String, Path), SampleQuery), responses((status = 200, body = Sample), (status = 403), (status = 404)))]
async fn sample(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(table): Path<String>,
    Query(q): Query<SampleQuery>,
) -> Result<Json<Sample>, ApiError> {
    let spec = resolve_readable(&state, &caller, &table).await?;
    let n = q.n.unwrap_or(5).clamp(1, 100) as usize;
    let data = published_data(&state, &spec).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' has no published data yet", spec.id))
    })?;
    let rows = tokio::task::spawn_blocking(move || agnes_engine::inspect::sample_table(&data, n))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Audit::of(&state, &caller, &client)
        .record("catalog.sample", Some(&spec.id), Some(json!({"n": n})), "success")
        .await;
    Ok(Json(Sample { table_id: spec.id, rows, source: "parquet".into() }))
}

/// The original's table list, kept for clients that probe a token with it.
#[utoipa::path(get, path = "/api/catalog/tables", tag = "catalog", responses((status = 200, body = LegacyTables)))]
async fn legacy_tables(State(state): State<AppState>, caller: Caller) -> Result<Json<LegacyTables>, ApiError> {
    let tables: Vec<LegacyTable> = visible(&state, &caller)
        .await?
        .into_iter()
        .map(|t| LegacyTable {
            id: t.id,
            name: t.name,
            description: t.description,
            source_type: t.source_type,
            sync_strategy: t.sync_strategy,
            query_mode: t.query_mode,
        })
        .collect();
    Ok(Json(LegacyTables { count: tables.len(), tables }))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct WelcomeQuery {
    server_url: Option<String>,
}

/// The CLAUDE.md an analyst workspace starts with: how an AI agent should work here.
#[utoipa::path(get, path = "/api/welcome", tag = "catalog", params(WelcomeQuery), responses((status = 200, body = Welcome)))]
async fn welcome(State(state): State<AppState>, _caller: Caller, Query(q): Query<WelcomeQuery>) -> Json<Welcome> {
    let server =
        q.server_url.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| format!("http://{}", state.config.bind));
    Json(Welcome { content: include_str!("welcome.md").replace("{server_url}", server.trim()) })
}
