//! `POST /api/v2/scan/estimate` and `POST /api/v2/scan` (spec §3.6): a projection, a
//! filter, an order and a limit over one table, estimated or streamed as Arrow IPC. This
//! is what `agnes snapshot` takes its slices of big tables with.

use super::query::ARROW_STREAM;
use crate::auth::access::Caller;
use crate::auth::authenticate::ClientInfo;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::routes::tables::resolve_readable;
use crate::state::AppState;
use agnes_core::api::{ScanEstimate, ScanRequest};
use agnes_core::QueryMode;
use agnes_engine::sandbox::Sandbox;
use agnes_engine::scan::{self, ScanOutcome, ScanPlan};
use agnes_engine::EngineError;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(estimate)).routes(routes!(scan))
}

/// A scan of a remote table: the checked SQL, run in its database.
struct RemoteScan {
    table_id: String,
    target: Target,
    sql: String,
}

enum Target {
    Postgres {
        source: agnes_connectors::postgres::PgSource,
        qualified: (String, String),
    },
    /// With the DuckDB types of the scanned columns, for the row estimate.
    BigQuery {
        plan: super::remote::BqPlan,
        types: Vec<String>,
    },
}

/// BigQuery bytes per value by DuckDB type, to turn a dry run's scanned bytes into rows.
fn value_bytes(ty: &str) -> u64 {
    match ty {
        "BOOLEAN" => 1,
        "BIGINT" | "DOUBLE" | "DATE" | "TIME" | "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" => 8,
        "VARCHAR" => 32,
        "BLOB" => 64,
        _ => 16,
    }
}

/// The scan of a remote BigQuery table, checked on the columns of the metadata cache
/// (read from BigQuery now if the cache has none yet).
async fn bigquery_scan(
    state: &AppState,
    spec: &agnes_core::TableSpec,
    body: &ScanRequest,
    limit: Option<u64>,
) -> Result<RemoteScan, ApiError> {
    let remote = state.bigquery.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Table '{}' is a BigQuery table and BigQuery is not configured", spec.id),
        )
    })?;
    let metadata = match state.store.bq_metadata().get(&spec.id).await?.filter(|c| c.refreshed_at.is_some()) {
        Some(c) => c.metadata,
        None => crate::remote_metadata::refresh_one(&state.store, &remote, spec)
            .await
            .map_err(|e| ApiError::coded(StatusCode::BAD_GATEWAY, "source_unavailable", e))?,
    };
    let names: Vec<String> = metadata.columns.iter().map(|(n, _)| n.clone()).collect();
    let select = body.select.clone().unwrap_or_default();
    let sql = agnes_connectors::bigquery::remote::scan_sql(
        &metadata.path,
        &names,
        &select,
        body.filter.as_deref(),
        body.order_by.as_deref().unwrap_or_default(),
        limit,
    )
    .map_err(super::remote::refused)?;
    let types = metadata
        .columns
        .iter()
        .filter(|(n, _)| select.is_empty() || select.iter().any(|s| s.trim().eq_ignore_ascii_case(n)))
        .map(|(_, t)| t.clone())
        .collect();
    let views = match metadata.entity_type.as_deref() {
        Some("BASE TABLE") => Vec::new(),
        _ => vec![spec.id.clone()],
    };
    let plan = super::remote::BqPlan { remote, sql: sql.clone(), paths: vec![metadata.path], views };
    Ok(RemoteScan { table_id: spec.id.clone(), target: Target::BigQuery { plan, types }, sql })
}

/// The checked scan in the caller's sandbox of just this table, and the parquet bytes it reads.
struct Prepared {
    table_id: String,
    sandbox: Arc<Sandbox>,
    plan: ScanPlan,
    scan_bytes: u64,
}

