//! What every signed-in user has: the catalog of the tables they may read and a page per
//! table, the business metrics, their access and why, their tokens, and the setup page.

use super::{done, field, problem, render, segment, Viewer, PAGE};
use crate::state::AppState;
use agnes_core::api::Catalog;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(catalog))
        .route("/catalog/metrics", get(metrics))
        .route("/catalog/{table}", get(table))
        .route("/access", get(access))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_token))
        .route("/setup", get(setup).post(setup_token))
}

/// `/catalog?q=&page=`: the tables the viewer may read, searchable, a page at a time. An
/// htmx search asks for the rows only.
pub async fn catalog(viewer: Viewer, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let list = match super::api_page(&viewer, "/api/v2/catalog", &q, PAGE, |c: Catalog| (c.tables, c.total)).await {
        Ok(l) => l,
        Err(f) => return problem(Some(&viewer), &f),
    };
    let context = json!({"viewer": viewer.context(), "nav": "catalog", "list": list, "base": "/catalog",
                         "notice": q.get("notice")});
    let partial = headers.get("hx-request").is_some() && headers.get("hx-boosted").is_none();
    render(if partial { "catalog_rows.html" } else { "catalog.html" }, context)
}

/// `/catalog/{table}`: schema, profile, sample rows, the metrics on it, and how to query it.
async fn table(viewer: Viewer, Path(table): Path<String>) -> Response {
    let id = segment(&table);
    // The page's reads are independent: asked at once, the page takes as long as the slowest.
    let paths = [
        format!("/api/v2/schema/{id}"),
        format!("/api/v2/catalog?table={id}"),
        format!("/api/v2/sample/{id}?n=10"),
        format!("/api/catalog/profile/{id}"),
    ];
    let (schema, catalog, sample, profile, metrics) = tokio::join!(
        viewer.get(&paths[0]),
        viewer.get_as::<Catalog>(&paths[1]),
        viewer.get(&paths[2]),
        viewer.get(&paths[3]),
        viewer.get("/api/metrics"),
    );
    // The schema's answer is the access check's: a refusal is the page's.
    let schema = match schema {
        Ok(s) => s,
        Err(f) => return problem(Some(&viewer), &f),
    };
    let entry = catalog
        .ok()
        .and_then(|c| c.tables.into_iter().find(|t| t.id == schema["table_id"].as_str().unwrap_or_default()))
        .map(|t| json!(t))
        .unwrap_or_default();
    let (sample, profile, metrics) = (sample.ok(), profile.ok(), metrics.unwrap_or_default());
    let table_id = schema["table_id"].as_str().unwrap_or_default().to_string();
    let used_by: Vec<Value> = metrics["metrics"]
        .as_array()
        .or_else(|| metrics.as_array())
        .into_iter()
        .flatten()
        .filter(|m| {
            m["table_name"] == table_id.as_str()
                || m["tables"].as_array().is_some_and(|ts| ts.iter().any(|t| t == &table_id))
        })
        .cloned()
        .collect();
    let columns: Vec<String> = sample
        .as_ref()
        .and_then(|s| s["rows"].as_array())
        .and_then(|rows| rows.first())
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let context = json!({
        "viewer": viewer.context(), "nav": "catalog", "table": entry, "schema": schema, "sample": sample,
        "sample_columns": columns, "profile": profile.map(with_bars), "metrics": used_by,
        "remote": entry["query_mode"] == "remote",
    });
    render("table.html", context)
}

/// Each numeric column's histogram as bar heights in percent of its tallest bin, for the
/// page's SVG bars.
fn with_bars(mut profile: Value) -> Value {
    for column in profile["columns"].as_array_mut().into_iter().flatten() {
        let counts: Vec<i64> = column["numeric_stats"]["histogram"]["counts"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default();
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        let bars: Vec<Value> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"x": i * 10, "h": (c * 40 / top).max(1), "y": 40 - (c * 40 / top).max(1), "n": c}))
            .collect();
        column["bars"] = json!(bars);
        column["bars_width"] = json!(counts.len() * 10);
    }
    profile
}

async fn metrics(viewer: Viewer) -> Response {
    match viewer.get("/api/metrics").await {
        Ok(m) => render("metrics.html", json!({"viewer": viewer.context(), "nav": "metrics", "metrics": m})),
        Err(f) => problem(Some(&viewer), &f),
    }
}

/// `/access`: what I may read and why.
async fn access(viewer: Viewer) -> Response {
    match viewer.get("/api/me/effective-access").await {
        Ok(a) => render("access.html", json!({"viewer": viewer.context(), "nav": "access", "access": a})),
        Err(f) => problem(Some(&viewer), &f),
    }
}

async fn tokens_page(
    viewer: &Viewer,
    issued: Option<Value>,
    error: Option<String>,
    notice: Option<&String>,
) -> Response {
    match viewer.get("/auth/tokens").await {
        Ok(list) => render(
            "tokens.html",
            json!({"viewer": viewer.context(), "nav": "tokens", "tokens": list, "issued": issued,
                   "error": error, "notice": notice}),
        ),
        Err(f) => problem(Some(viewer), &f),
    }
}

async fn tokens(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    tokens_page(&viewer, None, None, q.get("notice")).await
}

/// A new token for `name`, expiring after `days` (none: never).
async fn mint(viewer: &Viewer, name: &str, days: Option<i64>) -> Result<Value, super::Failure> {
    viewer.call("POST", "/auth/tokens", Some(json!({"name": name, "expires_in_days": days}))).await
}

/// A token is shown once, on the page that created it.
async fn create_token(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.check(&form) {
        return refused;
    }
    let Some(name) = field(&form, "name") else {
        return tokens_page(&viewer, None, Some("Give the token a name.".into()), None).await;
    };
    let days = match field(&form, "expires_in_days").as_deref() {
        None | Some("never") => None,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => return tokens_page(&viewer, None, Some("Expiry must be a number of days.".into()), None).await,
        },
    };
    match mint(&viewer, &name, days).await {
        Ok(issued) => tokens_page(&viewer, Some(issued), None, None).await,
        Err(f) => tokens_page(&viewer, None, Some(super::message(&f)), None).await,
    }
}

async fn revoke_token(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.check(&form) {
        return refused;
    }
    match viewer.call("DELETE", &format!("/auth/tokens/{}", segment(&id)), None).await {
        Ok(_) => done("/tokens", "Token revoked."),
        Err(f) => problem(Some(&viewer), &f),
    }
}

async fn setup_page(viewer: &Viewer, token: Option<Value>) -> Response {
    let server = super::server_url(&viewer.parts);
    let prompt = viewer.get(&format!("/api/agent-prompt?server_url={}", segment(&server))).await.ok();
    let context = json!({"viewer": viewer.context(), "nav": "setup", "server": server,
                         "token": token, "prompt": prompt.map(|p| p["content"].clone())});
    render("setup.html", context)
}

async fn setup(viewer: Viewer) -> Response {
    setup_page(&viewer, None).await
}

/// A fresh 90-day token for this laptop, shown once in the commands.
async fn setup_token(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.check(&form) {
        return refused;
    }
    let name = format!("setup {}", chrono::Utc::now().format("%Y-%m-%d %H:%M"));
    match mint(&viewer, &name, Some(90)).await {
        Ok(issued) => setup_page(&viewer, Some(issued)).await,
        Err(f) => problem(Some(&viewer), &f),
    }
}
