//! `agnes demo` end to end: generate, register, sync, users and tokens; deterministic;
//! the result served by `agnes serve`.

mod common;

use agnes_engine::orchestrator::open_analytics_reader;
use agnes_engine::DataLayout;
use common::{agnes, TestServer};
use serde_json::Value;

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

/// Every metric of the starter pack `agnes demo` imports runs on the demo data through the
/// server's query API, answers at least one row with a `value` column, and stays within its
/// `validation` bounds; the analyst sees only the definitions over tables they may read.
#[tokio::test(flavor = "multi_thread")]
async fn starter_metrics_run_on_the_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(&dir.path().join("data"));
    assert!(out.contains("17 business metric definitions"), "{out}");
    let token = |who: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{who}agnes_pat_")).map(|t| format!("agnes_pat_{}", t.trim())))
            .unwrap_or_else(|| panic!("the {who}token is printed: {out}"))
    };
    let (admin, analyst) = (token("admin    "), token("analyst  "));
    let server = TestServer::start(&dir.path().join("data"));
    let http = common::Http::new(&server);
    let (_, list) = http.get("/api/metrics", &admin).await;
    let metrics = list["metrics"].as_array().unwrap();
    // The analyst may not read `customers`: metrics naming it are not theirs to see.
    let (_, theirs) = http.get("/api/metrics", &analyst).await;
    let names_customers = |m: &Value| {
        m["table_name"] == "customers" || m["tables"].as_array().is_some_and(|t| t.iter().any(|t| t == "customers"))
    };
    let hidden = metrics.iter().filter(|m| names_customers(m)).count();
    assert!(hidden > 0, "the starter pack has metrics over customers");
    assert_eq!(theirs["count"].as_u64().unwrap() as usize, metrics.len() - hidden, "{theirs}");
    assert!(!theirs["metrics"].as_array().unwrap().iter().any(names_customers));
    let categories: std::collections::BTreeSet<&str> =
        metrics.iter().map(|m| m["category"].as_str().unwrap()).collect();
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        ["conversion", "customers", "orders", "revenue", "sessions"]
    );
    let mut ran = 0;
    for m in metrics {
        let mut texts = vec![("sql".to_string(), m["sql"].as_str().unwrap().to_string())];
        for (variant, sql) in m["sql_variants"].as_object().into_iter().flatten() {
            texts.push((variant.clone(), sql.as_str().unwrap().to_string()));
        }
        for (label, sql) in texts {
            let (status, answer) =
                http.post("/api/query", Some(&admin), serde_json::json!({"sql": sql, "limit": 10000})).await;
            let what = format!("{} {label}", m["id"]);
            assert_eq!(status, 200, "{what}: {answer}");
            assert!(answer["row_count"].as_u64().unwrap() >= 1, "{what} answers rows: {answer}");
            let columns: Vec<&str> =
                answer["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            let at = columns.iter().position(|c| *c == "value").unwrap_or_else(|| panic!("{what}: {columns:?}"));
            let (min, max) = (m["validation"]["min"].as_f64(), m["validation"]["max"].as_f64());
            for row in answer["rows"].as_array().unwrap() {
                let v = &row[at];
                let Some(x) = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) else {
                    panic!("{what}: value {v} is not a number")
                };
                assert!(
                    min.is_none_or(|lo| x >= lo) && max.is_none_or(|hi| x <= hi),
                    "{what}: {x} outside {min:?}..{max:?}"
                );
            }
            ran += 1;
        }
    }
    assert_eq!(ran, 29, "17 metrics and 12 variants ran");
    assert!(server.terminate().success());
}
