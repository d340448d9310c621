//! A native client of BigQuery's REST API (v2): datasets and tables of the data project,
//! a table's schema, kind, partitioning, clustering and size, and dry runs (free: they
//! plan a query and say how many bytes it would scan, and run nothing) billed to the
//! billing project.

use super::config::BigQuerySource;
use crate::google::{self, auth::TokenSource, ApiFailure};
use crate::ConnectorError;
use serde_json::{json, Value};

/// A table as `tables.get` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BqTable {
    /// `project.dataset.table`.
    pub fqn: String,
    pub dataset: String,
    pub name: String,
    /// `TABLE`, `VIEW`, `MATERIALIZED_VIEW`, `EXTERNAL`, `SNAPSHOT`…
    pub kind: String,
    /// Name and DuckDB type of each top-level column.
    pub columns: Vec<(String, String)>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    /// The column the table is partitioned on (`_PARTITIONTIME` for ingestion time).
    pub partition_by: Option<String>,
    pub clustered_by: Vec<String>,
}

impl BqTable {
    /// The entity type as INFORMATION_SCHEMA names it (spec §8.2), for the kinds agnes
    /// serves; `None` for the others.
    pub fn entity_type(&self) -> Option<&'static str> {
        match self.kind.as_str() {
            "TABLE" => Some("BASE TABLE"),
            "VIEW" => Some("VIEW"),
            "MATERIALIZED_VIEW" => Some("MATERIALIZED_VIEW"),
            _ => None,
        }
    }
}

/// How a BigQuery call failed: Google's status, reason and message, so a caller can tell
/// its own mistake (400 `invalidQuery`) from the source's failure.
#[derive(Debug)]
pub enum BqFailure {
    /// Google answered with an error.
    Api {
        status: u16,
        reason: String,
        message: String,
    },
    /// A job still running at its time limit, cancelled.
    Timeout(std::time::Duration),
    Other(ConnectorError),
}

impl std::fmt::Display for BqFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BqFailure::Api { status, reason, message } => write!(f, "BigQuery answered {status} ({reason}): {message}"),
            BqFailure::Timeout(t) => {
                write!(f, "the BigQuery job did not finish within {} s and was cancelled", t.as_secs())
            }
            BqFailure::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<ApiFailure> for BqFailure {
    fn from(e: ApiFailure) -> BqFailure {
        match e {
            ApiFailure::Api { status, reason, message } => BqFailure::Api { status, reason, message },
            ApiFailure::Other(e) => BqFailure::Other(e),
        }
    }
}

impl From<BqFailure> for ConnectorError {
    fn from(e: BqFailure) -> ConnectorError {
        match e {
            BqFailure::Other(e) => e,
            other => ConnectorError::Source(other.to_string()),
        }
    }
}

impl From<ConnectorError> for BqFailure {
    fn from(e: ConnectorError) -> BqFailure {
        BqFailure::Other(e)
    }
}

/// What a finished query job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobDone {
    /// Rows handed to the page callback.
    pub rows: u64,
    /// Bytes BigQuery billed for the job (`statistics.query.totalBytesBilled`).
    pub billed_bytes: u64,
}

