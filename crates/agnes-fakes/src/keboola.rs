//! A fake Keboola Storage API (`/v2/storage/…`), after Keboola's published API description
//! (apiary.apib of keboola/storage-api-php-client) and what its official clients expect:
//!
//! * every call needs `X-StorageApi-Token`; a wrong one is 401 `storage.tokenInvalid`;
//!   errors are `{"error", "code", "exceptionId", "status": "error"}`;
//! * `tokens/verify`, `buckets`, `tables?include=…`, `buckets/{id}/tables`, `tables/{id}`
//!   with `columnMetadata` (`KBC.datatype.basetype`, `KBC.datatype.length`);
//! * `tables/{id}/export-async` (JSON or form body: `columns`, `changedSince`,
//!   `changedUntil`, `limit`, `whereFilters`, `gzip`, `fileType`) answers 202 with a job
//!   that stays `processing` for a few polls of `jobs/{id}`, then `success` with
//!   `results.file.id` (or `error` with `error.message`);
//! * `files/{id}?federationToken=1`: a sliced file whose `url` is a signed link to the
//!   manifest `{"entries": [{"url": …}]}`; slices are `gs://` objects read with the
//!   `gcsCredentials` bearer token through the GCS JSON API path, or `s3://` objects read
//!   through presigned (SigV4 query) URLs carrying the session token;
//! * CSV slices have no header and quote every field (RFC 4180), gzipped each when asked;
//!   parquet slices are each a whole parquet file.
//!
//! Tables change between syncs (`upsert`, `delete`) and remember when each row changed,
//! which `changedSince` filters on, as Keboola's import timestamp does.

use crate::server::Running;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

/// Where exported files live in the fake's object store.
const FILES_BUCKET: &str = "kbc-fake-files";

/// One column: its name and Keboola base type (`STRING`, `INTEGER`, `NUMERIC`, `FLOAT`,
/// `BOOLEAN`, `DATE`, `TIMESTAMP`), with `length` such as `"12,2"` for NUMERIC.
#[derive(Debug, Clone)]
pub struct FakeColumn {
    pub name: String,
    pub basetype: String,
    pub length: Option<String>,
}

impl FakeColumn {
    pub fn new(name: &str, basetype: &str) -> FakeColumn {
        FakeColumn { name: name.into(), basetype: basetype.into(), length: None }
    }

    pub fn numeric(name: &str, length: &str) -> FakeColumn {
        FakeColumn { name: name.into(), basetype: "NUMERIC".into(), length: Some(length.into()) }
    }
}

#[derive(Debug, Clone)]
struct FakeRow {
    values: Vec<String>,
    changed: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct FakeTable {
    columns: Vec<FakeColumn>,
    primary_key: Vec<String>,
    rows: Vec<FakeRow>,
    created: DateTime<Utc>,
    last_import: DateTime<Utc>,
}

/// Which object store exported files are in, as a Keboola stack's file storage provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Gcp,
    Aws,
}

#[derive(Debug, Clone)]
struct Job {
    table_id: String,
    polls_left: u32,
    outcome: Result<u64, String>,
    params: Value,
}

#[derive(Debug, Clone)]
struct ExportFile {
    name: String,
    slices: Vec<(String, bytes::Bytes)>,
}

/// Files the next exports of a table answer with, whatever their parameters (for
/// benchmarks whose tables are too big to hold as rows).
type Prepared = HashMap<String, std::collections::VecDeque<Vec<bytes::Bytes>>>;

#[derive(Default)]
struct Faults {
    fail_next_job: Option<String>,
    /// A status the next slice downloads answer, and how many times.
    slice_failures: Option<(u16, u32)>,
    truncate_slice_once: bool,
}

