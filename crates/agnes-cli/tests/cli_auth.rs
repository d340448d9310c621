//! `agnes auth …` and `agnes admin …` against a real server, with a private config dir.

mod common;

use common::{agnes, ok, run_with_config as run, TestServer};
use std::os::unix::fs::PermissionsExt;

async fn bootstrap(server: &TestServer) {
    let r = reqwest::Client::new()
        .post(server.url("/auth/bootstrap"))
        .json(&serde_json::json!({"email": "admin@example.com", "password": "admin-pass-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn login_whoami_and_token_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    bootstrap(&server).await;
    let cfg = dir.path().join("cfg");

    let out = ok(run(&cfg, &server, &["auth", "login", "--email", "admin@example.com", "--password", "admin-pass-1"]));
    assert!(out.contains("Logged in") && out.contains("admin"), "{out}");
    let mode = std::fs::metadata(cfg.join("token.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token.json is private");

    let who: serde_json::Value = serde_json::from_str(&ok(run(&cfg, &server, &["auth", "whoami", "--json"]))).unwrap();
    assert_eq!((who["email"].as_str(), who["type"].as_str()), (Some("admin@example.com"), Some("session")));

    let token = ok(run(&cfg, &server, &["auth", "token", "create", "--name", "ci", "--ttl", "never", "--raw"]));
    let token = token.trim();
    assert!(token.starts_with("agnes_pat_"), "{token}");
    let list: serde_json::Value =
        serde_json::from_str(&ok(run(&cfg, &server, &["auth", "token", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["expires_at"], serde_json::Value::Null);

    // AGNES_TOKEN wins over token.json (the original let the file win).
    let out = agnes()
        .env("AGNES_CONFIG_DIR", &cfg)
        .env("AGNES_SERVER", &server.url)
        .env("AGNES_TOKEN", token)
        .args(["auth", "whoami", "--json"])
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(who["type"], "pat");

    ok(run(&cfg, &server, &["auth", "token", "revoke", "ci"]));
    let out = agnes()
        .env("AGNES_CONFIG_DIR", &cfg)
        .env("AGNES_SERVER", &server.url)
        .env("AGNES_TOKEN", token)
        .args(["admin", "group", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HTTP 401: Token revoked") && stderr.contains("hint: "), "{stderr}");

    // import-token verifies before saving.
    let out = run(&cfg, &server, &["auth", "import-token", "--token", "agnes_pat_bogus"]);
    assert_eq!(out.status.code(), Some(1));

    ok(run(&cfg, &server, &["auth", "logout"]));
    assert!(!cfg.join("token.json").exists());
    let out = run(&cfg, &server, &["auth", "token", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not logged in"));
}

#[tokio::test]
async fn admin_commands_manage_users_groups_and_grants() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    bootstrap(&server).await;
    let cfg = dir.path().join("cfg");
    ok(run(&cfg, &server, &["auth", "login", "--email", "admin@example.com", "--password", "admin-pass-1"]));

    ok(run(&cfg, &server, &["admin", "user", "add", "ana@example.com", "--name", "Ana", "--password", "ana-pass-12"]));
    ok(run(&cfg, &server, &["admin", "group", "create", "Finance", "--description", "money"]));
    ok(run(&cfg, &server, &["admin", "group", "add-member", "Finance", "ana@example.com"]));
    ok(run(&cfg, &server, &["admin", "grant", "create", "Finance", "table", "orders"]));

    let grants: serde_json::Value =
        serde_json::from_str(&ok(run(&cfg, &server, &["admin", "grant", "list", "--group", "Finance", "--json"])))
            .unwrap();
    assert_eq!(grants[0]["resource_id"], "orders");
    let members: serde_json::Value =
        serde_json::from_str(&ok(run(&cfg, &server, &["admin", "group", "members", "Finance", "--json"]))).unwrap();
    assert_eq!(members[0]["email"], "ana@example.com");
    let table = ok(run(&cfg, &server, &["admin", "group", "list"]));
    assert!(table.contains("Finance") && table.contains("Everyone"), "{table}");
    let types = ok(run(&cfg, &server, &["admin", "grant", "resource-types"]));
    assert!(types.contains("table"), "{types}");

    let dup = run(&cfg, &server, &["admin", "group", "create", "Finance"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("HTTP 409"));

    ok(run(&cfg, &server, &["admin", "user", "deactivate", "ana@example.com"]));
    let users: serde_json::Value =
        serde_json::from_str(&ok(run(&cfg, &server, &["admin", "user", "list", "--json"]))).unwrap();
    let ana = users.as_array().unwrap().iter().find(|u| u["email"] == "ana@example.com").unwrap();
    assert_eq!(ana["active"], false);
    let out = run(&cfg, &server, &["admin", "user", "deactivate", "admin@example.com"]);
    assert_eq!(out.status.code(), Some(1), "the last admin stays");

    ok(run(&cfg, &server, &["admin", "group", "remove-member", "Finance", "ana@example.com"]));
    ok(run(&cfg, &server, &["admin", "group", "delete", "Finance"]));
}

#[tokio::test]
async fn break_glass_works_on_the_host_without_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = TestServer::start(&data);
    let cfg = dir.path().join("cfg");

    let refused = agnes()
        .args(["admin", "break-glass", "grant-admin", "ops@example.com", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let out = agnes()
        .args([
            "admin",
            "break-glass",
            "grant-admin",
            "ops@example.com",
            "--yes",
            "--password",
            "ops-pass-123",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    ok(out);
    let out = ok(run(&cfg, &server, &["auth", "login", "--email", "ops@example.com", "--password", "ops-pass-123"]));
    assert!(out.contains("(admin)"), "{out}");

    let missing = agnes()
        .args(["admin", "break-glass", "grant-admin", "x@example.com", "--yes", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no state database"));
}

#[test]
fn unreachable_server_is_one_line_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = agnes()
        .env("AGNES_CONFIG_DIR", dir.path())
        .env("AGNES_SERVER", "http://127.0.0.1:9")
        .env("AGNES_TOKEN", "x")
        .args(["admin", "user", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: cannot reach the agnes server at http://127.0.0.1:9"), "{stderr}");
    assert!(stderr.contains("hint: is the server running?"), "{stderr}");
}
