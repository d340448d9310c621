//! `/admin/tables…`: the registry for admins. Register with a per-source form, discover a
//! source's tables and register a selection, edit a table, see its sync history, sync it
//! now, delete it. Each action is one REST call as the admin.

use super::{done, field, paged, problem, render, segment, Viewer, PAGE};
use crate::state::AppState;
use agnes_core::api::{Discovered, DiscoveryRegistered, RegistryRow, SyncHistory};
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tables", get(tables).post(register))
        .route("/admin/tables/discover", get(discover).post(register_discovered))
        .route("/admin/tables/{id}", get(edit).post(save))
        .route("/admin/tables/{id}/sync", post(sync_now))
        .route("/admin/tables/{id}/delete", post(delete_table))
}

async fn tables_page(
    viewer: &Viewer,
    q: &HashMap<String, String>,
    error: Option<String>,
    form: Option<&HashMap<String, String>>,
) -> Response {
    let (list, sources) = tokio::join!(super::registry_page(viewer, q, PAGE), viewer.get("/api/admin/sources"));
    let list = match list {
        Ok(l) => l,
        Err(f) => return problem(Some(viewer), &f),
    };
    let sources = sources.unwrap_or_default();
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_tables", "list": list, "base": "/admin/tables", "sources": sources,
        "error": error, "form": form, "notice": q.get("notice"),
    });
    render("admin_tables.html", context)
}

async fn tables(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    tables_page(&viewer, &q, None, None).await
}

/// Register a table from the form: the API's registration body, empty fields left out.
async fn register(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let mut body = Map::new();
    // `type:name` of the source list: the type, and the name where a type has several
    // named connections.
    if let Some((source_type, name)) = field(&form, "source").as_deref().and_then(|s| s.split_once(':')) {
        body.insert("source_type".into(), json!(source_type));
        if matches!(source_type, "postgres" | "keboola") {
            body.insert("connection".into(), json!(name));
        }
    }
    for key in
        ["name", "description", "bucket", "source_table", "query_mode", "sync_strategy", "sync_schedule", "folder"]
    {
        if let Some(v) = field(&form, key) {
            body.insert(key.into(), json!(v));
        }
    }
    match viewer.call("POST", "/api/admin/register-table", Some(Value::Object(body))).await {
        Ok(done_) => {
            let id = done_["id"].as_str().unwrap_or_default().to_string();
            done("/admin/tables", &format!("Registered {id}. It is synced on its schedule, or now with Sync."))
        }
        Err(f) => tables_page(&viewer, &HashMap::new(), Some(super::message(&f)), Some(&form)).await,
    }
}

/// `/admin/tables/discover?source=`: what a source holds, each table with a box to tick;
/// tables some registry row already reads link to it instead.
async fn discover(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    discover_page(&viewer, field(&q, "source"), &q, None).await
}

async fn discover_page(
    viewer: &Viewer,
    source: Option<String>,
    q: &HashMap<String, String>,
    error: Option<String>,
) -> Response {
    let sources = match viewer.get("/api/admin/sources").await {
        Ok(s) => s,
        Err(f) => return problem(Some(viewer), &f),
    };
    let (found, listing_error) = match &source {
        None => (None, None),
        Some(name) => {
            match viewer.get_as::<Discovered>(&format!("/api/admin/discover-tables?source={}", segment(name))).await {
                Ok(d) => (Some(d), None),
                Err(f) => (None, Some(super::message(&f))),
            }
        }
    };
    let rows: Vec<Value> = found.into_iter().flat_map(|d| d.tables).map(|t| json!({"table": t})).collect();
    // A source with thousands of tables: a page at a time, searchable by path.
    let list = paged(rows, q, |r| r["table"]["path"].as_str().unwrap_or_default().to_string(), PAGE);
    let base = format!("/admin/tables/discover?source={}", segment(source.as_deref().unwrap_or_default()));
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_tables", "sources": sources, "source": source,
        "list": list, "base": base, "listing_error": listing_error, "error": error,
    });
    render("admin_discover.html", context)
}