fn checked_limit(body: &ScanRequest, max_limit: usize) -> Result<Option<u64>, ApiError> {
    match body.limit {
        None => Ok(None),
        Some(n) if n < 1 => Err(ApiError::new(StatusCode::BAD_REQUEST, "limit must be at least 1")),
        Some(n) if n as u64 > max_limit as u64 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit {n} is above this server's maximum of {max_limit} rows"),
        )),
        Some(n) => Ok(Some(n as u64)),
    }
}

/// The scan of a remote PostgreSQL table, checked and written for its database; `None`
/// for a table whose data is here.
async fn remote_scan(
    state: &AppState,
    caller: &Caller,
    body: &ScanRequest,
    max_limit: usize,
) -> Result<Option<RemoteScan>, ApiError> {
    let spec = resolve_readable(state, caller, &body.table_id).await?;
    if crate::remote_metadata::is_remote_bq(&spec) {
        let limit = checked_limit(body, max_limit)?;
        return bigquery_scan(state, &spec, body, limit).await.map(Some);
    }
    if spec.query_mode != QueryMode::Remote || spec.source_type != Some(agnes_core::SourceType::Postgres) {
        return Ok(None);
    }
    let limit = checked_limit(body, max_limit)?;
    let source_name = state.sync.source_name_for(&spec);
    let source =
        state.config.postgres.iter().find(|s| Some(s.source_name()) == source_name).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("Table '{}' has no configured connection", spec.id))
        })?;
    let (schema, table) = agnes_connectors::postgres::qualified_name(&spec).map_err(ApiError::source_unavailable)?;
    let sql = agnes_connectors::postgres::remote::scan_sql(
        &spec.name.to_lowercase(),
        (&schema, &table),
        body.select.as_deref().unwrap_or_default(),
        body.filter.as_deref(),
        body.order_by.as_deref().unwrap_or_default(),
        limit,
    )
    .map_err(super::remote::refused)?;
    Ok(Some(RemoteScan { table_id: spec.id, target: Target::Postgres { source, qualified: (schema, table) }, sql }))
}

async fn prepare(
    state: &AppState,
    caller: &Caller,
    body: &ScanRequest,
    max_limit: usize,
) -> Result<Prepared, ApiError> {
    let spec = resolve_readable(state, caller, &body.table_id).await?;
    if spec.query_mode == QueryMode::Remote {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Table '{}' is remote, and this server has no connector that scans it in place yet", spec.id),
        ));
    }
    let limit = checked_limit(body, max_limit)?;
    let table =
        state.query.readable_tables(caller).await?.into_iter().find(|(t, _)| t.name == spec.name).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("Table '{}' has no published data yet", spec.id))
        })?;
    let scan_bytes = table.0.data.size_bytes();
    let sandbox = state.query.sandbox(vec![table]).await?;
    let request = scan::ScanRequest {
        table: spec.name.clone(),
        select: body.select.clone().unwrap_or_default(),
        filter: body.filter.clone(),
        order_by: body.order_by.clone().unwrap_or_default(),
        limit,
    };
    let planner = sandbox.clone();
    let plan = tokio::task::spawn_blocking(move || planner.plan_scan(&request)).await.map_err(ApiError::internal)??;
    Ok(Prepared { table_id: spec.id, sandbox, plan, scan_bytes })
}

fn audit_params(body: &ScanRequest) -> Value {
    json!({"select": body.select, "where": body.filter, "limit": body.limit, "order_by": body.order_by, "as": body.alias})
}

/// How many rows and bytes a scan would answer, counted by running its filter.
#[utoipa::path(post, path = "/api/v2/scan/estimate", tag = "scan", request_body = ScanRequest,
    responses((status = 200, body = ScanEstimate),
              (status = 400), (status = 403), (status = 404), (status = 429)))]
