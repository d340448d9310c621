//! `/admin/metrics…`: business metrics for admins. Every metric with the problems the
//! validation finds (tables not registered, SQL that does not parse), an import of YAML
//! (a file, an archive of a tree, or pasted text), and one metric edited as its YAML.

use super::{done, field, problem, render, segment, Viewer};
use crate::metric_import::{parse_yaml, MAX_UPLOAD_BYTES};
use crate::state::AppState;
use agnes_core::api::{MetricChecks, MetricList};
use agnes_core::metric::{MetricFile, MetricRecord};
use axum::extract::{DefaultBodyLimit, Multipart, Query};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/metrics", get(metrics).post(import).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024)))
        .route("/admin/metrics/edit", get(edit).post(save))
        .route("/admin/metrics/delete", post(delete))
}

/// What a new metric's text starts as.
const NEW_METRIC: &str = "name: \ndisplay_name: \ncategory: \ntype: sum\ngrain: monthly\ntable: \nsql: |\n  SELECT\n";

async fn metrics(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    metrics_page(&viewer, q.get("notice"), None).await
}

async fn metrics_page(viewer: &Viewer, notice: Option<&String>, error: Option<String>) -> Response {
    let (list, checks) = match tokio::join!(
        viewer.get_as::<MetricList>("/api/metrics"),
        viewer.get_as::<MetricChecks>("/api/admin/metrics/validate"),
    ) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(f), _) | (_, Err(f)) => return problem(Some(viewer), &f),
    };
    let problems: HashMap<&str, &Vec<String>> = checks.metrics.iter().map(|c| (c.id.as_str(), &c.problems)).collect();
    let rows: Vec<Value> = list
        .metrics
        .iter()
        .map(|m| json!({"m": m.definition, "updated_at": m.updated_at, "problems": problems.get(m.definition.id.as_str())}))
        .collect();
    let context = json!({
        "viewer": viewer.context(), "nav": "admin_metrics", "rows": rows, "checks": checks,
        "notice": notice, "error": error,
    });
    render("admin_metrics.html", context)
}

/// The import form: a file (YAML, or a `.tar.gz` of a tree) or pasted YAML, sent on to
/// the API's import as the upload it takes.
async fn import(viewer: Viewer, mut upload: Multipart) -> Response {
    let mut form = HashMap::new();
    let mut file: Option<Vec<u8>> = None;
    loop {
        match upload.next_field().await {
            Ok(Some(f)) => {
                let name = f.name().unwrap_or_default().to_string();
                match f.bytes().await {
                    Ok(bytes) if name == "file" => file = Some(bytes.to_vec()).filter(|b| !b.is_empty()),
                    Ok(bytes) => {
                        form.insert(name, String::from_utf8_lossy(&bytes).into_owned());
                    }
                    Err(e) => return metrics_page(&viewer, None, Some(format!("The upload failed: {e}"))).await,
                }
            }
            Ok(None) => break,
            Err(e) => return metrics_page(&viewer, None, Some(format!("The upload failed: {e}"))).await,
        }
    }
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let Some(bytes) = file.or_else(|| field(&form, "yaml").map(|y| y.replace("\r\n", "\n").into_bytes())) else {
        return metrics_page(&viewer, None, Some("Choose a file or paste YAML to import.".into())).await;
    };
    let (content_type, body) = multipart_file(&bytes);
    match viewer.calls.call_with("POST", "/api/admin/metrics/import", &content_type, body, Some(&viewer.parts)).await {
        Ok(r) => done("/admin/metrics", &format!("Imported {} metric(s) from {} file(s).", r["count"], r["files"])),
        Err(f) => metrics_page(&viewer, None, Some(super::message(&f))).await,
    }
}

/// `bytes` as the multipart body of one field `file`, with its content type.
fn multipart_file(bytes: &[u8]) -> (String, Vec<u8>) {
    // A random boundary cannot be guessed by whoever wrote the file, so it cannot occur in it.
    let boundary = format!("agnes-{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `/admin/metrics/edit?id=`: the metric as its YAML file; a new one without `id`.
async fn edit(viewer: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin() {
        return refused;
    }
    let id = field(&q, "id");
    let text = match &id {
        None => NEW_METRIC.to_string(),
        Some(id) => match viewer.get_as::<MetricRecord>(&metric_path("/api/metrics", id)).await {
            Ok(r) => serde_norway::to_string(&MetricFile::from(&r.definition)).unwrap_or_default(),
            Err(f) => return problem(Some(&viewer), &f),
        },
    };
    edit_page(&viewer, id.as_deref(), &text, None, q.get("notice"))
}

fn edit_page(
    viewer: &Viewer,
    id: Option<&str>,
    text: &str,
    error: Option<String>,
    notice: Option<&String>,
) -> Response {
    let context = json!({"viewer": viewer.context(), "nav": "admin_metrics", "id": id, "text": text,
                         "error": error, "notice": notice});
    render("admin_metric.html", context)
}

/// `/api/...{category}/{name}` of a metric id.
fn metric_path(base: &str, id: &str) -> String {
    let (category, name) = id.split_once('/').unwrap_or((id, ""));
    format!("{base}/{}/{}", segment(category), segment(name))
}

/// Save the YAML: the API's upsert, and, when the name or category changed, the old
/// metric removed (a rename, not a copy).
async fn save(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let old = field(&form, "id");
    let text = form.get("yaml").cloned().unwrap_or_default().replace("\r\n", "\n");
    let refused = |message: String| edit_page(&viewer, old.as_deref(), &text, Some(message), None);
    let mut fields = match parse_yaml(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return refused("The text must be one YAML mapping of the metric's fields.".into()),
        Err(e) => return refused(format!("Invalid YAML: {e}")),
    };
    let id = format!(
        "{}/{}",
        fields.get("category").and_then(Value::as_str).unwrap_or_default(),
        fields.get("name").and_then(Value::as_str).unwrap_or_default()
    );
    fields.insert("id".into(), json!(id));
    if let Err(f) = viewer.call("POST", "/api/admin/metrics", Some(Value::Object(fields))).await {
        return refused(super::message(&f));
    }
    if let Some(old) = old.filter(|o| *o != id) {
        if let Err(f) = viewer.call("DELETE", &metric_path("/api/admin/metrics", &old), None).await {
            return problem(Some(&viewer), &f);
        }
    }
    done(&format!("/admin/metrics/edit?id={}", segment(&id)), &format!("Saved {id}."))
}

async fn delete(viewer: Viewer, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(refused) = viewer.admin_form(&form) {
        return refused;
    }
    let id = field(&form, "id").unwrap_or_default();
    match viewer.call("DELETE", &metric_path("/api/admin/metrics", &id), None).await {
        Ok(_) => done("/admin/metrics", &format!("Deleted {id}.")),
        Err(f) => problem(Some(&viewer), &f),
    }
}