/// Register the ticked tables in one call; the skipped ones say why.
async fn register_discovered(viewer: Viewer, Form(pairs): Form<Vec<(String, String)>>) -> Response {
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let source = field(&form, "source").unwrap_or_default();
    let ticked: Vec<String> = pairs.into_iter().filter(|(k, _)| k == "table").map(|(_, v)| v).collect();
    if ticked.is_empty() {
        return discover_page(
            &viewer,
            Some(source),
            &HashMap::new(),
            Some("Tick at least one table to register.".into()),
        )
        .await;
    }
    let mut body = json!({"source": source, "tables": ticked});
    for key in ["query_mode", "sync_schedule"] {
        if let Some(v) = field(&form, key) {
            body[key] = json!(v);
        }
    }
    match viewer.call("POST", "/api/admin/discover-and-register", Some(body)).await {
        Ok(answer) => {
            let result: DiscoveryRegistered = serde_json::from_value(answer).unwrap_or(DiscoveryRegistered {
                dry_run: false,
                registered: vec![],
                skipped: vec![],
            });
            let mut notice = format!("Registered {} table(s).", result.registered.len());
            for s in &result.skipped {
                notice.push_str(&format!(" Skipped {}: {}.", s.path, s.reason));
            }
            done("/admin/tables", &notice)
        }
        Err(f) => discover_page(&viewer, Some(source), &HashMap::new(), Some(super::message(&f))).await,
    }
}

/// `/admin/tables/{id}`: the table's settings to edit, and its sync history.
async fn edit(viewer: Viewer, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    edit_page(&viewer, &id, q.get("notice"), None, None).await
}

async fn edit_page(
    viewer: &Viewer,
    id: &str,
    notice: Option<&String>,
    error: Option<String>,
    form: Option<&HashMap<String, String>>,
) -> Response {
    let (row_path, history_path) = (
        format!("/api/admin/registry/{}", segment(id)),
        format!("/api/admin/registry/{}/history?limit=30", segment(id)),
    );
    let (row, history) =
        match tokio::join!(viewer.get_as::<RegistryRow>(&row_path), viewer.get_as::<SyncHistory>(&history_path),) {
            (Ok(r), Ok(h)) => (r, h),
            (Err(f), _) | (_, Err(f)) => return problem(Some(viewer), &f),
        };
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_tables", "row": row, "t": row.spec,
        "primary_key": row.spec.primary_key.join(", "), "runs": history.runs,
        "notice": notice, "error": error, "form": form,
    });
    render("admin_table.html", context)
}

/// The edit form's fields: text fields set (an emptied one cleared), the primary key as
/// a comma list, profiling as a box (unticked: off).
async fn save(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let mut body = Map::new();
    for key in ["name", "query_mode", "sync_strategy"] {
        if let Some(v) = field(&form, key) {
            body.insert(key.into(), json!(v));
        }
    }
    // A field the form sent empty is cleared; one it did not send is kept.
    for key in ["description", "folder", "sync_schedule", "source_table", "bucket", "incremental_column"] {
        if form.contains_key(key) {
            body.insert(key.into(), field(&form, key).map_or(Value::Null, Value::from));
        }
    }
    if let Some(key) = form.get("primary_key") {
        let key: Vec<&str> = key.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
        body.insert("primary_key".into(), json!(key));
    }
    body.insert("profile_after_sync".into(), json!(form.contains_key("profile_after_sync")));
    match viewer.call("PUT", &format!("/api/admin/registry/{}", segment(&id)), Some(Value::Object(body))).await {
        Ok(answer) => {
            let changed = answer["updated"].as_array().map(|u| u.len()).unwrap_or(0);
            let notice = match changed {
                0 => "Nothing changed.".to_string(),
                n => format!("Saved {n} change(s)."),
            };
            done(&format!("/admin/tables/{}", segment(&id)), &notice)
        }
        Err(f) => edit_page(&viewer, &id, None, Some(super::message(&f)), Some(&form)).await,
    }
}

async fn sync_now(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    // Back to the table's own page when the button was there.
    let back =
        field(&form, "back").filter(|b| b.starts_with("/admin/tables")).unwrap_or_else(|| "/admin/tables".into());
    match viewer.call("POST", "/api/sync/trigger", Some(json!([id]))).await {
        Ok(_) => done(&back, &format!("Sync of {id} started.")),
        Err(f) => problem(Some(&viewer), &f),
    }
}

async fn delete_table(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    match viewer.call("DELETE", &format!("/api/admin/registry/{}", segment(&id)), None).await {
        Ok(_) => done("/admin/tables", &format!("Deleted {id}.")),
        Err(f) => problem(Some(&viewer), &f),
    }
}
