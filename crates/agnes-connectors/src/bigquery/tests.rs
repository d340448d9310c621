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
        },
    );
    fake.add_table(
        "sales",
        "daily",
        FakeBqTable { kind: "VIEW".into(), fields: json!([{"name": "day", "type": "DATE"}]), rows: 0, bytes: 0 },
    );
    fake.add_table(
        "raw",
        "events_ext",
        FakeBqTable { kind: "EXTERNAL".into(), fields: json!([{"name": "e", "type": "STRING"}]), rows: 0, bytes: 0 },
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

#[test]
fn registering_a_bigquery_row_says_what_is_not_built_yet() {
    let fake = fake();
    let c = connector(&fake, "AGNES_TEST_BQ_KEY");
    let t = agnes_core::TableSpec::new(
        "orders",
        agnes_core::SourceType::Bigquery,
        agnes_core::QueryMode::Remote,
        Default::default(),
    );
    assert!(c.unsupported(&t).unwrap().contains("cannot be registered yet"));
}
