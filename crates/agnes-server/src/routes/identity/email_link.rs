//! Sign-in by e-mailed link (spec §9): `POST /auth/email/send-link`, and
//! `POST|GET /auth/email/verify`. Enabled by `SMTP_HOST` (or dev mode, which hands the
//! link back instead of mailing it).
//!
//! A link holds 32 random bytes, is valid for an hour and works once (a compare-and-swap
//! on the stored hash). Every address gets the same answer, at the same speed (the mail
//! leaves off the request path), so the endpoint says nothing about who has an account.

use super::auth::{role, session_cookie, session_token};
use crate::auth::authenticate::ClientInfo;
use crate::auth::pat;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{EmailLinkRequest, EmailLinkSent, EmailLinkVerify, SessionToken};
use agnes_store::identity::User;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_link)).routes(routes!(verify, verify_link))
}

/// How long a link works: an hour (`AGNES_EMAIL_LINK_TTL_SECONDS` shortens it).
fn valid_for() -> chrono::Duration {
    let seconds = std::env::var("AGNES_EMAIL_LINK_TTL_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3600);
    chrono::Duration::seconds(seconds)
}

/// The stored hash of a link's token: marked as a link's, so neither an admin's password
/// reset token nor a link token can stand in for the other.
fn link_hash(token: &str) -> String {
    pat::token_hash(&format!("email-link:{token}"))
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.auth.mailer.is_none() && !state.config.dev {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "Sign-in by e-mail is not enabled on this server"));
    }
    Ok(())
}

/// Mail a sign-in link to `email` if it belongs to an active account.
#[utoipa::path(post, path = "/auth/email/send-link", tag = "auth", security(()), request_body = EmailLinkRequest,
    responses((status = 200, body = EmailLinkSent), (status = 400), (status = 404), (status = 429)))]
async fn send_link(
    State(state): State<AppState>,
    client: ClientInfo,
    parts: Parts,
    ApiJson(body): ApiJson<EmailLinkRequest>,
) -> Result<Json<EmailLinkSent>, Response> {
    state.auth.rate_limit.check("email_send_link", &client.ip, 5).map_err(IntoResponse::into_response)?;
    enabled(&state).map_err(IntoResponse::into_response)?;
    let email = body.email.trim().to_lowercase();
    if !super::users::plausible_email(&email) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "That is not an e-mail address").into_response());
    }
    let mut answer = EmailLinkSent {
        status: "sent".into(),
        message: "If this address has an account here, a sign-in link is on its way. It works once, for an hour."
            .into(),
        dev_link: None,
    };
    let user = state.store.identity().user_by_email(&email).await.map_err(|e| ApiError::from(e).into_response())?;
    let Some(user) = user.filter(|u| u.active) else {
        Audit::anonymous(&state, &client).record("email_link.unknown", Some(&email), None, "ignored").await;
        return Ok(Json(answer));
    };
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    state
        .store
        .identity()
        .set_reset_token(&user.id, &link_hash(&token))
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    let link = format!(
        "{}/auth/email/verify?email={}&token={token}",
        super::sso::public_url(&parts),
        percent_encoding::utf8_percent_encode(&user.email, percent_encoding::NON_ALPHANUMERIC)
    );
    Audit::anonymous(&state, &client).record("email_link.sent", Some(&user.id), None, "success").await;
    match &state.auth.mailer {
        // Off the request path: a slow relay neither delays nor betrays the answer.
        Some(_) => {
            let (state, to) = (state.clone(), user.email.clone());
            tokio::spawn(async move {
                let text = format!(
                    "Sign in to agnes with this link. It works once, for an hour:\n\n{link}\n\n\
                     If you did not ask for it, ignore this message.\n"
                );
                if let Some(mailer) = &state.auth.mailer {
                    if let Err(e) = mailer.send(&to, "Your agnes sign-in link", text).await {
                        tracing::error!("the sign-in link to {to} was not sent: {e}");
                    }
                }
            });
        }
        None => answer.dev_link = Some(link),
    }
    Ok(Json(answer))
}

/// The user a link signs in: its token must be this address's, unused and under an hour old.
async fn redeem(state: &AppState, email: &str, token: &str) -> Result<User, ApiError> {
    let invalid = || ApiError::new(StatusCode::BAD_REQUEST, "Invalid or expired sign-in link");
    let ids = state.store.identity();
    let user = ids.user_by_email(email.trim()).await?.ok_or_else(invalid)?;
    if !ids.consume_reset_token(&user.id, &link_hash(token), valid_for()).await? {
        return Err(invalid());
    }
    if !user.active {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Account deactivated"));
    }
    Ok(user)
}

/// Exchange a link's e-mail and token for a session.
#[utoipa::path(post, path = "/auth/email/verify", tag = "auth", security(()), request_body = EmailLinkVerify,
    responses((status = 200, body = SessionToken), (status = 400), (status = 401), (status = 429)))]
async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<EmailLinkVerify>,
) -> Result<Json<SessionToken>, Response> {
    state.auth.rate_limit.check("email_verify", &client.ip, 10).map_err(IntoResponse::into_response)?;
    let user = redeem(&state, &body.email, &body.token).await.map_err(IntoResponse::into_response)?;
    Audit::anonymous(&state, &client).record("login_email_link", Some(&user.email), None, "success").await;
    let role = role(&state, &user).await.map_err(IntoResponse::into_response)?;
    Ok(Json(session_token(&state, &user, role, true)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
struct LinkQuery {
    email: String,
    token: String,
}

/// The link itself, opened in a browser: the session cookie, and on to the home page.
#[utoipa::path(get, path = "/auth/email/verify", tag = "auth", security(()), params(LinkQuery), responses((status = 303)))]
async fn verify_link(State(state): State<AppState>, client: ClientInfo, Query(q): Query<LinkQuery>) -> Response {
    if let Err(limited) = state.auth.rate_limit.check("email_verify", &client.ip, 10) {
        return limited.into_response();
    }
    match redeem(&state, &q.email, &q.token).await {
        Ok(user) => {
            Audit::anonymous(&state, &client).record("login_email_link", Some(&user.email), None, "success").await;
            let token = crate::auth::session::issue(&state.auth.secret, &user);
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &token, 86_400));
            r
        }
        Err(e) => {
            let code = if e.status == StatusCode::UNAUTHORIZED { "account_deactivated" } else { "invalid_link" };
            Redirect::to(&format!("/login?error={code}")).into_response()
        }
    }
}