struct Inner {
    token: String,
    project: String,
    base_url: String,
    provider: Provider,
    slices: usize,
    polls: u32,
    tables: BTreeMap<String, FakeTable>,
    jobs: HashMap<u64, Job>,
    files: HashMap<u64, ExportFile>,
    next_id: u64,
    faults: Faults,
    exports: Vec<Value>,
    gcs_token: String,
    session_token: String,
    prepared: Prepared,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake. Its URL is the stack URL a connection is configured with.
pub struct FakeKeboola {
    pub url: String,
    pub token: String,
    inner: Shared,
    _running: Running,
}

impl FakeKeboola {
    /// A fake stack on a free loopback port accepting `token`.
    pub fn start(token: &str) -> FakeKeboola {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.into(),
            project: "Fake Shop".into(),
            base_url: String::new(),
            provider: Provider::Gcp,
            slices: 3,
            polls: 2,
            tables: BTreeMap::new(),
            jobs: HashMap::new(),
            files: HashMap::new(),
            next_id: 1000,
            faults: Faults::default(),
            exports: Vec::new(),
            gcs_token: "ya29.fake-gcs-access-token".into(),
            session_token: "fake-aws-session-token".into(),
            prepared: Prepared::new(),
        }));
        let app = Router::new()
            .route("/v2/storage/tokens/verify", get(verify))
            .route("/v2/storage/buckets", get(buckets))
            .route("/v2/storage/buckets/{bucket}/tables", get(bucket_tables))
            .route("/v2/storage/tables", get(tables))
            .route("/v2/storage/tables/{table}", get(table_detail))
            .route("/v2/storage/tables/{table}/export-async", post(export_async))
            .route("/v2/storage/jobs/{job}", get(job))
            .route("/v2/storage/files/{file}", get(file))
            .route("/signed/{file}/manifest", get(manifest))
            .route("/storage/v1/b/{bucket}/o/{*key}", get(gcs_object))
            .route("/s3/{bucket}/{*key}", get(s3_object))
            .with_state(inner.clone());
        let running = Running::start(app);
        let url = format!("http://{}", running.addr);
        inner.lock().base_url = url.clone();
        FakeKeboola { url, token: token.into(), inner, _running: running }
    }

    /// Where a client reads `gs://` objects (instead of storage.googleapis.com).
    pub fn gcs_endpoint(&self) -> String {
        self.url.clone()
    }

    /// Where a client reads `s3://` objects path-style (instead of s3.<region>.amazonaws.com).
    pub fn s3_endpoint(&self) -> String {
        format!("{}/s3", self.url)
    }

    pub fn set_provider(&self, provider: Provider) {
        self.inner.lock().provider = provider;
    }

    /// Exports are cut into this many slices (at least one, even when empty).
    pub fn set_slices(&self, n: usize) {
        self.inner.lock().slices = n.max(1);
    }

    /// Polls of a job that answer `processing` before it ends.
    pub fn set_polls(&self, n: u32) {
        self.inner.lock().polls = n;
    }

    /// Create (or replace) a table `bucket.name` with no rows.
    pub fn create_table(&self, id: &str, columns: Vec<FakeColumn>, primary_key: &[&str]) {
        let now = Utc::now();
        self.inner.lock().tables.insert(
            id.into(),
            FakeTable {
                columns,
                primary_key: primary_key.iter().map(|s| s.to_string()).collect(),
                rows: Vec::new(),
                created: now,
                last_import: now,
            },
        );
    }

    /// Import rows (values in column order) as Keboola's incremental load does: a row whose
    /// primary key exists replaces it; each imported row is marked changed now.
    pub fn upsert(&self, id: &str, rows: Vec<Vec<String>>) {
        let now = Utc::now();
        let mut inner = self.inner.lock();
        let t = inner.tables.get_mut(id).expect("fake table exists");
        let key: Vec<usize> =
            t.primary_key.iter().map(|k| t.columns.iter().position(|c| &c.name == k).expect("key column")).collect();
        let mut at: HashMap<Vec<String>, usize> =
            t.rows.iter().enumerate().map(|(i, r)| (key.iter().map(|&k| r.values[k].clone()).collect(), i)).collect();
        for values in rows {
            assert_eq!(values.len(), t.columns.len(), "a value for every column");
            let row = FakeRow { values, changed: now };
            let k: Vec<String> = key.iter().map(|&k| row.values[k].clone()).collect();
            match at.get(&k).filter(|_| !key.is_empty()) {
                Some(&i) => t.rows[i] = row,
                None => {
                    at.insert(k, t.rows.len());
                    t.rows.push(row);
                }
            }
        }
        t.last_import = now;
    }

    /// Delete the rows whose `column` equals `value`.
    pub fn delete(&self, id: &str, column: &str, value: &str) {
        let mut inner = self.inner.lock();
        let t = inner.tables.get_mut(id).expect("fake table exists");
        let c = t.columns.iter().position(|c| c.name == column).expect("column exists");
        t.rows.retain(|r| r.values[c] != value);
        t.last_import = Utc::now();
    }

    /// The next export job ends in `error` with this message.
    pub fn fail_next_job(&self, message: &str) {
        self.inner.lock().faults.fail_next_job = Some(message.into());
    }

    /// The next `times` slice downloads answer `status`.
    pub fn fail_slices(&self, status: u16, times: u32) {
        self.inner.lock().faults.slice_failures = Some((status, times));
    }

    /// The next slice download sends half its bytes, then drops the connection.
    pub fn truncate_slice_once(&self) {
        self.inner.lock().faults.truncate_slice_once = true;
    }

    /// The next export of `id` answers with these gzipped CSV slices (no header, as Keboola
    /// writes them) instead of its rows: a benchmark's 5 million rows need not be held as
    /// strings. Each call queues one export.
    pub fn prepare_export(&self, id: &str, gzipped_csv_slices: Vec<bytes::Bytes>) {
        self.inner.lock().prepared.entry(id.into()).or_default().push_back(gzipped_csv_slices);
    }

    /// The parameters of every export asked for, in order.
    pub fn exports(&self) -> Vec<Value> {
        self.inner.lock().exports.clone()
    }

    /// The rows of a table as they are now (for checking what a client published).
    pub fn rows(&self, id: &str) -> Vec<Vec<String>> {
        self.inner.lock().tables.get(id).map(|t| t.rows.iter().map(|r| r.values.clone()).collect()).unwrap_or_default()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let id = format!("exception-{:x}", rand_id());
    (status, Json(json!({"error": message, "code": code, "exceptionId": id, "status": "error"}))).into_response()
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64);
    h.finish()
}

