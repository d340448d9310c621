//! The `pull` scenario: distribution measured end to end with the real binaries.
//!
//! * a ~1 GB dataset of 20 tables (the demo generator at a larger scale, four copies of
//!   each table): a cold `agnes pull` into an empty workspace against `cp -r` of the same
//!   parquet files, and the pull's peak RSS;
//! * one ~1 GB table pulled alone: download throughput over loopback;
//! * 1,000 small tables: a pull with nothing to do, and the manifest's latency (wrk).

use crate::cli::Client;
use crate::report::{machine, Section};
use crate::scenarios::{agnes_exe, median, start_server, stop, wrk_latency_ms};
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Register `specs` in a fresh data dir and sync them in-process.
pub fn prepare(data: &Path, specs: Vec<TableSpec>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let config = agnes_server::ServerConfig::load(data.to_path_buf(), "127.0.0.1:0".parse()?, None)?;
        let state = agnes_server::prepare(config).await?;
        let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
        for s in specs {
            state.store.registry().insert(&s).await?;
        }
        let report = state.sync.run(agnes_server::sync::Selection::Tables(ids), None).await?;
        let failed: Vec<_> = report.failed().map(|t| format!("{}: {:?}", t.id, t.error)).collect();
        anyhow::ensure!(failed.is_empty(), "sync failed: {failed:?}");
        state.store.close().await;
        anyhow::Ok(())
    })
}

/// A data dir with 1,000 small tables (`t0000`…`t0999`, 1,000 rows each) registered and
/// synced: the catalog-sized instance the MCP and web benchmarks serve.
pub fn thousand_tables(data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data.join("sources"))?;
    let rows: String = (0..1000).map(|i| format!("{i},label-{i}\n")).collect();
    std::fs::write(data.join("sources/small.csv"), format!("id,label\n{rows}"))?;
    eprintln!("syncing 1,000 tables…");
    prepare(data, (0..1000).map(|i| local(&format!("t{i:04}"), "small.csv")).collect())
}

pub fn local(name: &str, source: &str) -> TableSpec {
    let mut t = TableSpec::new(name, SourceType::Files, QueryMode::Local, chrono::Utc::now());
    t.source_table = Some(source.to_string());
    t
}

