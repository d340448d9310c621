//! The OpenAPI 3 document, generated from the route definitions themselves, and the set of
//! public operations the authentication middleware derives from it.

use crate::state::AppState;
use axum::http::{header, Method};
use axum::response::IntoResponse;
use std::collections::HashSet;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

static DOCUMENT: OnceLock<String> = OnceLock::new();

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The document as served.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", security(()), responses((status = 200, description = "OpenAPI 3 document")))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.get().cloned().unwrap_or_default())
}

/// Finish the document (title, version, the bearer scheme required by default) and keep
/// its JSON for `/api/openapi.json`.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "agnes".into();
    doc.info.version = agnes_core::VERSION.into();
    doc.info.description = Some("Data distribution for AI analysts. Every operation needs a bearer token (session JWT or personal access token) unless it lists an empty security requirement.".into());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or agnes_pat_…").build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    describe_errors(&mut doc);
    let _ = DOCUMENT.set(serde_json::to_string_pretty(&doc).expect("the document serializes"));
    doc
}

/// Every error answer has one shape, [`ErrorBody`](agnes_core::api::ErrorBody): say so once
/// here for each 4xx and 5xx an operation lists, rather than at every route.
fn describe_errors(doc: &mut OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};
    let name = agnes_core::api::ErrorBody::name().into_owned();
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(name.clone(), agnes_core::api::ErrorBody::schema());
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in operations.into_iter().flatten() {
            for (status, response) in op.responses.responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                if (status.starts_with('4') || status.starts_with('5')) && response.content.is_empty() {
                    let body = Content::new(Some(Ref::from_schema_name(name.clone())));
                    response.content.insert("application/json".into(), RefOr::T(body));
                }
            }
        }
    }
}

/// `(method, path)` of every operation whose security list holds the empty requirement.
pub fn public_operations(doc: &OpenApi) -> HashSet<(Method, String)> {
    let mut public = HashSet::new();
    let value = serde_json::to_value(doc).expect("the document serializes");
    for (path, item) in value["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let open = op["security"]
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty())));
            if open {
                public.insert((method, path.clone()));
            }
        }
    }
    public
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Operations whose success answer is not JSON: file bytes, Arrow streams, Prometheus
    /// text, and the OpenAPI document itself.
    const NOT_JSON: &[(&str, &str)] = &[
        ("get", "/api/data/{table}/download"),
        ("get", "/api/data/{table}/parts/{part}/download"),
        ("get", "/metrics"),
        ("get", "/api/openapi.json"),
    ];

    /// A schema the document names: a component, or an array of one.
    fn named(schema: &Value) -> bool {
        let is_ref = |s: &Value| s["$ref"].as_str().is_some_and(|r| r.starts_with("#/components/schemas/"));
        is_ref(schema) || (schema["type"] == "array" && is_ref(&schema["items"]))
    }

    /// The wire contract is one set of types: every JSON request and success body in the
    /// document is a named schema derived from `agnes_core::api`, so the CLI, the web UI
    /// and MCP read the same definitions the server writes.
    #[test]
    fn every_json_body_names_a_schema() {
        let doc = serde_json::to_value(crate::routes::openapi_document()).unwrap();
        let mut unnamed = Vec::new();
        let mut bodies = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let at = format!("{method} {path}");
                for (kind, media) in op["requestBody"]["content"].as_object().into_iter().flatten() {
                    if kind == "application/json" {
                        bodies += 1;
                        if !named(&media["schema"]) {
                            unnamed.push(format!("{at}: request body"));
                        }
                    }
                }
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        // An ErrorBody, unless the operation names its own (health's 503).
                        if !named(&response["content"]["application/json"]["schema"]) {
                            unnamed.push(format!("{at}: {status} has no error schema"));
                        }
                        continue;
                    }
                    if !status.starts_with('2') || status == "204" || status == "206" {
                        continue;
                    }
                    if NOT_JSON.contains(&(method.as_str(), path.as_str())) {
                        continue;
                    }
                    let Some(content) = response["content"].as_object() else {
                        unnamed.push(format!("{at}: {status} has no body schema"));
                        continue;
                    };
                    for (kind, media) in content {
                        bodies += 1;
                        if kind == "application/json" && !named(&media["schema"]) {
                            unnamed.push(format!("{at}: {status} {kind}"));
                        }
                    }
                }
            }
        }
        assert!(unnamed.is_empty(), "bodies without a named wire type:\n{}", unnamed.join("\n"));
        assert!(bodies >= 60, "the document describes the contract's bodies ({bodies} found)");
    }
}