/// The token check every Storage API call starts with: the refusal, if any.
fn refused(state: &Shared, headers: &HeaderMap) -> Option<Response> {
    let given = headers.get("x-storageapi-token").and_then(|v| v.to_str().ok());
    (given != Some(state.lock().token.as_str()))
        .then(|| error(StatusCode::UNAUTHORIZED, "storage.tokenInvalid", "Invalid access token"))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

async fn verify(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    let buckets: BTreeMap<String, &str> = inner.tables.keys().map(|id| (bucket_of(id).to_string(), "read")).collect();
    Json(json!({
        "id": "27978", "description": "agnes read-only", "created": "2026-01-05T10:00:00+0100",
        "refreshed": "2026-01-05T10:00:00+0100", "expires": "2027-01-05T10:00:00+0100", "isExpired": false,
        "isDisabled": false, "isMasterToken": false, "canManageBuckets": false, "canManageTokens": false,
        "canReadAllFileUploads": false, "canPurgeTrash": false, "bucketPermissions": buckets,
        "owner": {"id": 5505, "name": inner.project, "type": "production", "region": "eu-central-1",
                  "defaultBackend": "snowflake", "fileStorageProvider": match inner.provider { Provider::Gcp => "gcp", Provider::Aws => "aws" }},
    }))
    .into_response()
}

fn bucket_of(table_id: &str) -> &str {
    table_id.rsplit_once('.').map(|(b, _)| b).unwrap_or(table_id)
}

fn bucket_json(id: &str, tables: &BTreeMap<String, FakeTable>) -> Value {
    let (stage, name) = id.split_once('.').unwrap_or(("in", id));
    let of: Vec<&FakeTable> = tables.iter().filter(|(t, _)| bucket_of(t) == id).map(|(_, t)| t).collect();
    json!({
        "uri": format!("/v2/storage/buckets/{id}"), "id": id, "name": name,
        "displayName": name.trim_start_matches("c-"), "stage": stage, "description": "",
        "created": stamp(of.iter().map(|t| t.created).min().unwrap_or_else(Utc::now)),
        "lastChangeDate": of.iter().map(|t| t.last_import).max().map(stamp),
        "isReadOnly": true, "dataSizeBytes": of.iter().map(|t| size_of(t)).sum::<u64>(),
        "rowsCount": of.iter().map(|t| t.rows.len()).sum::<usize>(), "backend": "snowflake",
    })
}

fn size_of(t: &FakeTable) -> u64 {
    t.rows.iter().map(|r| r.values.iter().map(|v| v.len() as u64 + 3).sum::<u64>()).sum()
}

fn table_json(id: &str, t: &FakeTable, all: &BTreeMap<String, FakeTable>, include: &str) -> Value {
    let name = id.rsplit_once('.').map(|(_, n)| n).unwrap_or(id);
    let mut v = json!({
        "uri": format!("/v2/storage/tables/{id}"), "id": id, "name": name, "displayName": name,
        "transactional": false, "primaryKey": t.primary_key, "created": stamp(t.created),
        "lastImportDate": stamp(t.last_import), "lastChangeDate": stamp(t.last_import),
        "rowsCount": t.rows.len(), "dataSizeBytes": size_of(t), "isAlias": false, "isAliasable": true,
        "isTyped": false, "tableType": "table",
    });
    let has = |what: &str| include.split(',').any(|i| i.trim() == what);
    if has("columns") {
        v["columns"] = json!(t.columns.iter().map(|c| &c.name).collect::<Vec<_>>());
    }
    if has("buckets") {
        v["bucket"] = bucket_json(bucket_of(id), all);
    }
    if has("metadata") {
        v["metadata"] = json!([{"id": "1", "key": "KBC.createdBy.component.id", "value": "keboola.ex-db-snowflake",
                                "provider": "system", "timestamp": stamp(t.created)}]);
    }
    if has("columnMetadata") {
        let meta: BTreeMap<&str, Value> = t
            .columns
            .iter()
            .map(|c| {
                let mut entries = vec![json!({"id": "2", "key": "KBC.datatype.basetype", "value": c.basetype,
                                              "provider": "keboola.ex-db-snowflake", "timestamp": stamp(t.created)})];
                if let Some(length) = &c.length {
                    entries.push(json!({"id": "3", "key": "KBC.datatype.length", "value": length,
                                        "provider": "keboola.ex-db-snowflake", "timestamp": stamp(t.created)}));
                }
                (c.name.as_str(), json!(entries))
            })
            .collect();
        // PHP serializes an empty map as a list.
        v["columnMetadata"] = if meta.is_empty() { json!([]) } else { json!(meta) };
    }
    v
}

#[derive(serde::Deserialize)]
struct Include {
    include: Option<String>,
}

async fn buckets(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    let mut ids: Vec<&str> = inner.tables.keys().map(|t| bucket_of(t)).collect();
    ids.dedup();
    Json(ids.iter().map(|b| bucket_json(b, &inner.tables)).collect::<Vec<_>>()).into_response()
}

async fn tables(State(state): State<Shared>, headers: HeaderMap, Query(q): Query<Include>) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    let include = q.include.unwrap_or_else(|| "metadata".into());
    Json(inner.tables.iter().map(|(id, t)| table_json(id, t, &inner.tables, &include)).collect::<Vec<_>>())
        .into_response()
}

