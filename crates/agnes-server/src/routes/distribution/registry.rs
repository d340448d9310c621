//! `/api/admin/register-table`, `/api/admin/registry…`, `/api/admin/discover-tables`
//! (spec §3.8): the table registry, for admins.

use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{
    DiscoverAndRegister, Discovered, DiscoveryRegistered, DiscoverySkipped, Precheck, PrecheckTable, Registered,
    RegistryList, RegistryRow, SourceColumn, SyncHistory, SyncRun, TableRegistration, TableUpdated,
};
use agnes_core::{registry_id_for_name, QueryMode, SourceType, SyncStrategy, TableSpec};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(precheck))
        .routes(routes!(list))
        .routes(routes!(show, update, unregister))
        .routes(routes!(history))
        .routes(routes!(discover))
        .routes(routes!(discover_and_register))
}

/// Fields a request may set; everything else in a body is refused.
const FIELDS: &[&str] = &[
    "name",
    "folder",
    "sync_strategy",
    "primary_key",
    "description",
    "source_type",
    "bucket",
    "source_table",
    "source_query",
    "query_mode",
    "sync_schedule",
    "profile_after_sync",
    "incremental_window_days",
    "max_history_days",
    "incremental_column",
    "where_filters",
    "partition_by",
    "partition_granularity",
    "initial_load_chunk_days",
    "bq_fqn",
    "source_options",
    "connection",
];

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg)
}

/// Lay `body` over `base`: a key present sets the field (`null` clears it, or restores the
/// default of a field that cannot be empty); an absent key keeps it.
fn overlay(base: &TableSpec, body: &Map<String, Value>) -> Result<TableSpec, ApiError> {
    let mut v = serde_json::to_value(base).map_err(ApiError::internal)?;
    for (key, value) in body {
        if !FIELDS.contains(&key.as_str()) {
            return Err(unprocessable(format!("unknown field '{key}'")));
        }
        let value = match (key.as_str(), value) {
            ("sync_strategy", Value::Null) => json!("full_refresh"),
            ("query_mode", Value::Null) => json!("local"),
            ("profile_after_sync", Value::Null) => json!(true),
            ("primary_key", Value::Null) => json!([]),
            // The original accepted a comma-separated string too.
            ("primary_key", Value::String(s)) => {
                json!(s.split(',').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>())
            }
            ("name", Value::String(s)) => json!(s.trim()),
            _ => value.clone(),
        };
        v[key] = value;
    }
    serde_json::from_value(v).map_err(|e| unprocessable(format!("invalid field value: {e}")))
}

/// The rules of the registry plus what this server can sync.
fn check(state: &AppState, spec: &TableSpec) -> Result<(), ApiError> {
    spec.validate().map_err(|errors| unprocessable(errors.join("; ")))?;
    if spec.source_type == Some(SourceType::Bigquery) {
        match (spec.query_mode, &state.bigquery) {
            (QueryMode::Remote, Some(remote)) => {
                let project = remote.source().project().map_err(ApiError::source_unavailable)?;
                agnes_connectors::bigquery::remote::table_path(spec, &project).map_err(unprocessable)?;
                return Ok(());
            }
            (QueryMode::Local, _) => {
                return Err(unprocessable(
                    "a BigQuery table is remote (queried in place: bq_fqn, or bucket and source_table) or \
                     materialized (its source_query runs as a job)",
                ))
            }
            _ => {}
        }
    }
    if let Some(problem) = state.sync.connection_problem(spec) {
        return Err(unprocessable(problem));
    }
    if let Some(problem) = state.sync.options_problem(spec) {
        let code = match problem.field {
            "where_filters" => "invalid_where_filters",
            "source_query" => "invalid_source_query",
            _ => "invalid_source_options",
        };
        return Err(ApiError::coded(StatusCode::BAD_REQUEST, code, problem.message));
    }
    let configured = state.sync.source_types().iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    match spec.source_type {
        Some(t) if state.sync.source_types().contains(&t) => match state.sync.unsupported(spec) {
            Some(why) => Err(unprocessable(why)),
            None => Ok(()),
        },
        Some(other) => Err(unprocessable(format!(
            "source_type '{other}' is not configured on this server (configured: {configured})"
        ))),
        None => Err(unprocessable(format!("source_type is required (configured: {configured})"))),
    }
}

