//! `agnes pull` (spec §4.2): bring the workspace up to date with what the caller may read.
//!
//! Only changed files are downloaded (by content hash; partitioned tables part by part),
//! in parallel, resumably, with retries on network errors and 5xx; each file is verified
//! against the manifest's MD5 before it is renamed into place. Tables no longer granted
//! are removed. Any failed table makes the command fail, saying which and why.

use crate::client::api::{Api, ApiFailure};
use crate::client::workspace::{PullState, PulledTable, Workspace};
use anyhow::Context;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    target: PathBuf,
    hash: String,
    size: u64,
}

#[derive(Debug)]
struct Plan {
    jobs: Vec<Job>,
    /// Tables the workspace should hold after the pull: name → what the server says.
    wanted: BTreeMap<String, PulledTable>,
    /// Local tables no longer in the manifest (revoked or removed).
    removed: Vec<String>,
    /// Parts to delete: parts the server no longer has.
    stale_parts: Vec<PathBuf>,
    total: usize,
}

fn plan(manifest: &Value, ws: &Workspace, state: &PullState, skip_materialize: bool) -> anyhow::Result<Plan> {
    let tables = manifest["tables"].as_object().context("the manifest has no tables object")?;
    let mut plan =
        Plan { jobs: Vec::new(), wanted: BTreeMap::new(), removed: Vec::new(), stale_parts: Vec::new(), total: 0 };
    for (name, entry) in tables {
        let mode = entry["query_mode"].as_str().unwrap_or("local");
        if mode == "remote" || (skip_materialize && mode == "materialized") {
            continue;
        }
        if !agnes_core::is_strict_identifier(name) {
            anyhow::bail!("the manifest names a table {name:?} that is not a valid identifier");
        }
        plan.total += 1;
        let id = entry["id"].as_str().unwrap_or(name).to_string();
        let hash = entry["hash"].as_str().unwrap_or_default().to_string();
        let mut wanted = PulledTable {
            id: id.clone(),
            hash: hash.clone(),
            rows: entry["rows"].as_i64().unwrap_or(0),
            size_bytes: entry["size_bytes"].as_i64().unwrap_or(0),
            parts: BTreeMap::new(),
        };
        let local = state.tables.get(name);
        if let Some(parts) = entry["parts"].as_array() {
            for p in parts {
                let part = p["part"].as_str().unwrap_or_default();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                    anyhow::bail!("table {name}: the manifest names an invalid part {part:?}");
                }
                let part_hash = p["hash"].as_str().unwrap_or_default().to_string();
                let target = ws.part_dir(name).join(format!("{part}.parquet"));
                let have = local.and_then(|l| l.parts.get(part)).is_some_and(|h| *h == part_hash && !h.is_empty());
                if !have || !target.is_file() {
                    let url = p["path"]
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("/api/data/{id}/parts/{part}/download"));
                    let size = p["size_bytes"].as_u64().unwrap_or(0);
                    plan.jobs.push(Job { table: name.clone(), url, target, hash: part_hash.clone(), size });
                }
                wanted.parts.insert(part.to_string(), part_hash);
            }
            if let Ok(entries) = std::fs::read_dir(ws.part_dir(name)) {
                for e in entries.flatten() {
                    let stem = e.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    if e.path().extension().is_some_and(|x| x == "parquet") && !wanted.parts.contains_key(&stem) {
                        plan.stale_parts.push(e.path());
                    }
                }
            }
        } else {
            let target = ws.table_file(name);
            let have = local.is_some_and(|l| l.hash == hash && !hash.is_empty() && l.parts.is_empty());
            if !have || !target.is_file() {
                let size = entry["size_bytes"].as_u64().unwrap_or(0);
                plan.jobs.push(Job {
                    table: name.clone(),
                    url: format!("/api/data/{id}/download"),
                    target,
                    hash: hash.clone(),
                    size,
                });
            }
        }
        plan.wanted.insert(name.clone(), wanted);
    }
    plan.removed = state.tables.keys().filter(|n| !plan.wanted.contains_key(*n)).cloned().collect();
    Ok(plan)
}

