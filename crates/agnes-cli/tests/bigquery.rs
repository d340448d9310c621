//! BigQuery as a source so far, end to end: `agnes serve` configured with
//! `data_source.bigquery` and a service-account key named by its environment variable,
//! against the fake REST API and token endpoint; `agnes admin source test`, discovery, and
//! a registration that says what is not built yet. The key appears in no answer.

mod common;

use agnes_fakes::bigquery::{FakeBigQuery, FakeBqTable};
use common::{Cli, Http, TestServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn bigquery_answers_the_source_test_and_discovery() {
    let fake = tokio::task::block_in_place(|| FakeBigQuery::start("acme-data", "acme-billing"));
    fake.add_table(
        "web",
        "sessions",
        FakeBqTable {
            kind: "TABLE".into(),
            fields: json!([{"name": "id", "type": "INT64"}, {"name": "started", "type": "TIMESTAMP"}]),
            rows: 350_000_000,
            bytes: 90 << 30,
            data: Some(
                "SELECT range AS id, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(range * 61) AS started \
                 FROM range(3000)"
                    .into(),
            ),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_source:\n  bigquery:\n    project: acme-data\n    billing_project: acme-billing\n    location: EU\n    \
             api_endpoint: {}\n    credentials_env: AGNES_TEST_BQ_KEY\n    \
             max_bytes_per_materialize: 107374182400\n",
            fake.url
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&dir.path().join("data"), |c| {
        c.arg("--config").arg(&config).env("AGNES_TEST_BQ_KEY", &fake.key_file);
    });
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let cli = Cli::new(&server.url, &admin, &dir.path().join("admin"));

    let tested = cli.expect(0, &["admin", "source", "test", "bigquery"]);
    assert!(
        tested.contains("BigQuery project acme-data (jobs billed to acme-billing, location EU)")
            && tested.contains("agnes-reader@acme-data.iam.gserviceaccount.com")
            && tested.contains("1 tables readable"),
        "{tested}"
    );
    let (_, sources) = http.get("/api/admin/sources", &admin).await;
    let bq = sources.as_array().unwrap().iter().find(|s| s["name"] == "bigquery").unwrap();
    assert_eq!(bq["settings"]["credentials_env"], "AGNES_TEST_BQ_KEY", "{bq}");
    let key = std::fs::read_to_string(&fake.key_file).unwrap();
    let private: Value = serde_json::from_str(&key).unwrap();
    let pem = private["private_key"].as_str().unwrap();
    assert!(!sources.to_string().contains(&pem[40..80]), "no part of the key is shown");

    let (_, found) = http.get("/api/admin/discover-tables?source=bigquery", &admin).await;
    let sessions = &found["tables"][0];
    assert_eq!(
        (sessions["path"].as_str(), sessions["format"].as_str(), sessions["estimated_rows"].as_i64()),
        (Some("acme-data.web.sessions"), Some("BASE TABLE"), Some(350_000_000)),
        "{found}"
    );
    assert_eq!(sessions["columns"][1]["type"], "TIMESTAMP WITH TIME ZONE");

    let (status, v) = http
        .post(
            "/api/admin/register-table",
            Some(&admin),
            json!({"name": "sessions", "source_type": "bigquery", "query_mode": "remote", "bucket": "web", "source_table": "sessions"}),
        )
        .await;
    assert_eq!(status.as_u16(), 422, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("remote BigQuery tables cannot be registered yet"), "{v}");

    // A materialized table: the admin's SQL runs as a job; analysts pull the result.
    let (status, v) = http
        .post(
            "/api/admin/register-table",
            Some(&admin),
            json!({"name": "daily_sessions", "source_type": "bigquery", "query_mode": "materialized",
                   "source_query": "SELECT DATE(started) AS day, count(*) AS sessions FROM `acme-data.web.sessions` GROUP BY 1"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{v}");
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(["daily_sessions"])).await.0, 200);
    http.wait_synced(&admin, &["daily_sessions"]).await;
    cli.expect(0, &["pull", "--quiet"]);
    let out = cli.expect(
        0,
        &[
            "query",
            "SELECT count(*) AS days, sum(sessions) AS n, min(day) AS first FROM daily_sessions",
            "--format",
            "json",
        ],
    );
    let got: Value = serde_json::from_str(&out).unwrap();
    // 3,000 sessions 61 s apart from 2025-01-01: 183,000 s, so days 1 to 3.
    assert_eq!(got[0], json!({"days": 3, "n": 3000, "first": "2025-01-01"}), "{out}");
}
