//! `agnes snapshot create | list | refresh | drop | prune` (spec §4.5): filtered slices of
//! tables too big to pull, fetched with `/api/v2/scan` into `user/snapshots/<name>.parquet`
//! and shown as a view in the local DuckDB that survives `agnes pull`.
//!
//! Files change only under `user/snapshots/.lock`, and each appears whole: the scan is
//! saved to a hidden file first, converted to parquet under a temporary name and renamed
//! into place, then the view and `<name>.meta.json` follow.

use crate::client::api::{Api, ApiFailure};
use crate::client::output;
use crate::client::workspace::Workspace;
use crate::exit::Coded;
use agnes_core::api::{ScanEstimate, ScanRequest};
use agnes_core::ident::is_strict_identifier;
use anyhow::{anyhow, Context};
use clap::Subcommand;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Fetch a filtered slice of a table into a local snapshot.
    Create(CreateArgs),
    /// List the snapshots in this workspace.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Fetch a snapshot again with its stored parameters (optionally a new --where).
    Refresh {
        name: String,
        #[arg(long = "where")]
        filter: Option<String>,
    },
    /// Delete a snapshot: its file, its metadata and its view.
    Drop { name: String },
    /// Delete snapshots older and/or larger than a threshold.
    Prune {
        /// Age, e.g. 7d, 24h, 30m.
        #[arg(long)]
        older_than: Option<String>,
        /// Size, e.g. 500m, 1g.
        #[arg(long)]
        larger_than: Option<String>,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Registry id or name of the table.
    table_id: String,
    /// Columns to keep, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    select: Vec<String>,
    /// A boolean expression over the table's columns.
    #[arg(long = "where")]
    filter: Option<String>,
    #[arg(long)]
    limit: Option<u64>,
    /// e.g. "day DESC,carrier".
    #[arg(long, value_delimiter = ',')]
    order_by: Vec<String>,
    /// Snapshot name (default: the table id).
    #[arg(long = "as")]
    name: Option<String>,
    /// Only print the estimate.
    #[arg(long)]
    estimate: bool,
    /// Skip the estimate.
    #[arg(long)]
    no_estimate: bool,
    /// Replace an existing snapshot of that name.
    #[arg(long)]
    force: bool,
}

/// `<name>.meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    name: String,
    table_id: String,
    select: Option<Vec<String>>,
    #[serde(rename = "where")]
    filter: Option<String>,
    limit: Option<u64>,
    order_by: Option<Vec<String>>,
    fetched_at: String,
    effective_as_of: String,
    rows: u64,
    bytes_local: u64,
    estimated_scan_bytes_at_fetch: Option<u64>,
    /// MD5 of the whole parquet file (the original hashed only its first megabyte).
    result_hash_md5: String,
    /// XXH3-128 of the whole file, as the pull manifest gives it.
    #[serde(default)]
    result_checksum: String,
}

pub async fn run(cmd: SnapshotCommand) -> anyhow::Result<()> {
    let ws = Workspace::current()?;
    match cmd {
        SnapshotCommand::Create(args) => create(&ws, args).await,
        SnapshotCommand::List { json } => list(&ws, json),
        SnapshotCommand::Refresh { name, filter } => refresh(&ws, &name, filter).await,
        SnapshotCommand::Drop { name } => drop_snapshot(&ws, &name),
        SnapshotCommand::Prune { older_than, larger_than, dry_run } => {
            prune(&ws, older_than.as_deref(), larger_than.as_deref(), dry_run)
        }
    }
}

/// The contract's exit codes for scan calls: 400→2, 401→7, 403/404→8, 429→3, ≥500→5,
/// unreachable→7, anything else→9.
fn coded(e: ApiFailure) -> anyhow::Error {
    let code = match &e {
        ApiFailure::Transport { .. } | ApiFailure::NotLoggedIn => 7,
        ApiFailure::Http { status, .. } => match status.as_u16() {
            400 => 2,
            401 => 7,
            403 | 404 => 8,
            429 => 3,
            s if s >= 500 => 5,
            _ => 9,
        },
        ApiFailure::TooOld { .. } | ApiFailure::Shape { .. } => 9,
    };
    Coded::wrap(code, e.into())
}