async fn estimate(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(body): ApiJson<ScanRequest>,
) -> Result<Json<ScanEstimate>, ApiError> {
    if let Some(remote) = remote_scan(&state, &caller, &body, state.query.config().scan_max_limit).await? {
        let slot = state.query.acquire(&caller, "concurrent_scans").await?;
        let RemoteScan { table_id, target, sql } = remote;
        let estimate = match target {
            Target::Postgres { source, qualified } => {
                let estimate = tokio::task::spawn_blocking(move || {
                    agnes_connectors::postgres::remote::estimate(&source, &sql, (&qualified.0, &qualified.1))
                })
                .await
                .map_err(ApiError::internal)?;
                estimate.map_err(super::remote::failed).map(|(rows, bytes, on_disk)| ScanEstimate {
                    table_id: table_id.clone(),
                    estimated_scan_bytes: on_disk,
                    estimated_result_rows: rows,
                    estimated_result_bytes: bytes,
                    bq_cost_estimate_usd: 0.0,
                })
            }
            Target::BigQuery { plan, types } => {
                let remote = plan.remote.clone();
                let scanned = tokio::task::spawn_blocking(move || {
                    agnes_connectors::bigquery::remote::estimate(&*remote.client()?, &sql)
                })
                .await
                .map_err(ApiError::internal)?;
                scanned.map_err(|e| super::remote::bq_failed(e, &plan)).map(|scan_bytes| {
                    let width: u64 = types.iter().map(|t| value_bytes(t)).sum::<u64>().max(1);
                    let rows = (scan_bytes / width).min(body.limit.map_or(u64::MAX, |l| l as u64));
                    ScanEstimate {
                        table_id: table_id.clone(),
                        estimated_scan_bytes: scan_bytes,
                        estimated_result_rows: rows,
                        estimated_result_bytes: rows * width,
                        bq_cost_estimate_usd: plan.remote.source().cost_usd(scan_bytes),
                    }
                })
            }
        };
        slot.release(0).await;
        let estimate = estimate?;
        Audit::of(&state, &caller, &client).record_soon(
            "scan.estimate",
            Some(&table_id),
            Some(audit_params(&body)),
            "success",
        );
        return Ok(Json(estimate));
    }
    let prepared = prepare(&state, &caller, &body, state.query.config().scan_max_limit).await?;
    let slot = state.query.acquire(&caller, "concurrent_scans").await?;
    let Prepared { table_id, sandbox, plan, scan_bytes } = prepared;
    let estimate =
        tokio::task::spawn_blocking(move || sandbox.estimate_scan(&plan)).await.map_err(ApiError::internal)?;
    slot.release(0).await;
    let estimate = estimate?;
    Audit::of(&state, &caller, &client).record_soon(
        "scan.estimate",
        Some(&table_id),
        Some(audit_params(&body)),
        "success",
    );
    Ok(Json(ScanEstimate {
        table_id,
        estimated_scan_bytes: scan_bytes,
        estimated_result_rows: estimate.rows,
        estimated_result_bytes: estimate.bytes,
        bq_cost_estimate_usd: 0.0,
    }))
}

/// What the scanning thread tells the response.
enum Message {
    Chunk(Bytes),
    Failed(EngineError),
    Done,
}

/// An `io::Write` that hands the response 1 MiB at a time. Waiting for room in the
/// channel is the back-pressure of a slow client; a client that went away ends the scan.
struct ChannelWriter {
    tx: mpsc::Sender<Message>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 1 << 20;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Message::Chunk(chunk)).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stream the scan as Arrow IPC. An error found before the first megabyte is sent is an
/// ordinary error response; after that the response is cut off without the stream's end
/// marker, so no client can take a partial answer for a whole one.
#[utoipa::path(post, path = "/api/v2/scan", tag = "scan", request_body = ScanRequest,
    responses((status = 200, description = "Arrow IPC stream", content_type = "application/vnd.apache.arrow.stream"),
              (status = 400), (status = 403), (status = 404), (status = 429)))]
