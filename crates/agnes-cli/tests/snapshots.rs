//! `/api/v2/scan`, `/api/v2/scan/estimate` and `agnes snapshot` from the outside, against
//! the real server with real tables.

mod common;

use common::{setup, Cli, Fixture};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

async fn scan_raw(f: &Fixture, token: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(f.server.url("/api/v2/scan")).bearer_auth(token).json(&body).send().await.unwrap()
}

/// Rows in an Arrow IPC answer, read back through a parquet file as a snapshot would be.
fn ipc_rows(dir: &Path, ipc: &[u8]) -> u64 {
    let path = dir.join("answer.arrows");
    std::fs::write(&path, ipc).unwrap();
    agnes_engine::snapshot::ipc_to_parquet(&path, &dir.join("answer.parquet")).unwrap().rows
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_are_validated_estimated_and_streamed() {
    let f = setup(&[("AGNES_SCAN_MAX_LIMIT", "1000")]).await;
    let work = tempfile::tempdir().unwrap();
    let ua = json!({"table_id": "flights", "select": ["carrier", "TAILNUM", "dep_time", "time_hour"],
                    "where": "carrier = 'UA' AND dep_time IS NOT NULL", "order_by": ["dep_time DESC"]});
    let (status, est) = f.http.post("/api/v2/scan/estimate", Some(&f.analyst), ua.clone()).await;
    assert_eq!(status, 200, "{est}");
    let (_, counted) = f
        .http
        .post(
            "/api/query",
            Some(&f.analyst),
            json!({"sql": "SELECT count(*) FROM flights WHERE carrier = 'UA' AND dep_time IS NOT NULL"}),
        )
        .await;
    assert_eq!(est["estimated_result_rows"], counted["rows"][0][0], "the estimate counts the filter: {est}");
    assert!(est["estimated_scan_bytes"].as_u64().unwrap() > 0);
    assert_eq!(est["bq_cost_estimate_usd"], 0.0);

    let resp = scan_raw(&f, &f.analyst, ua).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.apache.arrow.stream");
    let ipc = resp.bytes().await.unwrap();
    assert_eq!(ipc_rows(work.path(), &ipc), est["estimated_result_rows"].as_u64().unwrap());
    let ratio = est["estimated_result_bytes"].as_f64().unwrap() / ipc.len() as f64;
    assert!((0.5..=2.0).contains(&ratio), "estimated {} bytes, sent {}", est["estimated_result_bytes"], ipc.len());

    let weather = scan_raw(&f, &f.analyst, json!({"table_id": "weather", "where": "temp > 50", "limit": 10})).await;
    assert_eq!(weather.status(), 200, "partitioned tables scan too");
    assert_eq!(ipc_rows(work.path(), &weather.bytes().await.unwrap()), 10);

    let rejected = |kind: &'static str| {
        move |b: &Value| b["detail"]["error"] == "validator_rejected" && b["detail"]["kind"] == kind
    };
    type Check = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Value, u16, Check)> = vec![
        (
            json!({"table_id": "flights", "where": "1=1) UNION ALL SELECT * FROM salaries WHERE (1=1"}),
            400,
            Box::new(rejected("not_a_predicate")),
        ),
        (
            json!({"table_id": "flights", "where": "carrier IN (SELECT name FROM salaries)"}),
            400,
            Box::new(rejected("subquery")),
        ),
        (
            json!({"table_id": "flights", "where": "salaries.salary IS NOT NULL"}),
            400,
            Box::new(rejected("qualified_column")),
        ),
        (
            json!({"table_id": "flights", "where": "getenv('HOME') IS NOT NULL"}),
            400,
            Box::new(rejected("forbidden_function")),
        ),
        (json!({"table_id": "flights", "where": "carrier = "}), 400, Box::new(rejected("parse_error"))),
        (
            json!({"table_id": "flights", "select": ["carrier", "nope"]}),
            400,
            Box::new(|b: &Value| b["detail"] == "unknown columns: [\"nope\"]"),
        ),
        (
            json!({"table_id": "flights", "order_by": ["carrier; DROP"]}),
            400,
            Box::new(|b: &Value| b["detail"].as_str().unwrap().starts_with("invalid order_by")),
        ),
        (
            json!({"table_id": "flights", "limit": 0}),
            400,
            Box::new(|b: &Value| b["detail"] == "limit must be at least 1"),
        ),
        (
            json!({"table_id": "flights", "limit": 1001}),
            400,
            Box::new(|b: &Value| b["detail"].as_str().unwrap().contains("maximum of 1000")),
        ),
        (json!({"table_id": "salaries"}), 403, Box::new(|_: &Value| true)),
        (json!({"table_id": "nope"}), 404, Box::new(|_: &Value| true)),
        (json!({"table_id": "flights", "wher": "x"}), 422, Box::new(|_: &Value| true)),
    ];
    for (body, status, check) in cases {
        for path in ["/api/v2/scan/estimate", "/api/v2/scan"] {
            let (got, answer) = f.http.post(path, Some(&f.analyst), body.clone()).await;
            assert_eq!(got.as_u16(), status, "{path} {body}: {answer}");
            assert!(check(&answer), "{path} {body}: {answer}");
        }
    }
    let (status, _) = f.http.post("/api/v2/scan", None, json!({"table_id": "flights"})).await;
    assert_eq!(status, 401);
    let (status, _) = f.http.post("/api/v2/scan/estimate", Some(&f.admin), json!({"table_id": "salaries"})).await;
    assert_eq!(status, 200, "admins scan everything");
}

