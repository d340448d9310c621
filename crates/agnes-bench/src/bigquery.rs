//! Remote BigQuery tables against the fake REST API (`agnes-fakes`), through a real
//! `agnes serve`:
//!
//! * a remote query answering 100,000 rows: `/api/query` (curl's own timing of the whole
//!   request: the parse-tree check, the dry run, the job, its pages, the JSON answer)
//!   against fetching the same result pages directly from the fake with the client alone
//!   (the job and its pages, no check, no dry run, no conversion);
//! * the catalog of 1,000 remote tables from the metadata cache: `/api/v2/catalog`
//!   latency, with the fake's call count showing no BigQuery call was made.

use crate::report::{machine, Section};
use crate::scenarios::{median, with_admin_server};
use agnes_connectors::bigquery::{BigQueryConfig, BigQuerySource, BqClient};
use agnes_core::{QueryMode, SourceType, TableSpec};
use agnes_fakes::bigquery::{FakeBigQuery, FakeBqTable};
use anyhow::Context;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

const ROWS: u64 = 100_000;
const CATALOG_TABLES: usize = 1000;
const KEY_ENV: &str = "AGNES_BENCH_BQ_KEY";

/// One request with curl: its status, body and curl's own time for it.
fn curl(method: &str, url: &str, token: &str, body: Option<&str>) -> anyhow::Result<(String, Duration)> {
    let out_file = tempfile::NamedTempFile::new()?;
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-o"]).arg(out_file.path());
    cmd.args(["-w", "%{http_code} %{time_total}", "-H", &format!("Authorization: Bearer {token}")]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", b]);
    }
    let out = cmd.arg(url).output().context("curl is needed")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').context("curl printed no timing")?;
    let answer = std::fs::read_to_string(out_file.path())?;
    anyhow::ensure!(code == "200", "{method} {url} answered {code}: {}", answer.chars().take(300).collect::<String>());
    Ok((answer, Duration::from_secs_f64(secs.trim().parse()?)))
}