async fn scan(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(body): ApiJson<ScanRequest>,
) -> Result<Response, ApiError> {
    let config = state.query.config().clone();
    if let Some(remote) = remote_scan(&state, &caller, &body, config.scan_max_limit).await? {
        return remote_stream(state, caller, client, body, remote, config).await;
    }
    let prepared = prepare(&state, &caller, &body, config.scan_max_limit).await?;
    let slot = state.query.acquire(&caller, "concurrent_scans").await?;
    let table_id = prepared.table_id.clone();
    tracing::debug!(table = %table_id, "scan streaming");
    let scan = Scan { state, caller, client, table_id, params: audit_params(&body), slot };
    scan.stream(move |writer| {
        let ScanOutcome { rows, bytes } =
            prepared.sandbox.scan_ipc(&prepared.plan, config.scan_timeout, config.scan_max_result_bytes, writer)?;
        Ok(Streamed { rows, bytes, billed: 0 })
    })
    .await
}

/// What a scan streamed, and what its source billed for it.
struct Streamed {
    rows: u64,
    bytes: u64,
    billed: u64,
}

/// One admitted scan: the caller, what to audit it as, and its concurrency slot.
struct Scan {
    state: AppState,
    caller: Caller,
    client: ClientInfo,
    table_id: String,
    params: Value,
    slot: crate::query::Slot,
}

impl Scan {
    /// Run `job` on the blocking pool, its Arrow IPC streamed into the response as it is
    /// written. When it ends, the slot is released with the bytes sent (charged to the
    /// budget before the answer ends, so a client that reads to the end and asks again is
    /// counted), what the source billed goes to the cost ledger, and `scan.run` is audited
    /// with the outcome.
    async fn stream(
        self,
        job: impl FnOnce(&mut ChannelWriter) -> Result<Streamed, EngineError> + Send + 'static,
    ) -> Result<Response, ApiError> {
        let (tx, mut rx) = mpsc::channel::<Message>(4);
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut writer = ChannelWriter { tx: tx.clone(), buffer: Vec::with_capacity(CHUNK) };
            let result = job(&mut writer).and_then(|done| {
                writer.send().map_err(|_| EngineError::Invalid("the client went away".into()))?;
                Ok(done)
            });
            let Scan { state, caller, client, table_id, mut params, slot } = self;
            runtime.block_on(async move {
                let (bytes, billed) = result.as_ref().map_or((0, 0), |d| (d.bytes, d.billed));
                slot.release(bytes as usize).await;
                if billed > 0 {
                    super::remote::bill(&state, &caller, billed).await;
                }
                params["outcome"] = match &result {
                    Ok(d) => json!({"rows": d.rows, "bytes": d.bytes}),
                    Err(e) => json!({"error": e.to_string()}),
                };
                let outcome = if result.is_ok() { "success" } else { "error" };
                Audit::of(&state, &caller, &client).record_soon("scan.run", Some(&table_id), Some(params), outcome);
                let _ = tx
                    .send(match result {
                        Ok(_) => Message::Done,
                        Err(e) => Message::Failed(e),
                    })
                    .await;
            });
        });
        stream_response(&mut rx).await
    }
}

/// The response of a scan thread's messages: an error before the first chunk is an
/// ordinary error answer; after it, the stream is cut off.
async fn stream_response(rx: &mut mpsc::Receiver<Message>) -> Result<Response, ApiError> {
    let first = match rx.recv().await {
        Some(Message::Failed(e)) => return Err(e.into()),
        Some(Message::Chunk(c)) => Some(c),
        Some(Message::Done) | None => None,
    };
    let rx = std::mem::replace(rx, mpsc::channel(1).1);
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await? {
            Message::Chunk(c) => Some((Ok(c), rx)),
            Message::Failed(e) => {
                tracing::warn!("a scan stopped while streaming: {e}");
                Some((Err(std::io::Error::other(e.to_string())), rx))
            }
            Message::Done => None,
        }
    });
    let stream = futures::stream::iter(first.map(Ok::<_, std::io::Error>)).chain(rest);
    Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], Body::from_stream(stream)).into_response())
}

