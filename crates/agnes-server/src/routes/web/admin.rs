//! The admin pages: the dashboard (sync health, scheduler, failures), tables (register,
//! sync now, delete), access (groups, members, the grants matrix, simulate a user) and
//! users (create, deactivate, reactivate). Each action is one REST call as the admin.

use super::{done, field, paged, problem, render, segment, Viewer, PAGE};
use crate::state::AppState;
use agnes_core::api::{Freshness, RegistryList, SchedulerStatus};
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tables", get(tables).post(register))
        .route("/admin/tables/{id}/sync", post(sync_now))
        .route("/admin/tables/{id}/delete", post(delete_table))
        .route("/admin/access", get(access))
        .route("/admin/access/groups", post(create_group))
        .route("/admin/access/members", post(add_member))
        .route("/admin/access/grants", post(toggle_grant))
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/{id}/active", post(set_active))
        .route("/admin/agent-prompt", get(agent_prompt).post(save_agent_prompt))
        .route("/admin/workspace-prompt", get(workspace_prompt).post(save_workspace_prompt))
}

/// `/`: the dashboard for an admin, the catalog for everyone else.
pub async fn home(viewer: Viewer, headers: HeaderMap, query: Query<HashMap<String, String>>) -> Response {
    if !viewer.caller.is_admin {
        return super::analyst::catalog(viewer, headers, query).await;
    }
    let mut scheduler: SchedulerStatus = match viewer.get_as("/api/admin/scheduler").await {
        Ok(s) => s,
        Err(f) => return problem(Some(&viewer), &f),
    };
    let tables = std::mem::take(&mut scheduler.tables);
    let failing: Vec<&Freshness> = tables.iter().filter(|t| t.last_error.is_some()).collect();
    let overdue = tables.iter().filter(|t| t.overdue).count();
    // The first 50 rows; the tables page has them all.
    let shown: Vec<&Freshness> = tables.iter().take(50).collect();
    let context = json!({
        "viewer": viewer.context(), "nav": "home", "scheduler": scheduler,
        "failing": failing, "overdue": overdue, "tables": shown, "table_count": tables.len(),
    });
    render("dashboard.html", context)
}