fn usage(message: String) -> anyhow::Error {
    Coded::wrap(2, anyhow!(message))
}

fn files(ws: &Workspace, name: &str) -> (PathBuf, PathBuf) {
    let dir = ws.snapshots_dir();
    (dir.join(format!("{name}.parquet")), dir.join(format!("{name}.meta.json")))
}

fn exists(ws: &Workspace, name: &str) -> bool {
    let (parquet, meta) = files(ws, name);
    parquet.exists() || meta.exists()
}

fn scan_body(meta: &Meta) -> ScanRequest {
    ScanRequest {
        table_id: meta.table_id.clone(),
        select: meta.select.clone(),
        filter: meta.filter.clone(),
        limit: meta.limit.map(|n| n.min(i64::MAX as u64) as i64),
        order_by: meta.order_by.clone(),
        alias: Some(meta.name.clone()),
    }
}

async fn create(ws: &Workspace, args: CreateArgs) -> anyhow::Result<()> {
    let shown = |estimate: &ScanEstimate| {
        println!("estimated_scan_bytes: {}", estimate.estimated_scan_bytes);
        println!("estimated_result_rows: {}", estimate.estimated_result_rows);
        println!("estimated_result_bytes: {}", estimate.estimated_result_bytes);
        println!("bq_cost_estimate_usd: {}", estimate.bq_cost_estimate_usd);
    };
    if let Some(meta) = take(ws, &Api::from_config(), args, shown).await? {
        println!("Fetched {} rows -> {}", meta.rows, meta.name);
    }
    Ok(())
}

/// What an agent asks `snapshot_create` for: a create without an estimate-only run and
/// without replacing an existing snapshot.
impl From<agnes_server::mcp::SnapshotArgs> for CreateArgs {
    fn from(a: agnes_server::mcp::SnapshotArgs) -> CreateArgs {
        let s = a.slice;
        CreateArgs {
            table_id: s.table,
            select: s.select.unwrap_or_default(),
            filter: s.filter,
            limit: s.limit,
            order_by: s.order_by.unwrap_or_default(),
            name: a.name,
            estimate: false,
            no_estimate: false,
            force: false,
        }
    }
}

/// Take a snapshot as `args` say: estimate it first (`shown` sees the estimate), then
/// fetch and install it. `None` when only the estimate was asked for.
pub(crate) async fn take(
    ws: &Workspace,
    api: &Api,
    args: CreateArgs,
    shown: impl FnOnce(&ScanEstimate),
) -> anyhow::Result<Option<Meta>> {
    let name = args.name.clone().unwrap_or_else(|| args.table_id.clone());
    if !is_strict_identifier(&name) {
        return Err(usage(format!(
            "invalid snapshot name {name:?}: use letters, digits and _ (give one with --as NAME)"
        )));
    }
    if !args.estimate && !ws.duckdb().is_file() {
        return Err(anyhow!("Local DuckDB not found. Run: agnes pull first"));
    }
    let mut meta = Meta {
        name: name.clone(),
        table_id: args.table_id.clone(),
        select: (!args.select.is_empty()).then(|| args.select.iter().map(|s| s.trim().to_string()).collect()),
        filter: args.filter.clone(),
        limit: args.limit,
        order_by: (!args.order_by.is_empty()).then(|| args.order_by.iter().map(|s| s.trim().to_string()).collect()),
        fetched_at: String::new(),
        effective_as_of: String::new(),
        rows: 0,
        bytes_local: 0,
        estimated_scan_bytes_at_fetch: None,
        result_hash_md5: String::new(),
        result_checksum: String::new(),
    };
    if args.estimate || !args.no_estimate {
        let estimate: ScanEstimate = api.post_as("/api/v2/scan/estimate", &scan_body(&meta)).await.map_err(coded)?;
        shown(&estimate);
        meta.estimated_scan_bytes_at_fetch = Some(estimate.estimated_scan_bytes);
        if args.estimate {
            return Ok(None);
        }
    }
    if exists(ws, &name) && !args.force {
        return Err(exists_error(&name));
    }
    fetch(ws, api, meta, args.force).await.map(Some)
}

fn exists_error(name: &str) -> anyhow::Error {
    Coded::wrap(6, anyhow!("snapshot {name} already exists: add --force to replace it, or pick another name with --as"))
}