async fn bucket_tables(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(bucket): Path<String>,
    Query(q): Query<Include>,
) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    if !inner.tables.keys().any(|t| bucket_of(t) == bucket) {
        return error(StatusCode::NOT_FOUND, "storage.buckets.notFound", &format!("Bucket {bucket} not found"));
    }
    let include = q.include.unwrap_or_else(|| "metadata".into());
    Json(
        inner
            .tables
            .iter()
            .filter(|(id, _)| bucket_of(id) == bucket)
            .map(|(id, t)| table_json(id, t, &inner.tables, &include))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

fn not_found_table(id: &str, tables: &BTreeMap<String, FakeTable>) -> Response {
    if tables.keys().any(|t| bucket_of(t) == bucket_of(id)) {
        error(StatusCode::NOT_FOUND, "storage.tables.notFound", &format!("The table \"{id}\" was not found."))
    } else {
        error(StatusCode::NOT_FOUND, "storage.buckets.notFound", &format!("Bucket {} not found", bucket_of(id)))
    }
}

async fn table_detail(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    match inner.tables.get(&id) {
        Some(t) => Json(table_json(&id, t, &inner.tables, "columns,buckets,metadata,columnMetadata")).into_response(),
        None => not_found_table(&id, &inner.tables),
    }
}

/// The body of an export request, JSON (as the official clients send it) or a form (as
/// older clients do, with PHP's bracket names for lists).
async fn export_params(headers: &HeaderMap, request: Request) -> Result<Value, Response> {
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .map_err(|_| error(StatusCode::BAD_REQUEST, "storage.validation", "Unreadable body"))?;
    let form =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").starts_with("application/x-www-form");
    if !form {
        if bytes.is_empty() {
            return Ok(json!({}));
        }
        return serde_json::from_slice(&bytes)
            .map_err(|e| error(StatusCode::BAD_REQUEST, "storage.validation", &format!("Invalid JSON: {e}")));
    }
    let mut out = serde_json::Map::new();
    for pair in bytes.split(|b| *b == b'&') {
        let text = String::from_utf8_lossy(pair).replace('+', " ");
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy().into_owned();
        let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
        out.insert(k, Value::String(v));
    }
    Ok(Value::Object(out))
}

fn changed_bound(v: &Value) -> Result<Option<DateTime<Utc>>, String> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => s.clone(),
        other => return Err(format!("invalid value {other}")),
    };
    if let Ok(secs) = text.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0).map(Some).ok_or_else(|| format!("invalid timestamp {text}"));
    }
    if let Some(days) =
        text.strip_prefix('-').and_then(|r| r.strip_suffix(" days")).and_then(|d| d.trim().parse::<i64>().ok())
    {
        return Ok(Some(Utc::now() - chrono::Duration::days(days)));
    }
    DateTime::parse_from_rfc3339(&text)
        .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%z"))
        .map(|d| Some(d.with_timezone(&Utc)))
        .map_err(|_| format!("invalid date {text}"))
}

