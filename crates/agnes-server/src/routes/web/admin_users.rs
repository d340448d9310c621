//! `/admin/users…`: create, deactivate and reactivate users; one user's page with their
//! memberships (add, remove) and a password reset that hands the admin a one-time link.

use super::{done, field, problem, render, segment, Viewer};
use crate::state::AppState;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/{id}", get(user))
        .route("/admin/users/{id}/active", post(set_active))
        .route("/admin/users/{id}/memberships", post(membership))
        .route("/admin/users/{id}/reset-password", post(reset_password))
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

/// `/admin/users/{id}`: who they are, their groups, and what can be done to them.
async fn user(viewer: Viewer, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    user_page(&viewer, &id, q.get("notice"), q.get("error").cloned(), None).await
}

async fn user_page(
    viewer: &Viewer,
    id: &str,
    notice: Option<&String>,
    error: Option<String>,
    reset_link: Option<String>,
) -> Response {
    let user_path = format!("/api/users/{}", segment(id));
    let (user, groups) = match tokio::join!(viewer.get(&user_path), viewer.get("/api/admin/groups")) {
        (Ok(u), Ok(g)) => (u, g),
        (Err(f), _) | (_, Err(f)) => return problem(Some(viewer), &f),
    };
    let member_of: Vec<&str> =
        user["groups"].as_array().into_iter().flatten().filter_map(|m| m["group_id"].as_str()).collect();
    // The groups one may still add them to: not theirs already, and not Everyone, which
    // holds every user by itself.
    let addable: Vec<&Value> = groups
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| {
            g["id"].as_str().is_some_and(|g| !member_of.contains(&g))
                && g["name"] != agnes_store::identity::EVERYONE_GROUP
        })
        .collect();
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_users", "user": user, "addable": addable,
        "notice": notice, "error": error, "reset_link": reset_link,
    });
    render("admin_user.html", context)
}

/// Add them to a group, or (`remove`) take them out of one.
async fn membership(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let group = field(&form, "group_id").unwrap_or_default();
    let result = if form.contains_key("remove") {
        let path = format!("/api/admin/users/{}/memberships/{}", segment(&id), segment(&group));
        viewer.call("DELETE", &path, None).await.map(|_| "Removed from the group.")
    } else {
        let path = format!("/api/admin/users/{}/memberships", segment(&id));
        viewer.call("POST", &path, Some(json!({"group_id": group}))).await.map(|_| "Added to the group.")
    };
    match result {
        Ok(notice) => done(&format!("/admin/users/{}", segment(&id)), notice),
        Err(f) => user_page(&viewer, &id, None, Some(super::message(&f)), None).await,
    }
}

/// Remove their password and show the admin a one-time link (valid 24 h) to pass on:
/// the user sets a new password on `/reset`.
async fn reset_password(viewer: Viewer, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let path = format!("/api/users/{}", segment(&id));
    let reset = match viewer.call("POST", &format!("{path}/reset-password"), None).await {
        Ok(r) => r,
        Err(f) => return user_page(&viewer, &id, None, Some(super::message(&f)), None).await,
    };
    let email = match viewer.get(&path).await {
        Ok(u) => u["email"].as_str().unwrap_or_default().to_string(),
        Err(f) => return problem(Some(&viewer), &f),
    };
    let link = format!(
        "{}/reset?email={}&token={}",
        super::server_url(&viewer.parts),
        segment(&email),
        segment(reset["reset_token"].as_str().unwrap_or_default())
    );
    user_page(&viewer, &id, None, None, Some(link)).await
}
