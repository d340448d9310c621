//! `POST /api/query` (spec §3.7): the caller's SQL in their sandbox, as JSON or as an Arrow
//! IPC stream (`Accept: application/vnd.apache.arrow.stream`).

use super::remote::Plan;
use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::query::{Answer, AnswerKey, Slot};
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{QueryRequest, QueryResponse};
use agnes_engine::sandbox::Sandbox;
use agnes_engine::EngineError;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query))
}

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, detail)
}

/// The rows a query may answer: the asked `limit` (default 1,000, or the server's maximum
/// when lower), refused below 1 or above the maximum.
pub(super) fn row_limit(state: &AppState, asked: Option<i64>) -> Result<usize, ApiError> {
    let max = state.query.config().max_rows;
    let requested = asked.unwrap_or(1000.min(max as i64));
    if requested < 1 {
        return Err(bad_request("limit must be at least 1"));
    }
    let limit = usize::try_from(requested).unwrap_or(usize::MAX);
    if limit > max {
        return Err(bad_request(format!("limit {limit} is above this server's maximum of {max} rows")));
    }
    Ok(limit)
}

/// Whether the caller asked for Arrow IPC.
pub(super) fn wants_arrow(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(ARROW_STREAM))
}

/// Run one SELECT over the tables the caller may read.
#[utoipa::path(post, path = "/api/query", tag = "query", request_body = QueryRequest,
    responses((status = 200, body = QueryResponse, description = "or, with `Accept: application/vnd.apache.arrow.stream`, an Arrow IPC stream"),
              (status = 400), (status = 403), (status = 429)))]
async fn query(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(body): ApiJson<QueryRequest>,
) -> Result<Response, ApiError> {
    let limit = row_limit(&state, body.limit)?;
    if body.sql.trim().is_empty() {
        return Err(bad_request("Query must start with SELECT or WITH"));
    }
    let arrow = wants_arrow(&headers);
    let plan = super::remote::plan(&state, &caller, &body.sql).await?;
    if let Some(wanted) = body.source.as_deref() {
        if !plan.runs_on(wanted) {
            return Err(ApiError::coded(
                StatusCode::BAD_REQUEST,
                "wrong_source",
                format!(
                    "This query does not run on {wanted}: it reads {}",
                    plan.source_name().map(|s| format!("tables of {s}")).unwrap_or_else(|| "local tables".into())
                ),
            ));
        }
    }
    match plan {
        Plan::Remote { source, sql } => {
            return remote(&state, &caller, &client, *source, sql, &body.sql, limit, arrow).await
        }
        Plan::BigQuery(plan) => return bigquery(&state, &caller, &client, &plan, &body.sql, limit, arrow).await,
        Plan::Local => {}
    }
    let params = json!({"sql": truncate(&body.sql, 2000), "limit": limit,
        "format": if arrow { "arrow" } else { "json" }});
    let answer = audited(&state, &caller, &client, "query.local", params, async |slot, params| {
        let tables = state.query.readable_tables_for(&caller, slot).await?;
        let sandbox = state.query.sandbox(tables).await?;
        let key = AnswerKey { sandbox: sandbox.id(), sql: body.sql.clone(), limit, arrow };
        let cached = state.query.answers().get(&key);
        params["cached"] = json!(cached.is_some());
        if let Some(answer) = cached {
            return Ok(answer);
        }
        match run(sandbox, body.sql.clone(), limit, arrow).await {
            Ok(answer) => {
                if agnes_engine::sandbox::is_repeatable(&body.sql) {
                    state.query.answers().put(key, answer.clone());
                }
                Ok(answer)
            }
            Err(e) => Err(explain(&state, &caller, e).await),
        }
    })
    .await?;
    Ok(respond(answer))
}

