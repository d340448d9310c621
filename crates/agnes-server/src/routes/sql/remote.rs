//! `/api/query` over remote tables: SQL naming a remote table runs in its PostgreSQL,
//! checked and rewritten there (`agnes_connectors::postgres::remote`), under the same slot,
//! byte quota, row and size caps and time limit as a local query.
//!
//! A query reads remote tables of one connection, or local tables, never both: a mixed
//! query is refused with a 400 that says to snapshot the remote table first (a snapshot is
//! local, and joins anything).

use crate::auth::access::Caller;
use crate::error::ApiError;
use crate::routes::tables::{may_read, readable_ids};
use crate::state::AppState;
use agnes_connectors::postgres::remote::{self, Refusal, RemoteAnswer, RemoteError, RemoteLimits};
use agnes_connectors::postgres::{qualified_name, PgSource};
use agnes_core::{QueryMode, SourceType, TableSpec};
use axum::http::StatusCode;

/// Where a query runs.
pub enum Plan {
    Local,
    Remote { source: Box<PgSource>, sql: String },
}

/// A registry row `name` (folded as PostgreSQL folds identifiers) refers to.
fn names(t: &TableSpec, name: &str) -> bool {
    t.name.to_lowercase() == name || t.id == name
}

pub async fn plan(state: &AppState, caller: &Caller, sql: &str) -> Result<Plan, ApiError> {
    // Without a PostgreSQL connection nothing is remote: local queries pay neither the
    // parse nor the registry read.
    if state.config.postgres.is_empty() {
        return Ok(Plan::Local);
    }
    let Some(relations) = remote::relations(sql) else { return Ok(Plan::Local) };
    let registry = state.store.registry().list().await?;
    let is_remote = |t: &&TableSpec| t.query_mode == QueryMode::Remote && t.source_type == Some(SourceType::Postgres);
    if !relations.iter().any(|n| registry.iter().filter(is_remote).any(|t| names(t, n))) {
        return Ok(Plan::Local);
    }
    let readable = readable_ids(state, caller).await?;
    let mine: Vec<&TableSpec> = registry.iter().filter(is_remote).filter(|t| may_read(&readable, &t.id)).collect();
    let local = relations.iter().any(|n| {
        !mine.iter().any(|t| names(t, n))
            && registry.iter().any(|t| t.query_mode != QueryMode::Remote && names(t, n) && may_read(&readable, &t.id))
    });
    if local {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "mixed_remote_local",
            "This query reads remote and local tables together, which runs nowhere: snapshot the remote table first \
             (agnes snapshot create TABLE --where … --as NAME), then join the snapshot locally",
        ));
    }
    let used: Vec<&TableSpec> = relations.iter().filter_map(|n| mine.iter().copied().find(|t| names(t, n))).collect();
    let connection = match used.first() {
        Some(t) => state.sync.source_name_for(t),
        None => None,
    };
    if used.iter().any(|t| state.sync.source_name_for(t) != connection) {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "mixed_connections",
            "A remote query reads tables of one connection: snapshot the others first",
        ));
    }
    let source = used
        .first()
        .and_then(|t| {
            state.config.postgres.iter().find(|s| Some(s.source_name()) == state.sync.source_name_for(t)).cloned()
        })
        .ok_or_else(path_not_registered)?;
    let resolve = |n: &str| used.iter().find(|t| names(t, n)).and_then(|t| qualified_name(t).ok());
    let sql = remote::rewrite(sql, &resolve).map_err(refused)?;
    Ok(Plan::Remote { source: Box::new(source), sql })
}

/// A relation the caller may not read as a remote table: refused without naming any.
fn path_not_registered() -> ApiError {
    ApiError::coded(
        StatusCode::FORBIDDEN,
        "path_not_registered",
        "Every table of a remote query must be a remote table you may read",
    )
}

pub fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Invalid(e) => ApiError::coded(StatusCode::BAD_REQUEST, "invalid_sql", format!("Query error: {e}")),
        Refusal::NotSelect(what) => ApiError::coded(
            StatusCode::BAD_REQUEST,
            "not_select",
            format!("Only one read-only SELECT runs on remote tables (found: {what})"),
        ),
        Refusal::Function(name) => ApiError::coded(
            StatusCode::BAD_REQUEST,
            "function_not_allowed",
            format!("Function {name} is not allowed in a remote query"),
        ),
        Refusal::Relation => path_not_registered(),
    }
}

/// Run the rewritten SQL on its source, on the blocking pool.
pub async fn run(state: &AppState, source: PgSource, sql: String, max_rows: usize) -> Result<RemoteAnswer, ApiError> {
    let sandbox = &state.query.config().sandbox;
    let limits = RemoteLimits { timeout: sandbox.timeout, max_rows, max_bytes: sandbox.max_result_bytes };
    let answer = tokio::task::spawn_blocking(move || remote::run_json(&source, &sql, limits))
        .await
        .map_err(ApiError::internal)?;
    answer.map_err(failed)
}

/// A remote run's failure as the engine would report it (timeouts, sizes, the caller's
/// SQL), so local and remote answers fail alike.
pub fn engine_error(e: RemoteError) -> agnes_engine::EngineError {
    use agnes_engine::EngineError as E;
    match e {
        RemoteError::Timeout(d) => E::Timeout { seconds: d.as_secs_f64() },
        RemoteError::TooLarge(limit_bytes) => E::ResultTooLarge { limit_bytes },
        RemoteError::Sql(message) => E::InvalidSql(message),
        RemoteError::Source(e) => E::Invalid(e.to_string()),
    }
}

/// A remote run's failure as the answer: the source's own failure is a 502.
pub fn failed(e: RemoteError) -> ApiError {
    match e {
        RemoteError::Source(e) => ApiError::source_unavailable(e),
        other => engine_error(other).into(),
    }
}
