//! The Keboola connector against the fake Storage API (`agnes-fakes`): real HTTP, jobs
//! that take a few polls, sliced gzipped CSV and parquet on GCS- and S3-style object
//! stores, failures.

use super::*;
use crate::test_rows::text_rows as rows;
use crate::{Connector, Publication, SyncContext, SyncedTable};
use agnes_core::{QueryMode, SourceType, SyncStrategy, TableSpec};
use agnes_engine::confined::Limits;
use agnes_engine::table_data::TableData;
use agnes_engine::DataLayout;
use agnes_fakes::keboola::{FakeColumn, FakeKeboola, Provider};

const TOKEN: &str = "1234-56789-kbc-secret-token";

struct Env {
    _dir: tempfile::TempDir,
    layout: DataLayout,
    fake: FakeKeboola,
    connector: KeboolaConnector,
}

fn env() -> Env {
    std::env::set_var("AGNES_TEST_KBC_TOKEN", TOKEN);
    std::env::set_var("AGNES_KEBOOLA_POLL_INTERVAL_SEC", "0.02");
    let fake = FakeKeboola::start(TOKEN);
    fake.create_table(
        "in.c-shop.orders",
        vec![
            FakeColumn::new("id", "INTEGER"),
            FakeColumn::new("customer", "STRING"),
            FakeColumn::numeric("amount", "12,2"),
            FakeColumn::new("ordered_on", "DATE"),
            FakeColumn::new("paid", "BOOLEAN"),
            FakeColumn::new("note", "STRING"),
        ],
        &["id"],
    );
    fake.upsert("in.c-shop.orders", (1..=500).map(order).collect());
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    let connector = KeboolaConnector::new(KeboolaSource {
        name: None,
        config: KeboolaConnectionConfig {
            stack_url: Some(fake.url.clone()),
            token_env: Some("AGNES_TEST_KBC_TOKEN".into()),
            gcs_endpoint: Some(fake.gcs_endpoint()),
            s3_endpoint: Some(fake.s3_endpoint()),
            ..Default::default()
        },
    });
    Env { _dir: dir, layout, fake, connector }
}

/// Order `i`: every fifth has no note, every seventh is unpaid, notes with quotes, commas
/// and a line break.
fn order(i: u32) -> Vec<String> {
    vec![
        i.to_string(),
        format!("customer-{}", i % 40),
        format!("{}.{:02}", i * 3, i % 100),
        format!("2024-{:02}-{:02}", i % 12 + 1, i % 28 + 1),
        if i.is_multiple_of(7) { "false" } else { "true" }.to_string(),
        if i.is_multiple_of(5) { String::new() } else { format!("said \"hi\", then\nleft #{i}") },
    ]
}

fn orders() -> TableSpec {
    let mut t = TableSpec::new("orders", SourceType::Keboola, QueryMode::Local, Default::default());
    t.bucket = Some("in.c-shop".into());
    t.source_table = Some("orders".into());
    t.primary_key = vec!["id".into()];
    t
}