pub fn bigquery_bench() -> anyhow::Result<Section> {
    let fake = FakeBigQuery::start("bench-data", "bench-billing");
    fake.set_polls(0);
    fake.add_table(
        "bench",
        "events",
        FakeBqTable {
            kind: "TABLE".into(),
            fields: json!([{"name": "id", "type": "INTEGER"}, {"name": "customer", "type": "STRING"},
                           {"name": "amount", "type": "NUMERIC"}, {"name": "day", "type": "DATE"},
                           {"name": "at", "type": "TIMESTAMP"}, {"name": "flagged", "type": "BOOLEAN"}]),
            rows: ROWS,
            bytes: 100 << 20,
            data: Some(format!(
                "SELECT range AS id, 'customer-' || (range % 1000) AS customer, ((range % 97) * 1.25)::DECIMAL(12,2) AS amount, \
                 DATE '2024-01-01' + (range % 366)::INTEGER AS day, TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(range) AS at, \
                 range % 7 = 0 AS flagged FROM range({ROWS})"
            )),
            ..Default::default()
        },
    );
    for i in 0..CATALOG_TABLES {
        fake.add_table(
            "catalog",
            &format!("t{i:04}"),
            FakeBqTable {
                kind: if i % 10 == 0 { "VIEW".into() } else { "TABLE".into() },
                fields: json!([{"name": "id", "type": "INTEGER"}, {"name": "day", "type": "DATE"},
                               {"name": "country", "type": "STRING"}]),
                rows: 1_000_000 + i as u64,
                bytes: 1 << 30,
                data: None,
                partition_by: Some("day".into()),
                clustered_by: vec!["country".into()],
            },
        );
    }
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    let config_dir = work.path().join("config");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(
        config_dir.join("instance.yaml"),
        format!(
            "data_source:\n  bigquery:\n    project: bench-data\n    billing_project: bench-billing\n    \
             api_endpoint: {}\n    credentials_env: {KEY_ENV}\n",
            fake.url
        ),
    )?;
    std::env::set_var(KEY_ENV, &fake.key_file);

    // The registry rows, written before the server starts; the server's metadata refresh
    // fills the cache from BigQuery.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let layout = agnes_engine::DataLayout::new(&data);
        layout.create()?;
        let store = agnes_store::Store::open(&layout.state_db()).await?;
        let remote = |name: &str, dataset: &str, table: &str| {
            let mut t = TableSpec::new(name, SourceType::Bigquery, QueryMode::Remote, chrono::Utc::now());
            t.bucket = Some(dataset.into());
            t.source_table = Some(table.into());
            t
        };
        store.registry().insert(&remote("events", "bench", "events")).await?;
        for i in 0..CATALOG_TABLES {
            store.registry().insert(&remote(&format!("t{i:04}"), "catalog", &format!("t{i:04}"))).await?;
        }
        store.close().await;
        anyhow::Ok(())
    })?;

    let config_env = config_dir.to_string_lossy().into_owned();
    let key = fake.key_file.to_string_lossy().into_owned();
    let env = [("CONFIG_DIR", config_env.as_str()), (KEY_ENV, key.as_str())];
    let (refresh, catalog, calls_during_catalog, ours, direct) =
        with_admin_server(work.path(), &data, &env, |url, token| {
            let started = Instant::now();
            let (answer, _) = curl("POST", &format!("{url}/api/admin/run-bq-metadata-refresh"), token, None)?;
            let refresh = started.elapsed();
            let refreshed: serde_json::Value = serde_json::from_str(&answer)?;
            let n = refreshed["refreshed"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                n == CATALOG_TABLES + 1,
                "refreshed {n} tables: {}",
                answer.chars().take(300).collect::<String>()
            );

            let calls = fake.requests();
            let mut catalog = Vec::new();
            for _ in 0..50 {
                let (answer, t) = curl("GET", &format!("{url}/api/v2/catalog"), token, None)?;
                catalog.push(t);
                let v: serde_json::Value = serde_json::from_str(&answer)?;
                let listed = v["tables"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(listed == CATALOG_TABLES + 1, "the catalog listed {listed} tables");
                anyhow::ensure!(
                    v["tables"][1]["metadata_freshness"] == "fresh",
                    "not from a fresh cache: {}",
                    v["tables"][1]
                );
            }
            let calls_during_catalog = fake.requests() - calls;

            // The 100,000-row query, ours and the direct fetch alternating; the median of 5 each.
            let source = BigQuerySource {
                config: BigQueryConfig {
                    project: Some("bench-data".into()),
                    billing_project: Some("bench-billing".into()),
                    api_endpoint: Some(fake.url.clone()),
                    credentials_env: Some(KEY_ENV.into()),
                    ..Default::default()
                },
            };
            let client = BqClient::connect(&source)?;
            let body = json!({"sql": "SELECT * FROM events", "limit": ROWS}).to_string();
            let (mut ours, mut direct) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                let (answer, t) = curl("POST", &format!("{url}/api/query"), token, Some(&body))?;
                let v: serde_json::Value = serde_json::from_str(&answer)?;
                anyhow::ensure!(v["row_count"] == ROWS && v["truncated"] == false, "ours answered {}", v["row_count"]);
                ours.push(t);
                let started = Instant::now();
                let done = client
                    .query(
                        "SELECT * FROM `bench-data.bench.events`",
                        None,
                        &json!({}),
                        Duration::from_secs(600),
                        |_, _| Ok(true),
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                direct.push(started.elapsed());
                anyhow::ensure!(done.rows == ROWS, "the direct fetch read {} rows", done.rows);
            }
            Ok((refresh, median(catalog.clone()), calls_during_catalog, median(ours), median(direct)))
        })?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Section {
        name: "bigquery",
        body: format!(
            "## BigQuery remote tables\n\n{}\n\nThe fake BigQuery REST API (`agnes-fakes`) on loopback: a {ROWS}-row, \
             6-column table (INT64, STRING, NUMERIC, DATE, TIMESTAMP, BOOL) answered in pages of 10,000 in BigQuery's \
             `f`/`v` encoding, and {CATALOG_TABLES} more remote tables. `agnes serve` with `data_source.bigquery` and a \
             service-account key. Ours is curl's time for the whole `POST /api/query` (`SELECT * FROM events`, limit \
             {ROWS}): the parse-tree check and rewrite, the dry run, the job, every page, the JSON answer. The baseline \
             is the same job and pages fetched directly with the REST client in the benchmark's process (no check, no \
             dry run, no conversion). Median of 5, alternating. The catalog is curl's time for `GET /api/v2/catalog` \
             as an admin, median of 50, after one metadata refresh of all {} tables ({:.1} s).\n\n\
             | measure | agnes | baseline | target |\n|---|---|---|---|\n\
             | remote query, {ROWS} rows | {:.0} ms | the same pages fetched directly: {:.0} ms | ≤ 1.3× ({:.2}×) |\n\
             | catalog of {CATALOG_TABLES} remote tables, p50 | {:.1} ms | BigQuery calls made by 50 catalogs: {calls_during_catalog} | ≤ 5 ms |\n",
            machine(),
            CATALOG_TABLES + 1,
            refresh.as_secs_f64(),
            ms(ours),
            ms(direct),
            ms(ours) / ms(direct),
            ms(catalog),
        ),
    })
}
