//! The admin pages: the dashboard (sync health, scheduler, failures, disk, the Jira
//! queue, recent audit events), the audit log, access (groups, members, the grants matrix, simulate a user)
//! and the prompts agnes gives agents. Each action is one REST call as the admin.

use super::{done, field, problem, render, segment, Viewer};
use crate::state::AppState;
use agnes_core::api::{AuditPage, Freshness, JiraHealth, SchedulerStatus, StorageUse};
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(audit))
        .route("/admin/access", get(access))
        .route("/admin/access/groups", post(create_group))
        .route("/admin/access/members", post(add_member))
        .route("/admin/access/grants", post(toggle_grant))
        .route("/admin/agent-prompt", get(agent_prompt).post(save_agent_prompt))
        .route("/admin/workspace-prompt", get(workspace_prompt).post(save_workspace_prompt))
}

/// `/`: the dashboard for an admin, the catalog for everyone else.
pub async fn home(viewer: Viewer, headers: HeaderMap, query: Query<HashMap<String, String>>) -> Response {
    if !viewer.caller.is_admin {
        return super::analyst::catalog(viewer, headers, query).await;
    }
    // Asked at once; a failure of a side panel (audit, disk) leaves the page standing.
    let (scheduler, audit, storage, jira) = tokio::join!(
        viewer.get_as::<SchedulerStatus>("/api/admin/scheduler"),
        viewer.get_as::<AuditPage>("/api/admin/audit?limit=15"),
        viewer.get_as::<StorageUse>("/api/admin/storage"),
        // 503 where Jira is not configured: no card.
        viewer.get_as::<JiraHealth>("/webhooks/jira/health")
    );
    let mut scheduler = match scheduler {
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
        "events": audit.map(|a| a.events).unwrap_or_default(), "storage": storage.ok(), "jira": jira.ok(),
    });
    render("dashboard.html", context)
}

/// `/admin/audit?action=&user=&before=`: the audit log, newest first, 50 to a page.
async fn audit(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    let mut api = "/api/admin/audit?limit=50".to_string();
    for key in ["action", "user", "before"] {
        if let Some(v) = field(&q, key) {
            api.push_str(&format!("&{key}={}", segment(&v)));
        }
    }
    match viewer.get_as::<AuditPage>(&api).await {
        Ok(page) => {
            // The next page keeps the filters.
            let next = page.next_before.as_ref().map(|b| {
                let mut url = format!("/admin/audit?before={}", segment(b));
                for key in ["action", "user"] {
                    if let Some(v) = field(&q, key) {
                        url.push_str(&format!("&{key}={}", segment(&v)));
                    }
                }
                url
            });
            let context = json!({"viewer": viewer.context(), "nav": "admin_audit", "events": page.events, "next": next,
                                 "action": q.get("action"), "user": q.get("user"), "first": !q.contains_key("before")});
            render("admin_audit.html", context)
        }
        Err(f) => problem(Some(&viewer), &f),
    }
}

/// `/admin/access?user=`: groups with members, the grants matrix of groups × tables, and
/// what one user would see and why.
async fn access(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    // The matrix shows a page of tables at a time (searchable): 1,000 columns help no one.
    let (overview, grants, tables) = match tokio::join!(
        viewer.get("/api/admin/access-overview"),
        viewer.get("/api/admin/grants"),
        super::registry_page(&viewer, &q, 20),
    ) {
        (Ok(o), Ok(g), Ok(t)) => (o, g, t),
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