/// Run `work` under one of the caller's query slots (their concurrency and byte quotas):
/// the slot is released with the answer's size, and the query audited as `action` with
/// `params` (which `work` may add to) and its outcome.
pub(super) async fn audited(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    action: &str,
    mut params: Value,
    work: impl AsyncFnOnce(&Slot, &mut Value) -> Result<Answer, ApiError>,
) -> Result<Answer, ApiError> {
    let slot = state.query.acquire(caller, "concurrent_queries").await?;
    let result = work(&slot, &mut params).await;
    let (bytes, outcome) = match &result {
        Ok(a) => (a.body.len(), "success"),
        Err(_) => (0, "error"),
    };
    slot.release(bytes).await;
    Audit::of(state, caller, client).record_soon(action, None, Some(params), outcome);
    result
}

/// A query over remote tables, run in their database under the caller's slot and quotas.
#[allow(clippy::too_many_arguments)]
async fn remote(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    source: agnes_connectors::postgres::PgSource,
    sql: String,
    asked: &str,
    limit: usize,
    arrow: bool,
) -> Result<Response, ApiError> {
    if arrow {
        return Err(ApiError::coded(
            StatusCode::NOT_ACCEPTABLE,
            "remote_json_only",
            "Remote queries answer JSON; ask without Accept: application/vnd.apache.arrow.stream",
        ));
    }
    let params = json!({"sql": truncate(asked, 2000), "limit": limit});
    let answer = audited(state, caller, client, "query.remote", params, async |_, _| {
        let a = super::remote::run(state, source, sql, limit).await?;
        json_answer(QueryResponse { columns: a.columns, row_count: a.rows.len(), rows: a.rows, truncated: a.truncated })
    })
    .await?;
    Ok(respond(answer))
}

fn json_answer(answer: QueryResponse) -> Result<Answer, ApiError> {
    let body = serde_json::to_vec(&answer).map_err(ApiError::internal)?;
    Ok(Answer { body: body.into(), arrow: None })
}

/// A query over remote BigQuery tables, under the caller's slot: JSON, or Arrow typed by
/// the result's schema.
async fn bigquery(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    plan: &super::remote::BqPlan,
    asked: &str,
    limit: usize,
    arrow: bool,
) -> Result<Response, ApiError> {
    let params = json!({"sql": truncate(asked, 2000), "limit": limit, "source": "bigquery",
                        "format": if arrow { "arrow" } else { "json" }});
    let answer = audited(state, caller, client, "query.remote", params, async |_, _| {
        if arrow {
            return bigquery_arrow(state, caller, plan, limit).await;
        }
        let a = super::remote::run_bigquery(state, caller, plan, limit).await?;
        json_answer(QueryResponse { columns: a.columns, row_count: a.rows.len(), rows: a.rows, truncated: a.truncated })
    })
    .await?;
    Ok(respond(answer))
}

/// A BigQuery plan answered as Arrow IPC: at most `limit` rows (the statement is wrapped
/// to read one more, which says whether it was cut).
async fn bigquery_arrow(
    state: &AppState,
    caller: &Caller,
    plan: &super::remote::BqPlan,
    limit: usize,
) -> Result<Answer, ApiError> {
    let run = super::remote::bq_run(state, caller, plan, "query");
    let sql = format!("SELECT * FROM ({}) LIMIT {}", plan.sql, limit + 1);
    let (remote, tmp, limits) = (plan.remote.clone(), state.layout.tmp_dir(), state.config.limits.clone());
    let max = state.query.config().sandbox.max_result_bytes as u64;
    let fetched = tokio::task::spawn_blocking(move || {
        let client = remote.client()?;
        let mut ipc = Vec::new();
        let fetched = agnes_connectors::bigquery::remote::run_ipc(
            &client,
            &sql,
            &run,
            Some(limit as u64),
            max,
            &tmp,
            &limits,
            &mut ipc,
        )?;
        Ok::<_, agnes_connectors::remote::RemoteError>((fetched, ipc))
    })
    .await
    .map_err(ApiError::internal)?;
    let (fetched, ipc) = fetched.map_err(|e| super::remote::bq_failed(e, plan))?;
    super::remote::bill(state, caller, fetched.billed_bytes).await;
    Ok(Answer { body: ipc.into(), arrow: Some((fetched.rows as usize, fetched.source_rows > fetched.rows)) })
}

