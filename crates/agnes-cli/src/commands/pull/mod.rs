//! `agnes pull` (spec §4.2): bring the workspace up to date with what the caller may read.
//!
//! Only changed files are downloaded (by content hash; partitioned tables part by part),
//! in parallel (large files as several ranges at once), resumably, with retries on network
//! errors and 5xx; each file is verified against the manifest's checksum before it is
//! renamed into place. Tables no longer granted
//! are removed. Any failed table makes the command fail, saying which and why.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::{PullState, PulledTable, Workspace};
use agnes_core::api::Manifest;
use agnes_engine::table_data::TableData;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod fetch;
mod progress;
mod rules;

#[derive(clap::Args, Default)]
pub struct PullArgs {
    /// Print only warnings.
    #[arg(long)]
    pub quiet: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    /// Show what would be downloaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip materialized tables.
    #[arg(long)]
    pub skip_materialize: bool,
}

/// One file to fetch.
#[derive(Debug, Clone)]
struct Job {
    table: String,
    url: String,
    /// Where the download is written (and verified).
    target: PathBuf,
    /// For a part of a table in parts: where the verified part is moved once every part of
    /// its table has arrived (`target` is then a hidden staging name beside it).
    place: Option<PathBuf>,
    hash: String,
    /// The manifest's fast checksum, when the server has one.
    checksum: Option<String>,
    size: u64,
}

#[derive(Debug)]
struct Plan {
    jobs: Vec<Job>,
    /// Tables the workspace should hold after the pull: name → what the server says.
    wanted: BTreeMap<String, PulledTable>,
    /// Local tables no longer in the manifest (revoked or removed).
    removed: Vec<String>,
    /// Parts to delete, by table: parts the server no longer has.
    stale_parts: Vec<(String, PathBuf)>,
    total: usize,
}

impl Job {
    /// Where the file ends up.
    fn destination(&self) -> &std::path::Path {
        self.place.as_deref().unwrap_or(&self.target)
    }
}

fn plan(manifest: &Manifest, ws: &Workspace, state: &PullState, skip_materialize: bool) -> anyhow::Result<Plan> {
    let mut plan =
        Plan { jobs: Vec::new(), wanted: BTreeMap::new(), removed: Vec::new(), stale_parts: Vec::new(), total: 0 };
    for (name, entry) in &manifest.tables {
        let mode = entry.query_mode.as_deref().unwrap_or("local");
        if mode == "remote" || (skip_materialize && mode == "materialized") {
            continue;
        }
        if !agnes_core::is_strict_identifier(name) {
            anyhow::bail!("the manifest names a table {name:?} that is not a valid identifier");
        }
        plan.total += 1;
        let id = entry.id.clone().unwrap_or_else(|| name.clone());
        let hash = entry.hash.clone();
        let mut wanted = PulledTable {
            id: id.clone(),
            hash: hash.clone(),
            rows: entry.rows,
            size_bytes: entry.size_bytes,
            parts: BTreeMap::new(),
            merge_key: entry.merge_key.clone().unwrap_or_default(),
        };
        let local = state.tables.get(name);
        if let Some(parts) = &entry.parts {
            for p in parts {
                let part = p.part.as_str();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    anyhow::bail!("table {name}: the manifest names an invalid part {part:?}");
                }
                let place = ws.part_dir(name).join(format!("{part}.parquet"));
                let have = local.and_then(|l| l.parts.get(part)).is_some_and(|h| *h == p.hash && !h.is_empty());
                if !have || !place.is_file() {
                    let url = p.path.clone().unwrap_or_else(|| format!("/api/data/{id}/parts/{part}/download"));
                    plan.jobs.push(Job {
                        table: name.clone(),
                        url,
                        target: ws.part_dir(name).join(format!(".{part}.parquet.staged")),
                        place: Some(place),
                        hash: p.hash.clone(),
                        checksum: p.checksum.clone(),
                        size: p.size_bytes.max(0) as u64,
                    });
                }
                wanted.parts.insert(part.to_string(), p.hash.clone());
            }
            if let Ok(entries) = std::fs::read_dir(ws.part_dir(name)) {
                for e in entries.flatten() {
                    let stem = e.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    if e.path().extension().is_some_and(|x| x == "parquet") && !wanted.parts.contains_key(&stem) {
                        plan.stale_parts.push((name.clone(), e.path()));
                    }
                }
            }
        } else {
            let target = ws.table_file(name);
            let have = local.is_some_and(|l| l.hash == hash && !hash.is_empty() && l.parts.is_empty());
            if !have || !target.is_file() {
                plan.jobs.push(Job {
                    table: name.clone(),
                    url: format!("/api/data/{id}/download"),
                    target,
                    place: None,
                    hash: hash.clone(),
                    checksum: entry.checksum.clone(),
                    size: entry.size_bytes.max(0) as u64,
                });
            }
        }
        plan.wanted.insert(name.clone(), wanted);
    }
    plan.removed = state.tables.keys().filter(|n| !plan.wanted.contains_key(*n)).cloned().collect();
    Ok(plan)
}

