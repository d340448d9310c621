//! The crate-dependency invariants of ARCHITECTURE.md, read from `cargo metadata`, so that
//! they cannot drift silently: core depends on nothing of ours and does no IO; only the
//! engine links DuckDB; only the store speaks SQL; only the server knows HTTP routes; the
//! fakes of SaaS APIs are never linked into agnes.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Each workspace crate's normal (non-dev, non-build) dependencies by name; optional ones
/// are named with a trailing `?`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| {
                    let name = d["name"].as_str().unwrap();
                    if d["optional"] == true {
                        format!("{name}?")
                    } else {
                        name.to_string()
                    }
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

fn users_of<'a>(deps: &'a BTreeMap<String, BTreeSet<String>>, dependency: &str) -> BTreeSet<&'a str> {
    deps.iter().filter(|(_, d)| d.contains(dependency)).map(|(name, _)| name.as_str()).collect()
}

#[test]
fn crate_dependencies_keep_the_architecture() {
    let deps = dependencies();
    assert!(deps.len() >= 7, "workspace crates: {:?}", deps.keys());

    let core: BTreeSet<&str> = deps["agnes-core"].iter().map(String::as_str).collect();
    assert_eq!(
        core,
        BTreeSet::from(["chrono", "serde", "serde_json", "thiserror", "utoipa?"]),
        "core depends on nothing else (utoipa only for the server's OpenAPI schemas, behind a feature)"
    );

    assert_eq!(users_of(&deps, "duckdb"), BTreeSet::from(["agnes-engine"]), "only the engine links DuckDB");
    assert_eq!(users_of(&deps, "sqlx"), BTreeSet::from(["agnes-store"]), "only the store writes SQL for state");
    assert_eq!(
        users_of(&deps, "axum"),
        BTreeSet::from(["agnes-server", "agnes-fakes"]),
        "only the server knows HTTP routes (and the fakes of SaaS APIs that tests run)"
    );
    for (name, d) in deps.iter().filter(|(name, _)| *name != "agnes-bench") {
        assert!(
            !d.contains("agnes-fakes") && !d.contains("agnes-fakes?"),
            "{name}: the fakes are for tests and benchmarks only (a dev-dependency)"
        );
    }

    // The layers point one way: core ← engine ← connectors ← server; store beside engine.
    let ours = |name: &str| -> BTreeSet<&str> {
        deps[name].iter().filter(|d| d.starts_with("agnes-")).map(String::as_str).collect()
    };
    assert_eq!(ours("agnes-engine"), BTreeSet::from(["agnes-core"]));
    assert_eq!(ours("agnes-store"), BTreeSet::from(["agnes-core"]));
    assert_eq!(ours("agnes-connectors"), BTreeSet::from(["agnes-core", "agnes-engine"]));
    assert!(!ours("agnes-server").contains("agnes-cli"), "the server never depends on the CLI");
}