fn compare(op: &str, value: &str, wanted: &[String], numeric: bool) -> Result<bool, String> {
    let cmp = |w: &String| -> std::cmp::Ordering {
        if numeric {
            let (a, b) = (value.parse::<f64>().unwrap_or(f64::NAN), w.parse::<f64>().unwrap_or(f64::NAN));
            a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Less)
        } else {
            value.cmp(w.as_str())
        }
    };
    use std::cmp::Ordering::*;
    Ok(match op {
        "eq" => wanted.iter().any(|w| cmp(w) == Equal),
        "ne" => wanted.iter().all(|w| cmp(w) != Equal),
        "gt" => wanted.iter().any(|w| cmp(w) == Greater),
        "ge" => wanted.iter().any(|w| cmp(w) != Less),
        "lt" => wanted.iter().any(|w| cmp(w) == Less),
        "le" => wanted.iter().any(|w| cmp(w) != Greater),
        other => return Err(format!("Invalid operator \"{other}\"")),
    })
}

/// The exported columns and rows.
type Export = (Vec<String>, Vec<Vec<String>>);
/// A validation error's code and message.
type Invalid = (String, String);

fn run_export(t: &FakeTable, params: &Value) -> Result<Export, Invalid> {
    let invalid = |m: String| ("storage.tables.validation.invalidParams".to_string(), m);
    let columns: Vec<String> = match params.get("columns") {
        Some(Value::String(s)) if !s.is_empty() => s.split(',').map(|c| c.trim().to_string()).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(|c| c.as_str().map(String::from)).collect(),
        _ => t.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let index = |name: &str| -> Result<usize, Invalid> {
        t.columns.iter().position(|c| c.name == name).ok_or_else(|| {
            (
                "storage.tables.validation.columnNotExists".to_string(),
                format!("Column \"{name}\" not found in the table"),
            )
        })
    };
    let picked = columns.iter().map(|c| index(c)).collect::<Result<Vec<_>, _>>()?;
    let since = changed_bound(params.get("changedSince").unwrap_or(&Value::Null)).map_err(invalid)?;
    let until = changed_bound(params.get("changedUntil").unwrap_or(&Value::Null)).map_err(invalid)?;
    let filters = params.get("whereFilters").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = Vec::new();
    'rows: for r in &t.rows {
        if since.is_some_and(|s| r.changed < s) || until.is_some_and(|u| r.changed >= u) {
            continue;
        }
        for f in &filters {
            let column = f.get("column").and_then(Value::as_str).unwrap_or_default();
            let i = index(column)?;
            let op = f.get("operator").and_then(Value::as_str).unwrap_or("eq");
            let values: Vec<String> = f
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string())).collect())
                .unwrap_or_default();
            if values.is_empty() {
                return Err(invalid(format!("whereFilters on \"{column}\": values must not be empty")));
            }
            let numeric = f.get("dataType").and_then(Value::as_str).is_some();
            if !compare(op, &r.values[i], &values, numeric).map_err(invalid)? {
                continue 'rows;
            }
        }
        out.push(picked.iter().map(|&i| r.values[i].clone()).collect());
        if let Some(limit) = params.get("limit").and_then(|l| l.as_u64().or_else(|| l.as_str()?.parse().ok())) {
            if out.len() as u64 >= limit {
                break;
            }
        }
    }
    Ok((columns, out))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

