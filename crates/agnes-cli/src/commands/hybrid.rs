//! Hybrid queries (`agnes query --register-bq NAME=SQL`, `--register NAME=SOURCE:SQL`):
//! each remote part runs on the server through `/api/query` (the registry gate, dry run,
//! caps and cost ledger of any remote query, and `source` so it runs nowhere else), comes
//! back as Arrow IPC, is kept as parquet for this query only, and is a view of its name
//! beside the local tables, where the final SQL runs. With `--remote` the whole query is
//! sent to `POST /api/query/hybrid` instead and joins the server's tables.

use crate::client::api::{render_error, Api, ApiFailure};
use crate::client::workspace::Workspace;
use agnes_core::api::{HybridRequest, QueryRequest};
use agnes_engine::local::QueryOutput;
use anyhow::{bail, Context};
use futures::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A remote part: the view name, the source it must run on, its SQL.
pub struct Part {
    pub name: String,
    pub source: String,
    pub sql: String,
}

/// `NAME=SQL` of `--register-bq`, `NAME=SOURCE:SQL` of `--register`.
pub fn parse(register_bq: &[String], register: &[String]) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    for text in register_bq {
        let (name, sql) = text.split_once('=').context("--register-bq takes NAME=SQL")?;
        parts.push(Part { name: name.trim().into(), source: "bigquery".into(), sql: sql.into() });
    }
    for text in register {
        let (name, rest) = text.split_once('=').context("--register takes NAME=SOURCE:SQL")?;
        let (source, sql) =
            rest.split_once(':').context("--register takes NAME=SOURCE:SQL, e.g. crm=postgres_crm:SELECT …")?;
        parts.push(Part { name: name.trim().into(), source: source.trim().into(), sql: sql.into() });
    }
    for p in &parts {
        if !agnes_core::is_strict_identifier(&p.name) || p.sql.trim().is_empty() {
            bail!("a hybrid part needs a name (letters, digits, _) and SQL: {:?}", p.name);
        }
    }
    Ok(parts)
}

fn failure(e: ApiFailure) -> anyhow::Error {
    match e {
        ApiFailure::Http { status, detail, .. } => anyhow::anyhow!("{}", render_error(status, &detail)),
        other => other.into(),
    }
}

/// Run the parts on the server and `sql` locally over them and the pulled tables.
pub async fn local(parts: &[Part], sql: String, limit: usize, part_limit: usize) -> anyhow::Result<QueryOutput> {
    let ws = Workspace::current()?;
    let db = ws.duckdb();
    if !db.is_file() {
        bail!("Local DuckDB not found at {}. Run: agnes pull", db.display());
    }
    let api = Api::from_config();
    if !api.has_token() {
        return Err(ApiFailure::NotLoggedIn.into());
    }
    let dir = agnes_engine::fsutil::temp_path_for(&ws.root().join("user").join("hybrid"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = async {
        let mut files = Vec::new();
        for part in parts {
            files.push(fetch(&api, part, part_limit, &dir).await?);
        }
        let out = tokio::task::spawn_blocking(move || agnes_engine::local::query_with_parts(&db, &files, &sql, limit))
            .await?;
        out.map_err(|e| anyhow::anyhow!("Query error: {e}"))
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One part as a parquet file in `dir`: BigQuery answers Arrow typed by its schema; other
/// sources answer JSON, typed again locally from the values.
async fn fetch(api: &Api, part: &Part, part_limit: usize, dir: &Path) -> anyhow::Result<(String, PathBuf)> {
    let body =
        QueryRequest { sql: part.sql.clone(), limit: Some(part_limit as i64), source: Some(part.source.clone()) };
    let parquet = dir.join(format!("{}.parquet", part.name));
    if part.source != "bigquery" {
        let answer = api
            .call(reqwest::Method::POST, "/api/query", Some(serde_json::to_value(body)?))
            .await
            .map_err(failure)
            .with_context(|| format!("part {}", part.name))?;
        let answer: agnes_core::api::QueryResponse =
            serde_json::from_value(answer).context("the server's answer has no columns and rows")?;
        if answer.truncated {
            bail!(too_many(&part.name, part_limit));
        }
        let to = parquet.clone();
        tokio::task::spawn_blocking(move || {
            agnes_engine::snapshot::json_rows_to_parquet(&answer.columns, &answer.rows, &to)
        })
        .await??;
        return Ok((part.name.clone(), parquet));
    }
    let response = api
        .post_arrow("/api/query", serde_json::to_value(body)?, Duration::from_secs(3600))
        .await
        .map_err(failure)
        .with_context(|| format!("part {}", part.name))?;
    if response.headers().get("x-agnes-truncated").and_then(|v| v.to_str().ok()) == Some("true") {
        bail!(too_many(&part.name, part_limit));
    }
    let ipc = dir.join(format!("{}.arrows", part.name));
    let mut file = std::fs::File::create(&ipc).with_context(|| format!("cannot create {}", ipc.display()))?;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| anyhow::anyhow!("part {}: the answer was cut off ({})", part.name, e.without_url()))?;
        file.write_all(&chunk).with_context(|| format!("cannot write {}", ipc.display()))?;
    }
    drop(file);
    let (from, to) = (ipc.clone(), parquet.clone());
    tokio::task::spawn_blocking(move || agnes_engine::snapshot::ipc_to_parquet(&from, &to)).await??;
    Ok((part.name.clone(), parquet))
}

fn too_many(name: &str, limit: usize) -> String {
    format!("part {name} has more than {limit} rows: aggregate or filter it at its source, or raise --part-limit")
}

/// Send the whole hybrid query to the server (`--remote`).
pub async fn remote(parts: &[Part], sql: String, limit: usize) -> anyhow::Result<QueryOutput> {
    let api = Api::from_config();
    if !api.has_token() {
        return Err(ApiFailure::NotLoggedIn.into());
    }
    let mut body = HybridRequest { sql, limit: Some(limit as i64), ..Default::default() };
    for p in parts {
        if p.source == "bigquery" {
            body.register_bq.insert(p.name.clone(), p.sql.clone());
        } else {
            body.register.insert(p.name.clone(), format!("{}:{}", p.source, p.sql));
        }
    }
    let answer = api
        .call(reqwest::Method::POST, "/api/query/hybrid", Some(serde_json::to_value(body)?))
        .await
        .map_err(failure)?;
    super::query::output_of(answer)
}
