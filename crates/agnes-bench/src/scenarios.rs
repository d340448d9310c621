//! The benchmark scenarios. Each returns a markdown section with its figures.

use crate::report::{machine, Section};
use agnes_connectors::files::{FilesConfig, FilesConnector};
use agnes_connectors::{Connector, SyncContext};
use agnes_core::ident::quote_literal;
use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_engine::confined::{open_with_limits, Limits};
use agnes_engine::extract::{write_extract, ExtractTable, MetaRow};
use agnes_engine::orchestrator::{Orchestrator, RebuildInput};
use agnes_engine::DataLayout;
use anyhow::Context;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REPS: usize = 3;

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn dir_size(paths: &[PathBuf]) -> u64 {
    paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// Files-connector publish vs DuckDB's own `COPY … TO … (FORMAT PARQUET)` of the same
/// input with the same reader options, alternating runs, medians of three.
pub fn publish(scale: f64) -> anyhow::Result<Section> {
    let work = tempfile::tempdir()?;
    let layout = DataLayout::new(work.path().join("data"));
    layout.create()?;
    let root = layout.default_files_root();
    let mut inputs: Vec<(String, String, Vec<PathBuf>)> = Vec::new();

    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/nycflights13/flights.csv");
    if shared.is_file() {
        std::fs::copy(&shared, root.join("flights.csv"))?;
        inputs.push((
            "nycflights13 flights.csv (real, 336,776 rows)".into(),
            "flights.csv".into(),
            vec![root.join("flights.csv")],
        ));
    }
    eprintln!("generating the demo dataset at scale {scale}…");
    agnes_engine::demo_data::generate(&root, scale, 42, |_, _, _| {})?;
    let sessions: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(root.join("demo/web_sessions"))?.flatten().map(|e| e.path()).collect();
        v.sort();
        v
    };
    inputs.push((
        format!("demo web_sessions ({} CSV files)", sessions.len()),
        "demo/web_sessions/*.csv".into(),
        sessions,
    ));
    inputs.push(("demo orders.csv".into(), "demo/orders.csv".into(), vec![root.join("demo/orders.csv")]));

    let connector = FilesConnector::new(FilesConfig { root: root.clone() });
    let limits = Limits { temp_directory: Some(layout.tmp_dir()), ..Default::default() };
    let mut rows_md = String::new();
    let mut worst = f64::INFINITY;
    for (label, pattern, files) in &inputs {
        let mut table = TableSpec::new("bench_table", SourceType::Files, QueryMode::Local, chrono::Utc::now());
        table.source_table = Some(pattern.clone());
        let reader = connector.reader_sql(&table)?;
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        let mut rows = 0;
        for _ in 0..REPS {
            let conn = open_with_limits(&limits)?;
            let out = work.path().join("baseline.parquet");
            let t = Instant::now();
            conn.execute_batch(&format!(
                "COPY ({reader}) TO {} (FORMAT PARQUET)",
                quote_literal(&out.to_string_lossy())
            ))?;
            base.push(t.elapsed());
            drop(conn);
            std::fs::remove_file(&out)?;

            let t = Instant::now();
            let synced = connector.sync_table(
                &table,
                &SyncContext { layout: &layout, limits: &limits, last_sync: None, source_version: None },
            )?;
            ours.push(t.elapsed());
            rows = synced.rows();
        }
        let (o, b) = (median(ours), median(base));
        let mb = dir_size(files) as f64 / 1e6;
        let ratio = b.as_secs_f64() / o.as_secs_f64();
        worst = worst.min(ratio);
        rows_md.push_str(&format!(
            "| {label} | {rows} | {mb:.0} MB | {:.2} s ({:.0} MB/s) | {:.2} s ({:.0} MB/s) | **{ratio:.2}×** |\n",
            o.as_secs_f64(),
            mb / o.as_secs_f64(),
            b.as_secs_f64(),
            mb / b.as_secs_f64()
        ));
    }
    Ok(Section {
        name: "publish",
        body: format!(
            "## Publish throughput: files connector vs DuckDB COPY\n\n{}\n\n\
             agnes = the files connector's whole sync of one table: resolve files under the root, confined DuckDB, \
             `COPY` to a temporary, fsync, rename, fsync the directory, MD5 and row count of the published file. \
             Baseline = DuckDB's own `COPY (same read_csv call) TO … (FORMAT PARQUET)` in a fresh in-memory DuckDB. \
             Median of {REPS} alternating runs; ratio = baseline time / agnes time (throughput of agnes relative to COPY; target ≥ 0.8×).\n\n\
             | input | rows | CSV size | agnes | DuckDB COPY | ratio |\n|---|---|---|---|---|---|\n{rows_md}\n\
             Lowest ratio: **{worst:.2}×**.\n",
            machine()
        ),
    })
}