/// A remote BigQuery table's metadata, read from BigQuery at registration: a path that
/// does not exist, or names an entity that cannot be queried in place, is refused (422)
/// with BigQuery's reason. `None` for other rows.
async fn remote_metadata(
    state: &AppState,
    spec: &TableSpec,
) -> Result<Option<agnes_store::bq_metadata::BqMetadata>, ApiError> {
    match &state.bigquery {
        Some(remote) if crate::remote_metadata::is_remote_bq(spec) => crate::remote_metadata::describe(remote, spec)
            .await
            .map(Some)
            .map_err(|e| unprocessable(format!("BigQuery cannot serve this table: {e}"))),
        _ => Ok(None),
    }
}

fn new_spec(body: &Map<String, Value>, admin: &str) -> Result<TableSpec, ApiError> {
    let name = body.get("name").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(unprocessable("name is required"));
    }
    let mut base = TableSpec::new(name, SourceType::Files, QueryMode::Local, chrono::Utc::now());
    base.registered_by = Some(admin.to_string());
    let mut spec = overlay(&base, body)?;
    spec.id = registry_id_for_name(&spec.name);
    Ok(spec)
}

/// Register a table (201). The data is published on the next sync.
#[utoipa::path(post, path = "/api/admin/register-table", tag = "registry", request_body = TableRegistration,
    responses((status = 201, body = Registered), (status = 409), (status = 422)))]
async fn register(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let spec = new_spec(&body, &caller.user.email)?;
    check(&state, &spec)?;
    let metadata = remote_metadata(&state, &spec).await?;
    state.store.registry().insert(&spec).await.map_err(|e| match e {
        agnes_store::StoreError::Conflict(_) => {
            ApiError::new(StatusCode::CONFLICT, format!("Table '{}' already exists", spec.id))
        }
        other => other.into(),
    })?;
    if let Some(m) = metadata {
        state.store.bq_metadata().put(&spec.id, &m).await?;
    }
    Audit::of(&state, &caller, &client)
        .record("register_table", Some(&spec.id), Some(Value::Object(body)), "success")
        .await;
    Ok((StatusCode::CREATED, Json(Registered { id: spec.id, name: spec.name, status: "registered".into() })))
}

/// Validate a registration without writing it, and preview the source's columns.
#[utoipa::path(post, path = "/api/admin/register-table/precheck", tag = "registry", request_body = TableRegistration,
    responses((status = 200, body = Precheck), (status = 422)))]