/// A remote table's scan: capped by the planner's estimate before it runs
/// (`remote_scan_too_large`), then streamed from PostgreSQL as Arrow IPC.
async fn remote_stream(
    state: AppState,
    caller: Caller,
    client: ClientInfo,
    body: ScanRequest,
    remote: RemoteScan,
    config: crate::query::QueryConfig,
) -> Result<Response, ApiError> {
    let RemoteScan { table_id, target, sql } = remote;
    let (source, qualified) = match target {
        Target::Postgres { source, qualified } => (source, qualified),
        Target::BigQuery { plan, .. } => {
            return bigquery_stream(state, caller, client, body, table_id, plan, sql, config).await;
        }
    };
    let (s2, q2) = (source.clone(), sql.clone());
    let (_, estimated_bytes, _) = tokio::task::spawn_blocking(move || {
        agnes_connectors::postgres::remote::estimate(&s2, &q2, (&qualified.0, &qualified.1))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(super::remote::failed)?;
    if estimated_bytes > config.scan_max_result_bytes {
        return Err(ApiError::coded(
            StatusCode::BAD_REQUEST,
            "remote_scan_too_large",
            json!({"reason": "remote_scan_too_large", "estimated_bytes": estimated_bytes,
                   "limit_bytes": config.scan_max_result_bytes,
                   "hint": "narrow --where or --select, or lower --limit, then snapshot the rest in parts"}),
        ));
    }
    let slot = state.query.acquire(&caller, "concurrent_scans").await?;
    let scan = Scan { state, caller, client, table_id, params: audit_params(&body), slot };
    scan.stream(move |writer| {
        let (rows, bytes) = agnes_connectors::postgres::remote::stream_ipc(
            &source,
            &sql,
            config.scan_timeout,
            config.scan_max_result_bytes,
            writer,
        )
        .map_err(super::remote::engine_error)?;
        Ok(Streamed { rows, bytes, billed: 0 })
    })
    .await
}

/// A remote BigQuery table's scan: refused from the dry run over the scan cap, then run
/// as a job and streamed as Arrow IPC typed by the result's schema; what BigQuery billed
/// goes to the cost ledger.
#[allow(clippy::too_many_arguments)]
async fn bigquery_stream(
    state: AppState,
    caller: Caller,
    client: ClientInfo,
    body: ScanRequest,
    table_id: String,
    plan: super::remote::BqPlan,
    sql: String,
    config: crate::query::QueryConfig,
) -> Result<Response, ApiError> {
    let (remote, dry) = (plan.remote.clone(), sql.clone());
    let scan_bytes =
        tokio::task::spawn_blocking(move || agnes_connectors::bigquery::remote::estimate(&*remote.client()?, &dry))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| super::remote::bq_failed(e, &plan))?;
    if let Some(limit_bytes) = plan.remote.scan_cap().filter(|cap| scan_bytes > *cap) {
        return Err(super::remote::bq_failed(
            agnes_connectors::remote::RemoteError::ScanTooLarge { scan_bytes, limit_bytes },
            &plan,
        ));
    }
    let slot = state.query.acquire(&caller, "concurrent_scans").await?;
    let mut run = super::remote::bq_run(&state, &caller, &plan, "scan");
    run.timeout = config.scan_timeout;
    let (tmp, limits) = (state.layout.tmp_dir(), state.config.limits.clone());
    let scan = Scan { state, caller, client, table_id, params: audit_params(&body), slot };
    scan.stream(move |writer| {
        let client = plan.remote.client().map_err(|e| super::remote::engine_error(e.into()))?;
        let done = agnes_connectors::bigquery::remote::run_ipc(
            &client,
            &sql,
            &run,
            None,
            config.scan_max_result_bytes,
            &tmp,
            &limits,
            writer,
        )
        .map_err(super::remote::engine_error)?;
        Ok(Streamed { rows: done.rows, bytes: done.bytes, billed: done.billed_bytes })
    })
    .await
}
