//! Single sign-on (spec §9, beyond it: any OpenID Connect provider): `GET /auth/providers`,
//! `/auth/google/login` and `/auth/google/callback` (the contract's paths), and
//! `/auth/oidc/{provider}/login` and `/callback` for the providers of `auth.oidc`.
//!
//! A sign-in ends in a session cookie and a redirect to the page the person wanted (a
//! path of this site only); a refusal in a redirect to `/login?error=<code>`, audited with
//! the reason. The first sign-in creates the account; the provider's groups replace the
//! memberships it wrote before (never an admin's).

use super::auth::session_cookie;
use crate::auth::authenticate::ClientInfo;
use crate::auth::oidc::{agnes_groups, Identity, Provider, SsoError};
use crate::auth::session;
use crate::routes::audit::Audit;
use crate::state::AppState;
use agnes_core::api::SsoProvider;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The cookie that ties the provider's redirect back to the browser that left.
const FLOW_COOKIE: &str = "agnes_sso";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(google_login))
        .routes(routes!(google_callback))
        .routes(routes!(oidc_login))
        .routes(routes!(oidc_callback))
}

/// The configured sign-in providers, for the login page and `agnes auth login`.
#[utoipa::path(get, path = "/auth/providers", tag = "auth", security(()), responses((status = 200, body = Vec<SsoProvider>)))]
async fn providers(State(state): State<AppState>) -> Json<Vec<SsoProvider>> {
    Json(
        state
            .auth
            .sso
            .providers()
            .iter()
            .map(|p| SsoProvider {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                login_url: p.login_path(),
            })
            .collect(),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
struct LoginQuery {
    /// Where to go after signing in: a path of this site.
    next: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The provider's refusal (RFC 6749 §4.1.2.1).
    error: Option<String>,
}

/// Google sign-in: to Google, and back to `next`.
#[utoipa::path(get, path = "/auth/google/login", tag = "auth", security(()), params(LoginQuery), responses((status = 303)))]
async fn google_login(state: State<AppState>, client: ClientInfo, parts: Parts, q: Query<LoginQuery>) -> Response {
    login(state, client, parts, "google", q).await
}

#[utoipa::path(get, path = "/auth/google/callback", tag = "auth", security(()), params(CallbackQuery), responses((status = 303)))]
async fn google_callback(
    state: State<AppState>,
    client: ClientInfo,
    parts: Parts,
    q: Query<CallbackQuery>,
) -> Response {
    callback(state, client, parts, "google", q).await
}

/// Sign-in with a provider of `auth.oidc`.
#[utoipa::path(get, path = "/auth/oidc/{provider}/login", tag = "auth", security(()), params(("provider" = String, Path), LoginQuery),
    responses((status = 303)))]
async fn oidc_login(
    state: State<AppState>,
    client: ClientInfo,
    parts: Parts,
    Path(provider): Path<String>,
    q: Query<LoginQuery>,
) -> Response {
    login(state, client, parts, &provider, q).await
}

#[utoipa::path(get, path = "/auth/oidc/{provider}/callback", tag = "auth", security(()), params(("provider" = String, Path), CallbackQuery),
    responses((status = 303)))]
async fn oidc_callback(
    state: State<AppState>,
    client: ClientInfo,
    parts: Parts,
    Path(provider): Path<String>,
    q: Query<CallbackQuery>,
) -> Response {
    callback(state, client, parts, &provider, q).await
}

/// A path of this site only: never `//host`, a URL or a backslash trick.
pub fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .map(String::from)
        .unwrap_or_else(|| "/".into())
}

/// This server's address as the provider must send people back to it: `AGNES_PUBLIC_URL`
/// when set (behind a proxy), else the address the browser used.
pub(super) fn public_url(parts: &Parts) -> String {
    if let Ok(url) = std::env::var("AGNES_PUBLIC_URL") {
        if !url.trim().is_empty() {
            return url.trim().trim_end_matches('/').to_string();
        }
    }
    crate::routes::web::server_url(parts)
}

