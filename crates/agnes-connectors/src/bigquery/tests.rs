//! The BigQuery connector against the fake REST API and token endpoint (`agnes-fakes`):
//! each way of signing in, token caching, discovery with types, probe, refusals.

use super::*;
use crate::Connector;
use agnes_fakes::bigquery::{FakeBigQuery, FakeBqTable};
use serde_json::json;

fn fake() -> FakeBigQuery {
    let fake = FakeBigQuery::start("shop-data", "shop-billing");
    fake.add_table(
        "sales",
        "orders",
        FakeBqTable {
            kind: "TABLE".into(),
            fields: json!([
                {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "amount", "type": "NUMERIC"},
                {"name": "placed_at", "type": "TIMESTAMP"},
                {"name": "tags", "type": "STRING", "mode": "REPEATED"},
                {"name": "shipping", "type": "RECORD", "fields": [{"name": "city", "type": "STRING"}, {"name": "day", "type": "DATE"}]},
                {"name": "huge", "type": "BIGNUMERIC"}
            ]),
            rows: 1_000_000,
            bytes: 64 << 20,
            data: None,
            ..Default::default()
        },
    );
    fake.add_table(
        "sales",
        "daily",
        FakeBqTable {
            kind: "VIEW".into(),
            fields: json!([{"name": "day", "type": "DATE"}]),
            rows: 0,
            bytes: 0,
            data: None,
            ..Default::default()
        },
    );
    fake.add_table(
        "raw",
        "events_ext",
        FakeBqTable {
            kind: "EXTERNAL".into(),
            fields: json!([{"name": "e", "type": "STRING"}]),
            rows: 0,
            bytes: 0,
            data: None,
            ..Default::default()
        },
    );
    fake
}

fn connector(fake: &FakeBigQuery, credentials_env: &str) -> BigQueryConnector {
    BigQueryConnector::new(BigQuerySource {
        config: BigQueryConfig {
            project: Some("shop-data".into()),
            billing_project: Some("shop-billing".into()),
            location: Some("EU".into()),
            api_endpoint: Some(fake.url.clone()),
            credentials_env: Some(credentials_env.into()),
            ..Default::default()
        },
    })
}

#[test]
fn a_service_account_key_signs_in_and_discovery_lists_typed_tables() {
    let fake = fake();
    std::env::set_var("AGNES_TEST_BQ_KEY", &fake.key_file);
    let c = connector(&fake, "AGNES_TEST_BQ_KEY");
    let found = c.discover().unwrap();
    let paths: Vec<(&str, &str)> = found.iter().map(|t| (t.path.as_str(), t.format.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("shop-data.raw.events_ext", "EXTERNAL"),
            ("shop-data.sales.daily", "VIEW"),
            ("shop-data.sales.orders", "BASE TABLE")
        ]
    );
    let orders = &found[2];
    let types: Vec<(&str, &str)> = orders.columns.iter().map(|c| (c.name.as_str(), c.column_type.as_str())).collect();
    assert_eq!(
        types,
        [
            ("id", "BIGINT"),
            ("amount", "DECIMAL(38,9)"),
            ("placed_at", "TIMESTAMP WITH TIME ZONE"),
            ("tags", "VARCHAR[]"),
            ("shipping", "STRUCT(\"city\" VARCHAR, \"day\" DATE)"),
            ("huge", "VARCHAR")
        ]
    );
    assert_eq!((orders.estimated_rows, orders.size_bytes), (Some(1_000_000), Some(64 << 20)));
    assert_eq!(orders.bucket.as_deref(), Some("sales"));
    assert_eq!(fake.token_requests(), 1, "one token serves every call until it nears expiry");

    let probe = c.probe().unwrap();
    assert_eq!(probe.role, "agnes-reader@shop-data.iam.gserviceaccount.com");
    assert!(probe.server_version.contains("shop-data") && probe.server_version.contains("shop-billing"));
    assert_eq!((probe.tables_visible, probe.warnings.len()), (3, 0), "{probe:?}");
    assert_eq!(fake.dry_runs(), ["SELECT 1"], "the probe checks jobs may run, with a free dry run");
}

