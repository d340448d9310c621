//! A fake BigQuery REST API (v2), after Google's public API reference, signed in to
//! through the fake Google accounts of [`crate::google`] (token endpoint, metadata
//! server, key files):
//!
//! * `datasets.list`, `tables.list` (paged by `maxResults`/`pageToken`) and `tables.get`
//!   with schema, kind, `numRows`/`numBytes` as strings;
//! * `jobs.query`, in the billing project only (elsewhere 403 `accessDenied`): a dry run
//!   says the bytes the referenced tables hold and touches no data; a real run is refused
//!   over `maximumBytesBilled` (400 `bytesBilledLimitExceeded`), else runs in DuckDB (the
//!   backtick paths rewritten) and answers `jobComplete: false` for a few polls of
//!   `getQueryResults`, then pages of rows in BigQuery's encoding; `jobs.cancel` stops it.
//!
//! Every API call needs a bearer token this fake issued for a BigQuery (or cloud-platform)
//! scope; errors have Google's shape
//! (`{"error": {"code", "message", "status", "errors": [{"message", "domain", "reason"}]}}`).

use crate::google::{google_error, paged, Accounts, PageSize};
use crate::server::Running;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// BigQuery lists pages of 50 unless asked for more.
const PAGES: PageSize = PageSize { default: 50, max: 10_000 };

/// One table, view or other entity of a dataset.
#[derive(Debug, Clone, Default)]
pub struct FakeBqTable {
    /// `TABLE`, `VIEW`, `MATERIALIZED_VIEW`, `EXTERNAL`…
    pub kind: String,
    /// The schema's `fields`, as BigQuery writes them.
    pub fields: Value,
    pub rows: u64,
    pub bytes: u64,
    /// Its rows, as a DuckDB SELECT the fake runs once (tables that queries read).
    pub data: Option<String>,
    /// The column of its daily time partitioning, if partitioned.
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
}

/// A query job: its result, served page by page once it has been polled enough.
struct Job {
    fields: Value,
    rows: Vec<Value>,
    bytes: u64,
    polls_left: u32,
    cancelled: bool,
    labels: Value,
}

struct Inner {
    project: String,
    billing: String,
    accounts: Accounts,
    tables: BTreeMap<(String, String), FakeBqTable>,
    /// BigQuery API calls answered (not token or metadata requests).
    api_calls: std::sync::atomic::AtomicUsize,
    dry_runs: Vec<String>,
    /// Where table data lives and queries run (schema = dataset).
    duck: agnes_engine::duckdb::Connection,
    jobs: HashMap<String, Job>,
    polls: u32,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeBigQuery {
    pub url: String,
    /// A service-account key file whose `token_uri` is this fake.
    pub key_file: std::path::PathBuf,
    /// Application-default user credentials whose `token_uri` is this fake.
    pub adc_file: std::path::PathBuf,
    inner: Shared,
    _dir: tempfile::TempDir,
    _running: Running,
}

impl FakeBigQuery {
    /// A fake whose data project is `project` and billing project `billing`.
    pub fn start(project: &str, billing: &str) -> FakeBigQuery {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let accounts = Accounts::new(&format!("agnes-reader@{project}.iam.gserviceaccount.com"), dir.path());
        let inner = Arc::new(Mutex::new(Inner {
            project: project.into(),
            billing: billing.into(),
            accounts: accounts.clone(),
            tables: BTreeMap::new(),
            api_calls: Default::default(),
            dry_runs: Vec::new(),
            duck: agnes_engine::duck::open_in_memory().expect("an in-memory DuckDB"),
            jobs: HashMap::new(),
            polls: 1,
        }));
        let app = Router::new()
            .route("/bigquery/v2/projects/{project}/datasets", get(datasets))
            .route("/bigquery/v2/projects/{project}/datasets/{dataset}/tables", get(tables))
            .route("/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}", get(table))
            .route("/bigquery/v2/projects/{project}/queries", post(query))
            .route("/bigquery/v2/projects/{project}/queries/{job}", get(query_results))
            .route("/bigquery/v2/projects/{project}/jobs/{job}", get(job))
            .route("/bigquery/v2/projects/{project}/jobs/{job}/cancel", post(cancel))
            .with_state(inner.clone())
            .merge(accounts.routes());
        let running = Running::start(app);
        let url = format!("http://{}", running.addr);
        let (key_file, adc_file) = accounts.listening(&url, dir.path(), project);
        FakeBigQuery { url, key_file, adc_file, inner, _dir: dir, _running: running }
    }

