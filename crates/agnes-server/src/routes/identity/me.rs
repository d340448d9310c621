//! `GET /api/me`: who the caller is, as the server sees it.

use crate::auth::access::{Caller, Credential};
use agnes_core::api::{CredentialInfo, Me};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<crate::state::AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// The caller: user, admin flag, groups and how they signed in.
#[utoipa::path(get, path = "/api/me", tag = "users", responses((status = 200, body = Me), (status = 401)))]
async fn me(caller: Caller) -> Json<Me> {
    let (kind, token_id) = match &caller.credential {
        Credential::Session { .. } => ("session", None),
        Credential::Pat { id } => ("pat", Some(id.clone())),
        Credential::Dev => ("dev", None),
    };
    Json(Me {
        id: caller.user.id,
        email: caller.user.email,
        name: caller.user.name,
        is_admin: caller.is_admin,
        group_ids: caller.group_ids,
        credential: CredentialInfo { kind: kind.to_string(), token_id },
    })
}
