//! Every page in-process, through the whole router (authentication included): who may see
//! it, what it shows, escaping, CSRF and the headers. The browser test is
//! `crates/agnes-cli/tests/web.rs`.

use super::PAGES;
use crate::ServerConfig;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Site {
    _dir: tempfile::TempDir,
    router: Router,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Site {
    async fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::load(dir.path().join("data"), "127.0.0.1:0".parse().unwrap(), None).unwrap();
        let state = crate::prepare(config).await.unwrap();
        std::fs::write(state.layout.default_files_root().join("evil.csv"), "id,name\n1,<b>bold</b>\n").unwrap();
        Site { _dir: dir, router: crate::routes::router(state) }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, headers, body: String::from_utf8_lossy(&bytes).into() }
    }

    async fn page(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut r = Request::get(path).header(header::HOST, "agnes.test");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, format!("access_token={c}"));
        }
        let answer = self.send(r.body(Body::empty()).unwrap()).await;
        // A page's title is text: markup there shows up as text in the tab.
        if let Some(title) = answer.body.split("<title>").nth(1).and_then(|t| t.split("</title>").next()) {
            assert!(!title.contains('<') && title.len() < 120, "{path}: the title is {title:?}");
        }
        answer
    }

    async fn form(&self, path: &str, cookie: Option<&str>, origin: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = fields
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut r = Request::post(path)
            .header(header::HOST, "agnes.test")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, format!("access_token={c}"));
        }
        self.send(r.body(Body::from(body)).unwrap()).await
    }

    async fn api(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let r = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let a = self.send(r).await;
        assert!(a.status.is_success(), "{method} {path}: {} {}", a.status, a.body);
        serde_json::from_str(&a.body).unwrap_or(Value::Null)
    }
}

/// The session token a `Set-Cookie` carries.
fn session(a: &Answer) -> String {
    let c = a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    c.trim_start_matches("access_token=").split(';').next().unwrap().to_string()
}

fn csrf(page: &Answer) -> String {
    let at = page.body.find("name=\"_csrf\" value=\"").expect("a form with a CSRF token") + 20;
    page.body[at..at + 32].to_string()
}

const ORIGIN: &str = "http://agnes.test";