fn refused(code: &str) -> Response {
    Redirect::to(&format!("/login?error={code}")).into_response()
}

fn flow_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.auth.cookie_secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/auth; Max-Age={max_age}{secure}"
    ))
    .expect("a random token is a valid header value")
}

async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    parts: Parts,
    provider: &str,
    Query(q): Query<LoginQuery>,
) -> Response {
    if let Err(limited) = state.auth.rate_limit.check("sso_login", &client.ip, 30) {
        return limited.into_response();
    }
    let next = safe_next(q.next.as_deref());
    match state.auth.sso.begin(provider, &public_url(&parts), &next).await {
        Ok((url, flow)) => {
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().insert(header::SET_COOKIE, flow_cookie(&state, &flow, 600));
            response
        }
        Err(e) => {
            tracing::warn!("sign-in with {provider} could not start: {e}");
            refused(e.code())
        }
    }
}

async fn callback(
    State(state): State<AppState>,
    client: ClientInfo,
    parts: Parts,
    provider: &str,
    Query(q): Query<CallbackQuery>,
) -> Response {
    if let Err(limited) = state.auth.rate_limit.check("sso_callback", &client.ip, 30) {
        return limited.into_response();
    }
    let flow = crate::auth::authenticate::cookie(&parts.headers, FLOW_COOKIE);
    let audit = Audit::anonymous(&state, &client);
    let outcome = async {
        if let Some(error) = q.error.as_deref() {
            // The flow is spent all the same: the person starts again.
            state.auth.sso.abandon(flow.as_deref());
            return Err(SsoError::Provider(error.to_string()));
        }
        let (code, st) = (q.code.as_deref().unwrap_or_default(), q.state.as_deref().unwrap_or_default());
        let (who, next) = state.auth.sso.finish(provider, flow.as_deref(), st, code).await?;
        let p = state.auth.sso.provider(provider)?;
        state.auth.sso.admit(p, &who)?;
        let user = enter(&state, p, &who).await?;
        Ok((user, next))
    }
    .await;
    let mut response = match outcome {
        Ok((user, next)) => {
            audit.record("login_sso", Some(&user.email), Some(json!({"provider": provider})), "success").await;
            let mut r = Redirect::to(&safe_next(Some(&next))).into_response();
            let token = session::issue(&state.auth.secret, &user);
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &token, 86_400));
            r
        }
        Err(e) => {
            tracing::warn!("sign-in with {provider} refused: {e}");
            let reason = json!({"provider": provider, "reason": e.code(), "detail": e.to_string()});
            audit.record("login_failed", None, Some(reason), "error.401").await;
            refused(e.code())
        }
    };
    // The flow cookie is spent either way.
    response.headers_mut().append(header::SET_COOKIE, flow_cookie(&state, "", 0));
    response
}

/// The account of a vouched-for identity: found by its normalised e-mail, or created on
/// first sign-in; a deactivated one stays out. Its memberships from this provider become
/// what the provider sent (an absent or empty list keeps them as they were).
async fn enter(state: &AppState, p: &Provider, who: &Identity) -> Result<agnes_store::identity::User, SsoError> {
    let ids = state.store.identity();
    let stored = |e: agnes_store::StoreError| SsoError::Internal(e.to_string());
    let user = match ids.user_by_email(&who.email).await.map_err(stored)? {
        Some(u) => u,
        None => ids.create_user(&who.email, who.name.as_deref(), None).await.map_err(stored)?,
    };
    if !user.active {
        return Err(SsoError::Deactivated);
    }
    if let Some(sent) = who.groups.as_ref().filter(|g| !g.is_empty()) {
        let mut group_ids = Vec::new();
        // Everyone holds every active user without rows.
        let names = agnes_groups(&p.groups, sent).into_iter().filter(|n| n != agnes_store::identity::EVERYONE_GROUP);
        for name in names {
            group_ids.push(ids.synced_group(&name, &p.name).await.map_err(stored)?.id);
        }
        ids.replace_synced_memberships(&user.id, &p.membership_source(), &group_ids).await.map_err(stored)?;
    }
    Ok(user)
}