impl Env {
    fn sync(
        &self,
        t: &TableSpec,
        last_sync: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<SyncedTable, crate::ConnectorError> {
        self.sync_after(t, last_sync, None)
    }

    /// A sync after one that read the table at `version`.
    fn sync_after(
        &self,
        t: &TableSpec,
        last_sync: Option<chrono::DateTime<chrono::Utc>>,
        version: Option<&str>,
    ) -> Result<SyncedTable, crate::ConnectorError> {
        let ctx = SyncContext { layout: &self.layout, limits: &Limits::default(), last_sync, source_version: version };
        self.connector.sync_table(t, &ctx)
    }

    /// The published table as text rows ordered by id, every value as DuckDB prints it.
    fn published(&self, t: &TableSpec) -> Vec<Vec<String>> {
        let sql = TableData::locate(&self.layout, self.connector.source_name(), t).select_sql().unwrap();
        rows(&format!("SELECT * FROM ({sql}) ORDER BY id"))
    }
}

/// What the fake holds, as the published table should read: typed columns print as
/// DuckDB prints them, an empty note stays an empty string.
fn expected(fake: &FakeKeboola) -> Vec<Vec<String>> {
    let mut rows = fake.rows("in.c-shop.orders");
    rows.sort_by_key(|r| r[0].parse::<u32>().unwrap());
    rows
}

#[test]
fn a_full_refresh_arrives_typed_and_equal_to_the_source() {
    let env = env();
    let t = orders();
    assert_eq!(env.connector.unsupported(&t), None);
    let synced = env.sync(&t, None).unwrap();
    assert_eq!(synced.rows(), 500);
    let path = env.layout.table_file("keboola", "orders");
    let types = rows(&format!(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{}'))",
        path.display()
    ));
    assert_eq!(
        types,
        [
            ["id", "BIGINT"],
            ["customer", "VARCHAR"],
            ["amount", "DECIMAL(12,2)"],
            ["ordered_on", "DATE"],
            ["paid", "BOOLEAN"],
            ["note", "VARCHAR"]
        ]
    );
    assert_eq!(env.published(&t), expected(&env.fake), "row for row, quotes, commas and line breaks intact");
    let export = &env.fake.exports()[0]["params"];
    assert_eq!((export["fileType"].as_str(), export["gzip"].as_bool()), (Some("csv"), Some(true)), "{export}");
}

#[test]
fn parquet_slices_are_merged_as_parquet_on_an_s3_stack() {
    let env = env();
    env.fake.set_provider(Provider::Aws);
    env.fake.set_slices(4);
    let mut t = orders();
    t.source_options = Some(serde_json::json!({"file_type": "parquet"}));
    env.sync(&t, None).unwrap();
    assert_eq!(env.published(&t), expected(&env.fake));
    assert_eq!(env.fake.exports()[0]["params"]["fileType"], "parquet");
}

#[test]
fn incremental_asks_for_changes_since_the_last_sync_and_merges_them() {
    let env = env();
    let mut t = orders();
    t.sync_strategy = SyncStrategy::Incremental;
    // No window: exactly the rows changed since the last sync.
    t.incremental_window_days = Some(0);
    let first = env.sync(&t, None).unwrap();
    assert_eq!(first.rows(), 500);
    assert!(env.fake.exports()[0]["params"].get("changedSince").is_none(), "the first sync reads everything");
    // changedSince counts whole seconds: let the first rows fall before the mark.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let synced_at = chrono::Utc::now();
    let mut changed: Vec<Vec<String>> = (1..=10)
        .map(|i| {
            let mut r = order(i * 50);
            r[5] = format!("updated {i}");
            r
        })
        .collect();
    changed.push(order(501));
    env.fake.upsert("in.c-shop.orders", changed);
    let second = env.sync(&t, Some(synced_at)).unwrap();
    let Publication::Layered(layers) = &second.publication else { panic!("layers expected") };
    let since = env.fake.exports()[1]["params"]["changedSince"].as_str().unwrap().parse::<i64>().unwrap();
    assert_eq!(since, synced_at.timestamp(), "the last sync, less a window of 0 days");
    assert_eq!((layers.rows, layers.parts[1].file.rows), (501, 11), "ten updated rows and one new in the delta");
    assert_eq!(env.published(&t), expected(&env.fake));
}

/// A table Keboola has not imported into since the last sync is not exported again.
#[test]
fn an_unchanged_table_is_not_exported_again() {
    let env = env();
    let t = orders();
    let first = env.sync(&t, None).unwrap();
    let version = first.source_version.clone().expect("Keboola's lastImportDate is kept");
    let again = env.sync_after(&t, Some(chrono::Utc::now()), Some(&version)).unwrap();
    assert_eq!(env.fake.exports().len(), 1, "no second export");
    assert_eq!((again.publication, again.source_version), (first.publication, Some(version.clone())));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.fake.upsert("in.c-shop.orders", vec![order(501)]);
    let third = env.sync_after(&t, Some(chrono::Utc::now()), Some(&version)).unwrap();
    assert_eq!((env.fake.exports().len(), third.rows()), (2, 501), "a new import is exported");
    assert_ne!(third.source_version, Some(version));
}

#[test]
fn a_failed_job_keeps_the_last_good_data_and_says_why() {
    let env = env();
    let t = orders();
    let good = env.sync(&t, None).unwrap();
    env.fake.fail_next_job("Snowflake warehouse is suspended");
    let err = env.sync(&t, None).unwrap_err().to_string();
    assert!(err.contains("Snowflake warehouse is suspended"), "{err}");
    let Publication::Single(file) = &good.publication else { panic!() };
    assert_eq!(agnes_engine::fsutil::md5_file(&file.path).unwrap(), file.md5, "the last good parquet stays");
    assert!(!err.contains(TOKEN));
}

#[test]
fn a_failing_or_dropped_slice_is_fetched_again() {
    let env = env();
    let t = orders();
    env.fake.fail_slices(503, 1);
    env.sync(&t, None).unwrap();
    env.fake.truncate_slice_once();
    let good = env.sync(&t, None).unwrap();
    assert_eq!(env.published(&t), expected(&env.fake));
    // A slice that keeps failing fails the sync after its retries; the last good data stays.
    env.fake.upsert("in.c-shop.orders", vec![order(501)]);
    env.fake.fail_slices(502, 100);
    let err = env.sync(&t, None).unwrap_err().to_string();
    assert!(err.contains("failed 4 times") && err.contains("502"), "{err}");
    let Publication::Single(file) = &good.publication else { panic!() };
    assert_eq!(agnes_engine::fsutil::md5_file(&file.path).unwrap(), file.md5);
    // A 4xx is not retried.
    env.fake.fail_slices(403, 1);
    env.fake.upsert("in.c-shop.orders", vec![order(502)]);
    let err = env.sync(&t, None).unwrap_err().to_string();
    assert!(err.contains("403"), "{err}");
    env.sync(&t, None).unwrap();
    assert_eq!(env.published(&t).len(), 502);
}

/// A job still running at the export timeout fails the sync, saying so.
#[test]
fn an_export_that_never_finishes_times_out() {
    let mut env = env();
    env.connector = KeboolaConnector::new(KeboolaSource {
        name: None,
        config: KeboolaConnectionConfig { export_timeout_seconds: Some(1), ..env.connector.source().config.clone() },
    });
    env.fake.set_polls(1_000_000);
    let started = std::time::Instant::now();
    let err = env.sync(&orders(), None).unwrap_err().to_string();
    assert!(err.contains("did not finish within 1 s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_refused_token_is_named_by_its_variable_never_shown() {
    let env = env();
    std::env::set_var("AGNES_TEST_KBC_TOKEN", "wrong-token-value");
    let err = env.sync(&orders(), None).unwrap_err().to_string();
    assert!(err.contains("AGNES_TEST_KBC_TOKEN") && err.contains("storage.tokenInvalid"), "{err}");
    assert!(!err.contains("wrong-token-value"), "{err}");
}

#[test]
fn discovery_lists_tables_with_types_keys_and_sizes() {
    let env = env();
    let found = env.connector.discover().unwrap();
    assert_eq!(found.len(), 1);
    let t = &found[0];
    assert_eq!(
        (t.path.as_str(), t.bucket.as_deref(), t.source_table.as_deref()),
        ("in.c-shop.orders", Some("in.c-shop"), Some("orders"))
    );
    assert_eq!(t.primary_key, ["id"]);
    assert_eq!(t.estimated_rows, Some(500));
    assert!(t.last_import.is_some() && t.last_change.is_some(), "{t:?}");
    assert_eq!(t.columns[2].column_type, "DECIMAL(12,2)");
    let probe = env.connector.probe().unwrap();
    assert_eq!(
        (probe.server_version.as_str(), probe.tables_visible, probe.superuser),
        ("Keboola project 'Fake Shop'", 1, false)
    );
    assert!(probe.expires.is_some() && probe.warnings.is_empty(), "{probe:?}");
}

#[test]
fn filters_are_checked_at_registration_and_sent_resolved() {
    let env = env();
    let mut t = orders();
    t.where_filters = Some(serde_json::json!([{"column": "ordered_on", "operator": "ge", "values": ["{{someday}}"]}]));
    let invalid = env.connector.check_options(&t).unwrap_err();
    assert!(invalid.field == "where_filters" && invalid.message.contains("{{someday}}"), "{invalid:?}");
    let mut materialized = orders();
    materialized.query_mode = QueryMode::Materialized;
    materialized.source_query =
        Some(r#"{"where_filters": [{"column": "paid", "operator": "like", "values": ["x"]}]}"#.into());
    assert_eq!(env.connector.check_options(&materialized).unwrap_err().field, "source_query");
    t.where_filters = Some(serde_json::json!([{"column": "customer", "values": ["customer-1", "customer-2"]}]));
    assert_eq!((env.connector.check_options(&t), env.connector.unsupported(&t)), (Ok(()), None));
    env.sync(&t, None).unwrap();
    let published = env.published(&t);
    assert_eq!(published.len(), 26, "orders of customers 1 and 2 (of 40), 13 each");
    assert_eq!(
        env.fake.exports()[0]["params"]["whereFilters"],
        serde_json::json!([{"column": "customer", "operator": "eq", "values": ["customer-1", "customer-2"]}]),
        "filtered by Keboola, not after the download"
    );
    assert!(published.iter().all(|r| r[1] == "customer-1" || r[1] == "customer-2"));
    let mut partitioned = orders();
    partitioned.sync_strategy = SyncStrategy::Partitioned;
    assert!(env.connector.unsupported(&partitioned).unwrap().contains("partition_by"));
    partitioned.partition_by = Some("ordered_on".into());
    assert_eq!(env.connector.unsupported(&partitioned), None);
    partitioned.primary_key.clear();
    assert!(env.connector.unsupported(&partitioned).unwrap().contains("primary_key"));
    let mut by_column = orders();
    by_column.sync_strategy = SyncStrategy::Incremental;
    by_column.incremental_column = Some("ordered_on".into());
    assert!(env.connector.unsupported(&by_column).unwrap().contains("leave incremental_column unset"));
}

/// A partitioned table loads in chunks of its date column walking back from today until
/// two chunks are empty, then merges changes into the parts they touch.
#[test]
fn partitioned_tables_load_in_chunks_then_merge_changes_per_part() {
    let env = env();
    let today = chrono::Utc::now().date_naive();
    let day = |back: i64| (today - chrono::Duration::days(back)).format("%Y-%m-%d").to_string();
    env.fake.create_table(
        "in.c-web.visits",
        vec![FakeColumn::new("id", "INTEGER"), FakeColumn::new("day", "DATE"), FakeColumn::new("page", "STRING")],
        &["id"],
    );
    // 300 visits over the last 100 days, and one a year back, beyond two empty chunks.
    let mut visits: Vec<Vec<String>> = (0..300).map(|i| vec![i.to_string(), day(i % 100), format!("/p/{i}")]).collect();
    visits.push(vec!["999".into(), day(400), "/old".into()]);
    env.fake.upsert("in.c-web.visits", visits);
    let mut t = TableSpec::new("visits", SourceType::Keboola, QueryMode::Local, Default::default());
    t.bucket = Some("in.c-web".into());
    t.source_table = Some("visits".into());
    t.primary_key = vec!["id".into()];
    t.sync_strategy = SyncStrategy::Partitioned;
    t.partition_by = Some("day".into());
    t.partition_granularity = Some(agnes_core::PartitionGranularity::Day);
    t.initial_load_chunk_days = Some(30);
    assert_eq!(env.connector.unsupported(&t), None);
    let first = env.sync(&t, None).unwrap();
    assert_eq!(first.rows(), 300, "the visit a year back lies past two empty chunks");
    assert_eq!(first.parts().len(), 100, "one part per day");
    let exports = env.fake.exports().len();
    assert_eq!(exports, 6, "four chunks with rows (100 days), then two empty ones");
    let chunk = &env.fake.exports()[1]["params"]["whereFilters"];
    assert_eq!(chunk[0]["column"], "day", "{chunk}");
    assert_eq!((chunk[0]["operator"].as_str(), chunk[1]["operator"].as_str()), (Some("ge"), Some("lt")), "{chunk}");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let synced_at = chrono::Utc::now();
    // Visit 5 moves to another day; visit 6 changes in place.
    env.fake.upsert(
        "in.c-web.visits",
        vec![vec!["5".into(), day(50), "/moved".into()], vec!["6".into(), day(6), "/changed".into()]],
    );
    let mut t2 = t.clone();
    t2.incremental_window_days = Some(0);
    let second = env.sync(&t2, Some(synced_at)).unwrap();
    assert_eq!(env.fake.exports().len(), exports + 1, "one export of the changes");
    let key = |d: String| d.replace('-', "_");
    let changed: Vec<&str> = first
        .parts()
        .iter()
        .zip(second.parts())
        .filter(|(a, b)| a.file.md5 != b.file.md5)
        .map(|(a, _)| a.key.as_str())
        .collect();
    let mut expect = vec![key(day(5)), key(day(50)), key(day(6))];
    expect.sort();
    assert_eq!(changed, expect, "only the days the changes touch are rewritten");
    let sql = TableData::locate(&env.layout, "keboola", &t).select_sql().unwrap();
    let got = rows(&format!("SELECT id, CAST(day AS VARCHAR), page FROM ({sql}) WHERE id IN (5, 6) ORDER BY id"));
    assert_eq!(got, [["5".to_string(), day(50), "/moved".into()], ["6".to_string(), day(6), "/changed".into()]]);
    assert_eq!(rows(&format!("SELECT count(*) FROM ({sql})")), [["300"]]);
}
