//! `/api/users`: user administration (spec §3.9), admin only.

use crate::auth::authenticate::{Admin, ClientInfo};
use crate::auth::{password, pat};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{NewPassword, NewUser, ResetToken, StatusReply, UserPatch, UserView};
use agnes_store::identity::User;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(activate))
        .routes(routes!(deactivate))
        .routes(routes!(reset_password))
        .routes(routes!(set_password))
}

/// Enough to catch typos; real validation is the mail that arrives.
pub fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && email.len() <= 254
}

fn view(u: &User) -> UserView {
    UserView {
        id: u.id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        active: u.active,
        created_at: u.created_at.clone(),
        groups: None,
    }
}

/// A view as the audit log keeps it.
fn audited(u: &User) -> Value {
    serde_json::to_value(view(u)).unwrap_or_default()
}

async fn user_or_404(state: &AppState, id: &str) -> Result<User, ApiError> {
    state.store.identity().user(id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "User not found"))
}

/// Refuse a change that would leave no active admin.
pub async fn guard_last_admin(state: &AppState, user_id: &str) -> Result<(), ApiError> {
    let admins = state.store.identity().active_admin_ids().await?;
    if admins.len() == 1 && admins[0] == user_id {
        return Err(ApiError::new(StatusCode::CONFLICT, "Cannot remove or deactivate the last active admin"));
    }
    Ok(())
}

/// Every user.
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Vec<UserView>), (status = 403)))]
async fn list_users(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(state.store.identity().list_users().await?.iter().map(view).collect()))
}

/// Create a user (optionally with a password).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser, responses((status = 201, body = UserView), (status = 400), (status = 409)))]
async fn create_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let email = body.email.trim();
    if !plausible_email(email) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "A valid email is required"));
    }
    if state.store.identity().user_by_email(email).await?.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("user '{email}' already exists")));
    }
    let hash = match body.password.as_deref() {
        Some(p) => Some(password::hash(p).await.map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?),
        None => None,
    };
    let user = state.store.identity().create_user(email, body.name.as_deref(), hash.as_deref()).await?;
    Audit::of(&state, &caller, &client)
        .record("user.create", Some(&user.id), Some(json!({"email": user.email})), "success")
        .await;
    Ok((StatusCode::CREATED, Json(view(&user))))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 200, body = UserView), (status = 404)))]
async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = user_or_404(&state, &id).await?;
    let groups = state.store.identity().memberships(&id).await?;
    Ok(Json(UserView { groups: Some(groups.into_iter().map(Into::into).collect()), ..view(&user) }))
}

/// Change name or email; omitted fields are kept, `"name": null` clears the name.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UserPatch, responses((status = 200, body = UserView), (status = 400), (status = 404), (status = 409)))]
async fn update_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let before = user_or_404(&state, &id).await?;
    if let Some(email) = &body.email {
        if !plausible_email(email.trim()) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "A valid email is required"));
        }
    }
    let name = body.name.as_ref().map(|n| n.as_deref());
    let user = state.store.identity().update_user(&id, name, body.email.as_deref().map(str::trim)).await?;
    Audit::of(&state, &caller, &client)
        .record_change("user.update", Some(&id), Some(audited(&user)), Some(audited(&before)), "success")
        .await;
    Ok(Json(view(&user)))
}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 204), (status = 404), (status = 409)))]
async fn delete_user(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let before = user_or_404(&state, &id).await?;
    guard_last_admin(&state, &id).await?;
    state.store.identity().delete_user(&id).await?;
    Audit::of(&state, &caller, &client)
        .record_change("user.delete", Some(&id), None, Some(audited(&before)), "success")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/users/{id}/activate", tag = "users", params(("id" = String, Path)), responses((status = 200, body = UserView), (status = 404)))]
async fn activate(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    user_or_404(&state, &id).await?;
    state.store.identity().set_active(&id, true, None).await?;
    Audit::of(&state, &caller, &client).record("user.activate", Some(&id), None, "success").await;
    Ok(Json(view(&user_or_404(&state, &id).await?)))
}

/// Deactivate: every credential of the user fails from the next request on.
#[utoipa::path(post, path = "/api/users/{id}/deactivate", tag = "users", params(("id" = String, Path)), responses((status = 200, body = UserView), (status = 404), (status = 409)))]
async fn deactivate(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    user_or_404(&state, &id).await?;
    guard_last_admin(&state, &id).await?;
    state.store.identity().set_active(&id, false, Some(&caller.user.email)).await?;
    Audit::of(&state, &caller, &client).record("user.deactivate", Some(&id), None, "success").await;
    Ok(Json(view(&user_or_404(&state, &id).await?)))
}

/// Remove the password and issue a one-time reset token (24 h) for `POST /auth/password/reset`.
#[utoipa::path(post, path = "/api/users/{id}/reset-password", tag = "users", params(("id" = String, Path)), responses((status = 200, body = ResetToken), (status = 404)))]
async fn reset_password(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Json<ResetToken>, ApiError> {
    user_or_404(&state, &id).await?;
    let token = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let ids = state.store.identity();
    ids.set_password_hash(&id, None).await?;
    ids.set_reset_token(&id, &pat::token_hash(&token)).await?;
    Audit::of(&state, &caller, &client).record("user.reset_password", Some(&id), None, "success").await;
    Ok(Json(ResetToken { reset_token: token, expires_in_seconds: 86400 }))
}

#[utoipa::path(post, path = "/api/users/{id}/set-password", tag = "users", params(("id" = String, Path)), request_body = NewPassword, responses((status = 200, body = StatusReply), (status = 400), (status = 404)))]
async fn set_password(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Json<StatusReply>, ApiError> {
    user_or_404(&state, &id).await?;
    let hash = password::hash(&body.password).await.map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, m))?;
    state.store.identity().set_password_hash(&id, Some(&hash)).await?;
    Audit::of(&state, &caller, &client).record("user.set_password", Some(&id), None, "success").await;
    Ok(Json(StatusReply::new("ok")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(super::plausible_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a@b.", "a b@c.de"] {
            assert!(!super::plausible_email(bad), "{bad}");
        }
    }
}
