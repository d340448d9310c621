//! `/auth/*`: password sign-in, first-admin bootstrap, logout and personal access tokens
//! (spec §3.2).

use crate::auth::access::{Caller, Credential};
use crate::auth::authenticate::{Admin, ClientInfo, SessionCaller, SESSION_COOKIE};
use crate::auth::{password, pat, session};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{
    Credentials, IssuedToken, NewToken, NewUser, PasswordReset, SessionToken, StatusReply, TokenView,
};
use agnes_store::identity::{TokenInfo, User, ADMIN_GROUP};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(password_login))
        .routes(routes!(password_reset))
        .routes(routes!(bootstrap))
        .routes(routes!(logout))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(get_token, revoke_token))
        .routes(routes!(admin_list_tokens))
        .routes(routes!(admin_revoke_token))
}

/// The role the original reported: `admin` for members of `Admin`, else `user`.
pub(super) async fn role(state: &AppState, user: &User) -> Result<&'static str, ApiError> {
    let admin = state.store.identity().memberships(&user.id).await?.iter().any(|m| m.group_name == ADMIN_GROUP);
    Ok(if admin { "admin" } else { "user" })
}

pub(crate) fn session_cookie(state: &AppState, token: &str, max_age: i64) -> HeaderValue {
    let secure = if state.auth.cookie_secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("a JWT is a valid header value")
}

/// Exchange email and password for a 24-hour session token.
#[utoipa::path(post, path = "/auth/token", tag = "auth", security(()), request_body = Credentials,
    responses((status = 200, body = SessionToken), (status = 401), (status = 429)))]
async fn token(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Json<SessionToken>, Response> {
    state.auth.rate_limit.check("token", &client.ip, 10).map_err(IntoResponse::into_response)?;
    let audit = Audit::anonymous(&state, &client);
    let fail = |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
    let user =
        state.store.identity().user_by_email(body.email.trim()).await.map_err(|e| ApiError::from(e).into_response())?;
    let Some(user) = user else {
        audit.record("login_failed", Some(&body.email), None, "error.401").await;
        return Err(fail("User not found"));
    };
    if !user.active {
        return Err(fail("Account deactivated"));
    }
    let Some(hash) = user.password_hash.clone() else {
        return Err(fail("This account uses external authentication; sign in with your identity provider"));
    };
    if body.password.is_empty() {
        return Err(fail("Password required"));
    }
    if !password::verify(&body.password, &hash).await {
        audit.record("login_failed", Some(&user.email), None, "error.401").await;
        return Err(fail("Invalid password"));
    }
    let role = role(&state, &user).await.map_err(IntoResponse::into_response)?;
    Ok(Json(session_token(&state, &user, role, true)))
}

/// A new session for `user`, as the sign-in endpoints answer it.
pub(super) fn session_token(state: &AppState, user: &User, role: &str, with_user_id: bool) -> SessionToken {
    SessionToken {
        access_token: session::issue(&state.auth.secret, user),
        token_type: "bearer".into(),
        user_id: with_user_id.then(|| user.id.clone()),
        email: user.email.clone(),
        role: role.into(),
    }
}

/// Password sign-in for people: also sets the `access_token` cookie.
#[utoipa::path(post, path = "/auth/password/login", tag = "auth", security(()), request_body = Credentials,
    responses((status = 200, body = SessionToken), (status = 401), (status = 429)))]
async fn password_login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, Response> {
    state.auth.rate_limit.check("password_login", &client.ip, 10).map_err(IntoResponse::into_response)?;
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "Invalid email or password").into_response();
    let user =
        state.store.identity().user_by_email(body.email.trim()).await.map_err(|e| ApiError::from(e).into_response())?;
    let Some(user) = user else { return Err(invalid()) };
    let Some(hash) = user.password_hash.clone() else { return Err(invalid()) };
    if body.password.is_empty() || !password::verify(&body.password, &hash).await {
        Audit::anonymous(&state, &client).record("login_failed", Some(&user.email), None, "error.401").await;
        return Err(invalid());
    }
    if !user.active {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Account deactivated").into_response());
    }
    let role = role(&state, &user).await.map_err(IntoResponse::into_response)?;
    let session = session_token(&state, &user, role, false);
    let cookie = session_cookie(&state, &session.access_token, session::SESSION_HOURS * 3600);
    let mut response = Json(session).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Set a new password with the one-time token an admin's reset produced (valid 24 h).
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", security(()), request_body = PasswordReset,
    responses((status = 200, body = StatusReply), (status = 400), (status = 429)))]
