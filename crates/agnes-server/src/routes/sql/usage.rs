//! `GET /api/admin/usage`: the cost ledger, what remote sources billed per user and day.

use crate::auth::authenticate::Admin;
use crate::error::ApiError;
use crate::state::AppState;
use agnes_core::api::{Usage, UsageRow};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct UsageQuery {
    /// Days back from today (UTC), 1 to 366; default 7.
    days: Option<i64>,
}

/// What remote sources billed for each user's queries, per UTC day, newest first.
#[utoipa::path(get, path = "/api/admin/usage", tag = "query", params(UsageQuery),
    responses((status = 200, body = Usage), (status = 400)))]
async fn usage(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let days = q.days.unwrap_or(7);
    if !(1..=366).contains(&days) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "days must be between 1 and 366"));
    }
    let since = chrono::Utc::now().date_naive() - chrono::Days::new(days as u64 - 1);
    let emails: std::collections::HashMap<String, String> =
        state.store.identity().list_users().await?.into_iter().map(|u| (u.id, u.email)).collect();
    let cost = |bytes: i64| state.bigquery.as_ref().map_or(0.0, |b| b.source().cost_usd(bytes.max(0) as u64));
    let rows = state
        .store
        .quotas()
        .billed_since(since)
        .await?
        .into_iter()
        .map(|r| UsageRow {
            email: emails.get(&r.user_id).cloned(),
            cost_usd: if r.source == agnes_connectors::bigquery::SOURCE_NAME { cost(r.billed_bytes) } else { 0.0 },
            day: r.day,
            user_id: r.user_id,
            source: r.source,
            queries: r.queries,
            billed_bytes: r.billed_bytes,
        })
        .collect();
    Ok(Json(Usage { since: since.to_string(), rows }))
}
