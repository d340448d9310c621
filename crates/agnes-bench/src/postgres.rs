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
         FROM generate_series(1, {rows}) g; ALTER TABLE big ADD PRIMARY KEY (id);"
    ));
    pg.execute("VACUUM ANALYZE big");
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
    let ctx = SyncContext { layout: &layout, limits: &limits, last_sync: None, source_version: None };

    // Ours and the baseline alternate, twice each, and the better run of each counts: the
    // first reads of the table and the machine's noise fall on both alike.
    let rss_before = proc_status_kib(std::process::id(), "VmHWM:")?;
    let csv = dir.path().join("big.csv");
    let (mut ours, mut psql, mut duck) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut peak = 0;
    for round in 0..2 {
        let t = Instant::now();
        let full = connector.sync_table(&table, &ctx)?;
        ours = ours.min(t.elapsed());
        if round == 0 {
            // The high-water mark before the baseline's DuckDB runs in this process.
            peak = proc_status_kib(std::process::id(), "VmHWM:")?;
        }
        anyhow::ensure!(full.rows() as u64 == rows, "full refresh published {} rows", full.rows());

        let t = Instant::now();
        let status = Command::new("psql")
            .env("PGPASSWORD", ADMIN_PASSWORD)
            .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", ADMIN_USER, "-d", "postgres", "-q", "-c"])
            .arg(format!("\\copy (SELECT * FROM big) TO '{}' WITH (FORMAT csv, HEADER true)", csv.display()))
            .status()?;
        anyhow::ensure!(status.success(), "psql \\copy failed");
        let copied = t.elapsed();
        let t = Instant::now();
        agnes_engine::duck::open_in_memory()?.execute_batch(&format!(
            "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet)",
            csv.display(),
            dir.path().join("baseline.parquet").display()
        ))?;
        let converted = t.elapsed();
        if copied + converted < psql.saturating_add(duck) {
            (psql, duck) = (copied, converted);
        }
    }
    let baseline = psql + duck;

    // The same table synced incrementally: a first sync lays down the base, then 1 % of
    // the rows change at the source. The change column is indexed, as the column of any
    // table synced this way should be: without the index, finding the changed rows is a
    // scan of the whole table in PostgreSQL.
    pg.execute("CREATE INDEX big_updated_at ON big (updated_at); ANALYZE big");
    let mut incremental = table.clone();
    incremental.name = "big_inc".into();
    incremental.sync_strategy = SyncStrategy::Incremental;
    incremental.incremental_column = Some("updated_at".into());
    incremental.primary_key = vec!["id".into()];
    connector.sync_table(&incremental, &ctx)?;
    // Change the rows `which` picks at the source (newer `updated_at`), then time the sync.
    let change_and_sync =
        |score: i32, year: i32, which: &str| -> anyhow::Result<(Duration, agnes_connectors::SyncedTable)> {
            pg.execute(&format!(
                "UPDATE big SET score = {score}, updated_at = TIMESTAMPTZ '{year}-01-01' + id * interval '1 second' \
             WHERE {which} AND id <= {rows}"
            ));
            let t = Instant::now();
            let synced = connector.sync_table(&incremental, &ctx)?;
            let took = t.elapsed();
            anyhow::ensure!(synced.rows() as u64 == rows, "the incremental sync published {} rows", synced.rows());
            Ok((took, synced))
        };
    let changed = rows / 100;
    let (delta, merged) = change_and_sync(-1, 2030, "id % 100 = 0")?;
    let delta_parts = merged.parts().iter().map(|p| (p.key.clone(), p.file.size_bytes)).collect::<Vec<_>>();

    // What merging on read costs a reader: an aggregate over the layered table (1 % in the
    // delta) vs over the single file of the full refresh, in one DuckDB, best of three.
    let layered_sql =
        agnes_engine::table_data::TableData::locate(&layout, connector.source_name(), &incremental).select_sql()?;
    let single_sql =
        agnes_engine::table_data::TableData::locate(&layout, connector.source_name(), &table).select_sql()?;
    let reader = agnes_engine::duck::open_in_memory()?;
    let read = |from: &str| -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let n: i64 = reader.query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT channel, sum(amount) FROM ({from}) WHERE flagged GROUP BY channel)"
                ),
                [],
                |r| r.get(0),
            )?;
            anyhow::ensure!(n == 3, "{n} channels");
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    let (read_layered, read_single) = (read(&layered_sql)?, read(&single_sql)?);

    // A further 10 % changed rows take the delta past a tenth of the base: that sync
    // compacts (rewrites the base). At 1 % per sync this happens about every tenth sync.
    let (compaction, compacted) = change_and_sync(-2, 2031, "id % 10 = 1")?;
    anyhow::ensure!(compacted.parts()[1].file.rows == 0, "the sync past 10 % compacts");

    // The same filtered aggregate through `agnes query --remote` (server, check, rewrite,
    // PostgreSQL) and through psql; both are one process each, best of three.
    let aggregate = "SELECT channel, count(*) AS n, sum(amount) AS total FROM big WHERE flagged AND day >= DATE '2021-01-01' GROUP BY channel ORDER BY channel";
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(&cfg)?;
    std::fs::write(
        cfg.join("instance.yaml"),
        format!(
            "data_source:\n  postgres:\n    bench:\n      host: 127.0.0.1\n      port: {}\n      database: postgres\n      \
             user: {ADMIN_USER}\n      password_env: AGNES_BENCH_PG_PASSWORD\n      sslmode: disable\n",
            pg.port
        ),
    )?;
    let cfg_dir = cfg.to_string_lossy().into_owned();
    let server_data = dir.path().join("server");
    let (agnes_remote, psql_remote) = crate::scenarios::with_admin_server(
        dir.path(),
        &server_data,
        &[
            ("CONFIG_DIR", &cfg_dir),
            ("AGNES_BENCH_PG_PASSWORD", ADMIN_PASSWORD),
            ("AGNES_QUERY_TIMEOUT_SECONDS", "300"),
        ],
        |url, token| {
            let agnes = crate::scenarios::agnes_exe()?;
            let run = |args: &[&str]| -> anyhow::Result<Duration> {
                let t = Instant::now();
                let out =
                    Command::new(&agnes).args(args).env("AGNES_SERVER", url).env("AGNES_TOKEN", token).output()?;
                anyhow::ensure!(out.status.success(), "agnes {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                Ok(t.elapsed())
            };
            run(&[
                "admin",
                "register-table",
                "big",
                "--source-type",
                "postgres",
                "--query-mode",
                "remote",
                "--source-table",
                "big",
            ])?;
            let psql = || -> anyhow::Result<Duration> {
                let t = Instant::now();
                let status = Command::new("psql")
                    .env("PGPASSWORD", ADMIN_PASSWORD)
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &pg.port.to_string(),
                        "-U",
                        ADMIN_USER,
                        "-d",
                        "postgres",
                        "-q",
                        "-o",
                        "/dev/null",
                        "-c",
                        aggregate,
                    ])
                    .status()?;
                anyhow::ensure!(status.success(), "psql failed");
                Ok(t.elapsed())
            };
            let mut ours = Duration::MAX;
            let mut theirs = Duration::MAX;
            for _ in 0..3 {
                ours = ours.min(run(&["query", "--remote", aggregate, "--format", "json"])?);
                theirs = theirs.min(psql()?);
            }
            Ok((ours, theirs))
        },
    )?;

    let secs = |d: Duration| d.as_secs_f64();
    Ok(Section {
        name: "postgres",
        body: format!(
            "## PostgreSQL sync\n\n{}\n\nA throw-away PostgreSQL {} cluster on the same machine; table `big`: {rows} rows × 10 \
             columns (bigint, numeric(10,2), text, date, timestamptz, boolean, NULLs), primary key `id`. Peak RSS is the \
             bench process's high-water mark (it runs the connector as the server does), which was {:.0} MiB before.\n\n\
             | measure | agnes | baseline | target |\n|---|---|---|---|\n\
             | full refresh to parquet (better of two) | {:.2} s | `psql \\copy` to CSV {:.2} s + DuckDB CSV → parquet {:.2} s = {:.2} s | ≤ 1.0× ({:.2}×) |\n\
             | peak RSS during the sync | {:.0} MiB | | < 500 MB |\n\
             | incremental, {changed} rows (1 %) changed | {:.2} s | the full refresh: {:.2} s | ≤ 10 % ({:.1} %) |\n\
             | incremental that compacts (10 % more changed) | {:.2} s | the full refresh: {:.2} s | |\n\
             | aggregate over the layered table (1 % in the delta) | {:.3} s | the same over one file: {:.3} s | ({:.2}×) |\n\
             | filtered aggregate, `agnes query --remote` | {:.3} s | `psql -c`: {:.3} s | ≤ 1.2× ({:.2}×) |\n\n\
             The aggregate: `{aggregate}`; best of three, each a whole process (CLI → server → check and rewrite → \
             PostgreSQL → JSON).\n\n\
             `updated_at` is indexed for the incremental sync. An incremental table is layered: the 1 % sync wrote {} beside the untouched {} (an analyst's pull \
             downloads the delta alone); reads merge the two on the key.\n",
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
            secs(compaction),
            secs(ours),
            secs(read_layered),
            secs(read_single),
            secs(read_layered) / secs(read_single),
            secs(agnes_remote),
            secs(psql_remote),
            secs(agnes_remote) / secs(psql_remote),
            delta_parts.get(1).map(|(k, b)| format!("a {k} of {:.1} MiB", *b as f64 / 1048576.0)).unwrap_or_default(),
            delta_parts.first().map(|(k, b)| format!("{k} of {:.0} MiB", *b as f64 / 1048576.0)).unwrap_or_default(),
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