/// Orchestrator rebuild time for 10, 100 and 1,000 single-file tables in one source.
pub fn rebuild(scale: f64) -> anyhow::Result<Section> {
    let mut rows_md = String::new();
    let mut per_table = Vec::new();
    for n in [10usize, 100, 1000].map(|n| ((n as f64 * scale).round() as usize).max(1)) {
        let work = tempfile::tempdir()?;
        let layout = DataLayout::new(work.path());
        layout.create()?;
        let conn = open_with_limits(&Limits::default())?;
        let mut tables = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("t{i:04}");
            let path = layout.table_file("bench", &name);
            std::fs::create_dir_all(path.parent().unwrap())?;
            conn.execute_batch(&format!(
                "COPY (SELECT range AS id, 'row ' || range AS label FROM range(100)) TO {} (FORMAT PARQUET)",
                quote_literal(&path.to_string_lossy())
            ))?;
            let meta = MetaRow {
                table_name: name,
                description: None,
                rows: 100,
                size_bytes: 0,
                extracted_at: None,
                query_mode: "local".into(),
            };
            tables.push(ExtractTable::over(meta, &agnes_engine::table_data::TableData::File(path))?);
        }
        write_extract(&layout.extract_db("bench"), &tables, &[])?;
        let orchestrator = Orchestrator::new(layout.clone());
        let mut times = Vec::new();
        let mut ownership = Default::default();
        for _ in 0..REPS {
            let t = Instant::now();
            let report = orchestrator
                .rebuild(&RebuildInput { ownership: std::mem::take(&mut ownership), ..Default::default() })?;
            times.push(t.elapsed());
            anyhow::ensure!(report.table_count() == n, "expected {n} tables, got {}", report.table_count());
            ownership = report.new_claims.clone();
            if ownership.is_empty() {
                ownership = (0..n).map(|i| (format!("t{i:04}"), "bench".to_string())).collect();
            }
        }
        let m = median(times);
        per_table.push((n, m));
        rows_md.push_str(&format!(
            "| {n} | {:.0} ms | {:.2} ms |\n",
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() * 1e3 / n as f64
        ));
    }
    let growth = match (per_table.first(), per_table.last()) {
        (Some((n0, t0)), Some((n1, t1))) if n1 > n0 => format!(
            "From {n0} to {n1} tables ({}× more) the time grew {:.1}×.",
            n1 / n0,
            t1.as_secs_f64() / t0.as_secs_f64()
        ),
        _ => String::new(),
    };
    Ok(Section {
        name: "rebuild",
        body: format!(
            "## Orchestrator rebuild\n\n{}\n\nOne source, N single-file tables of 100 rows; full rebuild of \
             `analytics/server.duckdb` (attach, read `_meta`, claim, one view per table, checkpoint, atomic swap). \
             Median of {REPS}; target: 1,000 tables under 2 s, roughly linear.\n\n\
             | tables | rebuild | per table |\n|---|---|---|\n{rows_md}\n{growth}\n",
            machine()
        ),
    })
}

/// Start `agnes serve` on a free loopback port over `data`; returns the child and port
/// once `/api/health` answers.
pub fn start_server(exe: &Path, data: &Path) -> anyhow::Result<(std::process::Child, u16)> {
    start_server_with(exe, data, &[])
}