    /// Add a table (or view…) to `dataset` of the data project; its `data`, if any, is
    /// loaded for queries to read.
    pub fn add_table(&self, dataset: &str, name: &str, table: FakeBqTable) {
        let mut inner = self.inner.lock();
        if let Some(sql) = &table.data {
            inner
                .duck
                .execute_batch(&format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{dataset}\"; CREATE OR REPLACE TABLE \"{dataset}\".\"{name}\" AS {sql}"
                ))
                .expect("the fake table's data loads");
        }
        inner.tables.insert((dataset.into(), name.into()), table);
    }

    /// Polls of `getQueryResults` that answer `jobComplete: false` before a job is done.
    pub fn set_polls(&self, n: u32) {
        self.inner.lock().polls = n;
    }

    /// The jobs that ran (not dry runs) in the order they started, each with its labels,
    /// and whether it was cancelled.
    pub fn jobs(&self) -> Vec<(Value, bool)> {
        let inner = self.inner.lock();
        let mut jobs: Vec<(&String, &Job)> = inner.jobs.iter().collect();
        jobs.sort_by_key(|(id, _)| id.trim_start_matches("job_fake_").parse::<u64>().unwrap_or(0));
        jobs.into_iter().map(|(_, j)| (j.labels.clone(), j.cancelled)).collect()
    }

    /// How many BigQuery API calls were made.
    pub fn requests(&self) -> usize {
        self.inner.lock().api_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many access tokens were asked for.
    pub fn token_requests(&self) -> usize {
        self.inner.lock().accounts.token_requests()
    }

    /// The SQL of every dry run, in order.
    pub fn dry_runs(&self) -> Vec<String> {
        self.inner.lock().dry_runs.clone()
    }

    /// The host:port to give `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

/// Counts the call, and refuses it without a token this fake issued for BigQuery.
fn refused(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    inner.api_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match inner.accounts.bearer(headers) {
        Ok(grant) if grant.allows(&["https://www.googleapis.com/auth/bigquery"]) => None,
        Ok(_) => Some(google_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        )),
        Err(r) => Some(*r),
    }
}

fn not_found(what: &str) -> Response {
    google_error(StatusCode::NOT_FOUND, "notFound", &format!("Not found: {what}"))
}

async fn datasets(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    if project != inner.project {
        return not_found(&format!("Project {project}"));
    }
    let mut names: Vec<&String> = inner.tables.keys().map(|(d, _)| d).collect();
    names.dedup();
    let all = names
        .iter()
        .map(|d| {
            json!({"kind": "bigquery#dataset", "id": format!("{project}:{d}"),
                         "datasetReference": {"projectId": project, "datasetId": d}, "location": "EU"})
        })
        .collect();
    paged(json!({"kind": "bigquery#datasetList"}), "datasets", all, &q, PAGES)
}

async fn tables(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, dataset)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let of: Vec<(&String, &FakeBqTable)> =
        inner.tables.iter().filter(|((d, _), _)| *d == dataset).map(|((_, n), t)| (n, t)).collect();
    if project != inner.project || of.is_empty() {
        return not_found(&format!("Dataset {project}:{dataset}"));
    }
    let total = of.len();
    let all = of
        .iter()
        .map(|(n, t)| {
            json!({"kind": "bigquery#table", "id": format!("{project}:{dataset}.{n}"), "type": t.kind,
                   "tableReference": {"projectId": project, "datasetId": dataset, "tableId": n}})
        })
        .collect();
    paged(json!({"kind": "bigquery#tableList", "totalItems": total}), "tables", all, &q, PAGES)
}

async fn table(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, dataset, name)): Path<(String, String, String)>,
) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let Some(t) = inner.tables.get(&(dataset.clone(), name.clone())).filter(|_| project == inner.project) else {
        return not_found(&format!("Table {project}:{dataset}.{name}"));
    };
    let mut body = json!({
        "kind": "bigquery#table", "id": format!("{project}:{dataset}.{name}"), "type": t.kind,
        "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
        "schema": {"fields": t.fields}, "numRows": t.rows.to_string(), "numBytes": t.bytes.to_string(),
        "location": "EU", "creationTime": "1735689600000",
    });
    if let Some(field) = &t.partition_by {
        body["timePartitioning"] = json!({"type": "DAY", "field": field});
    }
    if !t.clustered_by.is_empty() {
        body["clustering"] = json!({"fields": t.clustered_by});
    }
    Json(body).into_response()
}

