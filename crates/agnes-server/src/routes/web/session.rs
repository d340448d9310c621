//! Signing in and out: `/login`, `/logout`, and `/bootstrap` (the first admin, while the
//! instance has never had one). The session is the API's: `POST /auth/token` (or
//! `/auth/bootstrap`) answers a session JWT, kept in the `access_token` cookie (HttpOnly,
//! SameSite=Lax, Secure behind HTTPS).

use super::{field, render, render_status, same_origin, Viewer};
use crate::routes::identity::auth::session_cookie;
use crate::routes::inprocess::InProcess;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/bootstrap", get(bootstrap_page).post(bootstrap))
        .route("/reset", get(reset_page).post(reset))
        .route("/cli-login", get(cli_login_page).post(cli_login))
}

/// The CLI's loopback port and its state nonce, as `agnes auth login` sends them.
fn cli_request(q: &HashMap<String, String>) -> Option<(u16, String)> {
    let port = q.get("port")?.parse::<u16>().ok().filter(|p| *p >= 1024)?;
    let state =
        q.get("state").filter(|s| (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))?;
    Some((port, state.clone()))
}

/// A `/cli-login` without the CLI's port and state: not opened by `agnes auth login`.
fn not_from_cli(viewer: &Viewer) -> Response {
    let detail = json!("This page is opened by `agnes auth login`; run it again.");
    super::problem(Some(viewer), &super::Failure { status: Some(400), code: "bad_request".into(), detail })
}

/// `/cli-login?port=&state=`: "sign the CLI on this computer in as you?"
async fn cli_login_page(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    match cli_request(&q) {
        Some((port, state)) => {
            render("cli_login.html", json!({"viewer": viewer.context(), "port": port, "state": state}))
        }
        None => not_from_cli(&viewer),
    }
}

/// Mint the CLI's token behind a one-time code and send the browser back to the CLI.
async fn cli_login(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.check(&form) {
        return refused;
    }
    let Some((port, state)) = cli_request(&form) else {
        return not_from_cli(&viewer);
    };
    match viewer.call("POST", "/auth/cli/codes", None).await {
        // Loopback only: the code goes to this computer's CLI, nowhere else.
        Ok(c) => Redirect::to(&format!(
            "http://127.0.0.1:{port}/callback?state={state}&code={}",
            c["code"].as_str().unwrap_or_default()
        ))
        .into_response(),
        Err(f) => super::problem(Some(&viewer), &f),
    }
}

/// Where to go after signing in: a path of this site only (never `//host` or a URL).
fn next_of(next: Option<&String>) -> String {
    crate::routes::identity::sso::safe_next(next.map(String::as_str))
}

/// What `/login?error=` codes of a refused single sign-on say.
fn sso_error(code: &str) -> &'static str {
    match code {
        "domain_not_allowed" => "Your e-mail domain may not sign in here. Ask an admin which account to use.",
        "not_in_allowed_group" => "You are in none of the groups that may sign in here. Ask an admin to add you.",
        "account_deactivated" => "This account is deactivated.",
        "email_not_verified" => "Your identity provider has not verified your e-mail address.",
        "invalid_state" => "That sign-in expired or was already used. Start again.",
        "invalid_link" => "That sign-in link expired or was already used. Ask for a new one.",
        "provider_unavailable" => "The identity provider cannot be reached right now. Try again shortly.",
        "unknown_provider" => "There is no such sign-in provider here.",
        _ => "Signing in with your identity provider failed. Start again, or ask an admin.",
    }
}

async fn login_page(
    Extension(calls): Extension<Arc<InProcess>>,
    parts: Parts,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = next_of(q.get("next"));
    let providers = calls.call("GET", "/auth/providers", None, Some(&parts)).await.unwrap_or_default();
    let context = json!({"next": next, "email": q.get("email"), "providers": providers,
                         "sso_error": q.get("error").map(|e| sso_error(e))});
    render("login.html", context)
}

/// The cookie of a new session, and on to `next`.
fn signed_in(state: &AppState, token: &str, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(state, token, 86_400));
    response
}

