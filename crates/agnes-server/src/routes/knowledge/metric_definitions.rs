//! Business metric definitions (spec §3.10, §6): read by every signed-in user, written by
//! admins one at a time or by importing YAML.

use crate::auth::access::Caller;
use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::metric_import::{self, MAX_UPLOAD_BYTES};
use crate::routes::audit::Audit;
use crate::state::AppState;
use agnes_core::api::{MetricCheck, MetricChecks, MetricList, MetricsImported};
use agnes_core::metric::{definition_from_mapping, is_metric_id, MetricDefinition, MetricRecord, SOURCE_MANUAL};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_metrics))
        .routes(routes!(get_metric))
        .routes(routes!(upsert_metric))
        .routes(routes!(delete_metric))
        .routes(routes!(legacy_metric))
        .routes(routes!(import_metrics))
        .routes(routes!(validate_metrics))
        // Room for the largest upload plus the multipart envelope.
        .route_layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024))
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Metric not found")
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct MetricFilter {
    category: Option<String>,
}

/// Which metrics a caller may see: a metric shows its tables' names and logic, so it is
/// listed only when the caller may read every registered table it names (the one access
/// rule). A name no table is registered under reveals nothing and hides nothing.
struct MetricReaders {
    readable: Option<HashSet<String>>,
    registry: Vec<agnes_core::TableSpec>,
}

impl MetricReaders {
    async fn of(state: &AppState, caller: &Caller) -> Result<MetricReaders, ApiError> {
        Ok(MetricReaders {
            readable: crate::routes::tables::readable_ids(state, caller).await?,
            registry: if caller.is_admin { Vec::new() } else { state.store.snapshot().await?.registry.clone() },
        })
    }

    fn may_see(&self, record: &MetricRecord) -> bool {
        let d = &record.definition;
        d.table_name.iter().chain(&d.tables).all(|t| {
            self.registry
                .iter()
                .filter(|s| s.id == *t || s.name == *t || s.id == t.to_lowercase())
                .all(|s| crate::routes::tables::may_read(&self.readable, &s.id))
        })
    }
}

/// Every metric the caller may see, or those of one category.
#[utoipa::path(get, path = "/api/metrics", tag = "metrics", params(MetricFilter), responses((status = 200, body = MetricList)))]
async fn list_metrics(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<MetricFilter>,
) -> Result<Json<MetricList>, ApiError> {
    let readers = MetricReaders::of(&state, &caller).await?;
    let mut metrics = state.store.metric_definitions().list(filter.category.as_deref()).await?;
    metrics.retain(|m| readers.may_see(m));
    Ok(Json(MetricList { count: metrics.len(), metrics }))
}

/// One metric by its id, `<category>/<name>`; 404 also when the caller may not see it.
#[utoipa::path(get, path = "/api/metrics/{category}/{name}", tag = "metrics", params(("category" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = MetricRecord), (status = 404)))]
async fn get_metric(
    State(state): State<AppState>,
    caller: Caller,
    Path((category, name)): Path<(String, String)>,
) -> Result<Json<MetricRecord>, ApiError> {
    let record = state.store.metric_definitions().get(&format!("{category}/{name}")).await?.ok_or_else(not_found)?;
    if !MetricReaders::of(&state, &caller).await?.may_see(&record) {
        return Err(not_found());
    }
    Ok(Json(record))
}

/// The original's address of a metric; moved to `/api/metrics/{id}`.
#[utoipa::path(get, path = "/api/catalog/metrics/{category}/{name}", tag = "metrics", params(("category" = String, Path), ("name" = String, Path)),
    responses((status = 301), (status = 404)))]
async fn legacy_metric(_caller: Caller, Path((category, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let id = format!("{category}/{name}");
    // Only a well-formed id is sent on: it is then a plain path as it stands.
    if !is_metric_id(&id) {
        return Err(not_found());
    }
    Ok((StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, format!("/api/metrics/{id}"))]).into_response())
}

