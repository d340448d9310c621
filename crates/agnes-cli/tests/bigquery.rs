//! BigQuery as a source, end to end: `agnes serve` configured with
//! `data_source.bigquery` and a service-account key named by its environment variable,
//! against the fake REST API and token endpoint. `agnes admin source test`, discovery and
//! materialized tables; remote tables with the metadata cache, `/api/query` behind the
//! registry gate and the dry-run cap, scans and snapshots with cost estimates, hybrid
//! queries, a cancelled job and the cost ledger. The key appears in no answer.

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

/// The sessions of the fake's `web.sessions`: 3,000 rows, one a minute and a second apart,
/// a third each from CZ, DE and US, with exact amounts.
const SESSIONS: &str = "SELECT range AS id, TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds(range * 61) AS started, \
     ['CZ', 'DE', 'US'][(range % 3) + 1] AS country, ((range % 1000) / 8)::DECIMAL(12,2) AS amount FROM range(3000)";

fn table(kind: &str, fields: Value, bytes: u64, data: Option<&str>) -> FakeBqTable {
    FakeBqTable { kind: kind.into(), fields, rows: 3000, bytes, data: data.map(String::from), ..Default::default() }
}

/// A decimal's digits without trailing zeros, to compare exact values written at
/// different scales ("62.50" and "62.500000000").
fn exact(v: &Value) -> String {
    let s = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_bigquery_tables_are_queried_in_place_behind_the_gate_and_the_caps() {
    let fake = tokio::task::block_in_place(|| FakeBigQuery::start("acme-data", "acme-billing"));
    let session_fields = json!([{"name": "id", "type": "INTEGER"}, {"name": "started", "type": "TIMESTAMP"},
                                {"name": "country", "type": "STRING"}, {"name": "amount", "type": "NUMERIC"}]);
    let mut sessions = table("TABLE", session_fields.clone(), 2 << 30, Some(SESSIONS));
    sessions.partition_by = Some("started".into());
    sessions.clustered_by = vec!["country".into()];
    fake.add_table("web", "sessions", sessions);
    fake.add_table("web", "events", table("TABLE", session_fields, 50 << 30, None));
    fake.add_table(
        "web",
        "daily",
        table(
            "VIEW",
            json!([{"name": "day", "type": "DATE"}, {"name": "n", "type": "INTEGER"}]),
            1 << 30,
            Some("SELECT CAST(started AS DATE) AS day, count(*) AS n FROM web.sessions GROUP BY 1"),
        ),
    );
    fake.add_table("raw", "ext", table("EXTERNAL", json!([{"name": "e", "type": "STRING"}]), 0, None));
    fake.add_table(
        "hr",
        "salaries",
        table("TABLE", json!([{"name": "salary", "type": "INTEGER"}]), 1 << 20, Some("SELECT 123456 AS salary")),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("instance.yaml");
    std::fs::write(
        &config,
        format!(
            "data_source:\n  bigquery:\n    project: acme-data\n    billing_project: acme-billing\n    location: EU\n    \
             api_endpoint: {}\n    credentials_env: AGNES_TEST_BQ_KEY\n    price_per_tib_usd: 6.25\n",
            fake.url
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&dir.path().join("data"), |c| {
        c.arg("--config").arg(&config).env("AGNES_TEST_BQ_KEY", &fake.key_file).env("AGNES_QUERY_TIMEOUT_SECONDS", "4");
    });
    let http = Http::new(&server);
    let admin = http.bootstrap().await;

    // Registration asks BigQuery what each path is: a kind that cannot be queried in place is refused.
    let register = |name: &str, extra: Value| {
        let mut body = json!({"name": name, "source_type": "bigquery", "query_mode": "remote"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    for (name, extra) in [
        ("sessions", json!({"bucket": "web", "source_table": "sessions"})),
        ("events", json!({"bq_fqn": "acme-data.web.events"})),
        ("daily", json!({"bq_fqn": "acme-data.web.daily"})),
        ("salaries", json!({"bucket": "hr", "source_table": "salaries"})),
    ] {
        let (status, v) = http.post("/api/admin/register-table", Some(&admin), register(name, extra)).await;
        assert_eq!(status.as_u16(), 201, "{name}: {v}");
    }
    let (status, v) = http
        .post("/api/admin/register-table", Some(&admin), register("ext", json!({"bq_fqn": "acme-data.raw.ext"})))
        .await;
    assert_eq!(status.as_u16(), 422, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("is a EXTERNAL in BigQuery"), "{v}");
    let (status, v) = http
        .post("/api/admin/register-table", Some(&admin), register("nope", json!({"bq_fqn": "acme-data.web"})))
        .await;
    assert_eq!(status.as_u16(), 422, "{v}");

    http.post("/api/admin/groups", Some(&admin), json!({"name": "Analysts"})).await;
    let (_, analyst) = http.user(&admin, "ana.lyst@example.com").await;
    http.post("/api/admin/groups/Analysts/members", Some(&admin), json!({"email": "ana.lyst@example.com"})).await;
    let (status, v) = http
        .post(
            "/api/admin/register-table",
            Some(&admin),
            json!({"name": "countries", "source_type": "bigquery", "query_mode": "materialized",
                   "source_query": "SELECT 'CZ' AS code, 'Czechia' AS name UNION ALL SELECT 'DE', 'Germany'"}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{v}");
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(["countries"])).await.0, 200);
    http.wait_synced(&admin, &["countries"]).await;
    for t in ["sessions", "events", "daily", "countries"] {
        let grant = json!({"group_id": "Analysts", "resource_type": "table", "resource_id": t});
        assert_eq!(http.post("/api/admin/grants", Some(&admin), grant).await.0, 201);
    }

    // The catalog and schema answer from the metadata cache, without calling BigQuery.
    let gets_before = fake.requests();
    let (_, catalog) = http.get("/api/v2/catalog", &analyst).await;
    let entry = |id: &str| catalog["tables"].as_array().unwrap().iter().find(|t| t["id"] == id).cloned();
    let s = entry("sessions").unwrap();
    assert_eq!(
        (
            &s["sql_flavor"],
            &s["entity_type"],
            &s["rows"],
            &s["partition_by"],
            &s["clustered_by"],
            &s["metadata_freshness"]
        ),
        (
            &json!("bigquery"),
            &json!("BASE TABLE"),
            &json!(3000),
            &json!("started"),
            &json!(["country"]),
            &json!("fresh")
        ),
        "{s}"
    );
    assert_eq!(s["where_examples"][0], "started >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 7 DAY)", "{s}");
    assert_eq!(entry("daily").unwrap()["entity_type"], "VIEW");
    assert!(entry("salaries").is_none(), "an ungranted table is not listed");
    let (_, schema) = http.get("/api/v2/schema/sessions", &analyst).await;
    assert_eq!(
        schema["columns"][3],
        json!({"name": "amount", "type": "DECIMAL(38,9)", "nullable": true, "description": ""})
    );
    assert!(schema["where_dialect_hints"]["date_literal"].is_string(), "{schema}");
    assert_eq!(fake.requests(), gets_before, "the catalog and schema made no BigQuery call");
    let (_, status) = http.get("/api/v2/metadata-cache/status", &analyst).await;
    assert_eq!(status["tables"].as_array().unwrap().len(), 3, "{status}");
    let (code, refreshed) = http.post("/api/v2/metadata-cache/refresh?table=sessions", Some(&admin), json!({})).await;
    assert_eq!((code.as_u16(), &refreshed["refreshed"]), (200, &json!(["sessions"])), "{refreshed}");

    // /api/query runs in BigQuery, rewritten to the table's path, labelled with the user.
    let query = |sql: &str| json!({"sql": sql, "limit": 100});
    let (code, v) = http
        .post(
            "/api/query",
            Some(&analyst),
            query(
                "SELECT country, count(*) AS n, sum(amount) AS total FROM sessions GROUP BY country ORDER BY country",
            ),
        )
        .await;
    assert_eq!(code.as_u16(), 200, "{v}");
    let duck = agnes_engine::duck::open_in_memory().unwrap();
    let expected: Vec<(String, i64, String)> = duck
        .prepare(&format!("SELECT country, count(*), sum(amount)::VARCHAR FROM ({SESSIONS}) GROUP BY 1 ORDER BY 1"))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let got: Vec<(String, i64, String)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap(), exact(&r[2])))
        .collect();
    let want: Vec<(String, i64, String)> = expected.iter().map(|(c, n, t)| (c.clone(), *n, exact(&json!(t)))).collect();
    assert_eq!(got, want, "row for row what BigQuery holds, decimals exact");
    let (labels, _) = fake.jobs().pop().unwrap();
    assert_eq!(labels["agnes_user"], "ana_lyst_example_com", "{labels}");
    let sent = fake.dry_runs().pop().unwrap();
    assert!(sent.contains("`acme-data.web.sessions`"), "rewritten to the path: {sent}");
    let (code, v) = http
        .post("/api/query", Some(&analyst), query("SELECT max(started) AS last FROM `acme-data.web.sessions`"))
        .await;
    assert_eq!((code.as_u16(), &v["rows"][0][0]), (200, &json!("2025-01-03T02:48:59Z")), "{v}");

    // The gate: what is not a registered remote table the caller may read is refused by path.
    for (sql, path) in [
        ("SELECT * FROM salaries", "salaries"),
        ("SELECT * FROM `acme-data.hr.salaries`", "acme-data.hr.salaries"),
        ("SELECT s.id FROM sessions s JOIN hr.salaries x ON true", "hr.salaries"),
        ("SELECT * FROM `acme-data.web.INFORMATION_SCHEMA.TABLES`", "acme-data.web.INFORMATION_SCHEMA.TABLES"),
    ] {
        let (code, v) = http.post("/api/query", Some(&analyst), query(sql)).await;
        assert_eq!(code.as_u16(), 403, "{sql}: {v}");
        assert_eq!(
            (&v["detail"]["reason"], &v["detail"]["path"]),
            (&json!("bq_path_not_registered"), &json!(path)),
            "{v}"
        );
    }
    let (code, v) = http.post("/api/query", Some(&analyst), query("DELETE FROM sessions WHERE true")).await;
    assert_eq!((code.as_u16(), v["code"].as_str()), (400, Some("not_select")), "{v}");

    // Over the scan cap the dry run refuses it and no job runs.
    let jobs = fake.jobs().len();
    let (code, v) = http.post("/api/query", Some(&analyst), query("SELECT count(*) FROM events")).await;
    assert_eq!(code.as_u16(), 400, "{v}");
    assert_eq!(
        (&v["detail"]["reason"], &v["detail"]["scan_bytes"], &v["detail"]["limit_bytes"], &v["detail"]["tables"]),
        (&json!("remote_scan_too_large"), &json!(50u64 << 30), &json!(5u64 << 30), &json!(["acme-data.web.events"])),
        "{v}"
    );
    assert_eq!(fake.jobs().len(), jobs, "the dry run is free and nothing ran");

    // A view is queried through its path too; a job past the time limit is cancelled at BigQuery.
    let (code, v) = http.post("/api/query", Some(&analyst), query("SELECT sum(n) AS n FROM daily")).await;
    assert_eq!((code.as_u16(), &v["rows"][0][0]), (200, &json!(3000)), "{v}");
    fake.set_polls(1_000_000);
    let (code, v) = http.post("/api/query", Some(&analyst), query("SELECT count(*) FROM sessions")).await;
    assert_eq!((code.as_u16(), &v["detail"]["reason"]), (400, &json!("query_timeout")), "{v}");
    assert_eq!(fake.jobs().pop().map(|(_, cancelled)| cancelled), Some(true), "the job was cancelled");
    fake.set_polls(1);

    // Scans: an estimate from a dry run with its cost, then a snapshot typed by the schema.
    let work = dir.path().join("ana");
    let cli = Cli::new(&server.url, &analyst, &work);
    let estimate = cli.expect(
        0,
        &["snapshot", "create", "sessions", "--select", "id,country,amount", "--where", "country = 'CZ'", "--estimate"],
    );
    assert!(estimate.contains(&format!("estimated_scan_bytes: {}", 2u64 << 30)), "{estimate}");
    assert!(estimate.contains("bq_cost_estimate_usd: 0.0122"), "2 GiB at 6.25 USD per TiB: {estimate}");
    cli.expect(0, &["pull", "--quiet"]);
    cli.expect(
        0,
        &[
            "snapshot",
            "create",
            "sessions",
            "--select",
            "id,country,amount,started",
            "--where",
            "country = 'CZ' AND started < TIMESTAMP '2025-01-02'",
            "--as",
            "cz",
        ],
    );
    let out = cli.expect(0, &["query", "SELECT count(*) AS n, sum(amount) AS total, any_value(typeof(amount)) AS t, any_value(typeof(started)) AS s FROM cz", "--format", "json"]);
    let got: Value = serde_json::from_str(&out).unwrap();
    let (n, total): (i64, String) = duck
        .query_row(
            &format!("SELECT count(*), sum(amount)::VARCHAR FROM ({SESSIONS}) WHERE country = 'CZ' AND started < TIMESTAMPTZ '2025-01-02 00:00:00+00'"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (&got[0]["n"], exact(&got[0]["total"]), &got[0]["t"], &got[0]["s"]),
        (&json!(n), exact(&json!(total)), &json!("DECIMAL(38,9)"), &json!("TIMESTAMP WITH TIME ZONE")),
        "{out}"
    );
    let (code, v) = http
        .post("/api/v2/scan/estimate", Some(&analyst), json!({"table_id": "sessions", "where": "salary > 0"}))
        .await;
    assert_eq!(code.as_u16(), 400, "a filter over a column the table lacks: {v}");

    // Hybrid: a BigQuery part as a local view, joined with a local snapshot, over Arrow.
    let out = cli.expect(
        0,
        &["query", "--register-bq", "per_country=SELECT country, count(*) AS n FROM sessions GROUP BY country",
          "SELECT p.country, p.n, count(c.id) AS early FROM per_country p LEFT JOIN cz c ON c.country = p.country GROUP BY 1, 2 ORDER BY 1",
          "--format", "json"],
    );
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        got,
        json!([{"country": "CZ", "n": 1000, "early": n}, {"country": "DE", "n": 1000, "early": 0}, {"country": "US", "n": 1000, "early": 0}]),
        "{out}"
    );
    let stdin = json!({"sql": "SELECT count(*) AS days FROM d", "register_bq": {"d": "SELECT day FROM daily"}});
    let mut child = cli
        .command()
        .args(["query", "--stdin", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), stdin.to_string().as_bytes()).unwrap();
    let done = child.wait_with_output().unwrap();
    let days: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(days, json!([{"days": 3}]));
    let denied = cli.output(&["query", "--register-bq", "x=SELECT * FROM salaries", "SELECT * FROM x"]);
    assert_eq!(denied.0, Some(1), "{denied:?}");
    assert!(denied.2.contains("bq_path_not_registered"), "{denied:?}");
    for bad in
        [["--register-bq", "no equals sign"], ["--register", "x=no source"], ["--register-bq", "bad name=SELECT 1"]]
    {
        let refused = cli.output(&["query", bad[0], bad[1], "SELECT 1"]);
        assert_eq!(refused.0, Some(2), "a malformed part is bad usage: {refused:?}");
        assert!(refused.2.contains("--register") || refused.2.contains("hybrid part"), "{refused:?}");
    }
    let (code, v) = http
        .post(
            "/api/query/hybrid",
            Some(&analyst),
            json!({"sql": "SELECT c.name, p.n FROM p JOIN countries c ON c.code = p.country ORDER BY 1",
                   "register_bq": {"p": "SELECT country, count(*) AS n FROM sessions GROUP BY 1"}}),
        )
        .await;
    assert_eq!((code.as_u16(), &v["rows"]), (200, &json!([["Czechia", 1000], ["Germany", 1000]])), "{v}");
    let (code, v) = http
        .post("/api/query", Some(&analyst), query("SELECT * FROM sessions s JOIN countries c ON c.code = s.country"))
        .await;
    assert_eq!((code.as_u16(), v["code"].as_str()), (400, Some("mixed_remote_local")), "{v}");

    // The cost ledger: what BigQuery billed for the analyst today, in bytes and dollars.
    let (_, usage) = http.get("/api/admin/usage", &admin).await;
    let mine = usage["rows"].as_array().unwrap().iter().find(|r| r["email"] == "ana.lyst@example.com").unwrap().clone();
    assert_eq!(mine["source"], "bigquery");
    assert!(mine["queries"].as_i64().unwrap() >= 6 && mine["billed_bytes"].as_i64().unwrap() >= 2 << 30, "{mine}");
    assert!(mine["cost_usd"].as_f64().unwrap() > 0.0, "{mine}");
    assert_eq!(http.get("/api/admin/usage", &analyst).await.0.as_u16(), 403);
}