/// The `project.dataset.table` paths a query names in backticks.
fn referenced(sql: &str) -> Vec<(String, String, String)> {
    sql.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|path| {
            let mut parts = path.splitn(3, '.');
            Some((parts.next()?.to_string(), parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

async fn query(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    if project != inner.billing {
        return google_error(
            StatusCode::FORBIDDEN,
            "accessDenied",
            &format!("Access Denied: Project {project}: User does not have bigquery.jobs.create permission in project {project}."),
        );
    }
    let sql = body.get("query").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut bytes = 0u64;
    let mut rewritten = sql.clone();
    for (p, d, t) in referenced(&sql) {
        match inner.tables.get(&(d.clone(), t.clone())).filter(|_| p == inner.project) {
            Some(table) => bytes += table.bytes,
            None => return not_found(&format!("Table {p}:{d}.{t} was not found in location EU")),
        }
        rewritten = rewritten.replace(&format!("`{p}.{d}.{t}`"), &format!("\"{d}\".\"{t}\""));
    }
    if body.get("dryRun").and_then(Value::as_bool) == Some(true) {
        inner.dry_runs.push(sql);
        return Json(json!({
            "kind": "bigquery#queryResponse", "jobReference": {"projectId": project, "location": "EU"},
            "totalBytesProcessed": bytes.to_string(), "jobComplete": true, "cacheHit": false,
        }))
        .into_response();
    }
    let cap = body.get("maximumBytesBilled").and_then(|v| v.as_str()?.parse::<u64>().ok());
    if let Some(cap) = cap.filter(|c| bytes > *c) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "bytesBilledLimitExceeded",
            &format!("Query exceeded limit for bytes billed: {cap}. {bytes} or higher required."),
        );
    }
    let int64_timestamps = body.pointer("/formatOptions/useInt64Timestamp").and_then(Value::as_bool) == Some(true);
    let (fields, rows) = match run(&inner.duck, &rewritten, int64_timestamps) {
        Ok(r) => r,
        Err(e) => return google_error(StatusCode::BAD_REQUEST, "invalidQuery", &e),
    };
    let id = format!("job_fake_{}", inner.jobs.len() + 1);
    let polls_left = inner.polls;
    let labels = body.get("labels").cloned().unwrap_or(json!({}));
    inner.jobs.insert(id.clone(), Job { fields, rows, bytes, polls_left, cancelled: false, labels });
    let max = body.get("maxResults").and_then(Value::as_u64);
    results(&mut inner, &project, &id, 0, max)
}

/// A job's state as `jobs.query` and `getQueryResults` answer it: not complete while it
/// has polls left, then one page of rows from `from`.
fn results(inner: &mut Inner, project: &str, id: &str, from: usize, max: Option<u64>) -> Response {
    let Some(job) = inner.jobs.get_mut(id) else { return not_found(&format!("Job {project}:EU.{id}")) };
    if job.cancelled {
        return google_error(
            StatusCode::BAD_REQUEST,
            "stopped",
            "Job execution was cancelled: User requested cancellation",
        );
    }
    let reference = json!({"projectId": project, "jobId": id, "location": "EU"});
    if job.polls_left > 0 {
        job.polls_left -= 1;
        return Json(
            json!({"kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "jobComplete": false}),
        )
        .into_response();
    }
    let size = max.unwrap_or(10_000).max(1) as usize;
    let page: Vec<Value> = job.rows.iter().skip(from).take(size).cloned().collect();
    let mut body = json!({
        "kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "jobComplete": true,
        "schema": {"fields": job.fields}, "rows": page, "totalRows": job.rows.len().to_string(),
        "totalBytesProcessed": job.bytes.to_string(), "cacheHit": false,
    });
    if from + size < job.rows.len() {
        body["pageToken"] = json!((from + size).to_string());
    }
    Json(body).into_response()
}

async fn query_results(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let from = q.get("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let max = q.get("maxResults").and_then(|m| m.parse().ok());
    results(&mut inner, &project, &id, from, max)
}

/// What BigQuery bills for a query scanning `bytes`: rounded up to a whole MiB, at least
/// 10 MiB when it scans anything.
fn billed(bytes: u64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    bytes.div_ceil(1 << 20).max(10) << 20
}

/// `jobs.get`: the job's state, labels and statistics.
async fn job(State(state): State<Shared>, headers: HeaderMap, Path((project, id)): Path<(String, String)>) -> Response {
    let inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let Some(job) = inner.jobs.get(&id).filter(|_| project == inner.billing) else {
        return not_found(&format!("Job {project}:EU.{id}"));
    };
    let state = if job.polls_left > 0 { "RUNNING" } else { "DONE" };
    let mut body = json!({
        "kind": "bigquery#job", "id": format!("{project}:EU.{id}"),
        "jobReference": {"projectId": project, "jobId": id, "location": "EU"},
        "configuration": {"jobType": "QUERY", "labels": job.labels},
        "status": {"state": state},
        "statistics": {"query": {"totalBytesProcessed": job.bytes.to_string(),
                                 "totalBytesBilled": billed(job.bytes).to_string()}},
    });
    if job.cancelled {
        body["status"]["errorResult"] =
            json!({"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"});
    }
    Json(body).into_response()
}

async fn cancel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let mut inner = state.lock();
    if let Some(r) = refused(&inner, &headers) {
        return r;
    }
    let Some(job) = inner.jobs.get_mut(&id) else { return not_found(&format!("Job {project}:EU.{id}")) };
    job.cancelled = true;
    Json(json!({"kind": "bigquery#jobCancelResponse",
                "job": {"jobReference": {"projectId": project, "jobId": id}, "status": {"state": "DONE"}}}))
    .into_response()
}

/// Run `sql` in the fake's DuckDB: the schema as BigQuery describes it, and the rows as
/// BigQuery encodes them (`{"f": [{"v": …}]}`, numbers and times as strings).
fn run(
    duck: &agnes_engine::duckdb::Connection,
    sql: &str,
    int64_timestamps: bool,
) -> Result<(Value, Vec<Value>), String> {
    let types: Vec<(String, String)> = {
        let mut stmt = duck.prepare(&format!("DESCRIBE {sql}")).map_err(|e| e.to_string())?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let fields: Vec<Value> = types
        .iter()
        .map(|(name, ty)| {
            let (base, mode) = match ty.strip_suffix("[]") {
                Some(inner) => (inner, "REPEATED"),
                None => (ty.as_str(), "NULLABLE"),
            };
            Ok(json!({"name": name, "type": bq_type(base)?, "mode": mode}))
        })
        .collect::<Result<_, String>>()?;
    // TIMESTAMP (an instant) is written as epoch time; DATETIME (a civil time) as text.
    let instants: Vec<bool> = fields.iter().map(|f| f["type"] == "TIMESTAMP").collect();
    let mut stmt = duck.prepare(sql).map_err(|e| e.to_string())?;
    let n = types.len();
    let mut out = Vec::new();
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        let cells = (0..n)
            .map(|i| {
                r.get::<_, agnes_engine::duckdb::types::Value>(i)
                    .map(|v| json!({"v": encode(&v, instants[i], int64_timestamps)}))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        out.push(json!({"f": cells}));
    }
    Ok((json!(fields), out))
}

fn bq_type(duckdb: &str) -> Result<&'static str, String> {
    Ok(match duckdb {
        // DuckDB widens sums of BIGINT to HUGEINT; BigQuery sums INT64 into INT64.
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" => "INTEGER",
        "FLOAT" | "DOUBLE" => "FLOAT",
        "BOOLEAN" => "BOOLEAN",
        "VARCHAR" => "STRING",
        "BLOB" => "BYTES",
        "DATE" => "DATE",
        "TIME" => "TIME",
        "TIMESTAMP" => "DATETIME",
        "TIMESTAMP WITH TIME ZONE" => "TIMESTAMP",
        t if t.starts_with("DECIMAL") => "NUMERIC",
        other => return Err(format!("this fake does not serve {other} results")),
    })
}

/// One value as BigQuery's REST API writes it.
fn encode(v: &agnes_engine::duckdb::types::Value, instant: bool, int64_timestamps: bool) -> Value {
    use agnes_engine::duckdb::types::{TimeUnit, Value as V};
    let micros = |unit: &TimeUnit, t: i64| match unit {
        TimeUnit::Second => t * 1_000_000,
        TimeUnit::Millisecond => t * 1_000,
        TimeUnit::Microsecond => t,
        TimeUnit::Nanosecond => t / 1_000,
    };
    match v {
        V::Null => Value::Null,
        V::Boolean(b) => json!(b.to_string()),
        V::List(items) => {
            json!(items.iter().map(|i| json!({"v": encode(i, instant, int64_timestamps)})).collect::<Vec<_>>())
        }
        V::Blob(b) => {
            use base64::Engine;
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
        V::Timestamp(unit, t) if instant && int64_timestamps => json!(micros(unit, *t).to_string()),
        V::Timestamp(unit, t) if instant => json!(format!("{:.6E}", micros(unit, *t) as f64 / 1e6)),
        other => json!(agnes_engine::values::to_text(other)),
    }
}
