//! `agnes serve` from the outside: a fresh data dir, health and version, metrics,
//! graceful stop, restart, refusal of a newer state DB.

mod common;

use common::{agnes, TestServer};

#[tokio::test]
async fn fresh_data_dir_serves_health_version_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data);
    for sub in ["state/system.db", "extracts", "analytics", "sources", "tmp"] {
        assert!(data.join(sub).exists(), "{sub} is part of the layout");
    }

    let http = reqwest::Client::new();
    let r = http.get(server.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-agnes-latest-version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.headers()["x-agnes-min-version"], "0.0.0");
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["db_schema"], "ok");
    assert_eq!(body["current"], body["expected"]);

    let v: serde_json::Value = http.get(server.url("/api/version")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["channel"].is_string());
    assert!(v.get("image_tag").is_some() && v.get("deployed_at").is_some());

    let missing = http.get(server.url("/api/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let metrics = http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("agnes_http_requests_total")
            && l.contains("route=\"/api/health\"")
            && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(metrics.contains("agnes_http_request_duration_seconds_bucket"), "latency is a histogram");

    let status = server.terminate();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

#[tokio::test]
async fn metrics_token_is_enforced_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dir.path().join("d"), |c| {
        c.env("AGNES_METRICS_TOKEN", "s3cret-token");
    });
    let http = reqwest::Client::new();
    assert_eq!(http.get(server.url("/metrics")).send().await.unwrap().status(), 401);
    let ok = http.get(server.url("/metrics")).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn restart_is_a_no_op_migration_and_sweeps_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data);
    assert!(server.terminate().success());

    // Leftovers of a write interrupted by a crash: never visible, removed on start.
    let data_dir = data.join("extracts/files/data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join(".orders.parquet.4242-0.tmp"), b"partial").unwrap();
    std::fs::write(data.join("analytics/server.duckdb.tmp"), b"partial").unwrap();

    let server = TestServer::start(&data);
    let body: serde_json::Value = reqwest::get(server.url("/api/health")).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(!data_dir.join(".orders.parquet.4242-0.tmp").exists());
    // Start-up rebuilds the missing analytics DB in the background (through a temporary of
    // its own); once it is in place, no temporary may remain.
    for _ in 0..200 {
        if data.join("analytics/server.duckdb").exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(data.join("analytics/server.duckdb").exists());
    assert!(!data.join("analytics/server.duckdb.tmp").exists());
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("state/system.db").display())).await.unwrap();
    let (versions,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schema_version").fetch_one(&pool).await.unwrap();
    assert_eq!(versions, agnes_store::LATEST_SCHEMA_VERSION, "one row per migration: restart must not re-apply any");
    let (groups,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM user_groups WHERE name IN ('Admin', 'Everyone') AND is_system = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(groups, 2);
}

#[tokio::test]
async fn newer_state_db_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(TestServer::start(&data).terminate().success());
    let db = data.join("state/system.db");
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version, applied_at) VALUES (9999, 'future')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let out = agnes().args(["serve", "--bind", "127.0.0.1:0", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: ") && stderr.contains("newer than this agnes supports"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
}

#[test]
fn bad_usage_and_busy_port_exit_with_documented_codes() {
    let out = agnes().args(["serve", "--bind", "not-an-address"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = agnes().args(["serve", "--bind", &addr, "--data-dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot bind") && stderr.contains("hint: "), "{stderr}");
}