async fn password_reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<PasswordReset>,
) -> Result<Json<StatusReply>, Response> {
    state.auth.rate_limit.check("password_reset", &client.ip, 10).map_err(IntoResponse::into_response)?;
    let invalid = || ApiError::new(StatusCode::BAD_REQUEST, "Invalid or expired reset token").into_response();
    let bad_password = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m).into_response();
    // Every cheap check comes before the Argon2 work, so a guessed token costs nothing.
    password::check_length(&body.password).map_err(bad_password)?;
    let ids = state.store.identity();
    let user = ids
        .user_by_email(body.email.trim())
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(invalid)?;
    let consumed = ids
        .consume_reset_token(&user.id, &pat::token_hash(&body.token), chrono::Duration::hours(24))
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    if !consumed {
        return Err(invalid());
    }
    let hash = password::hash(&body.password).await.map_err(bad_password)?;
    ids.set_password_hash(&user.id, Some(&hash)).await.map_err(|e| ApiError::from(e).into_response())?;
    Audit::anonymous(&state, &client).record("user.password_reset", Some(&user.id), None, "success").await;
    Ok(Json(StatusReply::new("ok")))
}

/// Create the first admin: allowed only while the instance has never had one, and only
/// for a new account (an existing user is never modified).
#[utoipa::path(post, path = "/auth/bootstrap", tag = "auth", security(()), request_body = NewUser,
    responses((status = 200, body = SessionToken, description = "role admin"), (status = 400), (status = 403), (status = 409), (status = 429)))]
async fn bootstrap(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Json<SessionToken>, Response> {
    state.auth.rate_limit.check("bootstrap", &client.ip, 3).map_err(IntoResponse::into_response)?;
    let err = |e: agnes_store::StoreError| ApiError::from(e).into_response();
    // One bootstrap at a time, so two racing requests cannot both pass the check.
    let _once = state.auth.bootstrap_lock.lock().await;
    let ids = state.store.identity();
    if ids.admin_ever().await.map_err(err)? {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Bootstrap is disabled: this instance already has an admin")
            .into_response());
    }
    let email = body.email.trim();
    if !super::users::plausible_email(email) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "A valid email is required").into_response());
    }
    if ids.user_by_email(email).await.map_err(err)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "A user with this email already exists; bootstrap creates a new account only \
             (use `agnes admin break-glass grant-admin` on the server host)",
        )
        .into_response());
    }
    let hash = match body.password.as_deref() {
        Some(p) => {
            Some(password::hash(p).await.map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m).into_response())?)
        }
        None => None,
    };
    let user = ids.create_user(email, body.name.as_deref(), hash.as_deref()).await.map_err(err)?;
    let admin = ids
        .group_by_name(ADMIN_GROUP)
        .await
        .map_err(err)?
        .ok_or_else(|| ApiError::internal("Admin group missing").into_response())?;
    ids.add_member(&user.id, &admin.id, "system_seed", Some("bootstrap")).await.map_err(err)?;
    Audit::anonymous(&state, &client)
        .record("bootstrap_admin", Some(&user.id), Some(json!({"email": user.email})), "success")
        .await;
    Ok(Json(session_token(&state, &user, "admin", true)))
}

/// End the caller's sessions (every session JWT of that user stops working) and clear the
/// session cookie. Personal access tokens are revoked one by one, not here.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()), responses((status = 200, body = StatusReply)))]
async fn logout(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    client: ClientInfo,
) -> Result<Response, ApiError> {
    if let Some(Extension(caller)) = caller.filter(|c| matches!(c.credential, Credential::Session { .. })) {
        state.store.identity().end_sessions(&caller.user.id).await?;
        Audit::of(&state, &caller, &client).record("logout", Some(&caller.user.id), None, "success").await;
    }
    let mut r = Json(StatusReply::new("logged_out")).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(r)
}

pub const DEFAULT_TOKEN_DAYS: i64 = 90;
pub const MAX_TOKEN_DAYS: i64 = 3650;

/// The lifetime a request asks for, or why it is refused.
fn token_lifetime(body: &NewToken) -> Result<Option<chrono::Duration>, String> {
    let lifetime = match (body.ttl_seconds, body.expires_in_days) {
        (Some(s), _) if !(1..=MAX_TOKEN_DAYS * 86400).contains(&s) => {
            return Err(format!("ttl_seconds must be between 1 and {}", MAX_TOKEN_DAYS * 86400));
        }
        (Some(s), _) => Some(chrono::Duration::seconds(s)),
        (None, None) => Some(chrono::Duration::days(DEFAULT_TOKEN_DAYS)),
        (None, Some(None)) => None,
        (None, Some(Some(d))) if !(1..=MAX_TOKEN_DAYS).contains(&d) => {
            return Err(format!(
                "expires_in_days must be between 1 and {MAX_TOKEN_DAYS}, or null for a token that never expires"
            ));
        }
        (None, Some(Some(d))) => Some(chrono::Duration::days(d)),
    };
    // A bootstrap token only sets a workspace up: it lives an hour at most.
    if body.scope.as_deref() == Some("bootstrap-analyst") {
        let hour = chrono::Duration::hours(1);
        return Ok(Some(lifetime.map_or(hour, |l| l.min(hour))));
    }
    Ok(lifetime)
}