async fn precheck(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<Precheck>, ApiError> {
    let spec = new_spec(&body, &caller.user.email)?;
    check(&state, &spec)?;
    let columns: Vec<SourceColumn> = match remote_metadata(&state, &spec).await? {
        Some(m) => m
            .columns
            .into_iter()
            .map(|(name, column_type)| SourceColumn { name, column_type, nullable: true })
            .collect(),
        None => state
            .sync
            .preview(&spec)
            .await
            .map_err(|e| unprocessable(format!("the source cannot be read: {e}")))?
            .into_iter()
            .map(|c| SourceColumn { name: c.name, column_type: c.column_type, nullable: c.nullable })
            .collect(),
    };
    Ok(Json(Precheck {
        ok: true,
        table: PrecheckTable {
            note: format!("{} columns found; data is published on the next sync", columns.len()),
            name: spec.name,
            source_type: spec.source_type,
            bucket: spec.bucket,
            source_table: spec.source_table,
            rows: None,
            size_bytes: None,
            columns,
        },
    }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct RegistryQuery {
    /// Only rows whose id, name, description, source table or folder contains this
    /// (case-insensitive).
    q: Option<String>,
    /// Rows to skip, then rows to answer (all when absent): a page of a long registry.
    offset: Option<usize>,
    limit: Option<usize>,
}

/// What a registry row is found by in a search.
fn searchable(t: &TableSpec) -> String {
    [Some(&t.id), Some(&t.name), t.description.as_ref(), t.source_table.as_ref(), t.folder.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| s.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Registry rows with their last sync error: all, or a search's page of them.
#[utoipa::path(get, path = "/api/admin/registry", tag = "registry", params(RegistryQuery), responses((status = 200, body = RegistryList)))]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<RegistryQuery>,
) -> Result<Json<RegistryList>, ApiError> {
    // The kept snapshot: a thousand rows are decoded once per change, not per request.
    let snapshot = state.store.snapshot().await?;
    let states: std::collections::HashMap<&str, &agnes_store::sync_state::SyncState> =
        snapshot.states.iter().map(|s| (s.table_id.as_str(), s)).collect();
    let search = q.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let matching: Vec<&TableSpec> =
        snapshot.registry.iter().filter(|t| search.as_ref().is_none_or(|s| searchable(t).contains(s))).collect();
    let total = matching.len();
    let tables: Vec<RegistryRow> = matching
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|spec| RegistryRow {
            last_sync_error: states.get(spec.id.as_str()).filter(|s| s.status == "error").and_then(|s| s.error.clone()),
            spec: spec.clone(),
        })
        .collect();
    Ok(Json(RegistryList { count: tables.len(), total, tables }))
}

fn table_not_found(table_id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Table '{table_id}' not found"))
}

/// One registry row (by id or name) with its last sync error.
#[utoipa::path(get, path = "/api/admin/registry/{table_id}", tag = "registry", params(("table_id" = String, Path)),
    responses((status = 200, body = RegistryRow), (status = 404)))]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(table_id): Path<String>,
) -> Result<Json<RegistryRow>, ApiError> {
    let snapshot = state.store.snapshot().await?;
    let spec = snapshot
        .registry
        .iter()
        .find(|t| t.id == table_id)
        .or_else(|| snapshot.registry.iter().find(|t| t.name == table_id))
        .ok_or_else(|| table_not_found(&table_id))?;
    let last_sync_error =
        snapshot.states.iter().find(|s| s.table_id == spec.id && s.status == "error").and_then(|s| s.error.clone());
    Ok(Json(RegistryRow { spec: spec.clone(), last_sync_error }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct HistoryQuery {
    /// Runs to return, 1 to 1000 (50 by default).
    limit: Option<i64>,
}

/// The table's sync runs, newest first: when, how long, rows, whether the data changed,
/// and the error of a failed run.
#[utoipa::path(get, path = "/api/admin/registry/{table_id}/history", tag = "registry", params(("table_id" = String, Path), HistoryQuery),
    responses((status = 200, body = SyncHistory), (status = 400), (status = 404)))]
async fn history(
    State(state): State<AppState>,
    _admin: Admin,
    Path(table_id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<SyncHistory>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000"));
    }
    let spec = state.store.registry().resolve(&table_id).await?.ok_or_else(|| table_not_found(&table_id))?;
    let runs = state
        .store
        .sync_state()
        .history(&spec.id, limit)
        .await?
        .into_iter()
        .map(|h| SyncRun {
            synced_at: h.synced_at,
            status: h.status,
            rows: h.rows,
            duration_ms: h.duration_ms,
            error: h.error,
            changed: h.changed,
        })
        .collect();
    Ok(Json(SyncHistory { table_id: spec.id, runs }))
}

/// Change some fields: an omitted field is kept, `null` clears it.
#[utoipa::path(put, path = "/api/admin/registry/{table_id}", tag = "registry", params(("table_id" = String, Path)), request_body = TableRegistration,
    responses((status = 200, body = TableUpdated), (status = 404), (status = 409), (status = 422)))]
