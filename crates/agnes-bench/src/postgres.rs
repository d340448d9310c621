//! The PostgreSQL connector on a 10-million-row, 10-column table in a throw-away cluster:
//! full refresh vs the two-step baseline (`psql \copy` to CSV, then DuckDB CSV → parquet),
//! peak memory, and an incremental sync of 1 % changed rows vs the full refresh.

use crate::report::{machine, Section};
use crate::scenarios::proc_status_kib;
use agnes_connectors::postgres::{PgConnectionConfig, PgSource, PostgresConnector, SslMode};
use agnes_connectors::testing::{PgCluster, ADMIN_PASSWORD, ADMIN_USER};
use agnes_connectors::{Connector, SyncContext};
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::DataLayout;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn postgres_bench(scale: f64) -> anyhow::Result<Section> {
    let rows = ((10_000_000.0 * scale) as u64).max(10_000);
    let pg = PgCluster::start();
    pg.execute(&format!(
        "CREATE TABLE big AS SELECT g AS id, g % 1000 AS customer, ((g % 97) * 1.25)::numeric(10,2) AS amount, \
           (ARRAY['web','store','phone'])[g % 3 + 1] AS channel, 'sku-' || (g % 5000) AS sku, \
           DATE '2020-01-01' + (g % 1500)::int AS day, TIMESTAMPTZ '2020-01-01' + g * interval '1 second' AS updated_at, \
           g % 7 = 0 AS flagged, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 13 END AS score, md5(g::text) AS token \
         FROM generate_series(1, {rows}) g; ALTER TABLE big ADD PRIMARY KEY (id); VACUUM ANALYZE big;"
    ));
    let dir = tempfile::tempdir()?;
    let layout = DataLayout::new(dir.path().join("data"));
    layout.create()?;
    let limits = Limits { temp_directory: Some(layout.tmp_dir()), ..Default::default() };
    let connector = PostgresConnector::new(PgSource {
        name: "bench".into(),
        config: PgConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(pg.port),
            database: Some("postgres".into()),
            user: Some(ADMIN_USER.into()),
            password_env: Some("AGNES_BENCH_PG_PASSWORD".into()),
            sslmode: SslMode::Disable,
            ..Default::default()
        },
    });
    std::env::set_var("AGNES_BENCH_PG_PASSWORD", ADMIN_PASSWORD);
    let mut table = TableSpec::new("big", SourceType::Postgres, QueryMode::Local, Default::default());
    table.source_table = Some("big".into());
    let ctx = SyncContext { layout: &layout, limits: &limits };

    let rss_before = proc_status_kib(std::process::id(), "VmHWM:")?;
    let t = Instant::now();
    let full = connector.sync_table(&table, &ctx)?;
    let ours = t.elapsed();
    let peak = proc_status_kib(std::process::id(), "VmHWM:")?;
    anyhow::ensure!(full.rows() as u64 == rows, "full refresh published {} rows", full.rows());

    let csv = dir.path().join("big.csv");
    let t = Instant::now();
    let status = Command::new("psql")
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", ADMIN_USER, "-d", "postgres", "-q", "-c"])
        .arg(format!("\\copy (SELECT * FROM big) TO '{}' WITH (FORMAT csv, HEADER true)", csv.display()))
        .status()?;
    anyhow::ensure!(status.success(), "psql \\copy failed");
    let psql = t.elapsed();
    let t = Instant::now();
    agnes_engine::duck::open_in_memory()?.execute_batch(&format!(
        "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet)",
        csv.display(),
        dir.path().join("baseline.parquet").display()
    ))?;
    let duck = t.elapsed();
    let baseline = psql + duck;

    let mut incremental = table.clone();
    incremental.sync_strategy = SyncStrategy::Incremental;
    incremental.incremental_column = Some("updated_at".into());
    incremental.primary_key = vec!["id".into()];
    let changed = rows / 100;
    pg.execute(&format!(
        "UPDATE big SET score = -1, updated_at = TIMESTAMPTZ '2030-01-01' + id * interval '1 second' \
         WHERE id % 100 = 0 AND id <= {rows}"
    ));
    let t = Instant::now();
    let merged = connector.sync_table(&incremental, &ctx)?;
    let delta = t.elapsed();
    anyhow::ensure!(merged.rows() as u64 == rows, "incremental published {} rows", merged.rows());

    let secs = |d: Duration| d.as_secs_f64();
    Ok(Section {
        name: "postgres",
        body: format!(
            "## PostgreSQL sync\n\n{}\n\nA throw-away PostgreSQL {} cluster on the same machine; table `big`: {rows} rows × 10 \
             columns (bigint, numeric(10,2), text, date, timestamptz, boolean, NULLs), primary key `id`. Peak RSS is the \
             bench process's high-water mark (it runs the connector as the server does), which was {:.0} MiB before.\n\n\
             | measure | agnes | baseline | target |\n|---|---|---|---|\n\
             | full refresh to parquet | {:.2} s | `psql \\copy` to CSV {:.2} s + DuckDB CSV → parquet {:.2} s = {:.2} s | ≤ 1.0× ({:.2}×) |\n\
             | peak RSS during the sync | {:.0} MiB | | < 500 MB |\n\
             | incremental, {changed} rows (1 %) changed | {:.2} s | the full refresh: {:.2} s | ≤ 10 % ({:.1} %) |\n",
            machine(),
            pg_major(),
            rss_before as f64 / 1024.0,
            secs(ours),
            secs(psql),
            secs(duck),
            secs(baseline),
            secs(ours) / secs(baseline),
            peak as f64 / 1024.0,
            secs(delta),
            secs(ours),
            secs(delta) / secs(ours) * 100.0,
        ),
    })
}

fn pg_major() -> String {
    Command::new("psql")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(2).map(String::from))
        .unwrap_or_else(|| "?".into())
}
