//! Groups, members, grants and effective access (spec §3.9).

use super::users::guard_last_admin;
use crate::auth::access::{effective_access, is_resource_type, Caller, Credential, EffectiveAccess, RESOURCE_TYPES};
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{
    AccessOverview, Grant, GroupPatch, GroupRef, GroupView, Member, MemberRef, Membership, MembershipAdded, NewGrant,
    NewGroup, ResourceRef, ResourceTypeInfo, UserAccess,
};
use agnes_store::identity::{Group, GroupSummary, ADMIN_GROUP, EVERYONE_GROUP};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(resource_types))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(list_grants, create_grant))
        .routes(routes!(delete_grant))
        .routes(routes!(user_memberships, add_user_membership))
        .routes(routes!(remove_user_membership))
        .routes(routes!(user_effective_access))
        .routes(routes!(my_effective_access))
        .routes(routes!(access_overview))
}

fn group_view(g: GroupSummary) -> GroupView {
    GroupView {
        origin: match (&g.synced_from, g.is_system) {
            (Some(provider), _) => provider.clone(),
            (None, true) => "system".into(),
            (None, false) => "custom".into(),
        },
        is_google_managed: g.synced_from.as_deref() == Some("google"),
        id: g.id,
        name: g.name,
        description: g.description,
        is_system: g.is_system,
        created_at: g.created_at,
        created_by: g.created_by,
        member_count: g.member_count,
        grant_count: g.grant_count,
        mapped_email: None,
        members: None,
        grants: None,
    }
}

fn audited(g: &GroupView) -> Value {
    serde_json::to_value(g).unwrap_or_default()
}

fn added(group_id: String, user_id: String) -> (StatusCode, Json<MembershipAdded>) {
    (StatusCode::CREATED, Json(MembershipAdded { group_id, user_id, source: "admin".into() }))
}

async fn group_or_404(state: &AppState, id_or_name: &str) -> Result<Group, ApiError> {
    state
        .store
        .identity()
        .resolve_group(id_or_name)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Group not found"))
}

async fn summary(state: &AppState, id: &str) -> Result<GroupView, ApiError> {
    let g = state
        .store
        .identity()
        .group_summary(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Group not found"))?;
    Ok(group_view(g))
}

/// The kinds of resource a grant can name.
#[utoipa::path(get, path = "/api/admin/resource-types", tag = "groups", responses((status = 200, body = Vec<ResourceTypeInfo>)))]
async fn resource_types(_admin: Admin) -> Json<Vec<ResourceTypeInfo>> {
    Json(RESOURCE_TYPES.iter().map(Into::into).collect())
}

#[utoipa::path(get, path = "/api/admin/groups", tag = "groups", responses((status = 200, body = Vec<GroupView>)))]
async fn list_groups(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<GroupView>>, ApiError> {
    Ok(Json(state.store.identity().list_groups().await?.into_iter().map(group_view).collect()))
}

#[utoipa::path(post, path = "/api/admin/groups", tag = "groups", request_body = NewGroup, responses((status = 201, body = GroupView), (status = 400), (status = 409)))]
async fn create_group(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Group name must not be blank"));
    }
    let g = state.store.identity().create_group(name, body.description.as_deref(), &caller.user.email).await?;
    Audit::of(&state, &caller, &client)
        .record("user_group.create", Some(&g.id), Some(json!({"name": name})), "success")
        .await;
    Ok((StatusCode::CREATED, Json(summary(&state, &g.id).await?)))
}

#[utoipa::path(get, path = "/api/admin/groups/{id}", tag = "groups", params(("id" = String, Path)), responses((status = 200, body = GroupView), (status = 404)))]
async fn get_group(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    let g = group_or_404(&state, &id).await?;
    Ok(Json(summary(&state, &g.id).await?))
}

/// Rename or re-describe a group; system groups keep their names.
#[utoipa::path(patch, path = "/api/admin/groups/{id}", tag = "groups", params(("id" = String, Path)), request_body = GroupPatch, responses((status = 200, body = GroupView), (status = 400), (status = 404), (status = 409)))]
async fn update_group(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupPatch>,
) -> Result<Json<GroupView>, ApiError> {
    let g = group_or_404(&state, &id).await?;
    let name = body.name.as_deref().map(str::trim);
    if name.is_some_and(str::is_empty) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "Group name must not be blank"));
    }
    if g.is_system && name.is_some_and(|n| n != g.name) {
        return Err(ApiError::new(StatusCode::CONFLICT, "System groups cannot be renamed"));
    }
    let before = summary(&state, &g.id).await?;
    state.store.identity().update_group(&g.id, name, body.description.as_deref().map(Some)).await?;
    let after = summary(&state, &g.id).await?;
    Audit::of(&state, &caller, &client)
        .record_change("user_group.update", Some(&g.id), Some(audited(&after)), Some(audited(&before)), "success")
        .await;
    Ok(Json(after))
}

