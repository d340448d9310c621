//! `agnes demo` end to end: generate, register, sync, users and tokens; deterministic;
//! the result served by `agnes serve`.

mod common;

use agnes_engine::orchestrator::open_analytics_reader;
use agnes_engine::DataLayout;
use common::{agnes, TestServer};

fn demo(data: &std::path::Path) -> String {
    let out = agnes()
        .args(["demo", "--no-serve", "--scale", "0.002", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn md5s(layout: &DataLayout) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in walk(&layout.source_data_dir("files")) {
        out.push((
            entry.strip_prefix(layout.root()).unwrap().display().to_string(),
            agnes_engine::fsutil::md5_file(&entry).unwrap(),
        ));
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            files.extend(walk(&e.path()));
        } else {
            files.push(e.path());
        }
    }
    files
}

#[tokio::test]
async fn demo_sets_everything_up_deterministically() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let out = demo(&a.path().join("data"));
    assert!(out.contains("analyst@demo.agnes.local") && out.contains("agnes_pat_"), "{out}");
    assert!(out.contains("auth whoami") && out.contains("/api/me/effective-access"), "prints commands to try: {out}");
    demo(&b.path().join("data"));

    let la = DataLayout::new(a.path().join("data"));
    let lb = DataLayout::new(b.path().join("data"));
    let (ha, hb) = (md5s(&la), md5s(&lb));
    assert!(ha.len() >= 6, "{ha:?}");
    assert_eq!(ha, hb, "same seed and scale publish byte-identical parquet");

    let conn = open_analytics_reader(&la).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM customers"), 100);
    assert_eq!(count("SELECT count(*) FROM web_sessions"), 6000);
    assert_eq!(count("SELECT count(*) FROM orders"), 800);
    assert!(count("SELECT count(*) FROM daily_revenue") > 0);
    assert_eq!(
        count("SELECT count(*) FROM orders o JOIN customers c USING (customer_id)"),
        800,
        "every order belongs to a customer"
    );

    // Running the demo again on the same dir is idempotent and still succeeds.
    demo(&a.path().join("data"));

    let server = TestServer::start(&a.path().join("data"));
    let analyst_token = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("analyst  agnes_pat_").map(|t| format!("agnes_pat_{t}")))
        .expect("the analyst's token is printed");
    let access: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/me/effective-access"))
        .bearer_auth(&analyst_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tables: Vec<&str> =
        access["resources"].as_array().unwrap().iter().map(|r| r["resource_id"].as_str().unwrap()).collect();
    assert_eq!(
        tables,
        ["daily_revenue", "order_items", "orders", "products", "web_sessions"],
        "most tables, not customers"
    );
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("agnes_table_seconds_since_last_sync{table=\"orders\"}"), "{metrics}");
    assert!(server.terminate().success());
}