/// [`start_server`] with extra environment variables.
pub fn start_server_with(exe: &Path, data: &Path, env: &[(&str, &str)]) -> anyhow::Result<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = std::process::Command::new(exe)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .env("AGNES_AUTH_RATELIMIT_ENABLED", "0")
        // No scheduled sync may run in the middle of a measurement.
        .env("AGNES_SCHEDULER_TICK_SECONDS", "0")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health_ok(port) {
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("agnes serve did not answer within 20 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((child, port))
}

pub fn stop(mut child: std::process::Child) -> anyhow::Result<()> {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait()?;
    Ok(())
}

/// Start `agnes serve` on `data` (with `env`), sign a break-glass admin in, run `measure`
/// with the server's URL and the admin's token, and stop the server whatever happened.
pub fn with_admin_server<T>(
    work: &Path,
    data: &Path,
    env: &[(&str, &str)],
    measure: impl FnOnce(&str, &str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let exe = agnes_exe()?;
    let (child, port) = start_server_with(&exe, data, env)?;
    let url = format!("http://127.0.0.1:{port}");
    let result = crate::cli::Client::admin(&exe, data, &url, work.join(format!("cfg-{port}")))
        .and_then(|c| c.token())
        .and_then(|token| measure(&url, &token));
    stop(child)?;
    result
}

/// A data dir prepared by `agnes demo --scale 0.01` (6 tables, users, tokens).
fn demo_data_dir(exe: &Path, data: &Path) -> anyhow::Result<()> {
    let status = std::process::Command::new(exe)
        .args(["demo", "--no-serve", "--scale", "0.01", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .status()
        .context("agnes demo")?;
    anyhow::ensure!(status.success(), "agnes demo failed");
    Ok(())
}

pub fn agnes_exe() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("agnes");
    anyhow::ensure!(exe.is_file(), "{} not found: build it first with `cargo build --workspace`", exe.display());
    Ok(exe)
}

/// `wrk` requests per second for one URL.
fn wrk(url: &str, token: Option<&str>, seconds: u32) -> anyhow::Result<f64> {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c4", &format!("-d{seconds}s")]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().context("wrk is needed: run scripts/bench.sh, which installs it")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw error responses from {url}:\n{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").map(|v| v.trim().parse::<f64>()))
        .context("no Requests/sec in wrk output")?
        .context("unparsable Requests/sec")
}

/// What one `wrk --latency` run saw.
pub struct WrkRun {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests_per_second: f64,
    pub requests: u64,
    /// Responses other than 2xx/3xx.
    pub errors: u64,
}

/// Run `wrk --latency` with `args` (connections, duration, script…) against `url`.
pub fn wrk_run(url: &str, token: Option<&str>, args: &[&str]) -> anyhow::Result<WrkRun> {
    let mut cmd = std::process::Command::new("wrk");
    cmd.arg("--latency").args(args);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().context("wrk is needed: run scripts/bench.sh, which installs it")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| text.lines().find_map(|l| l.trim().strip_prefix(label).map(str::trim));
    let percentile = |label: &str| -> anyhow::Result<f64> {
        let v = field(label).with_context(|| format!("no {label} line in wrk output:\n{text}"))?;
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).context("no unit")?);
        let n: f64 = num.parse()?;
        Ok(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            other => anyhow::bail!("unknown wrk unit {other}"),
        })
    };
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse::<u64>()))
        .context("no request count in wrk output")??;
    Ok(WrkRun {
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        requests_per_second: field("Requests/sec:").context("no Requests/sec in wrk output")?.parse()?,
        requests,
        errors: field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?,
    })
}

/// `wrk` latency percentiles (p50, p99) in milliseconds of one connection to `url`, all
/// answers successful.
pub fn wrk_latency_ms(url: &str, token: Option<&str>, seconds: u32) -> anyhow::Result<(f64, f64)> {
    let run = wrk_run(url, token, &["-t1", "-c1", &format!("-d{seconds}s")])?;
    anyhow::ensure!(run.errors == 0, "wrk saw {} error responses from {url}", run.errors);
    Ok((run.p50_ms, run.p99_ms))
}

