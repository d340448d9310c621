//! `GET /api/me`: who the caller is, as the server sees it.

use crate::auth::access::{Caller, Credential};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<crate::state::AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller: user, admin flag, groups and how they signed in.
#[utoipa::path(get, path = "/api/me", tag = "users", responses((status = 200), (status = 401)))]
async fn me(caller: Caller) -> Json<Value> {
    let credential = match &caller.credential {
        Credential::Session { .. } => json!({"type": "session"}),
        Credential::Pat { id } => json!({"type": "pat", "token_id": id}),
        Credential::Dev => json!({"type": "dev"}),
    };
    Json(json!({
        "id": caller.user.id, "email": caller.user.email, "name": caller.user.name,
        "is_admin": caller.is_admin, "group_ids": caller.group_ids, "credential": credential,
    }))
}