pub(super) fn respond(answer: Answer) -> Response {
    match answer.arrow {
        Some((rows, truncated)) => {
            let headers = [
                (header::CONTENT_TYPE.as_str(), ARROW_STREAM.to_string()),
                ("x-agnes-truncated", truncated.to_string()),
                ("x-agnes-row-count", rows.to_string()),
            ];
            (headers, answer.body).into_response()
        }
        None => ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response(),
    }
}

pub(super) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Run on the blocking pool; answer the encoded result.
pub(super) async fn run(sandbox: Arc<Sandbox>, sql: String, limit: usize, arrow: bool) -> Result<Answer, EngineError> {
    let joined = tokio::task::spawn_blocking(move || {
        if arrow {
            let out = sandbox.query_arrow(&sql, limit)?;
            Ok(Answer { body: out.ipc.into(), arrow: Some((out.rows, out.truncated)) })
        } else {
            let out = sandbox.query(&sql, limit)?;
            let rows: Vec<Vec<Value>> =
                out.rows.iter().map(|r| r.iter().map(agnes_engine::values::to_json).collect()).collect();
            let answer = QueryResponse { columns: out.columns, row_count: rows.len(), rows, truncated: out.truncated };
            let body = serde_json::to_vec(&answer).map_err(|e| EngineError::Invalid(e.to_string()))?;
            Ok(Answer { body: body.into(), arrow: None })
        }
    })
    .await;
    joined.unwrap_or_else(|e| Err(EngineError::Invalid(format!("the query task failed: {e}"))))
}

/// An engine error as the contract's answer. A table that exists but is not granted is
/// named as such: the sandbox only knows it does not have it.
async fn explain(state: &AppState, caller: &Caller, e: EngineError) -> ApiError {
    match e {
        EngineError::DuckDb(err) => {
            let message = err.to_string();
            if let Some(name) = missing_table(&message) {
                let registry = state.store.registry();
                let found = match registry.resolve(&name).await {
                    Ok(None) => registry.resolve(&name.to_lowercase()).await,
                    other => other,
                };
                if let Ok(Some(spec)) = found {
                    let readable =
                        crate::routes::tables::readable_ids(state, caller).await.unwrap_or(Some(Default::default()));
                    if !crate::routes::tables::may_read(&readable, &spec.id) {
                        return ApiError::coded(
                            StatusCode::FORBIDDEN,
                            "access_denied",
                            format!("Access denied to table '{name}'"),
                        );
                    }
                    if spec.query_mode == agnes_core::QueryMode::Remote {
                        return ApiError::coded(StatusCode::BAD_REQUEST, "table_remote", format!(
                            "Query error: table '{name}' is remote and not queryable here yet: use `agnes snapshot create {}`",
                            spec.id
                        ));
                    }
                    return ApiError::coded(
                        StatusCode::BAD_REQUEST,
                        "table_not_published",
                        format!("Query error: table '{name}' has no published data yet; it is available after its next sync"),
                    );
                }
            }
            EngineError::DuckDb(err).into()
        }
        other => other.into(),
    }
}

/// The table name in DuckDB's "Table with name X does not exist" error.
fn missing_table(message: &str) -> Option<String> {
    let rest = message.split("Table with name ").nth(1)?;
    let name = rest.split(" does not exist").next()?;
    Some(name.trim_matches('"').to_string()).filter(|n| !n.is_empty() && n.len() <= 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_table() {
        assert_eq!(
            missing_table("Catalog Error: Table with name secret does not exist!\nDid you mean \"a\"?").as_deref(),
            Some("secret")
        );
        assert_eq!(missing_table("Parser Error: syntax error at or near \"FROM\""), None);
    }
}