/// A wrk script that POSTs `body` as JSON.
fn post_script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let body = body.replace('\\', "\\\\").replace('\'', "\\'");
    std::fs::write(
        &path,
        format!("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{body}'\n"),
    )?;
    Ok(path)
}

/// One analyst's agent firing queries in parallel: 8 and 32 connections of one user
/// against `POST /api/query`, with 5 concurrency slots per user. Over the slots, requests
/// wait in the user's line (`AGNES_QUOTA_SLOT_WAIT_SECONDS`, 10 s) instead of failing.
pub fn backpressure() -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    demo_data_dir(&exe, &data)?;
    let script = post_script(
        work.path(),
        "query.lua",
        r#"{"sql": "SELECT status, count(*) AS n, sum(total_amount) AS revenue FROM orders GROUP BY 1 ORDER BY 1"}"#,
    )?;
    let script = script.to_string_lossy().into_owned();
    let mut rows = String::new();
    // Baseline in the same run: no waiting (every request over the slots is a 429 at once).
    for (label, wait) in [("429 at once (wait 0)", "0"), ("wait in line (10 s)", "10")] {
        let env = [("AGNES_QUOTA_MAX_CONCURRENT", "5"), ("AGNES_QUOTA_SLOT_WAIT_SECONDS", wait)];
        let runs = with_admin_server(work.path(), &data, &env, |server, token| {
            [8u32, 32]
                .into_iter()
                .map(|connections| {
                    let c = format!("-c{connections}");
                    let url = format!("{server}/api/query");
                    Ok((connections, wrk_run(&url, Some(token), &["-t2", &c, "-d10s", "-s", &script])?))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        for (c, r) in runs {
            rows.push_str(&format!(
                "| {label} | {c} | {:.0} | {:.1} ms | {:.1} ms | {} of {} |\n",
                r.requests_per_second, r.p50_ms, r.p99_ms, r.errors, r.requests
            ));
        }
    }
    Ok(Section {
        name: "backpressure",
        body: format!(
            "## One user's parallel queries: waiting for a slot instead of 429\n\n{}\n\n`wrk -t2 -cN -d10s --latency` of one user's PAT \
             against `POST /api/query` (a GROUP BY over the demo's `orders`, scale 0.01), 5 concurrency slots per user. \
             Requests over the slots wait in that user's line, first come first served, up to 10 s, and run when a slot frees; \
             the baseline, measured in the same run, is the behaviour before: every request over the fifth answered 429 at once. \
             Errors are non-2xx answers.\n\n\
             | over the slots | connections | requests/s | p50 | p99 | errors |\n|---|---|---|---|---|---|\n{rows}",
            machine(),
        ),
    })
}

/// Latency of the public health check while 32 connections send bad passwords to
/// `POST /auth/token` (rate limit off, as from as many addresses), against the same check
/// on the idle server. Argon2 runs on the blocking pool, at most half the cores at once, so
/// the runtime keeps answering everyone else.
pub fn signin() -> anyhow::Result<Section> {
    let work = tempfile::tempdir()?;
    let script = work.path().join("bad-signin.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = '{\"email\": \"bench@example.com\", \"password\": \"not-the-password\"}'\n\
         done = function(summary, latency, requests)\n  io.write(string.format(\"attempts: %d\\n\", summary.requests))\nend\n",
    )?;
    let measured = with_admin_server(work.path(), &work.path().join("data"), &[], |server, _| {
        let health = format!("{server}/api/health");
        let idle = wrk_latency_ms(&health, None, 10)?;
        let attack = std::process::Command::new("wrk")
            .args(["-t2", "-c32", "-d14s", "-s"])
            .arg(&script)
            .arg(format!("{server}/auth/token"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("wrk is needed: run scripts/bench.sh, which installs it")?;
        std::thread::sleep(Duration::from_secs(2));
        let loaded = wrk_latency_ms(&health, None, 10)?;
        let out = attack.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let attempts: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("attempts: "))
            .context("no attempt count from the sign-in load")?
            .trim()
            .parse()?;
        Ok((idle, loaded, attempts / 14.0))
    });
    let ((idle50, idle99), (load50, load99), per_second) = measured?;
    Ok(Section {
        name: "signin",
        body: format!(
            "## Health check under a password-guessing flood\n\n{}\n\n`GET /api/health` on one connection for 10 s (`wrk --latency`), \
             first on the idle server, then while `wrk -t2 -c32` sends wrong passwords for an existing user to `POST /auth/token` \
             (rate limit off, as from 32+ addresses). Each wrong password costs one Argon2id verification (19 MiB, 2 passes), \
             run on the blocking pool, at most half the cores at once.\n\n\
             | | p50 | p99 |\n|---|---|---|\n| idle | {idle50:.2} ms | {idle99:.2} ms |\n\
             | during 32 concurrent bad sign-ins ({per_second:.0} verifications/s) | {load50:.2} ms | {load99:.2} ms |\n",
            machine(),
        ),
    })
}

/// A PAT-authenticated `GET /api/me` against the public `GET /api/health` on the same
/// server: 4 connections, alternating 5-second runs, medians of three each.
pub fn auth() -> anyhow::Result<Section> {
    let work = tempfile::tempdir()?;
    let (public, authed) = with_admin_server(work.path(), &work.path().join("data"), &[], |server, token| {
        let (mut public, mut authed) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            public.push(wrk(&format!("{server}/api/health"), None, 5)?);
            authed.push(wrk(&format!("{server}/api/me"), Some(token), 5)?);
        }
        Ok((public, authed))
    })?;
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, a) = (med(public), med(authed));
    Ok(Section {
        name: "auth",
        body: format!(
            "## Authenticated request overhead\n\n{}\n\n`wrk -t2 -c4 -d5s` against one `agnes serve`, alternating runs, median of {REPS}. \
             The PAT path verifies the JWT, loads the user, the token row and the groups from the state DB on every request \
             (no caching: a revoke or deactivation applies to the very next request). Target: ≥ 70 % of the public path.\n\n\
             | endpoint | requests/s |\n|---|---|\n| `GET /api/health` (public; reads the schema version) | {p:.0} |\n\
             | `GET /api/me` with a personal access token | {a:.0} |\n| ratio | **{:.0} %** |\n",
            machine(),
            100.0 * a / p
        ),
    })
}

/// `agnes serve` start-up (process start to the first 200 from /api/health) on an
/// existing data dir, and its resident memory after 2 s idle; baseline `agnes --version`.
pub fn serve() -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    demo_data_dir(&exe, &data)?;

    let mut version_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::process::Command::new(&exe).arg("--version").stdout(std::process::Stdio::null()).status()?;
        version_times.push(t.elapsed());
    }
    let (mut starts, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        let (child, _) = start_server(&exe, &data)?;
        starts.push(t.elapsed());
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(child.id())?);
        stop(child)?;
    }
    let start = median(starts);
    let base = median(version_times);
    rss.sort();
    let rss_mib = rss[rss.len() / 2] as f64 / 1024.0;
    Ok(Section {
        name: "serve",
        body: format!(
            "## `agnes serve` start-up and idle memory\n\n{}\n\nData dir prepared by `agnes demo --scale 0.01` (6 tables, users, tokens). \
             Start-up = process spawn until `GET /api/health` answers 200; RSS = `VmRSS` after 2 s idle. Median of 5. \
             Targets: start under 1 s, idle RSS under 60 MB.\n\n\
             | measure | value |\n|---|---|\n| start-up to healthy | **{:.0} ms** |\n| baseline: `agnes --version` (process spawn + exit) | {:.0} ms |\n| idle RSS | **{rss_mib:.1} MiB** |\n",
            machine(),
            start.as_secs_f64() * 1e3,
            base.as_secs_f64() * 1e3,
        ),
    })
}

fn health_ok(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` for the peak) in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{key} not found"))
}