/// Create a personal access token (sessions only: a token cannot mint tokens).
#[utoipa::path(post, path = "/auth/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = IssuedToken, description = "the token is shown once"), (status = 400), (status = 403)))]
async fn create_token(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Token name must not be blank"));
    }
    let lifetime = token_lifetime(&body).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    let scope = body.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(pat::DEFAULT_SCOPE);
    if scope.len() > 64 || !scope.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "scope must be 1-64 of A-Z a-z 0-9 - _"));
    }
    let issued = pat::issue(&state.store, &state.auth.secret, &caller.user, name, scope, lifetime)
        .await
        .map_err(ApiError::internal)?;
    Audit::of(&state, &caller, &client)
        .record("token.create", Some(&issued.id), Some(json!({"name": name})), "success")
        .await;
    Ok((StatusCode::CREATED, Json(issued)))
}

fn token_view(t: &TokenInfo, admin: bool) -> TokenView {
    TokenView {
        id: t.id.clone(),
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        created_at: t.created_at.clone(),
        expires_at: t.expires_at.clone(),
        last_used_at: t.last_used_at.clone(),
        revoked_at: t.revoked_at.clone(),
        user_id: admin.then(|| t.user_id.clone()),
        user_email: admin.then(|| t.user_email.clone()),
        last_used_ip: if admin { t.last_used_ip.clone() } else { None },
    }
}

/// The caller's tokens.
#[utoipa::path(get, path = "/auth/tokens", tag = "tokens", responses((status = 200, body = Vec<TokenView>)))]
async fn list_tokens(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.store.identity().tokens_of_user(&caller.user.id).await?;
    Ok(Json(tokens.iter().map(|t| token_view(t, false)).collect()))
}

async fn own_token(state: &AppState, caller: &Caller, id: &str) -> Result<TokenInfo, ApiError> {
    match state.store.identity().token(id).await? {
        Some(t) if t.user_id == caller.user.id => Ok(t),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Token not found")),
    }
}

/// One of the caller's tokens.
#[utoipa::path(get, path = "/auth/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 200, body = TokenView), (status = 404)))]
async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    Ok(Json(token_view(&own_token(&state, &caller, &id).await?, false)))
}

/// Revoke one of the caller's tokens; it fails on its next use.
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    own_token(&state, &caller, &id).await?;
    state.store.identity().revoke_token(&id).await?;
    Audit::of(&state, &caller, &client).record("token.revoke", Some(&id), None, "success").await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Every user's tokens (admin).
#[utoipa::path(get, path = "/auth/admin/tokens", tag = "tokens", params(Page), responses((status = 200, body = Vec<TokenView>), (status = 403)))]
async fn admin_list_tokens(
    State(state): State<AppState>,
    _admin: Admin,
    Query(page): Query<Page>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let offset = page.offset.unwrap_or(0).max(0);
    let tokens = state.store.identity().all_tokens(limit, offset).await?;
    Ok(Json(tokens.iter().map(|t| token_view(t, true)).collect()))
}

/// Revoke anyone's token (admin).
#[utoipa::path(delete, path = "/auth/admin/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn admin_revoke_token(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.identity().token(&id).await?.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Token not found"));
    }
    state.store.identity().revoke_token(&id).await?;
    Audit::of(&state, &caller, &client).record("token.admin_revoke", Some(&id), None, "success").await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> NewToken {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn token_lifetimes() {
        assert_eq!(token_lifetime(&body(r#"{"name":"a"}"#)).unwrap(), Some(chrono::Duration::days(90)));
        assert_eq!(token_lifetime(&body(r#"{"name":"a","expires_in_days":null}"#)).unwrap(), None);
        assert_eq!(
            token_lifetime(&body(r#"{"name":"a","expires_in_days":3650}"#)).unwrap(),
            Some(chrono::Duration::days(3650))
        );
        assert!(token_lifetime(&body(r#"{"name":"a","expires_in_days":3651}"#)).is_err());
        assert!(token_lifetime(&body(r#"{"name":"a","expires_in_days":0}"#)).is_err());
        assert_eq!(
            token_lifetime(&body(r#"{"name":"a","ttl_seconds":60,"expires_in_days":5}"#)).unwrap(),
            Some(chrono::Duration::seconds(60))
        );
        assert_eq!(
            token_lifetime(&body(r#"{"name":"a","scope":"bootstrap-analyst","expires_in_days":null}"#)).unwrap(),
            Some(chrono::Duration::hours(1))
        );
    }
}
