//! `POST /api/query` from the outside: the red-team corpus, RBAC, limits, Arrow output and
//! quotas, against the real server with real tables.

mod common;

use common::{setup, Fixture, SECRET_MARKER};
use serde_json::{json, Value};
use std::path::Path;

async fn query(f: &Fixture, token: &str, sql: &str) -> (reqwest::StatusCode, Value) {
    f.http.post("/api/query", Some(token), json!({"sql": sql})).await
}

/// The codes a refused case of the corpus may expect.
const REFUSALS: &[&str] = &[
    "not_select",
    "file_access_denied",
    "access_denied",
    "table_not_found",
    "invalid_sql",
    "query_timeout",
    "result_too_large",
    "out_of_memory",
];

fn unescape(sql: &str) -> String {
    sql.replace("\\n", "\n").replace("\\t", "\t")
}

#[tokio::test(flavor = "multi_thread")]
async fn red_team_corpus() {
    let f = setup(&[
        ("AGNES_QUERY_TIMEOUT_SECONDS", "2"),
        ("AGNES_QUERY_MAX_RESULT_BYTES", "1000000"),
        ("AGNES_QUERY_MEMORY_LIMIT", "256MB"),
        ("AGNES_QUOTA_MAX_CONCURRENT", "100"),
    ])
    .await;
    let parquet = f.data.join("extracts/files/data");
    let corpus =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redteam/corpus.tsv")).unwrap();
    let (mut cases, mut failures) = (0, Vec::new());
    for line in corpus.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let mut fields = line.splitn(3, '\t');
        let (caller, expected, sql) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        let sql = unescape(sql)
            .replace("{SECRET}", &parquet.join("salaries.parquet").to_string_lossy())
            .replace("{FLIGHTS}", &parquet.join("flights.parquet").to_string_lossy())
            .replace("{DATA}", &f.data.to_string_lossy());
        let token = if caller == "admin" { &f.admin } else { &f.analyst };
        let (status, body) = query(&f, token, &sql).await;
        cases += 1;
        let code = body["code"].as_str().unwrap_or_default();
        let passed = match expected {
            "ok" => status == 200,
            "any" => status.as_u16() < 500,
            rows if rows.starts_with("rows=") => {
                let n: u64 = rows.strip_prefix("rows=").and_then(|n| n.parse().ok()).expect("rows=N");
                status == 200 && body["row_count"] == n
            }
            // A refusal names the code it must get, so a typo cannot pass as a refusal.
            refusal => {
                assert!(REFUSALS.contains(&refusal), "unknown expectation {refusal:?} in the corpus");
                code == refusal && (status == 400 || (status == 403 && refusal == "access_denied"))
            }
        };
        let leaked = caller == "analyst" && body.to_string().contains(SECRET_MARKER);
        if !passed || leaked {
            failures.push(format!(
                "{caller} {expected} {sql:?}: {status} {}",
                &body.to_string()[..body.to_string().len().min(300)]
            ));
        }
    }
    assert!(cases >= 100, "the corpus has {cases} cases");
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    // Nothing above hurt the server: it answers and a plain query is still quick.
    let started = std::time::Instant::now();
    let (status, body) = query(&f, &f.analyst, "SELECT count(*) AS n FROM flights").await;
    assert_eq!((status.as_u16(), body["rows"][0][0].as_i64()), (200, Some(3000)), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "no runaway query still holds the server");
    assert!(!std::path::Path::new("/tmp/agnes-redteam.csv").exists(), "COPY … TO wrote nothing");
    assert!(!std::path::Path::new("/tmp/agnes-redteam-admin.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_and_revokes_take_effect_on_the_next_query() {
    let f = setup(&[]).await;
    let (status, body) = query(&f, &f.analyst, "SELECT count(*) FROM salaries").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["detail"], "Access denied to table 'salaries'");
    let (status, body) = query(&f, &f.admin, "SELECT count(*) AS n FROM salaries").await;
    assert_eq!((status.as_u16(), body["rows"][0][0].as_i64()), (200, Some(2)), "admins read everything: {body}");

    let grant = json!({"group_id": "Analysts", "resource_type": "table", "resource_id": "salaries"});
    let (_, g) = f.http.post("/api/admin/grants", Some(&f.admin), grant).await;
    let (status, body) = query(&f, &f.analyst, "SELECT count(*) AS n FROM salaries").await;
    assert_eq!((status.as_u16(), body["rows"][0][0].as_i64()), (200, Some(2)), "a grant counts at once: {body}");
    assert_eq!(f.http.delete(&format!("/api/admin/grants/{}", g["id"].as_str().unwrap()), &f.admin).await, 204);
    let (status, _) = query(&f, &f.analyst, "SELECT count(*) FROM salaries").await;
    assert_eq!(status, 403, "a revoke counts at once");

    // The same through `agnes query --remote`.
    let analyst = common::Cli::new(&f.server.url, &f.analyst, &f.data.join("cli"));
    let cli = |sql: &str| analyst.run(&["query", "--remote", "-f", "json", sql]);
    let out = cli("SELECT carrier, count(*) AS n FROM flights GROUP BY 1 ORDER BY 2 DESC LIMIT 2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(rows[0]["n"].as_i64().unwrap() > 0 && rows[0]["carrier"].is_string(), "{rows}");
    let out = cli("SELECT * FROM salaries");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 403: Access denied to table 'salaries'"), "{stderr}");
    let out = cli("ATTACH ':memory:' AS m");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Only single SELECT queries are allowed"));

    // A sync that changes the data shows on the next query.
    std::fs::write(f.data.join("sources/airlines.csv"), "carrier,name\nZZ,Zed Air\n").unwrap();
    f.http.post("/api/sync/trigger", Some(&f.admin), json!(["airlines"])).await;
    let mut seen = 0;
    for _ in 0..200 {
        let (_, body) = query(&f, &f.analyst, "SELECT count(*) FROM airlines").await;
        seen = body["rows"][0][0].as_i64().unwrap_or(-1);
        if seen == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1, "the re-synced table is what the next query reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_limits_and_arrow() {
    let f = setup(&[("AGNES_QUERY_MAX_ROWS", "500")]).await;
    let (status, body) = query(
        &f,
        &f.analyst,
        "SELECT 1 AS i, 2.5::DOUBLE AS d, 12345678901234567.89::DECIMAL(20,2) AS m, DATE '2024-02-29' AS day, \
         TIMESTAMP '2024-01-02 03:04:05' AS ts, NULL AS nothing, 'x' AS s",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"], json!(["i", "d", "m", "day", "ts", "nothing", "s"]));
    assert_eq!(
        body["rows"][0],
        json!([1, 2.5, "12345678901234567.89", "2024-02-29", "2024-01-02T03:04:05", null, "x"])
    );
    assert_eq!((body["row_count"].as_i64(), body["truncated"].as_bool()), (Some(1), Some(false)));

    let (status, body) = f.http.post("/api/query", Some(&f.analyst), json!({"sql": "FROM flights", "limit": 7})).await;
    assert_eq!((status.as_u16(), body["row_count"].as_i64(), body["truncated"].as_bool()), (200, Some(7), Some(true)));
    for (limit, fragment) in [(0, "at least 1"), (501, "maximum of 500")] {
        let (status, body) =
            f.http.post("/api/query", Some(&f.analyst), json!({"sql": "SELECT 1", "limit": limit})).await;
        assert_eq!(status, 400);
        assert!(body["detail"].as_str().unwrap().contains(fragment), "{body}");
    }
    let (status, body) = f.http.post("/api/query", Some(&f.analyst), json!({"sql": "SELECT 1", "sequel": 1})).await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");
    let (status, body) = query(&f, &f.analyst, "SELEC 1").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().starts_with("Query error: "), "{body}");
    let unauthenticated =
        reqwest::Client::new().post(f.server.url("/api/query")).json(&json!({"sql": "SELECT 1"})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let arrow = reqwest::Client::new()
        .post(f.server.url("/api/query"))
        .bearer_auth(&f.analyst)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&json!({"sql": "SELECT carrier, count(*) AS n FROM flights GROUP BY 1", "limit": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(arrow.status(), 200);
    assert_eq!(arrow.headers()["content-type"], "application/vnd.apache.arrow.stream");
    assert_eq!(arrow.headers()["x-agnes-row-count"], "3");
    assert_eq!(arrow.headers()["x-agnes-truncated"], "true");
    let bytes = arrow.bytes().await.unwrap();
    assert_eq!(&bytes[..4], &[0xff; 4], "an Arrow IPC stream");
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_answer_429_and_free_up() {
    let f = setup(&[
        ("AGNES_QUERY_TIMEOUT_SECONDS", "2"),
        ("AGNES_QUOTA_MAX_CONCURRENT", "1"),
        ("AGNES_QUOTA_MAX_DAILY_BYTES", "20000"),
        // A short wait in line, so the held slot is still held when it ends.
        ("AGNES_QUOTA_SLOT_WAIT_SECONDS", "0.3"),
    ])
    .await;
    // One slow query holds the analyst's only slot.
    let slow = {
        let (client, url, token) = (reqwest::Client::new(), f.server.url("/api/query"), f.analyst.clone());
        tokio::spawn(async move {
            let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
            client.post(url).bearer_auth(token).json(&json!({"sql": sql})).send().await.unwrap().status()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let waited = std::time::Instant::now();
    let refused = reqwest::Client::new()
        .post(f.server.url("/api/query"))
        .bearer_auth(&f.analyst)
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert!(waited.elapsed() >= std::time::Duration::from_millis(300), "it waited in line first");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    let d = &body["detail"];
    assert_eq!((d["error"].as_str(), d["kind"].as_str()), (Some("quota_exceeded"), Some("concurrent_queries")));
    assert_eq!((d["current"].as_i64(), d["limit"].as_i64()), (Some(1), Some(1)));
    assert!(d["retry_after_seconds"].as_i64().unwrap() >= 1);
    let (status, _) = query(&f, &f.admin, "SELECT 1").await;
    assert_eq!(status, 200, "slots are per user");
    assert_eq!(slow.await.unwrap(), 400, "the slow query hit its time limit");
    let (status, _) = query(&f, &f.analyst, "SELECT 1").await;
    assert_eq!(status, 200, "the slot came back");

    // The daily byte budget: answers count until the cap, then 429 until midnight UTC.
    let mut denied = None;
    for _ in 0..50 {
        let (status, body) = query(&f, &f.analyst, "SELECT * FROM flights LIMIT 20").await;
        if status == 429 {
            denied = Some(body);
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let body = denied.expect("the daily budget ran out");
    let d = &body["detail"];
    assert_eq!((d["kind"].as_str(), d["limit"].as_i64()), (Some("daily_bytes"), Some(20000)), "{body}");
    assert!(d["current"].as_i64().unwrap() >= 20000);
    let to_midnight = d["retry_after_seconds"].as_i64().unwrap();
    assert!((1..=86_400).contains(&to_midnight), "{body}");
    let (status, _) = query(&f, &f.admin, "SELECT 1").await;
    assert_eq!(status, 200, "budgets are per user");
}

/// Over their slots, one user's requests wait in line for a free slot instead of failing:
/// an agent's eight parallel queries all get answers.
#[tokio::test(flavor = "multi_thread")]
async fn requests_over_the_slots_wait_their_turn() {
    let f = setup(&[
        ("AGNES_QUOTA_MAX_CONCURRENT", "2"),
        ("AGNES_QUOTA_SLOT_WAIT_SECONDS", "20"),
        ("AGNES_QUERY_TIMEOUT_SECONDS", "2"),
    ])
    .await;
    let parallel = (0..8).map(|i| {
        let (client, url, token) = (reqwest::Client::new(), f.server.url("/api/query"), f.analyst.clone());
        tokio::spawn(async move {
            let sql = format!("SELECT count(*) + {i} AS n FROM flights, range(200)");
            let r = client.post(url).bearer_auth(token).json(&json!({ "sql": sql })).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    });
    for (i, task) in parallel.enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "query {i}: {body}");
        assert_eq!(body["rows"][0][0].as_i64(), Some(600_000 + i as i64));
    }
    // Both slots held by queries that run to their 2 s limit: the next waits, then runs.
    let slow = (0..2)
        .map(|_| {
            let (client, url, token) = (reqwest::Client::new(), f.server.url("/api/query"), f.analyst.clone());
            tokio::spawn(async move {
                let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
                client.post(url).bearer_auth(token).json(&json!({"sql": sql})).send().await.unwrap().status()
            })
        })
        .collect::<Vec<_>>();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, body) = query(&f, &f.analyst, "SELECT 1 AS one").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(800),
        "it waited for a slot: {:?}",
        started.elapsed()
    );
    for s in slow {
        assert_eq!(s.await.unwrap(), 400, "the slow queries hit their time limit");
    }
}
