//! `agnes auth login` through the browser: the page `/cli-login` (signed in however the
//! person signs in, SSO included) asks `POST /auth/cli/codes` for a one-time code that
//! stands for a fresh 90-day personal access token, and sends the browser to the CLI's
//! loopback listener with it; the CLI trades the code for the token at
//! `POST /auth/cli/exchange`. The token itself never travels in a URL.

use crate::auth::authenticate::{ClientInfo, SessionCaller};
use crate::auth::pat;
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{CliCode, CliExchange, CliToken};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_code)).routes(routes!(exchange))
}

/// How long a code waits for the CLI.
const CODE_TTL: Duration = Duration::from_secs(120);

/// A code for a new token of the signed-in person (a browser session, not a token).
#[utoipa::path(post, path = "/auth/cli/codes", tag = "auth", responses((status = 201, body = CliCode), (status = 403)))]
async fn create_code(
    State(state): State<AppState>,
    SessionCaller(caller): SessionCaller,
    client: ClientInfo,
) -> Result<(StatusCode, Json<CliCode>), ApiError> {
    let name = format!("agnes CLI {}", chrono::Utc::now().format("%Y-%m-%d %H:%M"));
    let issued = pat::issue(
        &state.store,
        &state.auth.secret,
        &caller.user,
        &name,
        pat::DEFAULT_SCOPE,
        Some(chrono::Duration::days(90)),
    )
    .await
    .map_err(ApiError::internal)?;
    Audit::of(&state, &caller, &client)
        .record("token.create", Some(&issued.id), Some(json!({"name": name, "via": "cli-login"})), "success")
        .await;
    let code = {
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        hex::encode(bytes)
    };
    let mut codes = state.auth.cli_codes.lock();
    codes.retain(|_, (_, _, at)| at.elapsed() < CODE_TTL);
    codes.insert(code.clone(), (issued.token, caller.user.email.clone(), Instant::now()));
    Ok((StatusCode::CREATED, Json(CliCode { code, expires_in_seconds: CODE_TTL.as_secs() })))
}

/// The token a code stands for, once, within two minutes.
#[utoipa::path(post, path = "/auth/cli/exchange", tag = "auth", security(()), request_body = CliExchange,
    responses((status = 200, body = CliToken), (status = 400), (status = 429)))]
async fn exchange(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<CliExchange>,
) -> Result<Json<CliToken>, Response> {
    state.auth.rate_limit.check("cli_exchange", &client.ip, 10).map_err(IntoResponse::into_response)?;
    let found = state.auth.cli_codes.lock().remove(body.code.trim());
    match found {
        Some((token, email, at)) if at.elapsed() < CODE_TTL => Ok(Json(CliToken { token, email })),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "Invalid or expired code: run `agnes auth login` again")
            .into_response()),
    }
}
