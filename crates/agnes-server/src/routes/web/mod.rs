//! The web UI: pages rendered on the server from templates (minijinja, escaping on by
//! default), htmx for partial updates, one stylesheet, every asset embedded.
//!
//! Pages hold no access logic of their own: each reads and writes through this server's
//! REST routes called in-process as the signed-in user (`InProcess`, the cookie
//! forwarded), so a page shows exactly what the API would answer that user and every
//! change is audited as an API call. Page handlers only add what a browser needs: a
//! redirect to `/login` for an anonymous visitor, a 403 page for a non-admin on an admin
//! page, a CSRF token on every form and its check on every POST (with an `Origin` check),
//! and security headers on every answer.

mod admin;
mod admin_metrics;
mod admin_tables;
mod admin_users;
mod analyst;
mod assets;
mod session;

use crate::auth::access::Caller;
use crate::auth::authenticate::{cookie, SESSION_COOKIE};
use crate::mcp::Failure;
use crate::routes::inprocess::InProcess;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use minijinja::Environment;
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// Every page path, for the authentication middleware: a page decides itself what an
/// anonymous visitor gets (the login page, or a redirect to it).
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/logout",
    "/bootstrap",
    "/catalog",
    "/catalog/metrics",
    "/catalog/{table}",
    "/access",
    "/tokens",
    "/tokens/{id}/revoke",
    "/setup",
    "/reset",
    "/cli-login",
    "/admin/tables",
    "/admin/tables/discover",
    "/admin/tables/{id}",
    "/admin/tables/{id}/sync",
    "/admin/tables/{id}/delete",
    "/admin/access",
    "/admin/access/groups",
    "/admin/access/members",
    "/admin/access/grants",
    "/admin/users",
    "/admin/users/{id}",
    "/admin/users/{id}/active",
    "/admin/users/{id}/memberships",
    "/admin/users/{id}/reset-password",
    "/admin/metrics",
    "/admin/metrics/edit",
    "/admin/metrics/delete",
    "/admin/audit",
    "/admin/agent-prompt",
    "/admin/workspace-prompt",
    "/static/{file}",
];

/// The page routes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let calls = Arc::new(InProcess::new(state.clone()));
    Router::new()
        .route("/", get(admin::home))
        .merge(session::routes())
        .merge(analyst::routes())
        .merge(admin::routes())
        .merge(admin_tables::routes())
        .merge(admin_users::routes())
        .merge(admin_metrics::routes())
        .route("/static/{file}", get(assets::serve))
        .layer(Extension(calls))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers every page and asset carries: no script but our own files, no framing, no
/// type sniffing, no referrer beyond this site.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("bootstrap.html", include_str!("templates/bootstrap.html")),
        ("catalog.html", include_str!("templates/catalog.html")),
        ("catalog_rows.html", include_str!("templates/catalog_rows.html")),
        ("table.html", include_str!("templates/table.html")),
        ("metrics.html", include_str!("templates/metrics.html")),
        ("access.html", include_str!("templates/access.html")),
        ("access_body.html", include_str!("templates/access_body.html")),
        ("tokens.html", include_str!("templates/tokens.html")),
        ("setup.html", include_str!("templates/setup.html")),
        ("problem.html", include_str!("templates/problem.html")),
        ("pager.html", include_str!("templates/pager.html")),
        ("dashboard.html", include_str!("templates/dashboard.html")),
        ("admin_tables.html", include_str!("templates/admin_tables.html")),
        ("admin_access.html", include_str!("templates/admin_access.html")),
        ("admin_users.html", include_str!("templates/admin_users.html")),
        ("admin_prompt.html", include_str!("templates/admin_prompt.html")),
        ("admin_discover.html", include_str!("templates/admin_discover.html")),
        ("admin_table.html", include_str!("templates/admin_table.html")),
        ("admin_user.html", include_str!("templates/admin_user.html")),
        ("admin_metrics.html", include_str!("templates/admin_metrics.html")),
        ("admin_metric.html", include_str!("templates/admin_metric.html")),
        ("admin_audit.html", include_str!("templates/admin_audit.html")),
        ("audit_rows.html", include_str!("templates/audit_rows.html")),
        ("reset.html", include_str!("templates/reset.html")),
        ("cli_login.html", include_str!("templates/cli_login.html")),
    ] {
        env.add_template(name, source).expect("the embedded templates parse");
    }
    // `{{ n | bytes }}`: a size for people (`1.5 MiB`).
    env.add_filter("bytes", |n: u64| bytesize::ByteSize::b(n).display().iec().to_string());
    env.add_global("css", assets::url("agnes.css"));
    env.add_global("js", assets::url("agnes.js"));
    env.add_global("htmx", assets::url("htmx.min.js"));
    env.add_global("version", env!("CARGO_PKG_VERSION"));
    env
});

