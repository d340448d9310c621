//! `agnes admin register-table | update-table | unregister-table | list-tables |
//! discover-and-register` against a real server: an admin never needs curl for the registry.

mod common;

use common::{fixtures, ok, run_with_config as run, Http, TestServer};
use serde_json::Value;
use std::process::Output;

fn fails(out: Output, code: i32, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(says), "expected {says:?} in: {stderr}");
}

#[tokio::test]
async fn the_registry_without_curl() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let sources = data.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::copy(fixtures().join("flights_3000.csv"), sources.join("flights.csv")).unwrap();
    std::fs::copy(fixtures().join("airlines.csv"), sources.join("airlines.csv")).unwrap();
    std::fs::copy(fixtures().join("airlines.csv"), sources.join("Carrier Names 2013.csv")).unwrap();
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    http.bootstrap().await;
    let cfg = dir.path().join("cfg");
    ok(run(&cfg, &server, &["auth", "login", "--email", "admin@example.com", "--password", "admin-pass-1"]));
    let agnes = |args: &[&str]| run(&cfg, &server, args);

    let out = ok(agnes(&[
        "admin",
        "register-table",
        "flights",
        "--source-table",
        "flights.csv",
        "--description",
        "Departures from NYC",
    ]));
    assert!(out.contains("Registered flights") && out.contains("grant create"), "{out}");
    fails(agnes(&["admin", "register-table", "flights", "--source-table", "flights.csv"]), 1, "already exists");
    fails(agnes(&["admin", "register-table", "daily", "--query-mode", "materialized"]), 2, "needs --query");
    fails(
        agnes(&["admin", "register-table", "bad", "--source-table", "flights.csv", "--sync-schedule", "hourly"]),
        1,
        "schedule",
    );

    let checked =
        ok(agnes(&["admin", "register-table", "airlines", "--source-table", "airlines.csv", "--dry-run", "--json"]));
    let checked: Value = serde_json::from_str(&checked).unwrap();
    assert!(checked["table"]["columns"].as_array().unwrap().iter().any(|c| c["name"] == "carrier"), "{checked}");

    let list = |agnes: &dyn Fn(&[&str]) -> Output| -> Value {
        serde_json::from_str(&ok(agnes(&["admin", "list-tables", "--json"]))).unwrap()
    };
    let tables = list(&agnes);
    assert_eq!(tables["count"], 1, "the dry run registered nothing: {tables}");
    assert_eq!(tables["tables"][0]["description"], "Departures from NYC");

    ok(agnes(&[
        "admin",
        "update-table",
        "flights",
        "--description",
        "All 2013 departures",
        "--sync-schedule",
        "daily 03:00",
    ]));
    let tables = list(&agnes);
    assert_eq!(
        (tables["tables"][0]["description"].as_str(), tables["tables"][0]["sync_schedule"].as_str()),
        (Some("All 2013 departures"), Some("daily 03:00"))
    );
    fails(agnes(&["admin", "update-table", "flights"]), 2, "nothing to change");

    let planned: Value =
        serde_json::from_str(&ok(agnes(&["admin", "discover-and-register", "--dry-run", "--json"]))).unwrap();
    let names: Vec<&str> =
        planned["registered"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{planned}");
    assert!(names.contains(&"airlines") && names.contains(&"carrier_names_2013"), "{planned}");
    assert_eq!(list(&agnes)["count"], 1, "a dry run registers nothing");
    let out = ok(agnes(&["admin", "discover-and-register"]));
    assert!(out.contains("Registered 2 table(s); 1 skipped") && out.contains("already registered"), "{out}");
    assert_eq!(list(&agnes)["count"], 3);

    fails(agnes(&["admin", "unregister-table", "airlines"]), 2, "--yes");
    ok(agnes(&["admin", "unregister-table", "airlines", "--yes"]));
    fails(agnes(&["admin", "unregister-table", "airlines", "--yes"]), 1, "not found");
    assert_eq!(list(&agnes)["count"], 2);
}