fn csv_slice(rows: &[Vec<String>], gzip: bool) -> Vec<u8> {
    let mut text = String::new();
    for r in rows {
        let fields: Vec<String> = r.iter().map(|v| format!("\"{}\"", v.replace('"', "\"\""))).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    if !gzip {
        return text.into_bytes();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}

fn parquet_slice(columns: &[String], rows: &[Vec<String>]) -> Vec<u8> {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].as_str()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("a batch of strings");
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).expect("parquet writer");
    w.write(&batch).expect("write parquet");
    w.close().expect("close parquet");
    out
}

async fn export_async(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let params = match export_params(&headers, request).await {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut inner = state.lock();
    inner.exports.push(json!({"table": id, "params": params}));
    let Some(table) = inner.tables.get(&id).cloned() else { return not_found_table(&id, &inner.tables) };
    let file_type = params.get("fileType").and_then(Value::as_str).unwrap_or("csv").to_string();
    if file_type != "csv" && file_type != "parquet" {
        return error(StatusCode::BAD_REQUEST, "storage.tables.validation.invalidFileType", "Invalid fileType");
    }
    let (columns, rows) = match run_export(&table, &params) {
        Ok(r) => r,
        Err((code, message)) => return error(StatusCode::BAD_REQUEST, &code, &message),
    };
    inner.next_id += 1;
    let job_id = inner.next_id;
    let outcome = match inner.faults.fail_next_job.take() {
        Some(message) => Err(message),
        None => {
            inner.next_id += 1;
            let file_id = inner.next_id;
            let gzip = truthy(params.get("gzip")) && file_type == "csv";
            if let Some(slices) = inner.prepared.get_mut(&id).and_then(|q| q.pop_front()) {
                let slices = slices
                    .into_iter()
                    .enumerate()
                    .map(|(n, body)| (format!("exports/{file_id}/{file_id}.csv.gz{n:04}_part_00"), body))
                    .collect();
                inner.files.insert(file_id, ExportFile { name: format!("{id}.csv.gz"), slices });
                let job =
                    Job { table_id: id.clone(), polls_left: inner.polls, outcome: Ok(file_id), params: params.clone() };
                inner.jobs.insert(job_id, job);
                return (StatusCode::ACCEPTED, Json(job_json(&inner, job_id))).into_response();
            }
            let per = rows.len().div_ceil(inner.slices).max(1);
            let chunks: Vec<&[Vec<String>]> = if rows.is_empty() { vec![&[][..]] } else { rows.chunks(per).collect() };
            let ext = if file_type == "parquet" {
                "parquet"
            } else if gzip {
                "csv.gz"
            } else {
                "csv"
            };
            let slices = chunks
                .iter()
                .enumerate()
                .map(|(n, chunk)| {
                    let body =
                        if file_type == "parquet" { parquet_slice(&columns, chunk) } else { csv_slice(chunk, gzip) };
                    (format!("exports/{file_id}/{file_id}.{ext}{n:04}_part_00"), bytes::Bytes::from(body))
                })
                .collect();
            inner.files.insert(file_id, ExportFile { name: format!("{}.{ext}", id), slices });
            Ok(file_id)
        }
    };
    let job = Job { table_id: id.clone(), polls_left: inner.polls, outcome, params: params.clone() };
    inner.jobs.insert(job_id, job);
    let body = job_json(&inner, job_id);
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

fn job_json(inner: &Inner, id: u64) -> Value {
    let job = &inner.jobs[&id];
    let done = job.polls_left == 0;
    let (status, results, error) = match (&job.outcome, done) {
        (_, false) => (if job.polls_left >= inner.polls { "waiting" } else { "processing" }, Value::Null, Value::Null),
        (Ok(file), true) => ("success", json!({"file": {"id": file}, "cacheHit": false}), Value::Null),
        (Err(m), true) => (
            "error",
            Value::Null,
            json!({"code": "storage.tables.exportFailed", "message": m, "exceptionId": format!("job-{id}")}),
        ),
    };
    json!({
        "id": id, "status": status, "url": format!("{}/v2/storage/jobs/{id}", inner.base_url),
        "tableId": job.table_id, "operationName": "tableExport",
        "operationParams": {"export": job.params, "queue": "main"},
        "createdTime": stamp(Utc::now()), "startTime": null, "endTime": if done { json!(stamp(Utc::now())) } else { Value::Null },
        "runId": null, "results": results, "error": error, "creatorToken": {"id": "27978", "description": "agnes read-only"},
    })
}

async fn job(State(state): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let mut inner = state.lock();
    let Some(id) = id.parse::<u64>().ok().filter(|id| inner.jobs.contains_key(id)) else {
        return error(StatusCode::NOT_FOUND, "storage.jobs.notFound", &format!("Job {id} not found"));
    };
    let body = job_json(&inner, id);
    if let Some(j) = inner.jobs.get_mut(&id) {
        j.polls_left = j.polls_left.saturating_sub(1);
    }
    Json(body).into_response()
}

/// The signature a signed link carries: anything without it is refused, as an expired or
/// forged signed URL is.
fn signature(file: u64) -> String {
    format!("fake-signature-{:x}", file.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn file(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(e) = refused(&state, &headers) {
        return e;
    }
    let inner = state.lock();
    let Some((id, f)) = id.parse::<u64>().ok().and_then(|id| inner.files.get(&id).map(|f| (id, f))) else {
        return error(StatusCode::NOT_FOUND, "storage.files.notFound", &format!("File {id} not found"));
    };
    let federated = q.get("federationToken").is_some_and(|v| v == "1" || v == "true");
    let key = format!("exports/{id}/{id}.");
    let mut v = json!({
        "id": id, "created": stamp(Utc::now()), "name": f.name, "isSliced": true, "isEncrypted": true,
        "isPublic": false, "sizeBytes": f.slices.iter().map(|(_, b)| b.len()).sum::<usize>(), "tags": ["table-export"],
        "maxAgeDays": 15, "url": format!("{}/signed/{id}/manifest?signature={}", inner.base_url, signature(id)),
    });
    match inner.provider {
        Provider::Gcp => {
            v["provider"] = json!("gcp");
            v["region"] = json!("europe-west3");
            v["gcsPath"] = json!({"bucket": FILES_BUCKET, "key": key});
            if federated {
                v["gcsCredentials"] = json!({"access_token": inner.gcs_token, "expires_in": 3599,
                                             "token_type": "Bearer", "projectId": "kbc-fake"});
            }
        }
        Provider::Aws => {
            v["provider"] = json!("aws");
            v["region"] = json!("eu-central-1");
            v["s3Path"] = json!({"bucket": FILES_BUCKET, "key": key});
            if federated {
                v["credentials"] = json!({"AccessKeyId": "ASIAFAKEKEY", "SecretAccessKey": "fake-secret",
                                          "SessionToken": inner.session_token, "Expiration": "2030-01-01T00:00:00+00:00"});
            }
        }
    }
    Json(v).into_response()
}

async fn manifest(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = state.lock();
    if q.get("signature") != Some(&signature(id)) {
        return (
            StatusCode::FORBIDDEN,
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )
            .into_response();
    }
    let Some(f) = inner.files.get(&id) else { return StatusCode::NOT_FOUND.into_response() };
    let scheme = match inner.provider {
        Provider::Gcp => "gs",
        Provider::Aws => "s3",
    };
    let entries: Vec<Value> =
        f.slices.iter().map(|(key, _)| json!({"url": format!("{scheme}://{FILES_BUCKET}/{key}")})).collect();
    Json(json!({ "entries": entries })).into_response()
}

fn slice(state: &Shared, bucket: &str, key: &str) -> Response {
    let mut inner = state.lock();
    if bucket != FILES_BUCKET {
        return StatusCode::NOT_FOUND.into_response();
    }
    let found = inner.files.values().flat_map(|f| f.slices.iter()).find(|(k, _)| k == key).map(|(_, b)| b.clone());
    let Some(body) = found else { return StatusCode::NOT_FOUND.into_response() };
    if let Some((status, left)) = inner.faults.slice_failures.take() {
        if left > 1 {
            inner.faults.slice_failures = Some((status, left - 1));
        }
        return (StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "backend error")
            .into_response();
    }
    if std::mem::take(&mut inner.faults.truncate_slice_once) {
        // Half the bytes, then the connection breaks: the body stream fails.
        let half = body.slice(..body.len() / 2);
        let stream = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(half),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")),
        ]);
        return Response::builder()
            .header("content-length", body.len())
            .body(Body::from_stream(stream))
            .expect("a response");
    }
    Response::builder().header("content-length", body.len()).body(Body::from(body)).expect("a response")
}

async fn gcs_object(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let wanted = format!("Bearer {}", state.lock().gcs_token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(wanted.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": 401, "message": "Invalid Credentials"}})))
            .into_response();
    }
    if q.get("alt").map(String::as_str) != Some("media") {
        return (StatusCode::BAD_REQUEST, "alt=media expected").into_response();
    }
    let key = percent_encoding::percent_decode_str(&key).decode_utf8_lossy().into_owned();
    slice(&state, &bucket, &key)
}

/// A presigned GET (SigV4 in the query) with the federation credentials: the access key,
/// the session token and a signature must be there.
async fn s3_object(
    State(state): State<Shared>,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let session = state.lock().session_token.clone();
    let ok = q.get("X-Amz-Algorithm").map(String::as_str) == Some("AWS4-HMAC-SHA256")
        && q.get("X-Amz-Credential").is_some_and(|c| c.starts_with("ASIAFAKEKEY/"))
        && q.get("X-Amz-Security-Token") == Some(&session)
        && q.get("X-Amz-Signature").is_some_and(|s| s.len() == 64);
    if !ok {
        return (StatusCode::FORBIDDEN, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")
            .into_response();
    }
    slice(&state, &bucket, &key)
}