/// `name` rendered with `context` as a page.
fn render(name: &str, context: Value) -> Response {
    render_status(StatusCode::OK, name, context)
}

fn render_status(status: StatusCode, name: &str, context: Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(&context)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("page {name} failed to render: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("<h1>Internal error</h1><p>The page failed to render.</p>"))
                .into_response()
        }
    }
}

/// A page that says what went wrong, with the API's status.
fn problem(viewer: Option<&Viewer>, failure: &Failure) -> Response {
    let status = failure.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::BAD_GATEWAY);
    let context = json!({"viewer": viewer.map(Viewer::context), "status": status.as_u16(),
                         "title": status.canonical_reason(), "message": message(failure)});
    render_status(status, "problem.html", context)
}

/// What a refusal says, in words for a person.
fn message(failure: &Failure) -> String {
    match &failure.detail {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .or_else(|| o.get("detail"))
            .or_else(|| o.get("reason"))
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| failure.detail.to_string()),
        other => other.to_string(),
    }
}

/// The signed-in user of a page request, with what the page needs to call the API as
/// them. An anonymous visitor is sent to `/login` (and back here after).
pub struct Viewer {
    pub caller: Caller,
    parts: Parts,
    csrf: String,
    calls: Arc<InProcess>,
}

/// The CSRF token of a credential: a digest of the session token, which a foreign site
/// can neither read (the cookie is HttpOnly) nor derive.
fn csrf_of(credential: &str) -> String {
    hex::encode(&sha2::Sha256::digest(format!("agnes-csrf:{credential}"))[..16])
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let calls = parts.extensions.get::<Arc<InProcess>>().cloned().expect("the web routes carry their caller");
        let Some(caller) = parts.extensions.get::<Caller>().cloned() else {
            let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next = percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC);
            return Err(Redirect::to(&format!("/login?next={next}")).into_response());
        };
        let credential = cookie(&parts.headers, SESSION_COOKIE)
            .or_else(|| parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(String::from))
            .unwrap_or_default();
        Ok(Viewer { caller, parts: parts.clone(), csrf: csrf_of(&credential), calls })
    }
}

impl Viewer {
    /// What every page says of its viewer.
    fn context(&self) -> Value {
        json!({"email": self.caller.user.email, "is_admin": self.caller.is_admin, "csrf": self.csrf})
    }

    /// A REST call as this viewer.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        self.calls.call(method, path, body, Some(&self.parts)).await
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call("GET", path, None).await
    }

    /// A GET read into the contract's type: for the long answers (a thousand tables),
    /// much quicker than a generic JSON tree.
    async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let bytes = self.calls.call_raw("GET", path, None, Some(&self.parts)).await?;
        serde_json::from_slice(&bytes).map_err(|e| Failure {
            status: Some(500),
            code: "internal".into(),
            detail: json!(format!("{path} answered outside the contract: {e}")),
        })
    }

    /// The refusal of a form that does not carry this viewer's CSRF token, or that a page
    /// of another site posted; `None` for a good one.
    fn check(&self, form: &HashMap<String, String>) -> Option<Response> {
        let forged = || {
            let f = Failure {
                status: Some(403),
                code: "csrf".into(),
                detail: json!("This form is stale or came from another site: reload the page and try again."),
            };
            problem(Some(self), &f)
        };
        (form.get("_csrf").is_none_or(|t| *t != self.csrf) || !same_origin(&self.parts)).then(forged)
    }

    /// Admin pages: for a non-admin, a 403 page saying so.
    fn admin(&self) -> Option<Response> {
        let f = Failure { status: Some(403), code: "admin_required".into(), detail: json!("Admin access required") };
        (!self.caller.is_admin).then(|| problem(Some(self), &f))
    }

    /// An admin's form: [`Viewer::admin`], then [`Viewer::check`].
    fn admin_form(&self, form: &HashMap<String, String>) -> Option<Response> {
        self.admin().or_else(|| self.check(form))
    }
}

