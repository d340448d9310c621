//! The texts agnes gives agents, overridable by an admin: `workspace`, the CLAUDE.md that
//! `agnes init` writes (served by `GET /api/welcome`), and `agent_setup`, the prompt the
//! setup page offers (served by `GET /api/agent-prompt`). Without an override, the
//! built-in text; `{server_url}` is filled in when served.

use crate::auth::access::Caller;
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{PromptTemplate, PromptUpdate, Welcome};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_prompt, put_prompt, reset_prompt))
        .routes(routes!(welcome))
        .routes(routes!(agent_prompt))
}

/// A known template's built-in text.
fn builtin(name: &str) -> Result<&'static str, ApiError> {
    match name {
        "workspace" => Ok(include_str!("welcome.md")),
        "agent_setup" => Ok(include_str!("agent_setup.md")),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("No template {name:?}: use workspace or agent_setup"))),
    }
}

async fn view(state: &AppState, name: &str) -> Result<PromptTemplate, ApiError> {
    let default_body = builtin(name)?.to_string();
    let set = state.store.prompt_templates().get(name).await?;
    Ok(PromptTemplate {
        name: name.into(),
        body: set.as_ref().map_or_else(|| default_body.clone(), |t| t.body.clone()),
        default_body,
        overridden: set.is_some(),
        updated_at: set.as_ref().map(|t| t.updated_at.clone()),
        updated_by: set.and_then(|t| t.updated_by),
    })
}

#[utoipa::path(get, path = "/api/admin/prompts/{name}", tag = "knowledge", params(("name" = String, Path)),
    responses((status = 200, body = PromptTemplate), (status = 403), (status = 404)))]
async fn get_prompt(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<Json<PromptTemplate>, ApiError> {
    Ok(Json(view(&state, &name).await?))
}

/// Longest template kept: a CLAUDE.md is read by an agent on every start.
const MAX_BODY: usize = 64 * 1024;

#[utoipa::path(put, path = "/api/admin/prompts/{name}", tag = "knowledge", params(("name" = String, Path)), request_body = PromptUpdate,
    responses((status = 200, body = PromptTemplate), (status = 400), (status = 403), (status = 404)))]
async fn put_prompt(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(name): Path<String>,
    ApiJson(update): ApiJson<PromptUpdate>,
) -> Result<Json<PromptTemplate>, ApiError> {
    builtin(&name)?;
    if update.body.trim().is_empty() || update.body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("A template is 1 to {MAX_BODY} bytes of text; to go back to the built-in one, DELETE it"),
        ));
    }
    let before = view(&state, &name).await?;
    state.store.prompt_templates().set(&name, &update.body, Some(&caller.user.email)).await?;
    Audit::of(&state, &caller, &client)
        .record_change("prompt.update", Some(&name), None, Some(serde_json::json!({"body": before.body})), "success")
        .await;
    Ok(Json(view(&state, &name).await?))
}

#[utoipa::path(delete, path = "/api/admin/prompts/{name}", tag = "knowledge", params(("name" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
async fn reset_prompt(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    builtin(&name)?;
    state.store.prompt_templates().clear(&name).await?;
    Audit::of(&state, &caller, &client).record("prompt.reset", Some(&name), None, "success").await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ServerUrl {
    server_url: Option<String>,
}

/// A template as served: `{server_url}` filled in with the address the client reached.
async fn served(state: &AppState, name: &str, q: ServerUrl) -> Result<Json<Welcome>, ApiError> {
    let server =
        q.server_url.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| format!("http://{}", state.config.bind));
    let body = view(state, name).await?.body;
    Ok(Json(Welcome { content: body.replace("{server_url}", server.trim()) }))
}

/// The CLAUDE.md an analyst workspace starts with: how an AI agent should work here.
#[utoipa::path(get, path = "/api/welcome", tag = "catalog", params(ServerUrl), responses((status = 200, body = Welcome)))]
async fn welcome(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<ServerUrl>,
) -> Result<Json<Welcome>, ApiError> {
    served(&state, "workspace", q).await
}

/// The prompt an analyst pastes into their agent to have it set agnes up.
#[utoipa::path(get, path = "/api/agent-prompt", tag = "knowledge", params(ServerUrl), responses((status = 200, body = Welcome)))]
async fn agent_prompt(
    State(state): State<AppState>,
    _caller: Caller,
    Query(q): Query<ServerUrl>,
) -> Result<Json<Welcome>, ApiError> {
    served(&state, "agent_setup", q).await
}