#[test]
fn the_metadata_server_and_application_default_credentials_sign_in_too() {
    let fake = fake();
    std::env::remove_var("AGNES_TEST_BQ_NONE");
    std::env::set_var("GCE_METADATA_HOST", fake.metadata_host());
    let probe = connector(&fake, "AGNES_TEST_BQ_NONE").probe().unwrap();
    assert_eq!(probe.role, "agnes-reader@shop-data.iam.gserviceaccount.com (metadata server)");

    // No metadata server: the application-default credentials file.
    std::env::set_var("GCE_METADATA_HOST", "127.0.0.1:9");
    let config = tempfile::tempdir().unwrap();
    std::fs::copy(&fake.adc_file, config.path().join("application_default_credentials.json")).unwrap();
    std::env::set_var("CLOUDSDK_CONFIG", config.path());
    let probe = connector(&fake, "AGNES_TEST_BQ_NONE").probe().unwrap();
    assert_eq!(probe.role, "application-default user credentials");

    std::env::set_var("CLOUDSDK_CONFIG", "/nonexistent-agnes-gcloud");
    let err = connector(&fake, "AGNES_TEST_BQ_NONE").probe().unwrap_err().to_string();
    assert!(err.contains("AGNES_TEST_BQ_NONE") && err.contains("application-default"), "{err}");
}

#[test]
fn a_wrong_billing_project_or_key_is_reported_without_secrets() {
    let fake = fake();
    std::env::set_var("AGNES_TEST_BQ_KEY", &fake.key_file);
    let mut c = connector(&fake, "AGNES_TEST_BQ_KEY");
    c = BigQueryConnector::new(BigQuerySource {
        config: BigQueryConfig { billing_project: Some("someone-else".into()), ..c.source().config.clone() },
    });
    let probe = c.probe().unwrap();
    assert!(probe.warnings[0].contains("bigquery.jobs.create"), "{probe:?}");

    // A key of another service account: Google refuses the signature.
    let other = FakeBigQuery::start("shop-data", "shop-billing");
    let mut key: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&other.key_file).unwrap()).unwrap();
    key["token_uri"] = json!(format!("{}/token", fake.url));
    let forged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(forged.path(), key.to_string()).unwrap();
    std::env::set_var("AGNES_TEST_BQ_FORGED", forged.path());
    let err = connector(&fake, "AGNES_TEST_BQ_FORGED").discover().unwrap_err().to_string();
    assert!(err.contains("Google refused the credentials") && err.contains("Invalid JWT Signature"), "{err}");
    assert!(!err.contains("BEGIN PRIVATE KEY"), "{err}");
}

fn materialized(name: &str, sql: &str) -> agnes_core::TableSpec {
    let mut t = agnes_core::TableSpec::new(
        name,
        agnes_core::SourceType::Bigquery,
        agnes_core::QueryMode::Materialized,
        Default::default(),
    );
    t.source_query = Some(sql.into());
    t
}

#[test]
fn registering_refuses_what_cannot_sync() {
    let fake = fake();
    let c = connector(&fake, "AGNES_TEST_BQ_KEY");
    let mut t = materialized("orders", "");
    assert!(c.unsupported(&t).unwrap().contains("needs source_query"));
    t.source_query = Some("SELECT 1".into());
    t.sync_strategy = agnes_core::SyncStrategy::Incremental;
    assert!(c.unsupported(&t).unwrap().contains("full_refresh"));
    t.query_mode = agnes_core::QueryMode::Remote;
    assert!(!c.syncs(t.query_mode), "remote rows are queried in place, not synced");
}

/// Data the fake's `sales.lines` table holds: 25,000 rows of every type a result carries.
const LINES: &str = "SELECT range AS id, ((range % 997) / 4)::DECIMAL(12,2) AS amount, range % 3 = 0 AS paid, \
     'sku-' || (range % 50) AS sku, DATE '2024-01-01' + (range % 366)::INTEGER AS day, \
     TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(range * 37) AS placed_at, \
     TIMESTAMP '2024-01-01 08:00:00' + to_seconds(range) AS local_time, range / 7.0 AS ratio, \
     ['a', 'b'][1:(range % 3)::INTEGER] AS tags, \
     CASE WHEN range % 10 = 0 THEN NULL ELSE encode('bin-' || range) END AS raw \
     FROM range(25000)";