/// How a pull shows its progress: a bar per file on a terminal, periodic lines otherwise
/// (`[i/N files] name: 40% (4.0 MiB / 10.0 MiB) at 80.0 MiB/s`), nothing when quiet.
struct Reporter {
    show: bool,
    bars: Option<indicatif::MultiProgress>,
    interval_bytes: u64,
    interval: Duration,
}

impl Reporter {
    fn new(show: bool) -> Reporter {
        use std::io::IsTerminal;
        let bars = (show && std::io::stdout().is_terminal()).then(indicatif::MultiProgress::new);
        let interval_bytes =
            std::env::var("AGNES_PULL_PROGRESS_INTERVAL_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
        let secs =
            std::env::var("AGNES_PULL_PROGRESS_INTERVAL_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0f64);
        Reporter { show, bars, interval_bytes, interval: Duration::from_secs_f64(secs.max(0.1)) }
    }

    fn start(&self, job: &Job, index: usize, count: usize) -> FileProgress {
        let label = format!("[{}/{count} files] {}", index + 1, job.table);
        let bar = self.bars.as_ref().map(|m| {
            let b = m.add(indicatif::ProgressBar::new(job.size));
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_message(label.clone());
            b
        });
        FileProgress {
            show: self.show,
            bar,
            label,
            total: job.size,
            started: Instant::now(),
            last_line: Instant::now(),
            last_bytes: 0,
            next_pct: 10,
            interval_bytes: self.interval_bytes,
            interval: self.interval,
            done: 0,
        }
    }
}

struct FileProgress {
    show: bool,
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    started: Instant,
    last_line: Instant,
    last_bytes: u64,
    next_pct: u64,
    interval_bytes: u64,
    interval: Duration,
    done: u64,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

impl FileProgress {
    fn update(&mut self, bytes: u64) {
        self.done = bytes;
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            return;
        }
        if !self.show {
            return;
        }
        let pct = (bytes * 100).checked_div(self.total).unwrap_or(0);
        let step = pct >= self.next_pct && bytes - self.last_bytes >= self.interval_bytes;
        if step || self.last_line.elapsed() >= self.interval {
            let rate = mib(bytes) / self.started.elapsed().as_secs_f64().max(1e-3);
            println!("{}: {pct}% ({:.1} MiB / {:.1} MiB) at {rate:.1} MiB/s", self.label, mib(bytes), mib(self.total));
            self.last_line = Instant::now();
            self.last_bytes = bytes;
            self.next_pct = (pct / 10 + 1) * 10;
        }
    }

    fn finish(self, ok: bool) {
        if let Some(bar) = self.bar {
            bar.finish_with_message(format!("{} {}", self.label, if ok { "done" } else { "FAILED" }));
        } else if self.show && ok {
            println!(
                "{}: 100% done ({:.1} MiB in {:.1} s)",
                self.label,
                mib(self.done),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn env_number(name: &str, default: usize, max: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default).clamp(1, max)
}

/// Why one file could not be fetched.
#[derive(Debug)]
enum FetchError {
    /// Worth trying again: network trouble, a 5xx.
    Transient(String),
    /// Not worth trying again: a 4xx, a hash mismatch, a local IO error.
    Permanent(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Transient(m) | FetchError::Permanent(m) => f.write_str(m),
        }
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.partial"))
}

/// One attempt: resume from the partial file when there is one (If-Range guards against a
/// partial from another version), hash as the bytes arrive, verify, rename.
async fn fetch_once(api: &Api, job: &Job, progress: &mut FileProgress) -> Result<u64, FetchError> {
    let io = |e: std::io::Error| FetchError::Permanent(format!("cannot write {}: {e}", job.target.display()));
    let partial = partial_path(&job.target);
    if let Some(dir) = job.target.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let have = tokio::fs::metadata(&partial).await.map(|m| m.len()).unwrap_or(0);
    let mut headers = Vec::new();
    if have > 0 && !job.hash.is_empty() {
        headers.push(("range", format!("bytes={have}-")));
        headers.push(("if-range", format!("\"{}\"", job.hash)));
    }
    let mut resp = match api.get_stream(&job.url, &headers).await {
        Ok(r) => r,
        Err(ApiFailure::Http { status, detail }) if status.is_server_error() => {
            return Err(FetchError::Transient(crate::client::api::render_error(status, &detail)));
        }
        Err(e @ ApiFailure::Transport { .. }) => return Err(FetchError::Transient(e.to_string())),
        Err(e) => return Err(FetchError::Permanent(e.to_string())),
    };
    let resumed = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
    let (file, prefix) = if resumed {
        let bytes = tokio::fs::read(&partial).await.map_err(io)?;
        (std::fs::OpenOptions::new().append(true).open(&partial).map_err(io)?, bytes)
    } else {
        (std::fs::File::create(&partial).map_err(io)?, Vec::new())
    };
    // Receiving, hashing and writing run at once: the async task receives, one thread
    // hashes, one writes. Bounded channels keep memory flat whatever the file size.
    let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let (write_tx, write_rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let hasher = std::thread::spawn(move || {
        let mut h = Md5::new();
        h.update(&prefix);
        for chunk in hash_rx {
            h.update(&chunk);
        }
        hex::encode(h.finalize())
    });
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for chunk in write_rx {
            w.write_all(&chunk)?;
        }
        w.flush()
    });
    let mut written = if resumed { have } else { 0 };
    let mut interrupted = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                written += chunk.len() as u64;
                progress.update(written);
                if hash_tx.send(chunk.clone()).is_err() || write_tx.send(chunk).is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                interrupted = Some(format!("download interrupted: {}", e.without_url()));
                break;
            }
        }
    }
    drop((hash_tx, write_tx));
    let wrote = tokio::task::spawn_blocking(move || writer.join()).await;
    match wrote {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(io(e)),
        _ => return Err(FetchError::Permanent("the writer thread failed".into())),
    }
    let got = tokio::task::spawn_blocking(move || hasher.join())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| FetchError::Permanent("the hashing thread failed".into()))?;
    if let Some(m) = interrupted {
        // Keep what arrived: the next attempt resumes from it.
        return Err(FetchError::Transient(m));
    }