/// Rows of `view` in the CLI's local DuckDB.
fn count(cli: &Cli, view: &str) -> i64 {
    let out = cli.expect(0, &["query", "-f", "json", &format!("SELECT count(*) AS n FROM {view}")]);
    serde_json::from_str::<Value>(&out).unwrap()[0]["n"].as_i64().unwrap()
}

fn snapshot_file(cli: &Cli, name: &str, ext: &str) -> PathBuf {
    cli.workspace.join("user/snapshots").join(format!("{name}.{ext}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_create_list_refresh_drop_prune() {
    let f = setup(&[]).await;
    let root = tempfile::tempdir().unwrap();
    let cli = Cli::new(&f.server.url, &f.analyst, root.path());
    let ua = [
        "snapshot",
        "create",
        "flights",
        "--as",
        "ua",
        "--where",
        "carrier = 'UA'",
        "--select",
        "carrier,flight,dep_time",
        "--order-by",
        "dep_time DESC",
        "--limit",
        "100",
    ];

    let out = cli.expect(0, &["snapshot", "create", "flights", "--where", "carrier = 'UA'", "--estimate"]);
    assert!(out.contains("estimated_result_rows: 552"), "the estimate needs no workspace: {out}");
    cli.expect(1, &ua);
    cli.expect(0, &["pull", "--quiet"]);

    let out = cli.expect(0, &ua);
    assert!(out.contains("Fetched 100 rows -> ua"), "{out}");
    assert_eq!(count(&cli, "ua"), 100);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(snapshot_file(&cli, "ua", "meta.json")).unwrap()).unwrap();
    let parquet = snapshot_file(&cli, "ua", "parquet");
    let digests = agnes_engine::fsutil::digest_file(&parquet).unwrap();
    assert_eq!(meta["result_hash_md5"], digests.md5, "the hash covers the whole file");
    assert_eq!(meta["result_checksum"], digests.checksum);
    assert_eq!(
        (meta["rows"].as_u64(), meta["table_id"].as_str(), meta["where"].as_str()),
        (Some(100), Some("flights"), Some("carrier = 'UA'"))
    );
    assert_eq!(meta["bytes_local"].as_u64(), Some(std::fs::metadata(&parquet).unwrap().len()));

    // The contract's exit codes.
    cli.expect(6, &ua);
    cli.expect(2, &["snapshot", "create", "flights", "--as", "not-a-name"]);
    cli.expect(2, &["snapshot", "create", "flights", "--as", "x", "--where", "carrier IN (SELECT 1)"]);
    cli.expect(
        2,
        &[
            "snapshot",
            "create",
            "flights",
            "--as",
            "x",
            "--where",
            "1=1) UNION ALL SELECT * FROM flights WHERE (1=1",
            "--no-estimate",
        ],
    );
    cli.expect(8, &["snapshot", "create", "salaries"]);
    cli.expect(8, &["snapshot", "create", "nope"]);
    let stranger = Cli { token: "not-a-token".into(), ..Cli::new(&f.server.url, "", root.path()) };
    stranger.expect(7, &["snapshot", "create", "flights", "--as", "x"]);
    let offline = Cli { server: "http://127.0.0.1:9".into(), ..Cli::new(&f.server.url, &f.analyst, root.path()) };
    offline.expect(7, &["snapshot", "create", "flights", "--as", "x"]);
    assert!(
        !snapshot_file(&cli, "x", "parquet").exists() && !snapshot_file(&cli, "x", "meta.json").exists(),
        "failures leave nothing"
    );
    let hidden: Vec<_> = std::fs::read_dir(cli.workspace.join("user/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != ".lock")
        .collect();
    assert!(hidden.is_empty(), "no temporary files are left: {hidden:?}");

    // Survives a pull; refresh with a new filter, then unchanged.
    cli.expect(0, &["pull", "--quiet"]);
    assert_eq!(count(&cli, "ua"), 100, "the snapshot view survives agnes pull");
    let out = cli.expect(0, &["snapshot", "refresh", "ua", "--where", "carrier = 'AA'"]);
    assert!(out.contains("identical: no"), "{out}");
    let out = cli.expect(0, &["snapshot", "refresh", "ua"]);
    assert!(out.contains("identical: yes"), "{out}");
    let (_, aa) = f
        .http
        .post("/api/query", Some(&f.analyst), json!({"sql": "SELECT count(*) FROM flights WHERE carrier = 'AA'"}))
        .await;
    assert_eq!(count(&cli, "ua"), aa["rows"][0][0].as_i64().unwrap().min(100));
    cli.expect(2, &["snapshot", "refresh", "nope"]);

    let list: Value = serde_json::from_str(&cli.expect(0, &["snapshot", "list", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "ua");
    assert_eq!(list[0]["where"], "carrier = 'AA'");
    assert!(cli.expect(0, &["snapshot", "list"]).contains("flights"));

    cli.expect(0, &["snapshot", "drop", "ua"]);
    assert!(!snapshot_file(&cli, "ua", "parquet").exists() && !snapshot_file(&cli, "ua", "meta.json").exists());
    cli.expect(1, &["query", "SELECT count(*) FROM ua"]);
    cli.expect(2, &["snapshot", "drop", "ua"]);

    // Prune by age and size.
    cli.expect(0, &["snapshot", "create", "airlines", "--no-estimate"]);
    cli.expect(0, &["snapshot", "create", "flights", "--as", "all_flights", "--no-estimate"]);
    cli.expect(2, &["snapshot", "prune"]);
    cli.expect(2, &["snapshot", "prune", "--older-than", "soon"]);
    let out = cli.expect(0, &["snapshot", "prune", "--older-than", "7d"]);
    assert!(out.contains("0 snapshot(s) pruned"), "{out}");
    let big = std::fs::metadata(snapshot_file(&cli, "airlines", "parquet")).unwrap().len() + 1;
    let out = cli.expect(0, &["snapshot", "prune", "--larger-than", &big.to_string(), "--dry-run"]);
    assert!(out.contains("would drop all_flights") && !out.contains("airlines ("), "{out}");
    assert!(snapshot_file(&cli, "all_flights", "parquet").exists(), "a dry run deletes nothing");
    cli.expect(0, &["snapshot", "prune", "--larger-than", &big.to_string()]);
    assert!(!snapshot_file(&cli, "all_flights", "parquet").exists());
    assert_eq!(count(&cli, "airlines"), 16, "the small snapshot stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_share_the_daily_budget_and_answer_exit_3() {
    let f = setup(&[("AGNES_QUOTA_MAX_DAILY_BYTES", "1")]).await;
    let first = scan_raw(&f, &f.analyst, json!({"table_id": "airlines"})).await;
    assert_eq!(first.status(), 200, "under the budget before the first answer");
    assert!(!first.bytes().await.unwrap().is_empty());
    let (status, body) = f.http.post("/api/v2/scan", Some(&f.analyst), json!({"table_id": "airlines"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        (body["detail"]["kind"].as_str(), body["detail"]["error"].as_str()),
        (Some("daily_bytes"), Some("quota_exceeded"))
    );
    let (status, _) = f.http.post("/api/query", Some(&f.analyst), json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, 429, "queries and scans share one budget");
    let root = tempfile::tempdir().unwrap();
    let cli = Cli::new(&f.server.url, &f.analyst, root.path());
    cli.expect(0, &["pull", "--quiet"]);
    cli.expect(3, &["snapshot", "create", "airlines", "--no-estimate"]);
}