async fn update(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(table_id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> Result<Json<TableUpdated>, ApiError> {
    let before = state.store.registry().resolve(&table_id).await?.ok_or_else(|| table_not_found(&table_id))?;
    let mut after = overlay(&before, &body)?;
    if after.query_mode != QueryMode::Materialized && !body.contains_key("source_query") {
        after.source_query = None;
    }
    check(&state, &after)?;
    let metadata = remote_metadata(&state, &after).await?;
    if after.name != before.name {
        if let Some(other) = state.store.registry().resolve(&after.name).await? {
            if other.id != before.id {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("a table named '{}' already exists", after.name),
                ));
            }
        }
    }
    let (old, new) = (
        serde_json::to_value(&before).map_err(ApiError::internal)?,
        serde_json::to_value(&after).map_err(ApiError::internal)?,
    );
    let updated: Vec<String> = FIELDS.iter().filter(|f| old[**f] != new[**f]).map(|f| f.to_string()).collect();
    state.store.registry().upsert(&after).await?;
    if let Some(m) = metadata {
        state.store.bq_metadata().put(&after.id, &m).await?;
    }
    if after.name != before.name
        || after.source_type != before.source_type
        || after.sync_strategy != before.sync_strategy
        || (after.sync_strategy == SyncStrategy::Incremental && after.primary_key != before.primary_key)
    {
        // The published data lives under the old name or layout (a layered table's delta
        // is merged on its key): forget it; the next sync publishes it anew.
        state.sync.forget_published(&before).await;
    }
    Audit::of(&state, &caller, &client)
        .record_change("update_table", Some(&before.id), Some(Value::Object(body)), Some(old), "success")
        .await;
    Ok(Json(TableUpdated { id: before.id, updated }))
}

/// Remove a table: its registry row, published data, sync state and grants.
#[utoipa::path(delete, path = "/api/admin/registry/{table_id}", tag = "registry", params(("table_id" = String, Path)), responses((status = 204), (status = 404)))]
async fn unregister(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(table_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let spec = state.store.registry().resolve(&table_id).await?.ok_or_else(|| table_not_found(&table_id))?;
    state.store.registry().delete(&spec.id).await?;
    state.sync.forget_published(&spec).await;
    Audit::of(&state, &caller, &client)
        .record_change("unregister_table", Some(&spec.id), None, Some(json!(spec)), "success")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct DiscoverQuery {
    /// A configured source (`GET /api/admin/sources`); the files root when absent.
    source: Option<String>,
}

/// What a source holds that could be registered: files under the files root, or a
/// database's tables and views with columns, primary keys and estimates.
#[utoipa::path(get, path = "/api/admin/discover-tables", tag = "registry", params(DiscoverQuery),
    responses((status = 200, body = Discovered), (status = 404), (status = 502)))]
async fn discover(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<DiscoverQuery>,
) -> Result<Json<Discovered>, ApiError> {
    Ok(Json(discovered(&state, q.source.as_deref()).await?))
}

async fn discovered(state: &AppState, source: Option<&str>) -> Result<Discovered, ApiError> {
    let name = source.unwrap_or(agnes_connectors::files::SOURCE_NAME);
    let connector = state.sync.connector_named(name).ok_or_else(|| super::sources::unknown_source(state, name))?;
    let (source_type, connection) = (connector.source_type(), connector.connection().map(String::from));
    let mut tables = tokio::task::spawn_blocking(move || connector.discover())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::source_unavailable)?;
    // Which registry row already reads each: the same source, table and bucket.
    let snapshot = state.store.snapshot().await?;
    for t in &mut tables {
        t.registered_as = snapshot
            .registry
            .iter()
            .find(|r| {
                r.source_type == Some(source_type)
                    && r.connection == connection
                    && r.source_table.as_deref() == Some(t.source_table.as_deref().unwrap_or(&t.path))
                    && r.bucket == t.bucket
            })
            .map(|r| r.id.clone());
    }
    Ok(Discovered { count: tables.len(), tables, source: name.to_string() })
}