/// Create or replace one metric. The body carries every field of the YAML format (or of a
/// fetched record); `id`, `name`, `display_name`, `category` and `sql` are required.
#[utoipa::path(post, path = "/api/admin/metrics", tag = "metrics", request_body = MetricDefinition, responses((status = 201, body = MetricRecord), (status = 400)))]
async fn upsert_metric(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    crate::routes::json::ApiJson(body): crate::routes::json::ApiJson<Value>,
) -> Result<(StatusCode, Json<MetricRecord>), ApiError> {
    let Value::Object(fields) = body else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "The body must be a JSON object of metric fields"));
    };
    let missing: Vec<&str> = ["id", "name", "display_name", "category", "sql"]
        .into_iter()
        .filter(|k| fields.get(*k).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("Missing required fields: {}", missing.join(", "))));
    }
    let def = definition_from_mapping(fields, None, SOURCE_MANUAL)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("Invalid metric: {e}")))?;
    let repo = state.store.metric_definitions();
    repo.upsert_many(std::slice::from_ref(&def)).await?;
    Audit::of(&state, &caller, &client).record("metric.upsert", Some(&def.id), None, "success").await;
    let stored = repo.get(&def.id).await?.ok_or_else(not_found)?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(delete, path = "/api/admin/metrics/{category}/{name}", tag = "metrics", params(("category" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_metric(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path((category, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = format!("{category}/{name}");
    state.store.metric_definitions().delete(&id).await?;
    Audit::of(&state, &caller, &client).record("metric.delete", Some(&id), None, "success").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Every stored metric checked against the registry: the tables it names and the tables
/// its SQL reads must be registered, and its SQL must parse. `agnes admin metrics
/// validate` runs the same check on local files.
#[utoipa::path(get, path = "/api/admin/metrics/validate", tag = "metrics", responses((status = 200, body = MetricChecks)))]
async fn validate_metrics(State(state): State<AppState>, _admin: Admin) -> Result<Json<MetricChecks>, ApiError> {
    let registry: std::collections::BTreeSet<String> =
        state.store.snapshot().await?.registry.iter().flat_map(|t| [t.id.clone(), t.name.clone()]).collect();
    let metrics: Vec<MetricCheck> = state
        .store
        .metric_definitions()
        .list(None)
        .await?
        .into_iter()
        .map(|m| MetricCheck { problems: metric_import::problems(&m.definition, &registry), id: m.definition.id })
        .collect();
    let with_problems = metrics.iter().filter(|m| !m.problems.is_empty()).count();
    Ok(Json(MetricChecks { checked: metrics.len(), with_problems, metrics }))
}

/// Import metrics from multipart field `file`: one YAML document (a mapping or a list; each
/// entry names its `category`), or a `.tar.gz` of a directory tree (a file's directory is
/// the category of entries that name none). All are stored or none; re-importing the same
/// definitions changes only their `updated_at`.
#[utoipa::path(post, path = "/api/admin/metrics/import", tag = "metrics", request_body(content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 200, body = MetricsImported), (status = 400), (status = 413)))]
async fn import_metrics(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    mut form: Multipart,
) -> Result<Json<MetricsImported>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let mut upload = None;
    while let Some(field) = form.next_field().await.map_err(|e| ApiError::new(e.status(), e.body_text()))? {
        if field.name() == Some("file") {
            upload = Some(field.bytes().await.map_err(|e| ApiError::new(e.status(), e.body_text()))?);
            break;
        }
    }
    let bytes = upload.ok_or_else(|| bad("Missing multipart field 'file'".into()))?;
    if bytes.is_empty() {
        return Err(bad("The uploaded file is empty".into()));
    }
    let imported = tokio::task::spawn_blocking(move || metric_import::read_upload(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| bad(format!("Invalid metric definitions: {e}")))?;
    state.store.metric_definitions().upsert_many(&imported.definitions).await?;
    let count = imported.definitions.len();
    Audit::of(&state, &caller, &client)
        .record("metric.import", None, Some(json!({"count": count, "files": imported.files})), "success")
        .await;
    Ok(Json(MetricsImported {
        status: "imported".into(),
        count,
        files: imported.files,
        skipped: imported.skipped,
        ignored: imported.ignored,
    }))
}
