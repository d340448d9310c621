//! `POST /api/query/hybrid`: remote parts joined with local tables on the server. Each
//! part is a remote query (BigQuery SQL in `register_bq`, or `SOURCE:SQL` in `register`
//! for any remote source) that goes through the same registry gate, dry run, caps and
//! cost ledger as `/api/query`; its result becomes a view of that name in a sandbox of
//! the caller's readable tables, where the final SQL runs. The original allowed admins
//! only; here every gate applies to each part, so any user may.

use super::query::{audited, respond, row_limit, run, truncate, wants_arrow};
use super::remote::{bill, bq_failed, bq_run, failed, plan, Plan};
use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_connectors::remote::RemoteLimits;
use agnes_core::api::{HybridRequest, QueryResponse};
use agnes_engine::sandbox::{Sandbox, SandboxTable};
use agnes_engine::table_data::TableData;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(hybrid))
}

/// Parts a hybrid query may have.
const MAX_PARTS: usize = 8;

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::coded(StatusCode::BAD_REQUEST, "invalid_hybrid", detail.into())
}

/// The parts as (view name, source, SQL): `register_bq` runs on `bigquery`.
pub fn parts_of(body: &HybridRequest) -> Result<Vec<(String, String, String)>, ApiError> {
    let mut parts = Vec::new();
    for (name, sql) in &body.register_bq {
        parts.push((name.clone(), agnes_connectors::bigquery::SOURCE_NAME.to_string(), sql.clone()));
    }
    for (name, spec) in &body.register {
        let (source, sql) = spec
            .split_once(':')
            .filter(|(s, q)| !s.trim().is_empty() && !q.trim().is_empty())
            .ok_or_else(|| bad(format!("register {name:?}: write SOURCE:SQL, e.g. postgres_crm:SELECT …")))?;
        parts.push((name.clone(), source.trim().to_string(), sql.to_string()));
    }
    if parts.is_empty() {
        return Err(bad("a hybrid query registers at least one remote part (register_bq or register)"));
    }
    if parts.len() > MAX_PARTS {
        return Err(bad(format!("at most {MAX_PARTS} remote parts per hybrid query")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _, sql) in &parts {
        if !agnes_core::is_strict_identifier(name) || !seen.insert(name.to_lowercase()) {
            return Err(bad(format!("part name {name:?} must be a unique identifier (letters, digits, _)")));
        }
        if sql.trim().is_empty() {
            return Err(bad(format!("part {name:?} has no SQL")));
        }
    }
    Ok(parts)
}

/// Run one part on its source into the parquet file `file`.
async fn fetch_part(
    state: &AppState,
    caller: &Caller,
    (name, source, sql): &(String, String, String),
    file: &Path,
) -> Result<(), ApiError> {
    let plan = plan(state, caller, sql).await?;
    if !plan.runs_on(source) {
        return Err(bad(format!(
            "part {name:?} must read remote tables of {source}; it reads {}",
            plan.source_name().map(|s| format!("tables of {s}")).unwrap_or_else(|| "local tables".into())
        )));
    }
    let config = state.query.config().clone();
    let (file, limits) = (file.to_path_buf(), state.config.limits.clone());
    match plan {
        Plan::BigQuery(p) => {
            let run = bq_run(state, caller, &p, "hybrid");
            let (remote, rewritten, target) = (p.remote.clone(), p.sql.clone(), file.clone());
            let fetched = tokio::task::spawn_blocking(move || {
                agnes_connectors::bigquery::remote::run_parquet(
                    &*remote.client()?,
                    &rewritten,
                    &run,
                    config.scan_max_result_bytes,
                    &target,
                    &limits,
                )
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| bq_failed(e, &p))?;
            bill(state, caller, fetched.billed_bytes).await;
        }
        Plan::Remote { source, sql } => {
            let remote_limits = RemoteLimits {
                timeout: config.sandbox.timeout,
                max_rows: config.scan_max_limit,
                max_bytes: config.scan_max_result_bytes as usize,
            };
            tokio::task::spawn_blocking(move || {
                agnes_connectors::postgres::remote::run_parquet(&source, &sql, remote_limits, &file)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(failed)?;
        }
        Plan::Local => return Err(bad(format!("part {name:?} reads no remote table"))),
    }
    Ok(())
}

/// Run remote parts on their sources, then the SQL over them and your local tables.
#[utoipa::path(post, path = "/api/query/hybrid", tag = "query", request_body = HybridRequest,
    responses((status = 200, body = QueryResponse, description = "or, with `Accept: application/vnd.apache.arrow.stream`, an Arrow IPC stream"),
              (status = 400), (status = 403), (status = 429)))]
async fn hybrid(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HybridRequest>,
) -> Result<Response, ApiError> {
    let limit = row_limit(&state, body.limit)?;
    let parts = parts_of(&body)?;
    if body.sql.trim().is_empty() {
        return Err(bad("sql is required: the query over the parts and your local tables"));
    }
    let arrow = wants_arrow(&headers);
    let names: Vec<&String> = parts.iter().map(|(n, _, _)| n).collect();
    let params = json!({"sql": truncate(&body.sql, 2000), "parts": names, "limit": limit});
    let answer = audited(&state, &caller, &client, "query.hybrid", params, async |_, _| {
        let dir = agnes_engine::fsutil::temp_path_for(&state.layout.tmp_dir().join("hybrid"));
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let result = answer(&state, &caller, &parts, &dir, &body.sql, limit, arrow).await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await?;
    Ok(respond(answer))
}

async fn answer(
    state: &AppState,
    caller: &Caller,
    parts: &[(String, String, String)],
    dir: &Path,
    sql: &str,
    limit: usize,
    arrow: bool,
) -> Result<crate::query::Answer, ApiError> {
    let mut tables: Vec<SandboxTable> =
        state.query.readable_tables(caller).await?.into_iter().map(|(t, _)| t).collect();
    for part in parts {
        let file: PathBuf = dir.join(format!("{}.parquet", part.0));
        fetch_part(state, caller, part, &file).await?;
        tables.retain(|t| !t.name.eq_ignore_ascii_case(&part.0));
        tables.push(SandboxTable { name: part.0.clone(), data: TableData::File(file) });
    }
    // A sandbox of its own: its parts are this request's alone, so it is neither cached
    // nor given a kept catalog.
    let mut limits = state.query.config().sandbox.clone();
    limits.catalog_dir = None;
    let sandbox =
        tokio::task::spawn_blocking(move || Sandbox::open(&tables, &limits)).await.map_err(ApiError::internal)??;
    Ok(run(Arc::new(sandbox), sql.to_string(), limit, arrow).await?)
}