/// A registry name for a discovered table: its last path segment without extension, in
/// lower case, anything but letters, digits and `_` turned into `_`.
fn name_for(path: &str) -> String {
    let last = path.rsplit(['/', '.']).find(|s| !s.is_empty() && !is_extension(path, s)).unwrap_or(path);
    let mut name: String =
        last.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name.truncate(64);
    name
}

/// Whether `segment` is `path`'s file extension (`flights.csv` → `csv`).
fn is_extension(path: &str, segment: &str) -> bool {
    agnes_connectors::files::FileFormat::from_path(path).is_some() && path.ends_with(&format!(".{segment}"))
}

/// Register tables a source holds in one call: every discovered table, or the listed
/// ones, each under a free name; a table some registry row already reads is skipped.
#[utoipa::path(post, path = "/api/admin/discover-and-register", tag = "registry", request_body = DiscoverAndRegister,
    responses((status = 200, body = DiscoveryRegistered), (status = 404), (status = 422), (status = 502)))]
async fn discover_and_register(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(body): ApiJson<DiscoverAndRegister>,
) -> Result<Json<DiscoveryRegistered>, ApiError> {
    let found = discovered(&state, Some(body.source.as_str())).await?;
    if let Some(wanted) = &body.tables {
        if let Some(missing) = wanted.iter().find(|w| !found.tables.iter().any(|t| &&t.path == w)) {
            return Err(unprocessable(format!("'{missing}' is not among the tables of source '{}'", body.source)));
        }
    }
    let mut taken: std::collections::HashSet<String> =
        state.store.snapshot().await?.registry.iter().map(|t| t.id.clone()).collect();
    let connector =
        state.sync.connector_named(&body.source).ok_or_else(|| super::sources::unknown_source(&state, &body.source))?;
    let (source_type, connection) = (connector.source_type(), connector.connection().map(String::from));
    let (mut registered, mut skipped) = (Vec::new(), Vec::new());
    for t in found.tables.iter().filter(|t| body.tables.as_ref().is_none_or(|w| w.contains(&t.path))) {
        if t.registered_as.is_some() {
            skipped.push(DiscoverySkipped { path: t.path.clone(), reason: "already registered".into() });
            continue;
        }
        let mut name = name_for(&t.path);
        while taken.contains(&name) {
            name.push('_');
        }
        let mut fields = Map::new();
        fields.insert("name".into(), json!(name));
        fields.insert("source_table".into(), json!(t.source_table.as_deref().unwrap_or(&t.path)));
        if let Some(b) = &t.bucket {
            fields.insert("bucket".into(), json!(b));
        }
        fields.insert("source_type".into(), json!(source_type));
        if let Some(c) = &connection {
            fields.insert("connection".into(), json!(c));
        }
        if !t.primary_key.is_empty() {
            fields.insert("primary_key".into(), json!(t.primary_key));
        }
        for (k, v) in [
            ("query_mode", &body.query_mode),
            ("sync_schedule", &body.sync_schedule),
            ("sync_strategy", &body.sync_strategy),
        ] {
            if let Some(v) = v {
                fields.insert(k.into(), json!(v));
            }
        }
        let spec = new_spec(&fields, &caller.user.email)?;
        if let Err(e) = check(&state, &spec) {
            skipped.push(DiscoverySkipped { path: t.path.clone(), reason: e.detail_text() });
            continue;
        }
        taken.insert(spec.id.clone());
        if !body.dry_run {
            state.store.registry().insert(&spec).await?;
            Audit::of(&state, &caller, &client)
                .record("register_table", Some(&spec.id), Some(Value::Object(fields)), "success")
                .await;
        }
        registered.push(Registered { id: spec.id, name: spec.name, status: "registered".into() });
    }
    Ok(Json(DiscoveryRegistered { dry_run: body.dry_run, registered, skipped }))
}