fn env_number(name: &str, default: usize, max: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default).clamp(1, max)
}

pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let api = Api::from_config();
    if !api.has_token() {
        return Err(ApiFailure::NotLoggedIn.into());
    }
    run_with(&api, &Workspace::current()?, args).await
}

/// A pull with an explicit client and workspace (`agnes init` runs the first one).
pub async fn run_with(api: &Api, ws: &Workspace, args: PullArgs) -> anyhow::Result<()> {
    if args.dry_run {
        return dry_run(api, ws, &args).await;
    }
    let pulled = pull(api, ws, !args.quiet && !args.json, args.skip_materialize).await?;
    if args.json {
        crate::client::output::json(&pulled.summary());
    } else if !args.quiet {
        println!("Updated {} tables ({} total).", pulled.updated, pulled.total);
        if !pulled.removed.is_empty() {
            println!("Removed {} table(s) no longer available: {}.", pulled.removed.len(), pulled.removed.join(", "));
        }
        println!("Rules: {}.", pulled.rules);
    }
    pulled.verdict()
}

async fn dry_run(api: &Api, ws: &Workspace, args: &PullArgs) -> anyhow::Result<()> {
    let manifest: Manifest =
        serde_json::from_value(api.get("/api/sync/manifest").await?).context("the server's manifest cannot be read")?;
    let plan = plan(&manifest, ws, &ws.load_state(), args.skip_materialize)?;
    let would: Vec<Value> =
        plan.jobs.iter().map(|j| json!({"table": j.table, "url": j.url, "target": j.destination()})).collect();
    if args.json {
        crate::client::output::json(
            &json!({"dry_run": true, "would_download": would, "would_remove": plan.removed, "parquets_total": plan.total}),
        );
    } else {
        println!(
            "Would download {} file(s) for {} table(s); would remove {} table(s).",
            plan.jobs.len(),
            plan.total,
            plan.removed.len()
        );
        for j in &plan.jobs {
            println!("  {} ← {}", j.destination().display(), j.url);
        }
        for r in &plan.removed {
            println!("  remove {r}");
        }
    }
    Ok(())
}

/// What a pull did.
pub(crate) struct Pulled {
    updated: usize,
    total: usize,
    removed: Vec<String>,
    rules: usize,
    duration_s: f64,
    /// Tables that failed, with why.
    failed: BTreeMap<String, String>,
    /// Every failure, the corporate memory's included.
    errors: Vec<Value>,
}

impl Pulled {
    /// The `--json` summary (the original's field names).
    pub(crate) fn summary(&self) -> Value {
        json!({
            "tables_updated": self.updated, "parquets_total": self.total, "tables_removed": self.removed.len(),
            "removed": self.removed, "rules_count": self.rules, "duration_s": self.duration_s, "errors": self.errors,
        })
    }

