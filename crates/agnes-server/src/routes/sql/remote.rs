//! `/api/query` over remote tables: SQL naming a remote table runs in its source, checked
//! and rewritten for it (`agnes_connectors::postgres::remote`, `…::bigquery::remote`),
//! under the same slot, byte quota, row and size caps and time limit as a local query.
//! BigQuery adds a dry run under the scan cap before every run, and records what it billed
//! in the cost ledger and against the caller's daily budget.
//!
//! A query reads remote tables of one connection, or local tables, never both: a mixed
//! query is refused with a 400 that says to snapshot the remote table first, or to run it
//! as a hybrid query (a snapshot or a hybrid part is local, and joins anything).

use crate::auth::access::Caller;
use crate::error::ApiError;
use crate::routes::tables::{may_read, readable_ids};
use crate::state::AppState;
use agnes_connectors::bigquery::remote::{self as bq, BqRemote, Reference};
use agnes_connectors::postgres::remote::{self, Refusal, RemoteAnswer, RemoteError, RemoteLimits};
use agnes_connectors::postgres::{qualified_name, PgSource};
use agnes_core::{QueryMode, SourceType, TableSpec};
use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;

/// Where a query runs.
pub enum Plan {
    Local,
    Remote { source: Box<PgSource>, sql: String },
    BigQuery(BqPlan),
}

/// A query checked and rewritten for BigQuery, with what a refusal by the scan cap tells.
pub struct BqPlan {
    pub remote: Arc<BqRemote>,
    pub sql: String,
    /// The paths it reads, and the ids of the views among them (a view scans whole
    /// whatever the LIMIT).
    pub paths: Vec<String>,
    pub views: Vec<String>,
}

impl Plan {
    /// Whether `name` names the source this plan runs on: `bigquery`, or a PostgreSQL
    /// connection by its name (`main`) or its source name (`postgres_main`).
    pub fn runs_on(&self, name: &str) -> bool {
        match self {
            Plan::Local => false,
            Plan::Remote { source, .. } => source.name == name || source.source_name() == name,
            Plan::BigQuery(_) => name == agnes_connectors::bigquery::SOURCE_NAME,
        }
    }

    /// The name of the source a remote plan runs on (`bigquery`, a PostgreSQL connection).
    pub fn source_name(&self) -> Option<String> {
        match self {
            Plan::Local => None,
            Plan::Remote { source, .. } => Some(source.source_name()),
            Plan::BigQuery(_) => Some(agnes_connectors::bigquery::SOURCE_NAME.to_string()),
        }
    }
}

fn mixed() -> ApiError {
    ApiError::coded(
        StatusCode::BAD_REQUEST,
        "mixed_remote_local",
        "This query reads remote and local tables together, which runs nowhere: snapshot the remote table first \
         (agnes snapshot create TABLE --where … --as NAME) and join the snapshot locally, or run the remote part \
         as a hybrid query (agnes query --register-bq NAME=SQL \"SELECT … JOIN NAME …\")",
    )
}

/// The BigQuery plan of `sql`, when it reads a remote BigQuery table or a BigQuery path
/// (three segments); `None` when it reads none.
async fn bigquery_plan(
    state: &AppState,
    remote: &Arc<BqRemote>,
    caller: &Caller,
    sql: &str,
) -> Result<Option<BqPlan>, ApiError> {
    let Some(references) = bq::relations(sql) else { return Ok(None) };
    if references.is_empty() {
        return Ok(None);
    }
    let snapshot = state.store.snapshot().await?;
    let registry = &snapshot.registry;
    let project = remote.source().project().map_err(ApiError::source_unavailable)?;
    let paths: Vec<(&TableSpec, String)> = registry
        .iter()
        .filter(|t| crate::remote_metadata::is_remote_bq(t))
        .filter_map(|t| Some((t, bq::table_path(t, &project).ok()?)))
        .collect();
    let matches = |t: &TableSpec, path: &str, r: &Reference| match r {
        Reference::Name(n) => names(t, n),
        Reference::Path(p) => p.eq_ignore_ascii_case(path) || format!("{project}.{p}").eq_ignore_ascii_case(path),
    };
    let bigquery = |r: &Reference| {
        paths.iter().any(|(t, path)| matches(t, path, r))
            || matches!(r, Reference::Path(p) if p.split('.').count() >= 3)
    };
    if !references.iter().any(bigquery) {
        return Ok(None);
    }
    let readable = readable_ids(state, caller).await?;
    let mine: Vec<&(&TableSpec, String)> = paths.iter().filter(|(t, _)| may_read(&readable, &t.id)).collect();
    let local = references.iter().any(|r| match r {
        Reference::Name(n) => {
            !mine.iter().any(|(t, p)| matches(t, p, r))
                && registry
                    .iter()
                    .any(|t| t.query_mode != QueryMode::Remote && names(t, n) && may_read(&readable, &t.id))
        }
        Reference::Path(_) => false,
    });
    if local {
        return Err(mixed());
    }
    let resolve = |r: &Reference| mine.iter().find(|(t, p)| matches(t, p, r)).map(|(_, p)| p.clone());
    let rewritten = bq::rewrite(sql, &resolve).map_err(refused)?;
    let used: Vec<&&(&TableSpec, String)> =
        mine.iter().filter(|(t, p)| references.iter().any(|r| matches(t, p, r))).collect();
    let cache = state.store.bq_metadata();
    let mut views = Vec::new();
    for (t, _) in used.iter().map(|u| **u) {
        if cache.get(&t.id).await?.and_then(|c| c.metadata.entity_type).is_some_and(|e| e != "BASE TABLE") {
            views.push(t.id.clone());
        }
    }
    Ok(Some(BqPlan {
        remote: remote.clone(),
        sql: rewritten,
        paths: used.iter().map(|u| u.1.clone()).collect(),
        views,
    }))
}