/// A fresh data directory (kept while the first value lives).
fn data_dir() -> (tempfile::TempDir, agnes_engine::DataLayout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = agnes_engine::DataLayout::new(dir.path().join("data"));
    layout.create().unwrap();
    (dir, layout)
}

fn with_lines(fake: &FakeBigQuery) {
    fake.add_table(
        "sales",
        "lines",
        FakeBqTable {
            kind: "TABLE".into(),
            fields: json!([{"name": "id", "type": "INTEGER"}]),
            rows: 25_000,
            bytes: 3 << 20,
            data: Some(LINES.into()),
            ..Default::default()
        },
    );
}

#[test]
fn a_materialized_table_runs_as_a_job_and_arrives_typed() {
    let fake = fake();
    with_lines(&fake);
    fake.set_polls(2);
    std::env::set_var("AGNES_TEST_BQ_KEY", &fake.key_file);
    let c = connector(&fake, "AGNES_TEST_BQ_KEY");
    let (_dir, layout) = data_dir();
    let limits = agnes_engine::confined::Limits::default();
    let ctx = crate::SyncContext { layout: &layout, limits: &limits, last_sync: None, source_version: None };
    let t = materialized("lines", "SELECT * FROM `shop-data.sales.lines` WHERE id < 20000;");
    assert_eq!(c.unsupported(&t), None);
    let synced = c.sync_table(&t, &ctx).unwrap();
    assert_eq!(synced.rows(), 20_000, "every page arrived");
    assert_eq!(fake.dry_runs().len(), 1, "a free dry run first");
    let (labels, cancelled) = fake.jobs().pop().unwrap();
    assert_eq!((labels["agnes_table"].as_str(), cancelled), (Some("lines"), false));

    // Column for column equal to what BigQuery holds, in the types its schema says.
    let file = layout.table_file("bigquery", "lines");
    let conn = agnes_engine::duck::open_in_memory().unwrap();
    let ours: Vec<(String, String)> = conn
        .prepare(&format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{}')", file.display()))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let types: Vec<&str> = ours.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "BIGINT",
            "DECIMAL(38,9)",
            "BOOLEAN",
            "VARCHAR",
            "DATE",
            "TIMESTAMP WITH TIME ZONE",
            "TIMESTAMP",
            "DOUBLE",
            "VARCHAR[]",
            "BLOB"
        ]
    );
    let differing: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM (SELECT * FROM ({LINES}) WHERE id < 20000 EXCEPT SELECT id, amount, paid, sku, day, \
                 placed_at, local_time, ratio, tags, raw FROM '{}')",
                file.display()
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(differing, 0, "every value arrives exactly");
}

#[test]
fn the_cost_cap_refuses_before_any_job_and_a_long_job_is_cancelled() {
    let fake = fake();
    with_lines(&fake);
    std::env::set_var("AGNES_TEST_BQ_KEY", &fake.key_file);
    let mut config = connector(&fake, "AGNES_TEST_BQ_KEY").source().config.clone();
    config.max_bytes_per_materialize = Some(1 << 20);
    let capped = BigQueryConnector::new(BigQuerySource { config: config.clone() });
    let (_dir, layout) = data_dir();
    let limits = agnes_engine::confined::Limits::default();
    let ctx = crate::SyncContext { layout: &layout, limits: &limits, last_sync: None, source_version: None };
    let t = materialized("lines", "SELECT * FROM `shop-data.sales.lines`");
    let err = capped.sync_table(&t, &ctx).unwrap_err().to_string();
    assert!(err.contains("would scan 3145728 bytes") && err.contains("max_bytes_per_materialize"), "{err}");
    assert!(fake.jobs().is_empty(), "refused by the dry run: no job ran");

    config.max_bytes_per_materialize = None;
    config.job_timeout_seconds = Some(1);
    fake.set_polls(1_000_000);
    let slow = BigQueryConnector::new(BigQuerySource { config });
    std::env::set_var("AGNES_TEST_BQ_KEY", &fake.key_file);
    let err = slow.sync_table(&t, &ctx).unwrap_err().to_string();
    assert!(err.contains("was cancelled"), "{err}");
    assert_eq!(fake.jobs().pop().map(|(_, cancelled)| cancelled), Some(true), "the job was cancelled at BigQuery");
    assert!(!layout.table_file("bigquery", "lines").exists(), "nothing is published");
}