/// Run the scan, save it, and (under the lock) install it as `meta.name`.
async fn fetch(ws: &Workspace, api: &Api, mut meta: Meta, replace: bool) -> anyhow::Result<Meta> {
    let dir = ws.snapshots_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ipc = agnes_engine::fsutil::temp_path_for(&dir.join(format!("{}.arrows", meta.name)));
    let started = chrono::Utc::now().to_rfc3339();
    if let Err(e) = download(api, &scan_body(&meta), &ipc).await {
        let _ = std::fs::remove_file(&ipc);
        return Err(e);
    }
    let (ws, saved) = (ws.clone(), ipc.clone());
    let installed = tokio::task::spawn_blocking(move || -> anyhow::Result<Meta> {
        let _lock = ws.lock_snapshots()?;
        let (parquet, meta_file) = files(&ws, &meta.name);
        if !replace && (parquet.exists() || meta_file.exists()) {
            return Err(exists_error(&meta.name));
        }
        let written = agnes_engine::snapshot::ipc_to_parquet(&saved, &parquet)?;
        agnes_engine::local::register_snapshot(&ws.duckdb(), &meta.name, &parquet)?;
        meta.fetched_at = started.clone();
        meta.effective_as_of = started;
        meta.rows = written.rows;
        meta.bytes_local = written.bytes;
        meta.result_hash_md5 = written.digests.md5;
        meta.result_checksum = written.digests.checksum;
        write_meta(&meta_file, &meta)?;
        Ok(meta)
    })
    .await
    .context("the snapshot task failed");
    let _ = std::fs::remove_file(&ipc);
    installed?
}

