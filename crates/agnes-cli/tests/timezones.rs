//! Time zones work everywhere analysts run SQL: ICU is compiled into agnes's DuckDB, and
//! nothing is downloaded at run time. Each case of `timezones.tsv` runs through
//! `POST /api/query` (the server's sandbox) and `agnes query` (the analyst's DuckDB), and
//! the server's profiler dates a TIMESTAMPTZ column.

mod common;

use common::{setup, Cli};
use serde_json::json;
use std::path::Path;

fn cases() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/timezones.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "name, sql, expected: {l}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn time_zone_operations_on_server_cli_and_profiler() {
    let f = setup(&[]).await;
    let cases = cases();
    assert!(cases.len() >= 10);
    let dir = tempfile::tempdir().unwrap();
    let ana = Cli::new(&f.server.url, &f.analyst, dir.path());
    let pulled = ana.run(&["pull", "--quiet"]);
    assert!(pulled.status.success(), "{}", String::from_utf8_lossy(&pulled.stderr));

    let mut failures = Vec::new();
    for (name, sql, expected) in &cases {
        let (status, body) = f.http.post("/api/query", Some(&f.analyst), json!({ "sql": sql })).await;
        let server = body["rows"][0][0].as_str().map(String::from);
        if status != 200 || server.as_deref() != Some(expected) {
            failures.push(format!("/api/query {name}: {status} {body}"));
        }
        // The analyst's laptop: the CLI's own DuckDB, offline, in the user's time zone.
        let out = ana.command().env("TZ", "UTC").args(["query", sql, "-f", "json"]).output().unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let local = rows[0].as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).map(String::from);
        if !out.status.success() || local.as_deref() != Some(expected) {
            failures.push(format!(
                "agnes query {name}: {:?} {rows} {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));

    // The profiler dates the TIMESTAMPTZ column of flights in UTC.
    let (status, refreshed) = f.http.post("/api/catalog/profile/flights/refresh", Some(&f.admin), json!(null)).await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, profile) = f.http.get("/api/catalog/profile/flights", &f.analyst).await;
    assert_eq!(status, 200, "{profile}");
    let time_hour = profile["columns"].as_array().unwrap().iter().find(|c| c["name"] == "time_hour").unwrap();
    assert_eq!(time_hour["type_category"], "TIMESTAMP", "{time_hour}");
    assert_eq!(time_hour["date_stats"]["earliest"], "2013-01-01", "{time_hour}");
    assert_eq!(time_hour["date_stats"]["histogram"]["bins"], json!(["2013-Q1"]), "{time_hour}");
}