    /// Failed when any table did.
    pub(crate) fn verdict(&self) -> anyhow::Result<()> {
        if !self.failed.is_empty() {
            anyhow::bail!(
                "{} table(s) failed to pull: {}",
                self.failed.len(),
                self.failed.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(())
    }
}

/// Bring the workspace up to date; progress on the terminal when `show`. Warnings go to
/// standard error; what was done is the answer, failed tables included.
pub(crate) async fn pull(api: &Api, ws: &Workspace, show: bool, skip_materialize: bool) -> anyhow::Result<Pulled> {
    let started = Instant::now();
    let api = Arc::new(api.clone());
    let _lock = ws.lock()?;
    let manifest: Manifest =
        serde_json::from_value(api.get("/api/sync/manifest").await?).context("the server's manifest cannot be read")?;
    let mut state = ws.load_state();
    let plan = plan(&manifest, ws, &state, skip_materialize)?;

    // Download in parallel.
    let parallel = env_number("AGNES_PULL_PARALLELISM", 4, 32);
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let reporter = Arc::new(progress::Reporter::new(show));
    let count = plan.jobs.len();
    let mut tasks = Vec::new();
    for (index, job) in plan.jobs.clone().into_iter().enumerate() {
        let (api, gate, reporter) = (api.clone(), gate.clone(), reporter.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.expect("the semaphore is never closed");
            let progress = reporter.start(&job, index, count);
            let result = fetch::fetch(&api, &job, &progress, parallel).await;
            progress.finish(result.is_ok());
            (job, result)
        }));
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    for task in tasks {
        let (job, result) = task.await.context("a download task failed")?;
        if let Err(e) = result {
            failed.entry(job.table.clone()).or_insert(e);
        }
    }
    // A table in parts changes all at once: its parts move into place only when every one
    // arrived (a layered table's new base without its new delta would read wrong rows).
    for job in &plan.jobs {
        let Some(place) = &job.place else { continue };
        if failed.contains_key(&job.table) {
            let _ = std::fs::remove_file(&job.target);
        } else if let Err(e) = std::fs::rename(&job.target, place) {
            failed.entry(job.table.clone()).or_insert(format!("cannot move {} into place: {e}", place.display()));
        }
    }

    // Record what is now in place; a failed table keeps its previous record.
    let updated =
        plan.wanted.keys().filter(|t| plan.jobs.iter().any(|j| &j.table == *t) && !failed.contains_key(*t)).count();
    for (name, wanted) in &plan.wanted {
        if !failed.contains_key(name) {
            state.tables.insert(name.clone(), wanted.clone());
        }
    }
    for (table, p) in &plan.stale_parts {
        if !failed.contains_key(table) {
            let _ = std::fs::remove_file(p);
        }
    }
    for name in &plan.removed {
        let _ = std::fs::remove_file(ws.table_file(name));
        let _ = std::fs::remove_dir_all(ws.part_dir(name));
        state.tables.remove(name);
    }
    state.last_sync = Some(chrono::Utc::now().to_rfc3339());
    ws.save_state(&state)?;

    // One view per table that is on disk.
    let views: Vec<(String, TableData)> = state
        .tables
        .iter()
        .map(|(name, t)| {
            let data = if t.parts.is_empty() {
                TableData::File(ws.table_file(name))
            } else if t.merge_key.is_empty() {
                TableData::Parts(ws.part_dir(name))
            } else {
                TableData::Layered { dir: ws.part_dir(name), key: t.merge_key.clone() }
            };
            (name.clone(), data)
        })
        .filter(|(_, data)| data.exists())
        .collect();
    let db = ws.duckdb();
    let skipped = tokio::task::spawn_blocking(move || agnes_engine::local::sync_server_views(&db, &views))
        .await?
        .context("cannot update the local DuckDB (is another program holding it open?)")?;
    for s in skipped {
        eprintln!("warn: a table or snapshot of yours is named {s}: the pulled table {s} has no view (rename yours to see it)");
    }

    let mut errors: Vec<Value> = failed.iter().map(|(t, e)| json!({"table": t, "error": e})).collect();
    // Corporate memory: a failure here is reported, not fatal; the data is in place.
    let rules = match rules::write(&api, ws).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warn: corporate memory rules not updated: {e:#}");
            errors.push(json!({"stage": "memory_bundle", "error": format!("{e:#}")}));
            0
        }
    };
    for (t, e) in &failed {
        eprintln!("warn: {t}: {e}");
    }
    Ok(Pulled {
        updated,
        total: plan.total,
        removed: plan.removed,
        rules,
        duration_s: started.elapsed().as_secs_f64(),
        failed,
        errors,
    })
}