/// Delete a group with its members and grants.
#[utoipa::path(delete, path = "/api/admin/groups/{id}", tag = "groups", params(("id" = String, Path)), responses((status = 204), (status = 404), (status = 409)))]
async fn delete_group(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let g = group_or_404(&state, &id).await?;
    if g.is_system {
        return Err(ApiError::new(StatusCode::CONFLICT, "System groups cannot be deleted"));
    }
    let before = summary(&state, &g.id).await?;
    state.store.identity().delete_group(&g.id).await?;
    Audit::of(&state, &caller, &client)
        .record_change("user_group.delete", Some(&g.id), None, Some(audited(&before)), "success")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/admin/groups/{id}/members", tag = "groups", params(("id" = String, Path)), responses((status = 200, body = Vec<Member>), (status = 404)))]
async fn list_members(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let g = group_or_404(&state, &id).await?;
    Ok(Json(state.store.identity().members(&g.id).await?.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/api/admin/groups/{id}/members", tag = "groups", params(("id" = String, Path)), request_body = MemberRef, responses((status = 201, body = MembershipAdded), (status = 404), (status = 409)))]
async fn add_member(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MemberRef>,
) -> Result<(StatusCode, Json<MembershipAdded>), ApiError> {
    let g = group_or_404(&state, &id).await?;
    if g.name == EVERYONE_GROUP {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Every active user is a member of Everyone; it has no explicit members",
        ));
    }
    let ids = state.store.identity();
    let user = ids
        .user_by_email(body.email.trim())
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "User not found"))?;
    ids.add_member_strict(&user.id, &g.id, "admin", Some(&caller.user.email)).await?;
    Audit::of(&state, &caller, &client)
        .record("user_group.add_member", Some(&g.id), Some(json!({"user_id": user.id})), "success")
        .await;
    Ok(added(g.id, user.id))
}

/// Remove a member added by an admin (memberships from other sources are managed there).
#[utoipa::path(delete, path = "/api/admin/groups/{id}/members/{user_id}", tag = "groups", params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 404), (status = 409)))]
async fn remove_member(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let g = group_or_404(&state, &id).await?;
    remove_membership(&state, &caller, &client, &g, &user_id).await
}

async fn remove_membership(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    g: &Group,
    user_id: &str,
) -> Result<StatusCode, ApiError> {
    let ids = state.store.identity();
    match ids.membership(user_id, &g.id).await? {
        Some(agnes_store::identity::Membership { ref source, .. })
            if source == "admin" || source == "system_seed" || source == "cli_break_glass" => {}
        Some(_) => return Err(ApiError::new(StatusCode::NOT_FOUND, "Membership is managed by an external source")),
        None => return Err(ApiError::new(StatusCode::NOT_FOUND, "Membership not found")),
    }
    if g.name == ADMIN_GROUP {
        guard_last_admin(state, user_id).await?;
    }
    ids.remove_member(user_id, &g.id).await?;
    Audit::of(state, caller, client)
        .record("user_group.remove_member", Some(&g.id), Some(json!({"user_id": user_id})), "success")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct GrantFilter {
    resource_type: Option<String>,
    group_id: Option<String>,
}

#[utoipa::path(get, path = "/api/admin/grants", tag = "groups", params(GrantFilter), responses((status = 200, body = Vec<Grant>)))]
async fn list_grants(
    State(state): State<AppState>,
    _admin: Admin,
    Query(f): Query<GrantFilter>,
) -> Result<Json<Vec<Grant>>, ApiError> {
    let group_id = match f.group_id.as_deref() {
        Some(g) => Some(group_or_404(&state, g).await?.id),
        None => None,
    };
    let grants = state.store.identity().list_grants(f.resource_type.as_deref(), group_id.as_deref()).await?;
    Ok(Json(grants.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/api/admin/grants", tag = "groups", request_body = NewGrant, responses((status = 201, body = Grant), (status = 400), (status = 404), (status = 409)))]
async fn create_grant(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    if !is_resource_type(&body.resource_type) {
        let known: Vec<_> = RESOURCE_TYPES.iter().map(|t| t.key).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Unknown resource_type '{}'; known: {}", body.resource_type, known.join(", ")),
        ));
    }
    let resource_id = body.resource_id.trim();
    if resource_id.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "resource_id must not be blank"));
    }
    let g = group_or_404(&state, &body.group_id).await?;
    let grant =
        state.store.identity().create_grant(&g.id, &body.resource_type, resource_id, Some(&caller.user.email)).await?;
    Audit::of(&state, &caller, &client)
        .record(
            "resource_grant.create",
            Some(&grant.id),
            Some(json!({"group_id": g.id, "resource_type": grant.resource_type, "resource_id": grant.resource_id})),
            "success",
        )
        .await;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