#[tokio::test]
async fn pages_sign_in_guard_escape_and_check_forms() {
    let site = Site::new().await;

    // Anonymous: every page but the sign-in pages and assets sends to /login, and back.
    let concrete = |p: &str| p.replace("{table}", "evil").replace("{id}", "x").replace("{file}", "nope.css");
    for p in PAGES.iter().map(|p| concrete(p)) {
        let a = site.page(&p, None).await;
        match p.as_str() {
            "/login" | "/bootstrap" | "/reset" => assert_eq!(a.status, StatusCode::OK, "{p}"),
            "/logout"
            | "/tokens/x/revoke"
            | "/admin/tables/x/sync"
            | "/admin/tables/x/delete"
            | "/admin/access/groups"
            | "/admin/access/members"
            | "/admin/access/grants"
            | "/admin/users/x/active"
            | "/admin/users/x/memberships"
            | "/admin/users/x/reset-password"
            | "/admin/metrics/delete" => {
                assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{p} takes POST only")
            }
            "/static/nope.css" => assert_eq!(a.status, StatusCode::NOT_FOUND),
            _ => {
                assert_eq!(a.status, StatusCode::SEE_OTHER, "{p}: {}", a.body);
                let to = a.headers[header::LOCATION].to_str().unwrap();
                assert!(to.starts_with("/login?next=%2F"), "{p} → {to}");
            }
        }
    }
    let login = site.page("/login?next=//evil.example/x", None).await;
    assert!(login.body.contains("name=\"next\"") && !login.body.contains("evil.example"), "a foreign next is dropped");
    for h in ["content-security-policy", "x-frame-options", "x-content-type-options"] {
        assert!(login.headers.contains_key(h), "{h}");
    }
    assert!(!login.headers["content-security-policy"].to_str().unwrap().contains("unsafe-inline"));

    // First run: the bootstrap page makes the admin and signs them in.
    let boot = site
        .form(
            "/bootstrap",
            None,
            ORIGIN,
            &[("email", "root@example.com"), ("password", "admin-pass-1"), ("password2", "admin-pass-1")],
        )
        .await;
    assert_eq!(boot.status, StatusCode::SEE_OTHER, "{}", boot.body);
    let admin = session(&boot);
    let again = site
        .form(
            "/bootstrap",
            None,
            ORIGIN,
            &[("email", "x@example.com"), ("password", "admin-pass-1"), ("password2", "admin-pass-1")],
        )
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "never twice: {}", again.body);
    assert!(again.body.contains("already has an admin"));

    // Wrong password: the form again with the error by the fields, nothing said of who exists.
    let wrong = site.form("/login", None, ORIGIN, &[("email", "root@example.com"), ("password", "nope-nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong email or password") && wrong.body.contains("aria-invalid=\"true\""));
    let ok = site
        .form(
            "/login",
            None,
            ORIGIN,
            &[("email", "root@example.com"), ("password", "admin-pass-1"), ("next", "/admin/users")],
        )
        .await;
    assert_eq!((ok.status, ok.headers[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/admin/users"));
    assert!(ok.headers[header::SET_COOKIE].to_str().unwrap().contains("HttpOnly; SameSite=Lax"));

    // The admin registers a table through the form; a forged or foreign form is refused.
    let tables = site.page("/admin/tables", Some(&admin)).await;
    assert_eq!(tables.status, StatusCode::OK);
    let token = csrf(&tables);
    let fields = [
        ("_csrf", token.as_str()),
        ("name", "evil"),
        ("source", "files:files"),
        ("source_table", "evil.csv"),
        ("description", "<script>alert(1)</script>"),
    ];
    let forged = site.form("/admin/tables", Some(&admin), ORIGIN, &fields[1..]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let foreign = site.form("/admin/tables", Some(&admin), "https://evil.example", &fields).await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let registered = site.form("/admin/tables", Some(&admin), ORIGIN, &fields).await;
    assert_eq!(registered.status, StatusCode::SEE_OTHER, "{}", registered.body);
    let missing = site.form("/admin/tables", Some(&admin), ORIGIN, &[("_csrf", token.as_str()), ("name", "")]).await;
    assert_eq!(missing.status, StatusCode::OK);
    assert!(missing.body.contains("class=\"error\""), "the API's refusal by the form");

    // Escaped wherever it shows.
    let catalog = site.page("/catalog", Some(&admin)).await;
    assert!(
        catalog.body.contains("&lt;script&gt;alert(1)") && !catalog.body.contains("<script>alert"),
        "{}",
        catalog.body
    );
    let partial = site
        .send(
            Request::get("/catalog?q=evil")
                .header(header::COOKIE, format!("access_token={admin}"))
                .header("hx-request", "true")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(partial.body.contains("/catalog/evil") && !partial.body.contains("<html"), "htmx gets the rows only");

    // An analyst: no admin pages, only what is granted.
    let user = json!({"email": "ana@example.com", "password": "user-pass-1"});
    site.api("POST", "/api/users", &admin, user).await;
    let ana = site.form("/login", None, ORIGIN, &[("email", "ana@example.com"), ("password", "user-pass-1")]).await;
    let ana = session(&ana);
    for p in [
        "/admin/tables",
        "/admin/tables/discover",
        "/admin/tables/evil",
        "/admin/access",
        "/admin/users",
        "/admin/users/x",
        "/admin/metrics",
        "/admin/metrics/edit",
        "/admin/audit",
    ] {
        assert_eq!(site.page(p, Some(&ana)).await.status, StatusCode::FORBIDDEN, "{p}");
    }
    let home = site.page("/", Some(&ana)).await;
    assert!(home.body.contains("No tables") && !home.body.contains("/catalog/evil"), "nothing granted yet");
    let none = site.api("GET", "/api/v2/catalog?q=evil", &ana, Value::Null).await;
    assert_eq!(
        (none["total"].as_u64(), none["tables"].as_array().unwrap().len()),
        (Some(0), 0),
        "no count of the unreadable"
    );
    let mine = site.api("GET", "/api/v2/catalog?q=EVI&offset=0&limit=5", &admin, Value::Null).await;
    assert_eq!((mine["total"].as_u64(), mine["tables"][0]["id"].as_str()), (Some(1), Some("evil")));
    let past = site.api("GET", "/api/v2/catalog?q=evil&offset=1", &admin, Value::Null).await;
    assert_eq!((past["total"].as_u64(), past["tables"].as_array().unwrap().len()), (Some(1), 0));
    assert_eq!(site.page("/catalog/evil", Some(&ana)).await.status, StatusCode::FORBIDDEN);
    for p in ["/access", "/tokens", "/setup", "/catalog/metrics"] {
        assert_eq!(site.page(p, Some(&ana)).await.status, StatusCode::OK, "{p}");
    }

    // Tokens: created once-shown, listed, revoked.
    let tokens = site.page("/tokens", Some(&ana)).await;
    let t = csrf(&tokens);
    let created =
        site.form("/tokens", Some(&ana), ORIGIN, &[("_csrf", &t), ("name", "laptop"), ("expires_in_days", "30")]).await;
    assert!(created.body.contains("agnes_pat_") && created.body.contains("not shown again"), "{}", created.body);
    let list = site.api("GET", "/auth/tokens", &ana, Value::Null).await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let revoked = site.form(&format!("/tokens/{id}/revoke"), Some(&ana), ORIGIN, &[("_csrf", &t)]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(site.api("GET", "/auth/tokens", &ana, Value::Null).await[0]["revoked_at"].is_string());

    // The texts agnes gives agents: overridden in the browser, served by the API, reset.
    assert_eq!(site.page("/admin/workspace-prompt", Some(&ana)).await.status, StatusCode::FORBIDDEN);
    let prompt = site.page("/admin/workspace-prompt", Some(&admin)).await;
    assert!(prompt.body.contains("The built-in text"), "{}", prompt.body);
    let p = csrf(&prompt);
    let saved = site
        .form(
            "/admin/workspace-prompt",
            Some(&admin),
            ORIGIN,
            &[("_csrf", &p), ("body", "# Ours\r\nServer: {server_url}")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let welcome = site.api("GET", "/api/welcome?server_url=https://agnes.example", &ana, Value::Null).await;
    assert_eq!(welcome["content"], "# Ours\nServer: https://agnes.example");
    let empty = site.form("/admin/workspace-prompt", Some(&admin), ORIGIN, &[("_csrf", &p), ("body", " ")]).await;
    assert!(empty.body.contains("class=\"error\""), "the API's 400 by the field");
    let reset = site.form("/admin/workspace-prompt", Some(&admin), ORIGIN, &[("_csrf", &p), ("reset", "1")]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let welcome = site.api("GET", "/api/welcome", &ana, Value::Null).await;
    assert!(!welcome["content"].as_str().unwrap().contains("# Ours"), "back to the built-in text");
    let setup = site.page("/setup", Some(&ana)).await;
    assert!(setup.body.contains("id=\"agent-prompt\"") && setup.body.contains("agnes init --server-url http:"));

    // Assets: hashed names, a year of cache, gzip for htmx; the whole page light.
    let css = super::assets::url("agnes.css");
    let a = site.page(&css, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let weight = home.body.len() + super::assets::weight();
    assert!(weight < 100_000, "page weight {weight} bytes");

    // Sign out ends the session.
    let out = site.form("/logout", Some(&ana), ORIGIN, &[("_csrf", &csrf(&home))]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(site.page("/tokens", Some(&ana)).await.status, StatusCode::SEE_OTHER, "signed out");
}

/// A multipart form as a browser posts it: text fields and one file.
async fn upload(site: &Site, path: &str, cookie: &str, fields: &[(&str, &str)], file: &[u8]) -> Answer {
    let boundary = "test-boundary-7f3a";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").bytes());
    }
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.yml\"\r\n\r\n").bytes(),
    );
    body.extend_from_slice(file);
    body.extend(format!("\r\n--{boundary}--\r\n").bytes());
    let r = Request::post(path)
        .header(header::HOST, "agnes.test")
        .header(header::ORIGIN, ORIGIN)
        .header(header::COOKIE, format!("access_token={cookie}"))
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(body))
        .unwrap();
    site.send(r).await
}

fn location(a: &Answer) -> String {
    let to = a.headers.get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
    to.unwrap_or_else(|| panic!("a redirect, got {}: {}", a.status, a.body))
}

#[tokio::test]
async fn admin_discovers_edits_syncs_manages_users_metrics_and_reads_the_audit_log() {
    let site = Site::new().await;
    let boot = site
        .form(
            "/bootstrap",
            None,
            ORIGIN,
            &[("email", "root@example.com"), ("password", "admin-pass-1"), ("password2", "admin-pass-1")],
        )
        .await;
    let admin = session(&boot);

    // Discover the files root, tick the file, register it; it shows as registered after.
    let listing = site.page("/admin/tables/discover?source=files", Some(&admin)).await;
    assert!(listing.body.contains("value=\"evil.csv\""), "{}", listing.body);
    let t = csrf(&listing);
    let none = site.form("/admin/tables/discover", Some(&admin), ORIGIN, &[("_csrf", &t), ("source", "files")]).await;
    assert!(none.body.contains("Tick at least one table"), "nothing ticked is said, not sent");
    let reg = site
        .form(
            "/admin/tables/discover",
            Some(&admin),
            ORIGIN,
            &[("_csrf", &t), ("source", "files"), ("table", "evil.csv")],
        )
        .await;
    assert!(location(&reg).contains("Registered%201%20table"), "{}", location(&reg));
    let again = site.page("/admin/tables/discover?source=files", Some(&admin)).await;
    assert!(
        again.body.contains("href=\"/admin/tables/evil\">registered") && !again.body.contains("value=\"evil.csv\"")
    );
    let found = site.api("GET", "/api/admin/registry?q=EVI&limit=1", &admin, Value::Null).await;
    assert_eq!((found["total"].as_u64(), found["count"].as_u64()), (Some(1), Some(1)), "searched case-insensitively");
    let past = site.api("GET", "/api/admin/registry?q=evi&offset=1&limit=1", &admin, Value::Null).await;
    assert_eq!((past["total"].as_u64(), past["count"].as_u64()), (Some(1), Some(0)), "paged after the search");
    let page = site.page("/admin/tables?q=nothing-like-it&page=9", Some(&admin)).await;
    assert!(page.body.contains("0 tables matching"), "a page past the end shows the last, here empty");
    let nowhere = site.page("/admin/tables/discover?source=nope", Some(&admin)).await;
    assert!(nowhere.body.contains("class=\"card alert error\""), "an unknown source is said on the page");

    // Edit: the form holds the settings; a save changes them; the API's refusal shows by the form.
    let edit = site.page("/admin/tables/evil", Some(&admin)).await;
    assert!(edit.body.contains("value=\"evil\"") && edit.body.contains("Never synced"), "{}", edit.body);
    let saved = site
        .form(
            "/admin/tables/evil",
            Some(&admin),
            ORIGIN,
            &[
                ("_csrf", &t),
                ("name", "evil"),
                ("description", "Tickets <b>"),
                ("primary_key", "id"),
                ("query_mode", "local"),
                ("sync_strategy", "full_refresh"),
            ],
        )
        .await;
    assert!(location(&saved).starts_with("/admin/tables/evil?notice=Saved"), "{}", location(&saved));
    let row = site.api("GET", "/api/admin/registry/evil", &admin, Value::Null).await;
    assert_eq!((row["description"].as_str(), &row["primary_key"]), (Some("Tickets <b>"), &json!(["id"])));
    assert_eq!(row["profile_after_sync"], false, "an unticked box clears the flag");
    let bad = site
        .form(
            "/admin/tables/evil",
            Some(&admin),
            ORIGIN,
            &[("_csrf", &t), ("name", "evil"), ("query_mode", "sideways")],
        )
        .await;
    assert!(bad.body.contains("id=\"edit-error\""), "{}", bad.body);

    // Sync now from the table page: the history shows the run with its rows.
    let sync = site
        .form("/admin/tables/evil/sync", Some(&admin), ORIGIN, &[("_csrf", &t), ("back", "/admin/tables/evil")])
        .await;
    assert!(location(&sync).starts_with("/admin/tables/evil?notice="));
    let mut runs = Value::Null;
    for _ in 0..100 {
        runs = site.api("GET", "/api/admin/registry/evil/history", &admin, Value::Null).await;
        if !runs["runs"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((runs["runs"][0]["status"].as_str(), runs["runs"][0]["rows"].as_i64()), (Some("ok"), Some(1)), "{runs}");
    let edit = site.page("/admin/tables/evil", Some(&admin)).await;
    assert!(edit.body.contains("badge ok\">ok") && edit.body.contains("Tickets &lt;b&gt;"));

    // A user's page: add to a group, remove, reset the password by a one-time link.
    let ana =
        site.api("POST", "/api/users", &admin, json!({"email": "ana@example.com", "password": "user-pass-1"})).await;
    let ana_id = ana["id"].as_str().unwrap().to_string();
    let group = site.api("POST", "/api/admin/groups", &admin, json!({"name": "Support"})).await;
    let group_id = group["id"].as_str().unwrap().to_string();
    let page = site.page(&format!("/admin/users/{ana_id}"), Some(&admin)).await;
    assert!(page.body.contains(&format!("value=\"{group_id}\">Support")), "{}", page.body);
    let members = format!("/admin/users/{ana_id}/memberships");
    let add = site.form(&members, Some(&admin), ORIGIN, &[("_csrf", &t), ("group_id", &group_id)]).await;
    assert!(location(&add).contains("Added"));
    let groups = site.api("GET", &format!("/api/admin/users/{ana_id}/memberships"), &admin, Value::Null).await;
    assert!(groups.as_array().unwrap().iter().any(|m| m["group_name"] == "Support"), "{groups}");
    let twice = site.form(&members, Some(&admin), ORIGIN, &[("_csrf", &t), ("group_id", &group_id)]).await;
    assert!(twice.body.contains("id=\"user-error\""), "the API's 409 on the page: {}", twice.body);
    let remove =
        site.form(&members, Some(&admin), ORIGIN, &[("_csrf", &t), ("group_id", &group_id), ("remove", "1")]).await;
    assert!(location(&remove).contains("Removed"));
    let groups = site.api("GET", &format!("/api/admin/users/{ana_id}/memberships"), &admin, Value::Null).await;
    assert!(!groups.as_array().unwrap().iter().any(|m| m["group_name"] == "Support"));
    let reset =
        site.form(&format!("/admin/users/{ana_id}/reset-password"), Some(&admin), ORIGIN, &[("_csrf", &t)]).await;
    // The page's HTML escapes `/`, `&` and `=`, as it should: read it as the browser shows it.
    let shown = reset.body.replace("&#x2f;", "/").replace("&amp;", "&").replace("&#x3d;", "=");
    let at = shown.find("http://agnes.test/reset?").expect("the reset link is shown");
    let link = &shown[at..shown[at..].find('<').unwrap() + at];
    let query = link.split_once('?').unwrap().1.to_string();
    let token = query.split("token=").nth(1).unwrap().to_string();
    let old = site.form("/login", None, ORIGIN, &[("email", "ana@example.com"), ("password", "user-pass-1")]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the reset removed the old password");
    let form_page = site.page(&format!("/reset?{query}"), None).await;
    assert!(form_page.body.contains(&format!("value=\"{token}\"")));
    let fields = [
        ("email", "ana@example.com"),
        ("token", token.as_str()),
        ("password", "new-pass-22"),
        ("password2", "new-pass-22"),
    ];
    let set = site.form("/reset", None, ORIGIN, &fields).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert!(!session(&set).is_empty(), "signed in with the new password");
    let used = site.form("/reset", None, ORIGIN, &fields).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST, "the link works once");
    assert!(used.body.contains("Invalid or expired reset token"));

    // Metrics: import pasted YAML, see validation, edit (a rename moves it), delete.
    let metrics = site.page("/admin/metrics", Some(&admin)).await;
    assert!(metrics.body.contains("No metrics yet"));
    let yaml = "- name: tickets\n  display_name: Tickets\n  category: support\n  type: count\n  grain: daily\n  table: evil\n  sql: SELECT count(*) FROM evil\n\
                - name: ghosts\n  display_name: Ghosts\n  category: support\n  type: count\n  grain: daily\n  sql: SELECT count(*) FROM ghosts\n";
    let imported = upload(&site, "/admin/metrics", &admin, &[("_csrf", &t), ("yaml", yaml)], b"").await;
    assert!(location(&imported).contains("Imported%202%20metric"), "{}", location(&imported));
    let forged = upload(&site, "/admin/metrics", &admin, &[("yaml", yaml)], b"").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "multipart forms carry the CSRF token too");
    let broken = upload(&site, "/admin/metrics", &admin, &[("_csrf", &t)], b"name: [unclosed").await;
    assert!(
        broken.body.contains("id=\"import-error\"") && broken.body.contains("Invalid metric definitions"),
        "{}",
        broken.body
    );
    let metrics = site.page("/admin/metrics", Some(&admin)).await;
    assert!(
        metrics.body.contains("reads &#x27;ghosts&#x27;, which is not in the registry")
            || metrics.body.contains("reads &#39;ghosts&#39;"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("2 metrics; 1 with problems"));
    let checks = site.api("GET", "/api/admin/metrics/validate", &admin, Value::Null).await;
    assert_eq!((checks["checked"].as_u64(), checks["with_problems"].as_u64()), (Some(2), Some(1)));
    let edit = site.page("/admin/metrics/edit?id=support/tickets", Some(&admin)).await;
    assert!(edit.body.contains("display_name: Tickets"), "{}", edit.body);
    let renamed = edit.body[edit.body.find("name: tickets").unwrap()..edit.body.find("</textarea>").unwrap()]
        .replace("name: tickets", "name: open_tickets")
        .replace("&#x27;", "'");
    let saved = site
        .form(
            "/admin/metrics/edit",
            Some(&admin),
            ORIGIN,
            &[("_csrf", &t), ("id", "support/tickets"), ("yaml", &renamed)],
        )
        .await;
    assert!(location(&saved).starts_with("/admin/metrics/edit?id=support%2Fopen%5Ftickets"), "{}", location(&saved));
    let listed = site.api("GET", "/api/metrics", &admin, Value::Null).await;
    let ids: Vec<&str> = listed["metrics"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&"support/open_tickets") && !ids.contains(&"support/tickets"),
        "a rename, not a copy: {ids:?}"
    );
    let invalid = site.form("/admin/metrics/edit", Some(&admin), ORIGIN, &[("_csrf", &t), ("yaml", "name: x\n")]).await;
    assert!(
        invalid.body.contains("id=\"metric-error\"") && invalid.body.contains("Missing required fields"),
        "{}",
        invalid.body
    );
    let gone =
        site.form("/admin/metrics/delete", Some(&admin), ORIGIN, &[("_csrf", &t), ("id", "support/ghosts")]).await;
    assert!(location(&gone).contains("Deleted"));
    assert_eq!(site.api("GET", "/api/metrics", &admin, Value::Null).await["count"], 1);

    // The audit log: filtered, paged by its cursor, on the dashboard with the disk.
    let log = site.page("/admin/audit?action=metric", Some(&admin)).await;
    let shows = |page: &Answer, action: &str| page.body.contains(&format!("<code>{action}</code>"));
    assert!(shows(&log, "metric.import") && shows(&log, "metric.delete") && !shows(&log, "user.create"));
    let by_root = site.page("/admin/audit?user=root%40example.com&action=user.create", Some(&admin)).await;
    assert!(shows(&by_root, "user.create") && by_root.body.contains(&ana_id), "{}", by_root.body);
    let by_ana = site.page("/admin/audit?user=ana%40example.com&action=user.create", Some(&admin)).await;
    assert!(by_ana.body.contains("No audit events"), "ana created no one");
    let first = site.api("GET", "/api/admin/audit?limit=2", &admin, Value::Null).await;
    let before = first["next_before"].as_str().expect("more pages").to_string();
    let second = site
        .api("GET", &format!("/api/admin/audit?limit=2&before={}", super::segment(&before)), &admin, Value::Null)
        .await;
    assert_eq!(second["events"].as_array().unwrap().len(), 2);
    assert!(
        second["events"][0]["timestamp"].as_str() <= first["events"][1]["timestamp"].as_str(),
        "older on the next page"
    );
    assert_ne!(second["events"][0]["id"], first["events"][1]["id"]);
    for bad in ["/api/admin/audit?limit=0", "/api/admin/audit?before=garbage"] {
        let r = Request::get(bad).header(header::AUTHORIZATION, format!("Bearer {admin}")).body(Body::empty()).unwrap();
        assert_eq!(site.send(r).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let disk = site.api("GET", "/api/admin/storage", &admin, Value::Null).await;
    assert!(disk["tables_bytes"].as_i64().unwrap() > 0 && disk["state_db_bytes"].as_i64().unwrap() > 0, "{disk}");
    assert!(disk["total_bytes"].as_u64().unwrap() >= disk["free_bytes"].as_u64().unwrap());
    let home = site.page("/", Some(&admin)).await;
    assert!(home.body.contains("Recent audit events") && home.body.contains(" free</div>"), "{}", home.body);
    assert!(home.body.contains("metric.delete"));
}

#[tokio::test]
async fn the_dashboard_shows_the_jira_queue_where_jira_is_configured() {
    let site = Site::new().await;
    let boot = [("email", "root@example.com"), ("password", "admin-pass-1"), ("password2", "admin-pass-1")];
    let admin = session(&site.form("/bootstrap", None, ORIGIN, &boot).await);
    let home = site.page("/", Some(&admin)).await;
    assert!(home.body.contains("Dashboard") && !home.body.contains("Jira deliveries"), "no Jira, no card");

    // Configured by its domain alone: no account, no secret, and the card says so.
    std::env::set_var("JIRA_DOMAIN", "acme.atlassian.net");
    let site = Site::new().await;
    let admin = session(&site.form("/bootstrap", None, ORIGIN, &boot).await);
    let home = site.page("/", Some(&admin)).await;
    assert_eq!(home.status, StatusCode::OK);
    for said in ["Jira deliveries", "0 waiting", "none failing", "webhook secret not set", "Jira account not set"] {
        assert!(home.body.contains(said), "{said}: {}", home.body);
    }
    let health = site.api("GET", "/webhooks/jira/health", &admin, Value::Null).await;
    assert_eq!(
        (health["status"].as_str(), health["configured"].as_bool()),
        (Some("degraded"), Some(false)),
        "{health}"
    );
}