fn write_meta(path: &Path, meta: &Meta) -> anyhow::Result<()> {
    let tmp = agnes_engine::fsutil::temp_path_for(path);
    std::fs::write(&tmp, serde_json::to_vec_pretty(meta)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    agnes_engine::fsutil::commit_rename(&tmp, path)?;
    Ok(())
}

fn read_meta(ws: &Workspace, name: &str) -> anyhow::Result<Meta> {
    let (_, path) = files(ws, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(usage(format!("no snapshot named {name} (see agnes snapshot list)")))
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a snapshot's metadata", path.display()))
}

/// Every snapshot's metadata, by name.
pub(crate) fn all_meta(ws: &Workspace) -> anyhow::Result<Vec<Meta>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(ws.snapshots_dir()) else { return Ok(out) };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".meta.json").filter(|n| !n.starts_with('.')) {
            out.push(read_meta(ws, name)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn age_of(meta: &Meta) -> Option<chrono::Duration> {
    let fetched = chrono::DateTime::parse_from_rfc3339(&meta.fetched_at).ok()?;
    Some(chrono::Utc::now().signed_duration_since(fetched))
}

fn human_age(d: chrono::Duration) -> String {
    match d.num_seconds() {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn human_bytes(b: u64) -> String {
    bytesize::ByteSize::b(b).display().iec().to_string()
}

fn list(ws: &Workspace, as_json: bool) -> anyhow::Result<()> {
    let metas = all_meta(ws)?;
    if as_json {
        output::json(&serde_json::to_value(&metas)?);
        return Ok(());
    }
    let rows: Vec<Value> = metas
        .iter()
        .map(|m| {
            json!({"name": m.name, "rows": m.rows, "size": human_bytes(m.bytes_local),
                   "age": age_of(m).map(human_age), "table": m.table_id, "where": m.filter})
        })
        .collect();
    output::table(
        &rows,
        &[("name", "NAME"), ("rows", "ROWS"), ("size", "SIZE"), ("age", "AGE"), ("table", "TABLE"), ("where", "WHERE")],
    );
    Ok(())
}

async fn refresh(ws: &Workspace, name: &str, filter: Option<String>) -> anyhow::Result<()> {
    let before = read_meta(ws, name)?;
    let mut meta = before.clone();
    if filter.is_some() {
        meta.filter = filter;
    }
    let after = fetch(ws, &Api::from_config(), meta, true).await?;
    println!("{name}: rows {} -> {}, bytes {} -> {}", before.rows, after.rows, before.bytes_local, after.bytes_local);
    println!("identical: {}", if before.result_hash_md5 == after.result_hash_md5 { "yes" } else { "no" });
    Ok(())
}

fn drop_snapshot(ws: &Workspace, name: &str) -> anyhow::Result<()> {
    drop_named(ws, name)?;
    println!("Dropped {name}");
    Ok(())
}

/// Delete the snapshot `name`, under the snapshots' lock.
pub(crate) fn drop_named(ws: &Workspace, name: &str) -> anyhow::Result<()> {
    if !is_strict_identifier(name) || !exists(ws, name) {
        return Err(usage(format!("no snapshot named {name} (see agnes snapshot list)")));
    }
    let _lock = ws.lock_snapshots()?;
    remove(ws, name)
}

/// Delete a snapshot's view first, then its files: a view never points at a missing file.
fn remove(ws: &Workspace, name: &str) -> anyhow::Result<()> {
    agnes_engine::local::drop_snapshot(&ws.duckdb(), name)?;
    let (parquet, meta) = files(ws, name);
    agnes_engine::fsutil::remove_if_exists(&parquet)?;
    agnes_engine::fsutil::remove_if_exists(&meta)?;
    Ok(())
}

/// `7d`, `24h`, `30m`, `45s`.
fn parse_age(text: &str) -> Option<chrono::Duration> {
    let t = text.trim().to_ascii_lowercase();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    Some(match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => return None,
    })
}

/// `500m`, `1g`, `10k`, `2gb`, `123` (bytes).
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().ok()?;
    let scale = match unit {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    Some((n * scale as f64) as u64)
}

fn prune(ws: &Workspace, older_than: Option<&str>, larger_than: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    if older_than.is_none() && larger_than.is_none() {
        return Err(usage("say what to prune: --older-than (e.g. 7d) and/or --larger-than (e.g. 500m)".into()));
    }
    let age = older_than
        .map(|t| {
            parse_age(t).ok_or_else(|| usage(format!("--older-than {t:?}: use a number and s, m, h, d or w, e.g. 7d")))
        })
        .transpose()?;
    let size = larger_than
        .map(|t| {
            parse_size(t).ok_or_else(|| usage(format!("--larger-than {t:?}: use a number and k, m, g or t, e.g. 500m")))
        })
        .transpose()?;
    let _lock = ws.lock_snapshots()?;
    let mut pruned = 0;
    for meta in all_meta(ws)? {
        let old = age.is_none_or(|limit| age_of(&meta).is_some_and(|a| a > limit));
        let big = size.is_none_or(|limit| meta.bytes_local > limit);
        if !(old && big) {
            continue;
        }
        pruned += 1;
        if dry_run {
            println!(
                "would drop {} ({}, {})",
                meta.name,
                human_bytes(meta.bytes_local),
                age_of(&meta).map(human_age).unwrap_or_default()
            );
        } else {
            remove(ws, &meta.name)?;
            println!("dropped {} ({})", meta.name, human_bytes(meta.bytes_local));
        }
    }
    println!("{pruned} snapshot(s) {}", if dry_run { "would be pruned" } else { "pruned" });
    Ok(())
}

async fn download(api: &Api, body: &ScanRequest, to: &Path) -> anyhow::Result<()> {
    let body = serde_json::to_value(body)?;
    let resp = api.post_stream("/api/v2/scan", body, Duration::from_secs(600)).await.map_err(coded)?;
    let mut file = std::fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Coded::wrap(
                5,
                anyhow!(
                    "the scan's answer was cut off before its end ({}); nothing was saved. It may be over the server's size or time limit: narrow --select or --where, or lower --limit",
                    e.without_url()
                ),
            )
        })?;
        file.write_all(&chunk).with_context(|| format!("cannot write {}", to.display()))?;
    }
    file.sync_all().with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes() {
        assert_eq!(parse_age("7d"), Some(chrono::Duration::days(7)));
        assert_eq!(parse_age("24H"), Some(chrono::Duration::hours(24)));
        assert_eq!(parse_age("30m"), Some(chrono::Duration::minutes(30)));
        assert_eq!(parse_age("7"), None);
        assert_eq!(parse_age("d"), None);
        assert_eq!(parse_size("500m"), Some(500 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5GB"), Some(3 << 29));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("lots"), None);
    }
}
