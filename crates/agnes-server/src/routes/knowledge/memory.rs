//! Corporate memory, read side (spec §3.11, §4.2 step 7): `GET /api/memory/bundle` hands
//! each caller the published knowledge items of the domains they may read; admins curate
//! the items under `/api/admin/memory/items`.

use crate::auth::access::{readable, Caller, MEMORY_DOMAIN};
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::routes::json::ApiJson;
use crate::state::AppState;
use agnes_core::api::{is_knowledge_id, ItemInput, KnowledgeItem, KnowledgeList, KnowledgeStatus, MemoryBundle};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bundle)).routes(routes!(list_items, create_item)).routes(routes!(
        get_item,
        update_item,
        delete_item
    ))
}

const MAX_TITLE: usize = 200;
const MAX_CONTENT: usize = 64 * 1024;

/// The published (mandatory and approved) items of every domain the caller may read.
#[utoipa::path(get, path = "/api/memory/bundle", tag = "memory",
    responses((status = 200, body = MemoryBundle)))]
async fn bundle(State(state): State<AppState>, caller: Caller) -> Result<Json<MemoryBundle>, ApiError> {
    let domains = readable(&state.store, &caller, MEMORY_DOMAIN).await?;
    let mut bundle = MemoryBundle::default();
    for item in state.store.memory().published().await? {
        if !domains.as_ref().is_none_or(|d| d.contains(&item.domain)) {
            continue;
        }
        match item.status {
            KnowledgeStatus::Mandatory => bundle.mandatory.push(item),
            KnowledgeStatus::Approved => bundle.approved.push(item),
            KnowledgeStatus::Draft => {}
        }
    }
    Ok(Json(bundle))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Apply `input` to `item`, checking every rule; `item` is the stored one on update.
fn apply(item: &mut KnowledgeItem, input: ItemInput) -> Result<(), ApiError> {
    if let Some(title) = input.title {
        item.title = title.trim().to_string();
    }
    if let Some(content) = input.content {
        item.content = content;
    }
    if let Some(domain) = input.domain {
        item.domain = domain.trim().to_lowercase();
    }
    if let Some(category) = input.category {
        item.category = Some(category.trim().to_string()).filter(|c| !c.is_empty());
    }
    if let Some(status) = input.status {
        item.status = KnowledgeStatus::parse(&status)
            .ok_or_else(|| invalid(format!("status '{status}' is not one of mandatory, approved, draft")))?;
    }
    if item.title.is_empty() || item.title.chars().count() > MAX_TITLE {
        return Err(invalid(format!("title must be 1-{MAX_TITLE} characters")));
    }
    if item.content.trim().is_empty() || item.content.len() > MAX_CONTENT {
        return Err(invalid(format!("content must be non-blank and at most {} KiB", MAX_CONTENT >> 10)));
    }
    if !is_knowledge_id(&item.domain) {
        return Err(invalid("domain must be 1-128 of a-z 0-9 _ - (it is what grants name)"));
    }
    Ok(())
}

/// Every item, drafts included (admin).
#[utoipa::path(get, path = "/api/admin/memory/items", tag = "memory", responses((status = 200, body = KnowledgeList)))]
async fn list_items(State(state): State<AppState>, _admin: Admin) -> Result<Json<KnowledgeList>, ApiError> {
    let items = state.store.memory().list().await?;
    Ok(Json(KnowledgeList { count: items.len(), items }))
}

/// Create an item (admin). Its id is given (`km_<id>.md` on laptops) or generated.
#[utoipa::path(post, path = "/api/admin/memory/items", tag = "memory", request_body = ItemInput,
    responses((status = 201, body = KnowledgeItem), (status = 409), (status = 422)))]
async fn create_item(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    ApiJson(input): ApiJson<ItemInput>,
) -> Result<(StatusCode, Json<KnowledgeItem>), ApiError> {
    let id = match input.id.as_deref().map(str::trim) {
        Some(id) if !is_knowledge_id(id) => return Err(invalid("id must be 1-128 of A-Z a-z 0-9 _ -")),
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    if input.title.is_none() || input.content.is_none() || input.domain.is_none() {
        return Err(invalid("title, content and domain are required"));
    }
    let now = chrono::Utc::now().to_rfc3339();
    let mut item = KnowledgeItem {
        id,
        title: String::new(),
        content: String::new(),
        domain: String::new(),
        category: None,
        status: KnowledgeStatus::Draft,
        created_by: Some(caller.user.email.clone()),
        created_at: now.clone(),
        updated_by: Some(caller.user.email.clone()),
        updated_at: now,
    };
    apply(&mut item, input)?;
    state.store.memory().insert(&item).await?;
    Audit::of(&state, &caller, &client)
        .record("memory.create", Some(&item.id), Some(json!({"domain": item.domain, "status": item.status})), "success")
        .await;
    Ok((StatusCode::CREATED, Json(item)))
}

async fn item_or_404(state: &AppState, id: &str) -> Result<KnowledgeItem, ApiError> {
    state
        .store
        .memory()
        .get(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Knowledge item '{id}' not found")))
}

/// One item (admin).
#[utoipa::path(get, path = "/api/admin/memory/items/{id}", tag = "memory", params(("id" = String, Path)),
    responses((status = 200, body = KnowledgeItem), (status = 404)))]
async fn get_item(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<KnowledgeItem>, ApiError> {
    Ok(Json(item_or_404(&state, &id).await?))
}

/// Change an item's fields (admin); absent fields keep their value.
#[utoipa::path(put, path = "/api/admin/memory/items/{id}", tag = "memory", params(("id" = String, Path)), request_body = ItemInput,
    responses((status = 200, body = KnowledgeItem), (status = 404), (status = 422)))]
async fn update_item(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ItemInput>,
) -> Result<Json<KnowledgeItem>, ApiError> {
    let mut item = item_or_404(&state, &id).await?;
    if input.id.as_deref().is_some_and(|new| new != id) {
        return Err(invalid("an item's id cannot change: create a new item and delete this one"));
    }
    apply(&mut item, input)?;
    item.updated_by = Some(caller.user.email.clone());
    item.updated_at = chrono::Utc::now().to_rfc3339();
    state.store.memory().update(&item).await?;
    Audit::of(&state, &caller, &client)
        .record("memory.update", Some(&item.id), Some(json!({"domain": item.domain, "status": item.status})), "success")
        .await;
    Ok(Json(item))
}

/// Delete an item (admin); laptops drop its rule at their next pull.
#[utoipa::path(delete, path = "/api/admin/memory/items/{id}", tag = "memory", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_item(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.memory().delete(&id).await? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("Knowledge item '{id}' not found")));
    }
    Audit::of(&state, &caller, &client).record("memory.delete", Some(&id), None, "success").await;
    Ok(StatusCode::NO_CONTENT)
}