/// The DuckDB type of a BigQuery schema field: exact decimals, time zones kept, REPEATED
/// as LIST and RECORD as STRUCT. BIGNUMERIC (76 digits) does not fit DuckDB's DECIMAL and
/// is text; GEOGRAPHY is WKT text.
pub fn duckdb_type(field: &Value) -> String {
    let base = match field.get("type").and_then(Value::as_str).unwrap_or("STRING") {
        "INTEGER" | "INT64" => "BIGINT".to_string(),
        "FLOAT" | "FLOAT64" => "DOUBLE".into(),
        "NUMERIC" => "DECIMAL(38,9)".into(),
        "BOOLEAN" | "BOOL" => "BOOLEAN".into(),
        "BYTES" => "BLOB".into(),
        "DATE" => "DATE".into(),
        "DATETIME" => "TIMESTAMP".into(),
        "TIMESTAMP" => "TIMESTAMP WITH TIME ZONE".into(),
        "TIME" => "TIME".into(),
        "RECORD" | "STRUCT" => {
            let inner: Vec<String> = field
                .get("fields")
                .and_then(Value::as_array)
                .map(|fs| {
                    fs.iter()
                        .map(|f| {
                            let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
                            format!("{} {}", agnes_core::ident::quote_ident(name), duckdb_type(f))
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("STRUCT({})", inner.join(", "))
        }
        // STRING, BIGNUMERIC, GEOGRAPHY, JSON, INTERVAL and anything newer.
        _ => "VARCHAR".into(),
    };
    if field.get("mode").and_then(Value::as_str) == Some("REPEATED") {
        format!("{base}[]")
    } else {
        base
    }
}

const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

pub struct BqClient {
    http: reqwest::blocking::Client,
    tokens: TokenSource,
    api: String,
    project: String,
    billing: String,
    location: Option<String>,
}

fn transport(e: reqwest::Error) -> BqFailure {
    BqFailure::Other(ConnectorError::Source(format!("cannot reach BigQuery: {}", crate::http_error(e))))
}

fn number(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
}

impl BqClient {
    pub fn connect(source: &BigQuerySource) -> Result<BqClient, ConnectorError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .user_agent(concat!("agnes/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::from(transport(e)))?;
        let tokens = TokenSource::discover(&http, source.credentials_env(), SCOPE)?;
        Ok(BqClient {
            http,
            tokens,
            api: format!("{}/bigquery/v2", source.api_endpoint()),
            project: source.project()?,
            billing: source.billing_project()?,
            location: source.config.location.clone(),
        })
    }

    pub fn principal(&self) -> String {
        self.tokens.principal()
    }

    /// An API call; an error answer becomes Google's own message and reason.
    fn call(&self, request: reqwest::blocking::RequestBuilder) -> Result<Value, BqFailure> {
        Ok(google::call(&self.tokens.token(&self.http)?, request, "BigQuery")?)
    }

    /// Every page of a list call, concatenated: the items under `key`.
    fn list(&self, path: &str, key: &str) -> Result<Vec<Value>, BqFailure> {
        let url = format!("{}/{path}", self.api);
        Ok(google::list(&self.http, &self.tokens, || self.http.get(&url), 1000, key, "BigQuery")?)
    }

    /// The datasets of the data project.
    pub fn datasets(&self) -> Result<Vec<String>, BqFailure> {
        Ok(self
            .list(&format!("projects/{}/datasets", self.project), "datasets")?
            .iter()
            .filter_map(|d| d.pointer("/datasetReference/datasetId").and_then(Value::as_str).map(String::from))
            .collect())
    }

    /// The tables (and views) of a dataset of the data project.
    pub fn tables(&self, dataset: &str) -> Result<Vec<String>, BqFailure> {
        Ok(self
            .list(&format!("projects/{}/datasets/{dataset}/tables", self.project), "tables")?
            .iter()
            .filter_map(|t| t.pointer("/tableReference/tableId").and_then(Value::as_str).map(String::from))
            .collect())
    }

    /// A table of the data project; `project` names another one (a `bq_fqn` may).
    pub fn table(&self, project: Option<&str>, dataset: &str, table: &str) -> Result<BqTable, BqFailure> {
        let project = project.unwrap_or(&self.project);
        let v =
            self.call(self.http.get(format!("{}/projects/{project}/datasets/{dataset}/tables/{table}", self.api)))?;
        let columns = v
            .pointer("/schema/fields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| (f.get("name").and_then(Value::as_str).unwrap_or_default().to_string(), duckdb_type(f)))
                    .collect()
            })
            .unwrap_or_default();
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).map(String::from);
        let partition_by = text("/timePartitioning/field")
            .or_else(|| text("/rangePartitioning/field"))
            .or_else(|| v.get("timePartitioning").map(|_| "_PARTITIONTIME".to_string()));
        let clustered_by = v
            .pointer("/clustering/fields")
            .and_then(Value::as_array)
            .map(|fs| fs.iter().filter_map(|f| f.as_str().map(String::from)).collect())
            .unwrap_or_default();
        Ok(BqTable {
            fqn: format!("{project}.{dataset}.{table}"),
            dataset: dataset.into(),
            name: table.into(),
            kind: v.get("type").and_then(Value::as_str).unwrap_or("TABLE").to_string(),
            columns,
            rows: number(v.get("numRows")),
            bytes: number(v.get("numBytes")),
            partition_by,
            clustered_by,
        })
    }

    /// How many bytes `sql` would scan, from a dry run in the billing project.
    pub fn dry_run(&self, sql: &str) -> Result<u64, BqFailure> {
        let mut body = json!({"query": sql, "useLegacySql": false, "dryRun": true});
        if let Some(location) = &self.location {
            body["location"] = json!(location);
        }
        let v = self.call(self.http.post(format!("{}/projects/{}/queries", self.api, self.billing)).json(&body))?;
        number(v.get("totalBytesProcessed")).ok_or_else(|| {
            BqFailure::Other(ConnectorError::Source(
                "BigQuery's dry run did not say how many bytes it would scan".into(),
            ))
        })
    }

    /// Run `sql` as a job billed to the billing project, with `maximumBytesBilled` as a
    /// fence and `labels` on the job, and hand its rows to `page` as they arrive (the
    /// schema's fields, then rows in BigQuery's encoding, timestamps as microseconds);
    /// `page` answers whether it wants more. A job still running at `timeout` is
    /// cancelled. Read from the job's statistics at the end: the bytes billed.
    pub fn query(
        &self,
        sql: &str,
        max_bytes_billed: Option<u64>,
        labels: &Value,
        timeout: std::time::Duration,
        mut page: impl FnMut(&[Value], &[Value]) -> Result<bool, BqFailure>,
    ) -> Result<JobDone, BqFailure> {
        let started = std::time::Instant::now();
        let mut body = json!({
            "query": sql, "useLegacySql": false, "maxResults": 10_000, "timeoutMs": 10_000,
            "formatOptions": {"useInt64Timestamp": true}, "labels": labels,
        });
        if let Some(cap) = max_bytes_billed {
            body["maximumBytesBilled"] = json!(cap.to_string());
        }
        if let Some(location) = &self.location {
            body["location"] = json!(location);
        }
        let mut answer =
            self.call(self.http.post(format!("{}/projects/{}/queries", self.api, self.billing)).json(&body))?;
        let job = answer
            .pointer("/jobReference/jobId")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| BqFailure::Other(ConnectorError::Source("BigQuery's answer names no job".into())))?;
        let results = |token: Option<&str>| {
            let mut request = self
                .http
                .get(format!("{}/projects/{}/queries/{job}", self.api, self.billing))
                .query(&[("maxResults", "10000"), ("timeoutMs", "10000")]);
            if let Some(location) = &self.location {
                request = request.query(&[("location", location)]);
            }
            if let Some(t) = token {
                request = request.query(&[("pageToken", t)]);
            }
            self.call(request)
        };
        while answer.get("jobComplete").and_then(Value::as_bool) != Some(true) {
            if started.elapsed() > timeout {
                let cancel = format!("{}/projects/{}/jobs/{job}/cancel", self.api, self.billing);
                let _ = self.call(self.http.post(cancel));
                return Err(BqFailure::Timeout(timeout));
            }
            answer = results(None)?;
        }
        let fields = answer.pointer("/schema/fields").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut read = 0u64;
        loop {
            let rows = answer.get("rows").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            read += rows.len() as u64;
            let more = page(&fields, rows)?;
            match answer.get("pageToken").and_then(Value::as_str).map(String::from) {
                Some(token) if more => answer = results(Some(&token))?,
                _ => break,
            }
        }
        let mut request = self.http.get(format!("{}/projects/{}/jobs/{job}", self.api, self.billing));
        if let Some(location) = &self.location {
            request = request.query(&[("location", location)]);
        }
        let stats = self.call(request)?;
        let billed_bytes = number(stats.pointer("/statistics/query/totalBytesBilled")).unwrap_or(0);
        Ok(JobDone { rows: read, billed_bytes })
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    pub fn billing(&self) -> &str {
        &self.billing
    }
}