async fn tables_page(
    viewer: &Viewer,
    q: &HashMap<String, String>,
    error: Option<String>,
    form: Option<&HashMap<String, String>>,
) -> Response {
    let registry: RegistryList = match viewer.get_as("/api/admin/registry").await {
        Ok(r) => r,
        Err(f) => return problem(Some(viewer), &f),
    };
    let sources = viewer.get("/api/admin/sources").await.unwrap_or_default();
    let list = paged(registry.tables, q, |r| searchable(&r.spec), PAGE);
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

async fn sync_now(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    match viewer.call("POST", "/api/sync/trigger", Some(json!([id]))).await {
        Ok(_) => done("/admin/tables", &format!("Sync of {id} started.")),
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

/// `/admin/access?user=`: groups with members, the grants matrix of groups × tables, and
/// what one user would see and why.
async fn access(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    let (overview, grants, registry) = match (
        viewer.get("/api/admin/access-overview").await,
        viewer.get("/api/admin/grants").await,
        viewer.get_as::<RegistryList>("/api/admin/registry").await,
    ) {
        (Ok(o), Ok(g), Ok(r)) => (o, g, r),
        (Err(f), _, _) | (_, Err(f), _) | (_, _, Err(f)) => return problem(Some(&viewer), &f),
    };
    // group id → table id → grant id
    let mut granted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for g in grants.as_array().into_iter().flatten().filter(|g| g["resource_type"] == "table") {
        if let (Some(group), Some(table), Some(id)) =
            (g["group_id"].as_str(), g["resource_id"].as_str(), g["id"].as_str())
        {
            granted.entry(group.into()).or_default().insert(table.into(), id.into());
        }
    }
    // The matrix shows a page of tables at a time (searchable): 1,000 columns help no one.
    let tables = paged(registry.tables, &q, |r| searchable(&r.spec), 20);
    let table_ids: Vec<Value> = tables["items"].as_array().into_iter().flatten().map(|t| t["id"].clone()).collect();
    let simulated = match q.get("user").filter(|u| !u.is_empty()) {
        Some(user) => Some(viewer.get(&format!("/api/admin/users/{}/effective-access", segment(user))).await),
        None => None,
    };
    let (simulation, simulation_error) = match simulated {
        Some(Ok(a)) => (Some(a), None),
        Some(Err(f)) => (None, Some(super::message(&f))),
        None => (None, None),
    };
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_access", "overview": overview, "granted": granted,
        "table_ids": table_ids, "list": tables, "base": "/admin/access", "simulation": simulation, "simulation_error": simulation_error,
        "user": q.get("user"), "notice": q.get("notice"), "error": q.get("error"),
    });
    render("admin_access.html", context)
}

/// What a table is found by in a search of the admin pages.
fn searchable(t: &agnes_core::TableSpec) -> String {
    [Some(&t.id), Some(&t.name), t.description.as_ref(), t.source_table.as_ref(), t.folder.as_ref()]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// After an access change: back to the page, saying what happened.
fn access_result(result: Result<Value, super::Failure>, notice: &str) -> Response {
    match result {
        Ok(_) => done("/admin/access", notice),
        Err(f) => {
            let error = percent_encoding::utf8_percent_encode(&super::message(&f), percent_encoding::NON_ALPHANUMERIC)
                .to_string();
            axum::response::IntoResponse::into_response(axum::response::Redirect::to(&format!(
                "/admin/access?error={error}"
            )))
        }
    }
}

async fn create_group(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let name = field(&form, "name").unwrap_or_default();
    let body = json!({"name": name, "description": field(&form, "description")});
    access_result(viewer.call("POST", "/api/admin/groups", Some(body)).await, &format!("Group {name} created."))
}

async fn add_member(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let (group, email) = (field(&form, "group").unwrap_or_default(), field(&form, "email").unwrap_or_default());
    let path = format!("/api/admin/groups/{}/members", segment(&group));
    let result = viewer.call("POST", &path, Some(json!({"email": email}))).await;
    access_result(result, &format!("{email} added to the group."))
}

/// One cell of the grants matrix: grant the table to the group, or revoke that grant.
async fn toggle_grant(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let (group, table) = (field(&form, "group").unwrap_or_default(), field(&form, "table").unwrap_or_default());
    match field(&form, "grant_id") {
        Some(id) => {
            let result = viewer.call("DELETE", &format!("/api/admin/grants/{}", segment(&id)), None).await;
            access_result(result, &format!("{table} revoked."))
        }
        None => {
            let body = json!({"group_id": group, "resource_type": "table", "resource_id": table});
            access_result(viewer.call("POST", "/api/admin/grants", Some(body)).await, &format!("{table} granted."))
        }
    }
}

async fn users_page(viewer: &Viewer, error: Option<String>, notice: Option<&String>) -> Response {
    match viewer.get("/api/users").await {
        Ok(list) => render(
            "admin_users.html",
            json!({"viewer": viewer.context(), "nav": "admin_users", "users": list, "error": error, "notice": notice}),
        ),
        Err(f) => problem(Some(viewer), &f),
    }
}

async fn users(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    users_page(&viewer, None, q.get("notice")).await
}

async fn create_user(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let email = field(&form, "email").unwrap_or_default();
    let body = json!({"email": email, "name": field(&form, "name"), "password": field(&form, "password")});
    match viewer.call("POST", "/api/users", Some(body)).await {
        Ok(_) => done("/admin/users", &format!("{email} created.")),
        Err(f) => users_page(&viewer, Some(super::message(&f)), None).await,
    }
}

async fn set_active(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let action = if form.get("active").map(String::as_str) == Some("true") { "activate" } else { "deactivate" };
    match viewer.call("POST", &format!("/api/users/{}/{action}", segment(&id)), None).await {
        Ok(_) => done("/admin/users", &format!("User {action}d.")),
        Err(f) => users_page(&viewer, Some(super::message(&f)), None).await,
    }
}

/// The pages of the two texts agnes gives agents: (path, template name, title, what it is).
const PROMPTS: [(&str, &str, &str, &str); 2] = [
    (
        "/admin/agent-prompt",
        "agent_setup",
        "Agent setup prompt",
        "What the setup page offers an analyst to paste into their agent, so it installs agnes for them.",
    ),
    (
        "/admin/workspace-prompt",
        "workspace",
        "Agent workspace prompt",
        "The CLAUDE.md that `agnes init` writes into every new workspace: how an agent works with agnes here.",
    ),
];

async fn prompt_page(viewer: &Viewer, which: usize, notice: Option<&String>, error: Option<String>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    let (path, name, title, about) = PROMPTS[which];
    match viewer.get(&format!("/api/admin/prompts/{name}")).await {
        Ok(t) => render(
            "admin_prompt.html",
            json!({"viewer": viewer.context(), "nav": "admin_prompts", "prompt": t, "path": path, "title": title,
                   "about": about, "notice": notice, "error": error}),
        ),
        Err(f) => problem(Some(viewer), &f),
    }
}

/// Save the text, or (`reset`) go back to the built-in one.
async fn save_prompt(viewer: &Viewer, which: usize, form: &HashMap<String, String>) -> Response {
    if let Some(refused) = viewer.admin_form(form) {
        return refused;
    }
    let (path, name, _, _) = PROMPTS[which];
    let api = format!("/api/admin/prompts/{name}");
    let result = if form.contains_key("reset") {
        viewer.call("DELETE", &api, None).await.map(|_| "Back to the built-in text.")
    } else {
        let body = form.get("body").cloned().unwrap_or_default().replace("\r\n", "\n");
        viewer.call("PUT", &api, Some(json!({"body": body}))).await.map(|_| "Saved: served from now on.")
    };
    match result {
        Ok(notice) => done(path, notice),
        Err(f) => prompt_page(viewer, which, None, Some(super::message(&f))).await,
    }
}

async fn agent_prompt(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    prompt_page(&viewer, 0, q.get("notice"), None).await
}

async fn save_agent_prompt(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    save_prompt(&viewer, 0, &form).await
}

async fn workspace_prompt(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    prompt_page(&viewer, 1, q.get("notice"), None).await
}

async fn save_workspace_prompt(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    save_prompt(&viewer, 1, &form).await
}
