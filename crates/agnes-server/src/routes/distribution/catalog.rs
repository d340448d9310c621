//! `/api/v2/catalog`, `/api/v2/schema/{table}`, `/api/v2/sample/{table}`, the legacy
//! `/api/catalog/tables` (spec §3.5, §3.11). Every answer is
//! filtered for the caller on each request; nothing is cached across callers.

use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::tables::{may_read, published_data, readable_ids, resolve_readable};
use crate::state::AppState;
use agnes_core::api::{
    Catalog, CatalogTable, ColumnInfo, LegacyTable, LegacyTables, MetricRef, ProfileRefreshed, Sample, TableProfile,
    TableSchema,
};
use agnes_core::{QueryMode, SourceType, TableSpec};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalog))
        .routes(routes!(schema))
        .routes(routes!(sample))
        .routes(routes!(legacy_tables))
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
    Ok(state.store.snapshot().await?.registry.clone().into_iter().filter(|t| may_read(&readable, &t.id)).collect())
}

/// `?table=`: one table's entry (by id or name) instead of all.
#[derive(serde::Deserialize)]
struct CatalogFilter {
    table: Option<String>,
    q: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Every table the caller may use, with how to fetch it and how big it is.
#[utoipa::path(get, path = "/api/v2/catalog", tag = "catalog", params(
        ("table" = Option<String>, Query, description = "only this table (id or name)"),
        ("q" = Option<String>, Query, description = "only tables whose id, name, description or folder contains this (case-insensitive)"),
        ("offset" = Option<usize>, Query, description = "tables to skip (a page of a long catalog)"),
        ("limit" = Option<usize>, Query, description = "tables to answer at most")),
    responses((status = 200, body = Catalog)))]
async fn catalog(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Query(filter): Query<CatalogFilter>,
) -> Result<Json<Catalog>, ApiError> {
    // Registry, states and cached BigQuery metadata as of the current access generation,
    // decoded once for all requests until something changes.
    let snapshot = state.store.snapshot().await?;
    let states: crate::sync::States = snapshot.states.iter().map(|s| (s.table_id.clone(), s.clone())).collect();
    let readable = readable_ids(&state, &caller).await?;
    let wanted = |t: &TableSpec| filter.table.as_ref().is_none_or(|w| *w == t.id || *w == t.name);
    let search = filter.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let found = |t: &TableSpec| {
        search.as_ref().is_none_or(|s| {
            [Some(&t.id), Some(&t.name), t.description.as_ref(), t.folder.as_ref()]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(s.as_str()))
        })
    };
    let matching: Vec<&TableSpec> =
        snapshot.registry.iter().filter(|t| wanted(t) && may_read(&readable, &t.id) && found(t)).collect();
    let total = matching.len();
    // Only the page is described: its freshness, sizes and fetch hints.
    let visible: Vec<&TableSpec> =
        matching.into_iter().skip(filter.offset.unwrap_or(0)).take(filter.limit.unwrap_or(usize::MAX)).collect();
    let remote: std::collections::HashMap<&str, &agnes_store::bq_metadata::CachedMetadata> =
        snapshot.bq_metadata.iter().map(|c| (c.table_id.as_str(), c)).collect();
    let interval = state.bigquery.as_ref().map(|b| b.source().metadata_refresh()).unwrap_or_default();
    let freshness: std::collections::HashMap<String, crate::sync::Freshness> = state
        .sync
        .freshness_of(visible.iter().copied(), &states, &state.config.scheduler)
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
            // A remote BigQuery table is described by the metadata cache, never by a call.
            let cached = remote.get(t.id.as_str()).copied().filter(|_| crate::remote_metadata::is_remote_bq(t));
            let meta = cached.map(|c| &c.metadata);
            let (rows, size_bytes) = match meta {
                Some(m) => (m.rows, m.size_bytes),
                None => (published.map(|s| s.rows), published.map(|s| s.file_size_bytes)),
            };
            CatalogTable {
                sql_flavor: sql_flavor(t).into(),
                where_examples: meta.map(where_examples).unwrap_or_default(),
                fetch_via,
                rough_size_hint: size_bytes.map(|b| size_hint(b).into()),
                rows,
                size_bytes,
                clustered_by: meta.map(|m| m.clustered_by.clone()).unwrap_or_default(),
                entity_type: meta.and_then(|m| m.entity_type.clone()),
                metadata_freshness: if crate::remote_metadata::is_remote_bq(t) {
                    crate::remote_metadata::freshness(cached, interval).into()
                } else {
                    "not_applicable".into()
                },
                last_sync: s.and_then(|s| s.last_sync).map(|d| d.to_rfc3339()),
                schedule: fresh.and_then(|f| f.schedule.clone()),
                next_sync_at: fresh.and_then(|f| f.next_sync_at).map(|d| d.to_rfc3339()),
                overdue: fresh.is_some_and(|f| f.overdue),
                id: t.id.clone(),
                name: t.name.clone(),
                description: t.description.clone(),
                source_type: t.source_type,
                query_mode: t.query_mode,
                partition_by: meta.and_then(|m| m.partition_by.clone()).or_else(|| t.partition_by.clone()),
                folder: t.folder.clone(),
            }
        })
        .collect();
    Audit::of(&state, &caller, &client).record_soon(
        "catalog.list",
        None,
        Some(json!({"tables": tables.len()})),
        "success",
    );
    Ok(Json(Catalog { tables, server_time: chrono::Utc::now().to_rfc3339(), total }))
}