/// The form's email and password for the API's JSON.
fn credentials(form: &HashMap<String, String>) -> serde_json::Value {
    json!({"email": field(form, "email").unwrap_or_default(), "password": form.get("password").cloned().unwrap_or_default()})
}

async fn login(
    State(state): State<AppState>,
    Extension(calls): Extension<Arc<InProcess>>,
    parts: Parts,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = next_of(form.get("next"));
    let refused = |message: String| {
        let context = json!({"next": next, "email": form.get("email"), "error": message});
        render_status(StatusCode::UNAUTHORIZED, "login.html", context)
    };
    if !same_origin(&parts) {
        return refused("This form came from another site.".into());
    }
    match calls.call("POST", "/auth/token", Some(credentials(&form)), Some(&parts)).await {
        Ok(session) => signed_in(&state, session["access_token"].as_str().unwrap_or_default(), &next),
        // One message for a wrong email and a wrong password: the page says nothing of who
        // has an account. Rate limits and deactivation say what they are.
        Err(f) if f.status == Some(401) && super::message(&f).contains("deactivated") => {
            refused("This account is deactivated.".into())
        }
        Err(f) if f.status == Some(401) => refused("Wrong email or password.".into()),
        Err(f) => refused(super::message(&f)),
    }
}

async fn logout(State(state): State<AppState>, viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.check(&form) {
        return refused;
    }
    // Ends every session of the user (the API's logout), then the cookie.
    let _ = viewer.call("POST", "/auth/logout", None).await;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

/// What a form that sets a password (bootstrap, reset) is refused for before any call:
/// another site posted it, or the two passwords differ.
fn new_password_refused(parts: &Parts, form: &HashMap<String, String>) -> Option<(StatusCode, &'static str)> {
    if !same_origin(parts) {
        return Some((StatusCode::FORBIDDEN, "This form came from another site."));
    }
    (form.get("password") != form.get("password2")).then_some((StatusCode::BAD_REQUEST, "The passwords differ."))
}

async fn bootstrap_page() -> Response {
    render("bootstrap.html", json!({}))
}

async fn bootstrap(
    State(state): State<AppState>,
    Extension(calls): Extension<Arc<InProcess>>,
    parts: Parts,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refused = |status: StatusCode, message: String| {
        render_status(status, "bootstrap.html", json!({"email": form.get("email"), "error": message}))
    };
    if let Some((status, message)) = new_password_refused(&parts, &form) {
        return refused(status, message.into());
    }
    match calls.call("POST", "/auth/bootstrap", Some(credentials(&form)), Some(&parts)).await {
        Ok(session) => signed_in(&state, session["access_token"].as_str().unwrap_or_default(), "/"),
        Err(f) => refused(
            f.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::BAD_REQUEST),
            super::message(&f),
        ),
    }
}

/// `/reset?email=&token=`: the page of the one-time link an admin's password reset made.
async fn reset_page(Query(q): Query<HashMap<String, String>>) -> Response {
    render("reset.html", json!({"email": q.get("email"), "token": q.get("token")}))
}

/// Set the new password with the link's token, then sign in with it.
async fn reset(
    State(state): State<AppState>,
    Extension(calls): Extension<Arc<InProcess>>,
    parts: Parts,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refused = |status: StatusCode, message: String| {
        let context = json!({"email": form.get("email"), "token": form.get("token"), "error": message});
        render_status(status, "reset.html", context)
    };
    if let Some((status, message)) = new_password_refused(&parts, &form) {
        return refused(status, message.into());
    }
    let mut body = credentials(&form);
    body["token"] = json!(form.get("token").cloned().unwrap_or_default());
    if let Err(f) = calls.call("POST", "/auth/password/reset", Some(body), Some(&parts)).await {
        let status = f.status.and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::BAD_REQUEST);
        return refused(status, super::message(&f));
    }
    match calls.call("POST", "/auth/token", Some(credentials(&form)), Some(&parts)).await {
        Ok(session) => signed_in(&state, session["access_token"].as_str().unwrap_or_default(), "/"),
        // The password is set; only signing in failed (a deactivated account).
        Err(f) => {
            refused(StatusCode::UNAUTHORIZED, format!("Password set, but signing in failed: {}", super::message(&f)))
        }
    }
}
