//! The hardening of issue 12, tried from the outside as an attacker would: bootstrap can
//! never reopen, sessions end, password work is never free, the server's files are its
//! own, `/metrics` behind a proxy, and no ungranted table names in the detailed health.

mod common;

use common::{agnes, setup, Http, TestServer};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

async fn try_bootstrap(http: &Http, email: &str) -> (u16, Value) {
    let (s, v) = http.post("/auth/bootstrap", None, json!({"email": email, "password": "takeover-pass-1"})).await;
    (s.as_u16(), v)
}

/// Every way an instance used to look "admin-less" again keeps bootstrap closed, and
/// bootstrap never takes over an existing account.
#[tokio::test]
async fn bootstrap_can_never_reopen() {
    let dir = tempfile::tempdir().unwrap();

    // 1. The only admin's password is reset (the hash is cleared).
    let server = TestServer::start(&dir.path().join("reset"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (_, me) = http.get("/api/me", &admin).await;
    let (s, _) =
        http.post(&format!("/api/users/{}/reset-password", me["id"].as_str().unwrap()), Some(&admin), json!({})).await;
    assert_eq!(s, 200);
    for email in ["admin@example.com", "attacker@example.com"] {
        let (s, v) = try_bootstrap(&http, email).await;
        assert_eq!(s, 403, "after a password reset, {email}: {v}");
    }
    drop(server);

    // 2. SEED_ADMIN_EMAIL without a password.
    let server = TestServer::start_with(&dir.path().join("seed"), |c| {
        c.env("SEED_ADMIN_EMAIL", "seed@example.com");
    });
    let http = Http::new(&server);
    for email in ["seed@example.com", "attacker@example.com"] {
        let (s, v) = try_bootstrap(&http, email).await;
        assert_eq!(s, 403, "password-less seeded admin, {email}: {v}");
    }
    drop(server);

    // 3. A password-less admin from break-glass (PAT-only or SSO instances look like this).
    let data = dir.path().join("glass");
    drop(TestServer::start(&data));
    let out = agnes()
        .args(["admin", "break-glass", "grant-admin", "ops@example.com", "--yes", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = TestServer::start(&data);
    let (s, v) = try_bootstrap(&Http::new(&server), "attacker@example.com").await;
    assert_eq!(s, 403, "break-glass admin without password: {v}");
    drop(server);

    // 4. Dev mode made its admin; a later normal start stays closed.
    let data = dir.path().join("dev");
    drop(TestServer::start_with(&data, |c| {
        c.arg("--dev");
    }));
    let server = TestServer::start(&data);
    let (s, v) = try_bootstrap(&Http::new(&server), "attacker@example.com").await;
    assert_eq!(s, 403, "after dev mode: {v}");
    drop(server);

    // 5. No admin yet, but the email belongs to an existing account: it is not modified.
    let data = dir.path().join("existing");
    drop(TestServer::start(&data));
    let db = data.join("state/system.db");
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, active, created_at, updated_at) \
             VALUES ('u-1', 'victim@example.com', 'Victim', NULL, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let (s, v) = try_bootstrap(&http, "victim@example.com").await;
    assert_eq!(s, 409, "an existing account is never taken over: {v}");
    let (s, _) =
        http.post("/auth/token", None, json!({"email": "victim@example.com", "password": "takeover-pass-1"})).await;
    assert_eq!(s, 401, "no password was set on the existing account");
    // The instance can still get its first admin under a new email, exactly once.
    assert_eq!(try_bootstrap(&http, "first-admin@example.com").await.0, 200);
    assert_eq!(try_bootstrap(&http, "second@example.com").await.0, 403);
}

async fn login(http: &Http, email: &str, password: &str) -> String {
    let (s, v) = http.post("/auth/token", None, json!({"email": email, "password": password})).await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// Logout, a password change or reset and deactivation end the user's session JWTs.
#[tokio::test]
async fn sessions_end_on_logout_password_change_and_deactivation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (id, first) = http.user(&admin, "ana@example.com").await;
    let second = login(&http, "ana@example.com", "user-pass-1").await;
    let (_, pat) = http.post("/auth/tokens", Some(&first), json!({"name": "cli"})).await;
    let pat = pat["token"].as_str().unwrap().to_string();
    let alive = |t: String| {
        let http = &http;
        async move { http.get("/api/me", &t).await.0.as_u16() }
    };
    assert_eq!((alive(first.clone()).await, alive(second.clone()).await), (200, 200));

    // Logout ends every session of that user (both devices), not the PAT.
    let (s, _) = http.post("/auth/logout", Some(&first), json!(null)).await;
    assert_eq!(s, 200);
    assert_eq!((alive(first).await, alive(second).await, alive(pat.clone()).await), (401, 401, 200));

    // An admin sets a new password.
    let session = login(&http, "ana@example.com", "user-pass-1").await;
    let (s, _) =
        http.post(&format!("/api/users/{id}/set-password"), Some(&admin), json!({"password": "new-pass-22"})).await;
    assert_eq!(s, 200);
    assert_eq!(alive(session).await, 401);

    // An admin resets the password; the user sets one with the reset token.
    let session = login(&http, "ana@example.com", "new-pass-22").await;
    let (_, reset) = http.post(&format!("/api/users/{id}/reset-password"), Some(&admin), json!({})).await;
    assert_eq!(alive(session).await, 401, "the reset itself ends sessions");
    let (s, v) = http
        .post(
            "/auth/password/reset",
            None,
            json!({"email": "ana@example.com", "token": reset["reset_token"], "password": "third-pass-3"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Deactivation; reactivation does not bring the old session back.
    let session = login(&http, "ana@example.com", "third-pass-3").await;
    http.post(&format!("/api/users/{id}/deactivate"), Some(&admin), json!({})).await;
    http.post(&format!("/api/users/{id}/activate"), Some(&admin), json!({})).await;
    assert_eq!(alive(session).await, 401);
    assert_eq!(alive(pat).await, 200, "PATs are revoked one by one, and this one was not");
}

/// `agnes_password_work_total` from `/metrics`, summed over operations.
async fn password_work(server: &TestServer) -> u64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("agnes_password_work_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Requests that fail a cheap check (unknown user, bad reset token, short password) cost
/// no Argon2 work; a real sign-in costs one verification.
#[tokio::test]
async fn password_work_is_never_free() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    http.bootstrap().await;
    let before = password_work(&server).await;
    let cheap = [
        (
            "/auth/password/reset",
            json!({"email": "admin@example.com", "token": "guessed", "password": "long-enough-1"}),
        ),
        (
            "/auth/password/reset",
            json!({"email": "nobody@example.com", "token": "guessed", "password": "long-enough-1"}),
        ),
        ("/auth/password/reset", json!({"email": "admin@example.com", "token": "guessed", "password": "short"})),
        ("/auth/token", json!({"email": "nobody@example.com", "password": "whatever-1"})),
    ];
    for (path, body) in cheap {
        let (s, v) = http.post(path, None, body).await;
        assert!(s.is_client_error(), "{path}: {s} {v}");
    }
    assert_eq!(password_work(&server).await, before, "refused before any Argon2 work");
    login(&http, "admin@example.com", "admin-pass-1").await;
    assert_eq!(password_work(&server).await, before + 1, "a sign-in is one verification");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// After a start and a sync, nothing the server wrote is readable by anyone else.
#[tokio::test(flavor = "multi_thread")]
async fn the_servers_files_are_its_own() {
    let f = setup(&[]).await;
    assert_eq!(mode(&f.data), 0o700);
    assert_eq!(mode(&f.data.join("state")), 0o700);
    assert_eq!(mode(&f.data.join("state/system.db")), 0o600);
    assert_eq!(mode(&f.data.join("state/.jwt_secret")), 0o600);
    let mut checked = 0;
    for entry in walk(&f.data) {
        // Source files are the admin's, copied in by this test with its own umask.
        if entry.starts_with(f.data.join("sources")) && entry != f.data.join("sources") {
            continue;
        }
        assert_eq!(mode(&entry) & 0o077, 0, "{} is {:o}", entry.display(), mode(&entry));
        checked += 1;
    }
    assert!(f.data.join("extracts/files/data/flights.parquet").is_file());
    assert!(checked > 10, "walked {checked} entries");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// A loopback reverse proxy forwards remote clients: their requests are not local.
#[tokio::test]
async fn metrics_behind_a_proxy_are_not_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let client = reqwest::Client::new();
    let direct = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    let forwarded = client.get(server.url("/metrics")).header("x-forwarded-for", "203.0.113.7").send().await.unwrap();
    assert_eq!(forwarded.status(), 403);
    let forwarded = client.get(server.url("/metrics")).header("forwarded", "for=203.0.113.7").send().await.unwrap();
    assert_eq!(forwarded.status(), 403);
}

/// The detailed health shows a non-admin only the tables they may read.
#[tokio::test(flavor = "multi_thread")]
async fn detailed_health_names_only_readable_tables() {
    let f = setup(&[]).await;
    // Two tables the analyst may not read: one failing, one fine.
    f.http.register(&f.admin, vec![json!({"name": "ghost_ledger", "source_table": "ghost_ledger.csv"})]).await;
    // A trigger right after the fixture's own sync may be held back (409): retry.
    for _ in 0..200 {
        if f.http.post("/api/sync/trigger", Some(&f.admin), json!(null)).await.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut admin_view = Value::Null;
    for _ in 0..200 {
        admin_view = f.http.get("/api/health/detailed", &f.admin).await.1;
        if admin_view["services"]["data"]["failing_tables"].to_string().contains("ghost_ledger") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let data = &admin_view["services"]["data"];
    assert!(data["failing_tables"].to_string().contains("ghost_ledger"), "{admin_view}");
    assert_eq!(data["tables"], 5, "{admin_view}");
    assert!(admin_view["services"]["users"]["count"].as_u64().unwrap() >= 2);

    let (s, analyst_view) = f.http.get("/api/health/detailed", &f.analyst).await;
    assert_eq!(s, 200);
    let text = analyst_view.to_string();
    assert!(!text.contains("ghost_ledger") && !text.contains("salaries"), "{text}");
    assert_eq!(analyst_view["services"]["data"]["tables"], 3, "{text}");
    assert!(analyst_view["services"]["users"].get("count").is_none(), "{text}");
}