/// `--where` filters that fit a remote BigQuery table: the last week of its partitioning
/// column (which prunes what BigQuery scans), and a value of its first clustering column.
fn where_examples(m: &agnes_store::bq_metadata::BqMetadata) -> Vec<String> {
    let type_of = |c: &str| m.columns.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
    let mut examples = Vec::new();
    if let Some(p) = &m.partition_by {
        match type_of(p) {
            Some("DATE") => examples.push(format!("{p} >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)")),
            Some(_) | None if p == "_PARTITIONTIME" || type_of(p).is_some_and(|t| t.starts_with("TIMESTAMP")) => {
                examples.push(format!("{p} >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)"))
            }
            _ => {}
        }
    }
    if let Some(c) = m.clustered_by.first() {
        match type_of(c) {
            Some("VARCHAR") => examples.push(format!("{c} = 'value'")),
            Some(t) if t == "BIGINT" || t.starts_with("DECIMAL") => examples.push(format!("{c} = 42")),
            _ => {}
        }
    }
    examples
}

/// How BigQuery's SQL writes what `--where` filters need, for agents used to DuckDB.
fn bigquery_hints() -> BTreeMap<String, String> {
    [
        ("date_literal", "DATE '2025-01-31'"),
        ("timestamp_literal", "TIMESTAMP '2025-01-31 00:00:00+00'"),
        (
            "interval_subtract",
            "DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY) / TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)",
        ),
        ("regex", "REGEXP_CONTAINS(col, r'^abc')"),
        ("cast", "CAST(col AS INT64), SAFE_CAST(col AS DATE) (NULL instead of an error)"),
        ("identifier_quote", "`column name`"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
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
    if crate::remote_metadata::is_remote_bq(&spec) {
        let cached = state.store.bq_metadata().get(&spec.id).await?.filter(|c| c.refreshed_at.is_some());
        let m = cached.map(|c| c.metadata).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "Table '{}' has no BigQuery metadata yet: POST /api/v2/metadata-cache/refresh?table={}",
                    spec.id, spec.id
                ),
            )
        })?;
        Audit::of(&state, &caller, &client).record_soon("catalog.schema", Some(&spec.id), None, "success");
        return Ok(Json(TableSchema {
            sql_flavor: sql_flavor(&spec).into(),
            table_id: spec.id,
            source_type: spec.source_type,
            columns: m
                .columns
                .into_iter()
                .map(|(name, column_type)| ColumnInfo { name, column_type, nullable: true, description: String::new() })
                .collect(),
            partition_by: m.partition_by,
            clustered_by: m.clustered_by,
            where_dialect_hints: bigquery_hints(),
        }));
    }
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
    Audit::of(&state, &caller, &client).record_soon("catalog.schema", Some(&spec.id), None, "success");
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
    if let (true, Some(remote)) = (crate::remote_metadata::is_remote_bq(&spec), state.bigquery.clone()) {
        // Through the remote query's dry run and cap: a LIMIT does not make BigQuery scan less.
        let project = remote.source().project().map_err(ApiError::source_unavailable)?;
        let path = agnes_connectors::bigquery::remote::table_path(&spec, &project)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
        let plan = crate::routes::sql::BqPlan {
            remote,
            sql: format!("SELECT * FROM `{path}` LIMIT {n}"),
            paths: vec![path],
            views: Vec::new(),
        };
        let answer = crate::routes::sql::run_bigquery(&state, &caller, &plan, n).await?;
        let rows = answer
            .rows
            .into_iter()
            .map(|r| answer.columns.iter().cloned().zip(r).collect::<serde_json::Map<_, _>>())
            .collect();
        Audit::of(&state, &caller, &client).record_soon(
            "catalog.sample",
            Some(&spec.id),
            Some(json!({"n": n})),
            "success",
        );
        return Ok(Json(Sample { table_id: spec.id, rows, source: "bigquery".into() }));
    }
    let data = published_data(&state, &spec).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' has no published data yet", spec.id))
    })?;
    let rows = tokio::task::spawn_blocking(move || agnes_engine::inspect::sample_table(&data, n))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Audit::of(&state, &caller, &client).record_soon("catalog.sample", Some(&spec.id), Some(json!({"n": n})), "success");
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