fn timed(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

fn du(dir: &Path) -> u64 {
    walk(dir).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

pub fn pull(scale: f64) -> anyhow::Result<Section> {
    let exe = agnes_exe()?;
    let work = tempfile::tempdir()?;

    // A: 20 tables, about 1 GB of parquet.
    let data = work.path().join("a");
    let root = data.join("sources");
    std::fs::create_dir_all(&root)?;
    eprintln!("generating the demo dataset at scale {}…", 4.0 * scale);
    agnes_engine::demo_data::generate(&root, 4.0 * scale, 42, |_, _, _| {})?;
    let mut specs = Vec::new();
    for copy in 1..=4 {
        for (name, source) in [
            ("customers", "demo/customers.csv"),
            ("products", "demo/products.json"),
            ("orders", "demo/orders.csv"),
            ("order_items", "demo/order_items.parquet"),
        ] {
            specs.push(local(&format!("{name}_{copy}"), source));
        }
        let mut sessions = local(&format!("web_sessions_{copy}"), "demo/web_sessions/*.csv");
        sessions.sync_strategy = SyncStrategy::Partitioned;
        sessions.partition_by = Some("started_at".into());
        specs.push(sessions);
    }
    eprintln!("syncing 20 tables…");
    prepare(&data, specs)?;
    let published = data.join("extracts/files/data");
    let bytes = du(&published);
    let files = walk(&published).len();

    let (server, port) = start_server(&exe, &data)?;
    let url = format!("http://127.0.0.1:{port}");
    let result = (|| -> anyhow::Result<(Duration, Duration, i64)> {
        let client = Client::admin(&exe, &data, &url, work.path().join("cfg-a"))?;
        let (mut pulls, mut copies) = (Vec::new(), Vec::new());
        let mut rss = 0;
        for i in 0..3 {
            let ws = work.path().join(format!("ws{i}"));
            std::fs::create_dir_all(&ws)?;
            pulls.push(timed(|| {
                rss = rss.max(client.run_measured(&ws, &["pull", "--quiet"])?.1);
                Ok(())
            })?);
            anyhow::ensure!(
                du(&ws.join("server/parquet")) == bytes,
                "the pull brought {} bytes, the server has {bytes}",
                du(&ws.join("server/parquet"))
            );
            let dest = work.path().join(format!("cp{i}"));
            copies.push(timed(|| {
                let ok = Command::new("cp").arg("-r").arg(&published).arg(&dest).status()?.success();
                anyhow::ensure!(ok, "cp failed");
                Ok(())
            })?);
            std::fs::remove_dir_all(&ws)?;
            std::fs::remove_dir_all(&dest)?;
        }
        Ok((median(pulls), median(copies), rss))
    })();
    stop(server)?;
    let (cold, cp, rss) = result?;

    // One big table alone.
    let big_data = work.path().join("big");
    let big_root = big_data.join("sources");
    std::fs::create_dir_all(&big_root)?;
    let rows = (17_000_000.0 * scale) as i64;
    let conn = agnes_engine::duck::open_in_memory()?;
    conn.execute_batch(&format!(
        "COPY (SELECT range AS id, hash(range) AS a, hash(range + 1) AS b, md5(range::VARCHAR) AS s FROM range({rows})) TO '{}' (FORMAT PARQUET, COMPRESSION UNCOMPRESSED)",
        big_root.join("big.parquet").display()
    ))?;
    drop(conn);
    prepare(&big_data, vec![local("big", "big.parquet")])?;
    let big_bytes = du(&big_data.join("extracts/files/data"));
    let (server, port) = start_server(&exe, &big_data)?;
    let result = (|| -> anyhow::Result<(Duration, i64)> {
        let client = Client::admin(&exe, &big_data, &format!("http://127.0.0.1:{port}"), work.path().join("cfg-big"))?;
        let mut times = Vec::new();
        let mut rss = 0;
        for i in 0..3 {
            let ws = work.path().join(format!("big-ws{i}"));
            std::fs::create_dir_all(&ws)?;
            times.push(timed(|| {
                rss = rss.max(client.run_measured(&ws, &["pull", "--quiet"])?.1);
                Ok(())
            })?);
            std::fs::remove_dir_all(&ws)?;
        }
        Ok((median(times), rss))
    })();
    stop(server)?;
    let (big_time, big_rss) = result?;
    let rss = rss.max(big_rss);

    // B: 1,000 small tables.
    let many = work.path().join("many");
    std::fs::create_dir_all(many.join("sources"))?;
    std::fs::write(many.join("sources/small.csv"), "id,label\n1,a\n2,b\n3,c\n")?;
    eprintln!("syncing 1,000 tables…");
    prepare(&many, (0..1000).map(|i| local(&format!("t{i:04}"), "small.csv")).collect())?;
    let (server, port) = start_server(&exe, &many)?;
    let result = (|| -> anyhow::Result<(Duration, f64)> {
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::admin(&exe, &many, &url, work.path().join("cfg-many"))?;
        let ws = work.path().join("many-ws");
        std::fs::create_dir_all(&ws)?;
        client.run(&ws, &["pull", "--quiet"])?;
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(timed(|| client.run(&ws, &["pull", "--quiet"]).map(|_| ()))?);
        }
        let (p50, _) = wrk_latency_ms(&format!("{url}/api/sync/manifest"), Some(&client.token()?), 5)?;
        Ok((median(times), p50))
    })();
    stop(server)?;
    let (no_change, manifest_p50) = result?;

    let mb = bytes as f64 / 1e6;
    Ok(Section {
        name: "pull",
        body: format!(
            "## `agnes pull`\n\n{}\n\nReal binaries over loopback: `agnes serve` and `agnes pull` (PAT, 4 parallel downloads, files of 64 MiB and more as 4 ranges at once, the XXH3-128 checksum verified while the bytes arrive), medians of 3 (5 for the no-change pull).\n\n\
             | measure | agnes | baseline | result | target |\n|---|---|---|---|---|\n\
             | cold pull, 20 tables, {files} files, {mb:.0} MB | {:.2} s | `cp -r` of the same files: {:.2} s | **{:.2}×** | ≤ 1.5× |\n\
             | peak RSS of `agnes pull` (largest of all runs, GNU time) | {:.1} MiB | | | < 100 MB |\n\
             | one {:.0} MB table pulled alone | {:.2} s | | **{:.0} MB/s** | ≥ 500 MB/s |\n\
             | no-change pull, 1,000 tables in the manifest | {:.0} ms | | | < 150 ms |\n\
             | manifest of 1,000 tables, p50 (`wrk -c1 --latency`) | {manifest_p50:.2} ms | | | < 5 ms |\n",
            machine(),
            cold.as_secs_f64(),
            cp.as_secs_f64(),
            cold.as_secs_f64() / cp.as_secs_f64(),
            rss as f64 / 1024.0,
            big_bytes as f64 / 1e6,
            big_time.as_secs_f64(),
            big_bytes as f64 / 1e6 / big_time.as_secs_f64(),
            no_change.as_secs_f64() * 1e3,
        ),
    })
}