    if !job.hash.is_empty() && got != job.hash {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(FetchError::Permanent(format!(
            "hash mismatch: expected {}, got {}",
            &job.hash[..job.hash.len().min(12)],
            &got[..12]
        )));
    }
    if job.hash.is_empty() && !has_parquet_magic(&partial).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(FetchError::Permanent("not a valid parquet (missing PAR1 magic)".into()));
    }
    tokio::fs::rename(&partial, &job.target).await.map_err(io)?;
    Ok(written)
}

async fn has_parquet_magic(path: &Path) -> bool {
    match tokio::fs::read(path).await {
        Ok(b) => b.len() >= 8 && &b[..4] == b"PAR1" && &b[b.len() - 4..] == b"PAR1",
        Err(_) => false,
    }
}

/// Fetch with retries (`AGNES_STREAM_RETRIES`, default 3; backoff 0.3 s, 1 s, 3 s).
async fn fetch(api: &Api, job: &Job, progress: &mut FileProgress) -> Result<u64, String> {
    let retries = std::env::var("AGNES_STREAM_RETRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(3usize);
    let backoff = [300u64, 1000, 3000];
    let mut attempt = 0;
    loop {
        match fetch_once(api, job, progress).await {
            Ok(n) => return Ok(n),
            Err(FetchError::Transient(m)) if attempt < retries => {
                tracing::debug!(table = %job.table, attempt, "retrying download: {m}");
                tokio::time::sleep(Duration::from_millis(backoff[attempt.min(backoff.len() - 1)])).await;
                attempt += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
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
    let started = Instant::now();
    let api = Arc::new(api.clone());
    let _lock = if args.dry_run { None } else { Some(ws.lock()?) };
    let manifest = api.get("/api/sync/manifest").await?;
    let mut state = ws.load_state();
    let plan = plan(&manifest, ws, &state, args.skip_materialize)?;
    if args.dry_run {
        let would: Vec<Value> =
            plan.jobs.iter().map(|j| json!({"table": j.table, "url": j.url, "target": j.target})).collect();
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
                println!("  {} ← {}", j.target.display(), j.url);
            }
            for r in &plan.removed {
                println!("  remove {r}");
            }
        }
        return Ok(());
    }

    // Download in parallel.
    let parallel = env_number("AGNES_PULL_PARALLELISM", 4, 32);
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let reporter = Arc::new(Reporter::new(!args.quiet && !args.json));
    let count = plan.jobs.len();
    let mut tasks = Vec::new();
    for (index, job) in plan.jobs.clone().into_iter().enumerate() {
        let (api, gate, reporter) = (api.clone(), gate.clone(), reporter.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.expect("the semaphore is never closed");
            let mut progress = reporter.start(&job, index, count);
            let result = fetch(&api, &job, &mut progress).await;
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

    // Record what is now in place; a failed table keeps its previous record.
    let updated =
        plan.wanted.keys().filter(|t| plan.jobs.iter().any(|j| &j.table == *t) && !failed.contains_key(*t)).count();
    for (name, wanted) in &plan.wanted {
        if !failed.contains_key(name) {
            state.tables.insert(name.clone(), wanted.clone());
        }
    }
    for p in &plan.stale_parts {
        let _ = std::fs::remove_file(p);
    }
    for name in &plan.removed {
        let _ = std::fs::remove_file(ws.table_file(name));
        let _ = std::fs::remove_dir_all(ws.part_dir(name));
        state.tables.remove(name);
    }
    state.last_sync = Some(chrono::Utc::now().to_rfc3339());
    ws.save_state(&state)?;

    // One view per table that is on disk.
    let views: Vec<(String, String)> = state
        .tables
        .iter()
        .filter_map(|(name, t)| {
            if t.parts.is_empty() {
                let f = ws.table_file(name);
                f.is_file().then(|| (name.clone(), f.to_string_lossy().into_owned()))
            } else {
                let d = ws.part_dir(name);
                d.is_dir().then(|| (name.clone(), d.join("*.parquet").to_string_lossy().into_owned()))
            }
        })
        .collect();
    let db = ws.duckdb();
    let skipped = tokio::task::spawn_blocking(move || agnes_engine::local::sync_server_views(&db, &views))
        .await?
        .context("cannot update the local DuckDB (is another program holding it open?)")?;
    for s in skipped {
        eprintln!("warn: a table or snapshot of yours is named {s}: the pulled table {s} has no view (rename yours to see it)");
    }

    let errors: Vec<Value> = failed.iter().map(|(t, e)| json!({"table": t, "error": e})).collect();
    if args.json {
        crate::client::output::json(&json!({
            "tables_updated": updated, "parquets_total": plan.total, "tables_removed": plan.removed.len(),
            "rules_count": 0, "duration_s": started.elapsed().as_secs_f64(), "errors": errors,
        }));
    } else if !args.quiet {
        println!("Updated {updated} tables ({} total).", plan.total);
        if !plan.removed.is_empty() {
            println!("Removed {} table(s) no longer available: {}.", plan.removed.len(), plan.removed.join(", "));
        }
    }
    for (t, e) in &failed {
        eprintln!("warn: {t}: {e}");
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} table(s) failed to pull: {}",
            failed.len(),
            failed.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
