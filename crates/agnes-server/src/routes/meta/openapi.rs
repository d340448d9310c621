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
    let _ = DOCUMENT.set(serde_json::to_string_pretty(&doc).expect("the document serializes"));
    doc
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
