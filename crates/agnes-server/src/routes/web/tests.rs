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
        self.send(r.body(Body::empty()).unwrap()).await
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
            "/login" | "/bootstrap" => assert_eq!(a.status, StatusCode::OK, "{p}"),
            "/logout"
            | "/tokens/x/revoke"
            | "/admin/tables/x/sync"
            | "/admin/tables/x/delete"
            | "/admin/access/groups"
            | "/admin/access/members"
            | "/admin/access/grants"
            | "/admin/users/x/active" => {
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
    for p in ["/admin/tables", "/admin/access", "/admin/users"] {
        assert_eq!(site.page(p, Some(&ana)).await.status, StatusCode::FORBIDDEN, "{p}");
    }
    let home = site.page("/", Some(&ana)).await;
    assert!(home.body.contains("No tables") && !home.body.contains("/catalog/evil"), "nothing granted yet");
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
