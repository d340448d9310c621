//! Identity and access from the outside: bootstrap, sign-in, personal access tokens,
//! groups, grants, effective access, the route table, rate limits, dev mode, the audit log.

mod common;

use common::{agnes, Http, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn every_route_is_authenticated_unless_the_contract_says_public() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let doc: Value = reqwest::get(server.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    // The sign-in and token bodies are the wire types of agnes-core, named in the document.
    for (path, method, status, schema) in [
        ("/auth/token", "post", "200", "SessionToken"),
        ("/auth/password/login", "post", "200", "SessionToken"),
        ("/auth/bootstrap", "post", "200", "SessionToken"),
        ("/auth/tokens", "post", "201", "IssuedToken"),
        ("/auth/tokens/{id}", "get", "200", "TokenView"),
        ("/api/query", "post", "200", "QueryResponse"),
        ("/api/sync/manifest", "get", "200", "Manifest"),
    ] {
        let content = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
        assert_eq!(content["$ref"], format!("#/components/schemas/{schema}"), "{method} {path}: {content}");
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema} is described");
    }
    let expected_public: Vec<(&str, &str)> = vec![
        ("get", "/api/health"),
        ("get", "/api/version"),
        ("get", "/api/openapi.json"),
        ("get", "/metrics"),
        ("get", "/api/sync/status"),
        ("post", "/auth/token"),
        ("post", "/auth/password/login"),
        ("post", "/auth/password/reset"),
        ("post", "/auth/bootstrap"),
        ("post", "/auth/logout"),
        // Single sign-on and e-mailed links (spec §3.2, §9): the person is not signed in yet.
        ("get", "/auth/providers"),
        ("get", "/auth/google/login"),
        ("get", "/auth/google/callback"),
        ("get", "/auth/oidc/{provider}/login"),
        ("get", "/auth/oidc/{provider}/callback"),
        ("post", "/auth/email/send-link"),
        ("post", "/auth/email/verify"),
        ("get", "/auth/email/verify"),
        // `agnes auth login` trades its one-time code before it holds any credential.
        ("post", "/auth/cli/exchange"),
        // Jira's webhook (spec §8.3) proves its sender by an HMAC signature, not a user.
        ("post", "/webhooks/jira"),
    ];
    let mut seen_public = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x.as_object().is_some_and(|o| o.is_empty())));
            let concrete = path.replace("{id}", "x").replace("{user_id}", "x").replace("{group_id}", "x");
            let m: Method = method.to_uppercase().parse().unwrap();
            let body = if m == Method::GET || m == Method::DELETE { None } else { Some(json!({})) };
            let (status, v) = http.call(m, &concrete, None, body).await;
            // The middleware's refusal, as opposed to a handler's own 401 (a wrong password).
            let refused = status == 401 && v["detail"] == "Missing or invalid Authorization header";
            if public {
                seen_public.push((method.clone(), path.clone()));
                assert!(!refused, "{method} {path} is public but was refused without credentials");
            } else {
                assert!(refused, "{method} {path} must require authentication, answered {status} {v}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "the document lists every route ({checked} found)");
    let mut expected: Vec<(String, String)> =
        expected_public.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    seen_public.sort();
    assert_eq!(seen_public, expected, "exactly the contract's public routes are public");
    // A bad token on a protected route is refused, not ignored.
    let (s, v) = http.get("/api/me", "garbage").await;
    assert_eq!((s, v["detail"].as_str().unwrap()), (StatusCode::UNAUTHORIZED, "Invalid or expired token"));
}

#[tokio::test]
async fn bootstrap_once_and_login_errors_in_the_contract_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (s, v) =
        http.post("/auth/bootstrap", None, json!({"email": "other@example.com", "password": "whatever-1"})).await;
    assert_eq!(s, 403, "{v}");

    let login = |email: &str, pw: &str| json!({"email": email, "password": pw});
    let detail = |v: &Value| v["detail"].as_str().unwrap().to_string();
    let (s, v) = http.post("/auth/token", None, login("nobody@example.com", "x")).await;
    assert_eq!((s.as_u16(), detail(&v).as_str()), (401, "User not found"));
    let (s, v) = http.post("/auth/token", None, login("admin@example.com", "wrong-pass")).await;
    assert_eq!((s.as_u16(), detail(&v).as_str()), (401, "Invalid password"));
    let (s, v) = http.post("/auth/token", None, login("admin@example.com", "")).await;
    assert_eq!((s.as_u16(), detail(&v).as_str()), (401, "Password required"));
    let (s, v) = http.post("/auth/password/login", None, login("admin@example.com", "wrong-pass")).await;
    assert_eq!((s.as_u16(), detail(&v).as_str()), (401, "Invalid email or password"));
    let (s, v) = http.post("/auth/token", None, login("admin@example.com", "admin-pass-1")).await;
    assert_eq!((s.as_u16(), v["role"].as_str().unwrap()), (200, "admin"));

    // Cookie sign-in for browsers.
    let r = reqwest::Client::new()
        .post(server.url("/auth/password/login"))
        .json(&login("admin@example.com", "admin-pass-1"))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("access_token=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let token = cookie.trim_start_matches("access_token=").split(';').next().unwrap();
    let me: Value = reqwest::Client::new()
        .get(server.url("/api/me"))
        .header("cookie", format!("access_token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "admin@example.com");

    let (_, user) =
        http.post("/api/users", Some(&admin), json!({"email": "u@example.com", "password": "user-pass-1"})).await;
    let (s, _) =
        http.post(&format!("/api/users/{}/deactivate", user["id"].as_str().unwrap()), Some(&admin), json!({})).await;
    assert_eq!(s, 200);
    let (s, v) = http.post("/auth/token", None, login("u@example.com", "user-pass-1")).await;
    assert_eq!((s.as_u16(), detail(&v).as_str()), (401, "Account deactivated"));
}

#[tokio::test]
async fn personal_access_token_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let session = http.bootstrap().await;

    let (s, pat) = http.post("/auth/tokens", Some(&session), json!({"name": "laptop"})).await;
    assert_eq!(s, 201, "{pat}");
    let token = pat["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("agnes_pat_"), "recognisable by secret scanners");
    assert!(pat["expires_at"].is_string(), "90 days by default");
    let (s, me) = http.get("/api/me", &token).await;
    assert_eq!((s.as_u16(), me["credential"]["type"].as_str().unwrap()), (200, "pat"));
    // The scope claim records the scope asked for (default `general`).
    let scope_of = |token: &str| -> Value {
        use base64::Engine;
        let payload = token.trim_start_matches("agnes_pat_").split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["scope"].clone()
    };
    assert_eq!(scope_of(&token), "general");
    let (s, scoped) =
        http.post("/auth/tokens", Some(&session), json!({"name": "setup", "scope": "bootstrap-analyst"})).await;
    assert_eq!(s, 201, "{scoped}");
    assert_eq!(scope_of(scoped["token"].as_str().unwrap()), "bootstrap-analyst");
    let (s, _) = http.post("/auth/tokens", Some(&session), json!({"name": "x", "scope": "all the things!"})).await;
    assert_eq!(s, 400);

    // A token cannot mint tokens.
    let (s, _) = http.post("/auth/tokens", Some(&token), json!({"name": "child"})).await;
    assert_eq!(s, 403);
    // Bounds.
    for bad in [
        json!({"name": "  "}),
        json!({"name": "x", "expires_in_days": 3651}),
        json!({"name": "x", "expires_in_days": 0}),
    ] {
        let (s, v) = http.post("/auth/tokens", Some(&session), bad.clone()).await;
        assert_eq!(s, 400, "{bad} -> {v}");
    }
    let (s, forever) =
        http.post("/auth/tokens", Some(&session), json!({"name": "forever", "expires_in_days": null})).await;
    assert_eq!((s.as_u16(), forever["expires_at"].clone()), (201, Value::Null));
    let (s, ten) = http.post("/auth/tokens", Some(&session), json!({"name": "decade", "expires_in_days": 3650})).await;
    assert_eq!(s, 201, "{ten}");

    // Only a SHA-256 of the token is stored.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("state/system.db").display())).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, token_hash FROM personal_access_tokens").fetch_all(&pool).await.unwrap();
    let stored = rows.iter().find(|(id, _)| id == pat["id"].as_str().unwrap()).unwrap();
    use sha2::Digest;
    assert_eq!(stored.1, hex::encode(sha2::Sha256::digest(token.as_bytes())));
    let dump: Vec<(String,)> = sqlx::query_as(
        "SELECT COALESCE(name,'') || COALESCE(prefix,'') || COALESCE(token_hash,'') FROM personal_access_tokens",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(dump.iter().all(|(row,)| !row.contains(&token[10..40])), "the token itself is never stored");

    // A new IP is audited (X-Forwarded-For is believed from the loopback proxy).
    let r = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'token.first_use_new_ip' AND client_ip = '203.0.113.7'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);

    // Revoked: fails on the next request.
    assert_eq!(http.delete(&format!("/auth/tokens/{}", pat["id"].as_str().unwrap()), &session).await, 204);
    let (s, v) = http.get("/api/me", &token).await;
    assert_eq!((s.as_u16(), v["detail"].as_str().unwrap()), (401, "Token revoked"));

    // Expired: fails once its time is up.
    let (_, short) = http.post("/auth/tokens", Some(&session), json!({"name": "short", "ttl_seconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, v) = http.get("/api/me", short["token"].as_str().unwrap()).await;
    assert_eq!((s.as_u16(), v["detail"].as_str().unwrap()), (401, "Token expired"));

    // Someone else's token is invisible; an admin can revoke it.
    let (s, list) = http.get("/auth/admin/tokens", &session).await;
    assert_eq!(s, 200);
    assert!(list.as_array().unwrap().iter().all(|t| t["user_email"] == "admin@example.com"));
    assert_eq!(http.delete(&format!("/auth/admin/tokens/{}", ten["id"].as_str().unwrap()), &session).await, 204);
    assert_eq!(http.delete("/auth/admin/tokens/does-not-exist", &session).await, 404);
}

#[tokio::test]
async fn deactivation_locks_out_every_credential_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (id, session) = http.user(&admin, "ana@example.com").await;
    let (_, pat) = http.post("/auth/tokens", Some(&session), json!({"name": "cli"})).await;
    let pat = pat["token"].as_str().unwrap().to_string();
    assert_eq!(http.get("/api/me", &pat).await.0, 200);
    let (s, _) = http.post(&format!("/api/users/{id}/deactivate"), Some(&admin), json!({})).await;
    assert_eq!(s, 200);
    for t in [&session, &pat] {
        let (s, v) = http.get("/api/me", t).await;
        assert_eq!((s.as_u16(), v["detail"].as_str().unwrap()), (401, "Account deactivated"));
    }
    http.post(&format!("/api/users/{id}/activate"), Some(&admin), json!({})).await;
    assert_eq!(http.get("/api/me", &pat).await.0, 200);
}

#[tokio::test]
async fn groups_grants_and_their_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (analyst_id, analyst) = http.user(&admin, "ana@example.com").await;

    assert_eq!(http.get("/api/admin/groups", &analyst).await.0, 403, "admin only");
    let (s, g) =
        http.post("/api/admin/groups", Some(&admin), json!({"name": "Finance", "description": "money people"})).await;
    assert_eq!(s, 201);
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(http.post("/api/admin/groups", Some(&admin), json!({"name": " "})).await.0, 400);
    assert_eq!(http.post("/api/admin/groups", Some(&admin), json!({"name": "Finance"})).await.0, 409);

    let (_, groups) = http.get("/api/admin/groups", &admin).await;
    let admin_group =
        groups.as_array().unwrap().iter().find(|g| g["name"] == "Admin").unwrap()["id"].as_str().unwrap().to_string();
    let (s, _) = http
        .call(Method::PATCH, &format!("/api/admin/groups/{admin_group}"), Some(&admin), Some(json!({"name": "Gods"})))
        .await;
    assert_eq!(s, 409, "system groups keep their names");
    assert_eq!(http.delete(&format!("/api/admin/groups/{admin_group}"), &admin).await, 409);
    assert_eq!(http.get("/api/admin/groups/Finance", &admin).await.0, 200, "groups resolve by name too");

    let members = format!("/api/admin/groups/{gid}/members");
    assert_eq!(http.post(&members, Some(&admin), json!({"email": "nobody@example.com"})).await.0, 404);
    assert_eq!(http.post(&members, Some(&admin), json!({"email": "ana@example.com"})).await.0, 201);
    assert_eq!(http.post(&members, Some(&admin), json!({"email": "ana@example.com"})).await.0, 409);

    let grant = |t: &str, r: &str| json!({"group_id": gid, "resource_type": t, "resource_id": r});
    assert_eq!(http.post("/api/admin/grants", Some(&admin), grant("spaceship", "x")).await.0, 400);
    assert_eq!(http.post("/api/admin/grants", Some(&admin), grant("table", " ")).await.0, 400);
    assert_eq!(
        http.post(
            "/api/admin/grants",
            Some(&admin),
            json!({"group_id": "nope", "resource_type": "table", "resource_id": "t"})
        )
        .await
        .0,
        404
    );
    let (s, gr) = http.post("/api/admin/grants", Some(&admin), grant("table", "orders")).await;
    assert_eq!(s, 201);
    assert_eq!(http.post("/api/admin/grants", Some(&admin), grant("table", "orders")).await.0, 409);
    let (_, list) = http.get(&format!("/api/admin/grants?group_id={gid}"), &admin).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Effective access says what and why.
    let (_, mine) = http.get("/api/me/effective-access", &analyst).await;
    assert_eq!(mine["is_admin"], false);
    let orders = &mine["resources"][0];
    assert_eq!((orders["resource_type"].as_str(), orders["resource_id"].as_str()), (Some("table"), Some("orders")));
    assert_eq!(orders["via"][0]["group_name"], "Finance");
    assert_eq!(orders["via"][0]["grant_id"], gr["id"]);
    assert!(mine["groups"].as_array().unwrap().iter().any(|g| g["name"] == "Everyone" && g["source"] == "implicit"));
    let (_, theirs) = http.get(&format!("/api/admin/users/{analyst_id}/effective-access"), &admin).await;
    assert_eq!(theirs["resources"], mine["resources"]);
    let (_, admins) = http.get("/api/me/effective-access", &admin).await;
    assert!(admins["admin_reason"].as_str().unwrap().contains("Admin"));

    let (s, overview) = http.get("/api/admin/access-overview", &admin).await;
    assert_eq!(s, 200);
    let ana = overview["users"].as_array().unwrap().iter().find(|u| u["email"] == "ana@example.com").unwrap();
    assert_eq!(ana["resources"], json!([{"resource_type": "table", "resource_id": "orders"}]));
    let finance = overview["groups"].as_array().unwrap().iter().find(|g| g["name"] == "Finance").unwrap();
    assert_eq!(finance["members"], json!(["ana@example.com"]));

    assert_eq!(http.delete(&format!("/api/admin/grants/{}", gr["id"].as_str().unwrap()), &admin).await, 204);
    assert_eq!(http.delete(&format!("/api/admin/grants/{}", gr["id"].as_str().unwrap()), &admin).await, 404);
    let (_, after) = http.get("/api/me/effective-access", &analyst).await;
    assert_eq!(after["resources"], json!([]), "a revoke takes effect on the next request");

    // Deleting a group removes its members and grants.
    http.post("/api/admin/grants", Some(&admin), grant("table", "orders")).await;
    assert_eq!(http.delete(&format!("/api/admin/groups/{gid}"), &admin).await, 204);
    let (_, after) = http.get("/api/me/effective-access", &analyst).await;
    assert_eq!(after["resources"], json!([]));
    let (_, grants) = http.get("/api/admin/grants", &admin).await;
    assert_eq!(grants, json!([]));
}

#[tokio::test]
async fn the_last_active_admin_is_protected() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("d"));
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let (_, me) = http.get("/api/me", &admin).await;
    let id = me["id"].as_str().unwrap();
    let (_, groups) = http.get("/api/admin/groups", &admin).await;
    let admin_group =
        groups.as_array().unwrap().iter().find(|g| g["name"] == "Admin").unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(http.post(&format!("/api/users/{id}/deactivate"), Some(&admin), json!({})).await.0, 409);
    assert_eq!(http.delete(&format!("/api/users/{id}"), &admin).await, 409);
    assert_eq!(http.delete(&format!("/api/admin/groups/{admin_group}/members/{id}"), &admin).await, 409);

    // With a second admin, the first may go.
    let (other, _) = http.user(&admin, "second@example.com").await;
    assert_eq!(
        http.post(&format!("/api/admin/users/{other}/memberships"), Some(&admin), json!({"group_id": "Admin"})).await.0,
        201
    );
    assert_eq!(http.delete(&format!("/api/admin/groups/{admin_group}/members/{id}"), &admin).await, 204);
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dir.path().join("d"), |c| {
        c.env("AGNES_AUTH_RATELIMIT_ENABLED", "1");
    });
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r =
            client.post(server.url("/auth/bootstrap")).json(&json!({"email": "not-an-email"})).send().await.unwrap();
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").is_some()));
    }
    assert_eq!(statuses, [(400, false), (400, false), (400, false), (429, true)], "3 per minute on bootstrap");
}

#[tokio::test]
async fn dev_mode_signs_in_as_admin_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dir.path().join("d"), |c| {
        c.arg("--dev");
    });
    let me: Value = reqwest::get(server.url("/api/me")).await.unwrap().json().await.unwrap();
    assert_eq!((me["email"].as_str(), me["is_admin"].as_bool()), (Some("dev@localhost"), Some(true)));

    let out = agnes()
        .args(["serve", "--dev", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("e"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dev mode"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn mutations_are_audited_with_client_and_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let server = TestServer::start(&data);
    let http = Http::new(&server);
    let admin = http.bootstrap().await;
    let r = reqwest::Client::new()
        .post(server.url("/api/admin/groups"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Ops"}))
        .send()
        .await
        .unwrap();
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("state/system.db").display())).await.unwrap();
    let row: (String, String, String, String) = sqlx::query_as(
        "SELECT COALESCE(user_id,''), COALESCE(client_kind,''), COALESCE(client_ip,''), COALESCE(correlation_id,'') FROM audit_log WHERE action = 'user_group.create'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!row.0.is_empty());
    assert_eq!((row.1.as_str(), row.2.as_str(), row.3.as_str()), ("api", "127.0.0.1", request_id.as_str()));
}