/// A registry row `name` (folded as PostgreSQL folds identifiers) refers to.
fn names(t: &TableSpec, name: &str) -> bool {
    t.name.to_lowercase() == name || t.id == name
}

pub async fn plan(state: &AppState, caller: &Caller, sql: &str) -> Result<Plan, ApiError> {
    if let Some(remote) = &state.bigquery {
        if let Some(plan) = bigquery_plan(state, remote, caller, sql).await? {
            return Ok(Plan::BigQuery(plan));
        }
    }
    // Without a PostgreSQL connection nothing else is remote: local queries pay neither
    // the parse nor the registry read.
    if state.config.postgres.is_empty() {
        return Ok(Plan::Local);
    }
    let Some(relations) = remote::relations(sql) else { return Ok(Plan::Local) };
    let snapshot = state.store.snapshot().await?;
    let registry = &snapshot.registry;
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
        return Err(mixed());
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
        Refusal::Path(path) => ApiError::coded(
            StatusCode::FORBIDDEN,
            "bq_path_not_registered",
            json!({"reason": "bq_path_not_registered", "path": path,
                   "hint": "Query remote BigQuery tables by their registry name (agnes catalog); a path that is not a \
                            registered remote table you may read is refused"}),
        ),
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

/// Run a BigQuery plan for the caller: a dry run under the scan cap, then the job with the
/// cap as `maximumBytesBilled`, the caller in its labels and the time limit; what it
/// billed goes to the cost ledger and the caller's daily budget.
pub async fn run_bigquery(
    state: &AppState,
    caller: &Caller,
    plan: &BqPlan,
    max_rows: usize,
) -> Result<RemoteAnswer, ApiError> {
    let sandbox = &state.query.config().sandbox;
    let limits = RemoteLimits { timeout: sandbox.timeout, max_rows, max_bytes: sandbox.max_result_bytes };
    let run = bq_run(state, caller, plan, "query");
    let (remote, sql) = (plan.remote.clone(), plan.sql.clone());
    let answer = tokio::task::spawn_blocking(move || bq::run_json(&*remote.client()?, &sql, &run, limits))
        .await
        .map_err(ApiError::internal)?;
    let answer = answer.map_err(|e| bq_failed(e, plan))?;
    bill(state, caller, answer.billed_bytes).await;
    Ok(answer)
}

/// How a BigQuery statement of `caller` runs: the scan cap, labels naming the user and
/// what asked (`query`, `scan`, `hybrid`), the sandbox's time limit.
pub fn bq_run(state: &AppState, caller: &Caller, plan: &BqPlan, what: &str) -> bq::Run {
    bq::Run {
        scan_cap: plan.remote.scan_cap(),
        labels: json!({"agnes_user": bq::label(&caller.user.email), "agnes_request": what}),
        timeout: state.query.config().sandbox.timeout,
    }
}

/// Record what BigQuery billed for a caller's statement.
pub async fn bill(state: &AppState, caller: &Caller, billed_bytes: u64) {
    if let Err(e) = state
        .store
        .quotas()
        .record_billed(&caller.user.id, agnes_connectors::bigquery::SOURCE_NAME, billed_bytes as i64)
        .await
    {
        tracing::error!("cannot record BigQuery usage: {e}");
    }
}

/// A BigQuery run's failure; over the scan cap it is the contract's
/// `remote_scan_too_large`, naming the tables and the views among them.
pub fn bq_failed(e: RemoteError, plan: &BqPlan) -> ApiError {
    match e {
        RemoteError::ScanTooLarge { scan_bytes, limit_bytes } => {
            let views = if plan.views.is_empty() {
                String::new()
            } else {
                " Views scan whole whatever the LIMIT: filter on the columns they are built from.".to_string()
            };
            ApiError::coded(
                StatusCode::BAD_REQUEST,
                "remote_scan_too_large",
                json!({"reason": "remote_scan_too_large", "scan_bytes": scan_bytes, "limit_bytes": limit_bytes,
                       "tables": plan.paths, "view_targets": plan.views,
                       "suggestion": format!("BigQuery would scan {scan_bytes} bytes, over this server's cap of \
                           {limit_bytes}: filter on the partitioning column, select fewer columns, or take a \
                           filtered snapshot (agnes snapshot create TABLE --select … --where … --estimate).{views}")}),
            )
        }
        other => failed(other),
    }
}

/// A remote run's failure as the engine would report it (timeouts, sizes, the caller's
/// SQL), so local and remote answers fail alike.
pub fn engine_error(e: RemoteError) -> agnes_engine::EngineError {
    use agnes_engine::EngineError as E;
    match e {
        RemoteError::Timeout(d) => E::Timeout { seconds: d.as_secs_f64() },
        RemoteError::TooLarge(limit_bytes) => E::ResultTooLarge { limit_bytes },
        RemoteError::Sql(message) => E::InvalidSql(message),
        other @ RemoteError::ScanTooLarge { .. } => E::Invalid(other.to_string()),
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
