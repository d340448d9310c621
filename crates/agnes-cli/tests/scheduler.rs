//! The scheduler inside the real server: it syncs a registered table without a trigger,
//! and `GET /api/admin/scheduler` / `agnes admin scheduler` show what it did.

mod common;

use common::{Http, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_server_keeps_data_fresh_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sources")).unwrap();
    std::fs::write(data.join("sources/orders.csv"), "id,amount\n1,10\n2,20\n").unwrap();
    let server = TestServer::start_with(&data, |c| {
        c.env("AGNES_SCHEDULER_TICK_SECONDS", "1").env("AGNES_SCHEDULER_STARTUP_GRACE_SECONDS", "0");
    });
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let body = json!({"name": "orders", "source_table": "orders.csv", "sync_schedule": "every 5m"});
    assert_eq!(http.post("/api/admin/register-table", Some(&admin), body).await.0, 201);
    http.wait_synced(&admin, &["orders"]).await;

    // The sync is recorded before the run's rebuild ends; wait for the run to finish.
    let mut s = json!(null);
    for _ in 0..200 {
        let (status, answer) = http.get("/api/admin/scheduler", &admin).await;
        assert_eq!(status, 200, "{answer}");
        s = answer;
        if s["jobs"][0]["last_status"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((s["enabled"].as_bool(), s["tick_seconds"].as_u64()), (Some(true), Some(1)));
    let job = &s["jobs"][0];
    assert_eq!((job["name"].as_str(), job["last_status"].as_str()), (Some("data-refresh"), Some("ok")), "{s}");
    assert!(job["runs"].as_i64().unwrap() >= 1 && job["running"] == false, "{s}");
    let table = &s["tables"][0];
    assert_eq!(
        (table["id"].as_str(), table["schedule"].as_str(), table["overdue"].as_bool()),
        (Some("orders"), Some("every 5m"), Some(false))
    );
    let last = chrono::DateTime::parse_from_rfc3339(table["last_sync"].as_str().unwrap()).unwrap();
    let next = chrono::DateTime::parse_from_rfc3339(table["next_sync_at"].as_str().unwrap()).unwrap();
    assert_eq!((next - last).num_seconds(), 300, "next due five minutes after the last sync: {s}");

    let (_, analyst) = http.user(&admin, "ana@example.com").await;
    assert_eq!(http.get("/api/admin/scheduler", &analyst).await.0, 403);

    // Freshness in the catalog and the detailed health check.
    let (_, catalog) = http.get("/api/v2/catalog", &admin).await;
    let orders = &catalog["tables"][0];
    assert_eq!(
        (orders["schedule"].as_str(), orders["overdue"].as_bool()),
        (Some("every 5m"), Some(false)),
        "{catalog}"
    );
    assert!(orders["next_sync_at"].is_string());
    let (_, manifest) = http.get("/api/sync/manifest", &admin).await;
    assert_eq!(manifest["tables"]["orders"]["overdue"], false, "{manifest}");
    let (status, health) = http.get("/api/health/detailed", &analyst).await;
    assert_eq!(status, 200);
    assert_eq!(
        (health["status"].as_str(), health["services"]["data"]["stale_tables"].clone()),
        (Some("healthy"), json!([])),
        "{health}"
    );
    assert_eq!(http.call(reqwest::Method::GET, "/api/health/detailed", None, None).await.0, 401);

    // A table that cannot sync is retried with backoff, and shows as stale and failing.
    let body = json!({"name": "broken", "source_table": "missing.csv"});
    assert_eq!(http.post("/api/admin/register-table", Some(&admin), body).await.0, 201);
    let mut health = json!(null);
    for _ in 0..100 {
        health = http.get("/api/health/detailed", &admin).await.1;
        if health["services"]["data"]["failing_tables"] == json!(["broken"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["services"]["data"]["stale_tables"], json!(["broken"]), "{health}");
    // The analyst may not read `broken`: its name is not theirs to see.
    let (_, theirs) = http.get("/api/health/detailed", &analyst).await;
    assert!(!theirs.to_string().contains("broken"), "{theirs}");
    let (_, s) = http.get("/api/admin/scheduler", &admin).await;
    let broken = s["tables"].as_array().unwrap().iter().find(|t| t["id"] == "broken").unwrap().clone();
    assert!(broken["failures"].as_i64().unwrap() >= 1 && broken["retry_at"].is_string(), "{broken}");
    assert!(broken["last_error"].as_str().unwrap().contains("missing.csv"), "{broken}");

    let out = common::agnes()
        .env("AGNES_SERVER", &server.url)
        .env("AGNES_TOKEN", &admin)
        .env("AGNES_CONFIG_DIR", dir.path().join("cfg"))
        .args(["admin", "scheduler"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("every 1 s") && stdout.contains("data-refresh") && stdout.contains("every 5m"), "{stdout}");
}

/// The manifest says which tables are overdue for their schedule. With the scheduler off
/// (no grace of two ticks), a table due at every moment is overdue as soon as it is synced;
/// an hourly one is not.
#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_flags_overdue_tables() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sources")).unwrap();
    std::fs::write(data.join("sources/a.csv"), "id\n1\n").unwrap();
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    http.register(
        &admin,
        vec![
            json!({"name": "always", "source_table": "a.csv", "sync_schedule": "every 0m"}),
            json!({"name": "hourly", "source_table": "a.csv", "sync_schedule": "every 1h"}),
        ],
    )
    .await;
    assert_eq!(http.post("/api/sync/trigger", Some(&admin), json!(null)).await.0, 200);
    http.wait_synced(&admin, &["always", "hourly"]).await;
    let mut manifest = json!(null);
    for _ in 0..100 {
        manifest = http.get("/api/sync/manifest", &admin).await.1;
        if manifest["tables"]["always"]["overdue"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(manifest["tables"]["always"]["overdue"], true, "{manifest}");
    assert_eq!(manifest["tables"]["hourly"]["overdue"], false, "{manifest}");
    assert!(manifest["tables"]["hourly"]["updated"].is_string(), "when it was last synced: {manifest}");
}