#[utoipa::path(delete, path = "/api/admin/grants/{id}", tag = "groups", params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn delete_grant(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ids = state.store.identity();
    let before = ids.grant_by_id(&id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Grant not found"))?;
    ids.delete_grant(&id).await?;
    Audit::of(&state, &caller, &client)
        .record_change("resource_grant.delete", Some(&id), None, Some(json!(before)), "success")
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_or_404(state: &AppState, id: &str) -> Result<agnes_store::identity::User, ApiError> {
    state.store.identity().user(id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "User not found"))
}

#[utoipa::path(get, path = "/api/admin/users/{id}/memberships", tag = "groups", params(("id" = String, Path)), responses((status = 200, body = Vec<Membership>), (status = 404)))]
async fn user_memberships(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Vec<Membership>>, ApiError> {
    user_or_404(&state, &id).await?;
    Ok(Json(state.store.identity().memberships(&id).await?.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/memberships", tag = "groups", params(("id" = String, Path)), request_body = GroupRef, responses((status = 201, body = MembershipAdded), (status = 404), (status = 409)))]
async fn add_user_membership(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupRef>,
) -> Result<(StatusCode, Json<MembershipAdded>), ApiError> {
    let user = user_or_404(&state, &id).await?;
    let g = group_or_404(&state, &body.group_id).await?;
    if g.name == EVERYONE_GROUP {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Every active user is a member of Everyone; it has no explicit members",
        ));
    }
    state.store.identity().add_member_strict(&user.id, &g.id, "admin", Some(&caller.user.email)).await?;
    Audit::of(&state, &caller, &client)
        .record("user_group.add_member", Some(&g.id), Some(json!({"user_id": user.id})), "success")
        .await;
    Ok(added(g.id, user.id))
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/memberships/{group_id}", tag = "groups", params(("id" = String, Path), ("group_id" = String, Path)), responses((status = 204), (status = 404), (status = 409)))]
async fn remove_user_membership(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path((id, group_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    user_or_404(&state, &id).await?;
    let g = group_or_404(&state, &group_id).await?;
    remove_membership(&state, &caller, &client, &g, &id).await
}

/// What a user may reach, and through which group and grant.
#[utoipa::path(get, path = "/api/admin/users/{id}/effective-access", tag = "groups", params(("id" = String, Path)), responses((status = 200, body = EffectiveAccess), (status = 404)))]
async fn user_effective_access(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<EffectiveAccess>, ApiError> {
    let user = user_or_404(&state, &id).await?;
    let subject = Caller::load(&state.store, user, Credential::Dev).await?;
    Ok(Json(effective_access(&state.store, &subject).await?))
}

/// Every group with its members and grants, and every user with the groups and resources
/// they reach: the whole access picture on one page.
#[utoipa::path(get, path = "/api/admin/access-overview", tag = "groups", responses((status = 200, body = AccessOverview)))]
async fn access_overview(State(state): State<AppState>, _admin: Admin) -> Result<Json<AccessOverview>, ApiError> {
    let ids = state.store.identity();
    let mut groups = Vec::new();
    for g in ids.list_groups().await? {
        let members: Vec<String> = ids.members(&g.id).await?.into_iter().map(|m| m.email).collect();
        let grants = ids.list_grants(None, Some(&g.id)).await?;
        let grants = grants
            .into_iter()
            .map(|x| ResourceRef { resource_type: x.resource_type, resource_id: x.resource_id })
            .collect();
        groups.push(GroupView { members: Some(members), grants: Some(grants), ..group_view(g) });
    }
    let mut users = Vec::new();
    for u in ids.list_users().await? {
        let subject = Caller::load(&state.store, u, Credential::Dev).await?;
        let access = effective_access(&state.store, &subject).await?;
        users.push(UserAccess {
            id: access.user_id,
            email: access.email,
            active: subject.user.active,
            is_admin: access.is_admin,
            groups: access.groups,
            resources: access
                .resources
                .into_iter()
                .map(|r| ResourceRef { resource_type: r.resource_type, resource_id: r.resource_id })
                .collect(),
        });
    }
    Ok(Json(AccessOverview { groups, users }))
}

/// What the caller may reach, and why.
#[utoipa::path(get, path = "/api/me/effective-access", tag = "groups", responses((status = 200, body = EffectiveAccess)))]
async fn my_effective_access(State(state): State<AppState>, caller: Caller) -> Result<Json<EffectiveAccess>, ApiError> {
    Ok(Json(effective_access(&state.store, &caller).await?))
}