/// Whether a POST came from this site: its `Origin` (or, without one, its `Referer`)
/// names this host. A browser sends one of them on every form post.
fn same_origin(parts: &Parts) -> bool {
    let Some(host) = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let from =
        parts.headers.get(header::ORIGIN).or_else(|| parts.headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    match from {
        // Neither header: not a browser's form post (a script with the cookie jar of its own).
        None => true,
        Some(url) => url
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
            .is_some_and(|origin| origin.eq_ignore_ascii_case(host)),
    }
}

/// Back to `to` after a form, with a message to show there.
fn done(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let notice = percent_encoding::utf8_percent_encode(notice, percent_encoding::NON_ALPHANUMERIC);
    Redirect::to(&format!("{to}{sep}notice={notice}")).into_response()
}

/// Rows per page of a long list.
const PAGE: usize = 50;

/// The page a query asks for (`page`, from 1) of `total` items, `per_page` to a page.
fn page_of(q: &HashMap<String, String>, total: usize, per_page: usize) -> (usize, usize) {
    let pages = total.div_ceil(per_page).max(1);
    (q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).clamp(1, pages), pages)
}

/// One page of `items` whose `text` contains the `q` of the query (case-insensitive), and
/// what the pager says: `{"items", "total", "page", "pages", "q"}`. Long lists stay quick:
/// 1,000 tables are 20 pages, and a search narrows them.
fn paged<T: serde::Serialize>(
    items: Vec<T>,
    q: &HashMap<String, String>,
    text: impl Fn(&T) -> String,
    per_page: usize,
) -> Value {
    let search = q.get("q").map(|s| s.trim().to_lowercase()).unwrap_or_default();
    let matching: Vec<T> =
        items.into_iter().filter(|t| search.is_empty() || text(t).to_lowercase().contains(&search)).collect();
    let total = matching.len();
    let (page, pages) = page_of(q, total, per_page);
    let items: Vec<T> = matching.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    json!({"items": items, "total": total, "page": page, "pages": pages, "q": q.get("q")})
}

/// The page the query asks for of a list the API searches and pages itself (`q`,
/// `offset`, `limit`; a thousand rows are not sent to be dropped), in [`paged`]'s shape.
/// `rows` takes an answer apart into its rows and the total matching.
async fn api_page<T: serde::de::DeserializeOwned, R: serde::Serialize>(
    viewer: &Viewer,
    path: &str,
    q: &HashMap<String, String>,
    per_page: usize,
    rows: impl Fn(T) -> (Vec<R>, usize),
) -> Result<Value, Failure> {
    let search = segment(q.get("q").map(String::as_str).unwrap_or_default().trim());
    let url = |page: usize| format!("{path}?q={search}&offset={}&limit={per_page}", (page - 1) * per_page);
    // The total decides which pages exist; a page past the end shows the last.
    let wanted = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let (mut items, total) = rows(viewer.get_as(&url(wanted)).await?);
    let (page, pages) = page_of(q, total, per_page);
    if page != wanted {
        items = rows(viewer.get_as(&url(page)).await?).0;
    }
    Ok(json!({"items": items, "total": total, "page": page, "pages": pages, "q": q.get("q")}))
}

/// A page of the registry (admin pages).
async fn registry_page(viewer: &Viewer, q: &HashMap<String, String>, per_page: usize) -> Result<Value, Failure> {
    api_page(viewer, "/api/admin/registry", q, per_page, |l: agnes_core::api::RegistryList| (l.tables, l.total)).await
}

/// The server's own address as the browser reached it, for the commands pages print.
pub(super) fn server_url(parts: &Parts) -> String {
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let https = parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A form field, trimmed; `None` when empty.
fn field(form: &HashMap<String, String>, name: &str) -> Option<String> {
    form.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The methods of the page paths, for the authentication middleware's public set.
pub fn public_routes() -> impl Iterator<Item = (Method, String)> {
    PAGES.iter().flat_map(|p| [(Method::GET, p.to_string()), (Method::POST, p.to_string())])
}

#[cfg(test)]
mod tests;
