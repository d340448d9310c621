//! `/api/admin/sources…`: the configured sources, and whether each answers (admin).

use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::state::AppState;
use agnes_connectors::postgres::{PgSource, SslMode};
use agnes_core::api::{SourceInfo, SourceTest};
use agnes_core::SourceType;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_sources)).routes(routes!(test_source))
}

/// The 404 of a source name nothing is configured under, naming the configured ones.
pub fn unknown_source(state: &AppState, name: &str) -> ApiError {
    let mut known: Vec<&str> = state.config.postgres.iter().map(|s| s.name.as_str()).collect();
    known.insert(0, "files");
    ApiError::coded(
        StatusCode::NOT_FOUND,
        "source_not_found",
        format!("No source named '{name}' (configured: {})", known.join(", ")),
    )
}

/// The PostgreSQL connection `name`, or 404 naming the configured ones.
pub fn postgres_source(state: &AppState, name: &str) -> Result<PgSource, ApiError> {
    state.config.postgres.iter().find(|s| s.name == name).cloned().ok_or_else(|| unknown_source(state, name))
}

fn pg_settings(s: &PgSource) -> BTreeMap<String, String> {
    let c = &s.config;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("host", c.host.clone());
    put("port", c.port.map(|p| p.to_string()));
    put("database", c.database.clone());
    put("user", c.user.clone());
    put("password_env", c.password_env.clone());
    put("url_env", c.url_env.clone());
    let mode = match c.sslmode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyFull => "verify-full",
    };
    put("sslmode", Some(mode.into()));
    m
}

/// Every configured source with its non-secret settings and how many tables read it.
#[utoipa::path(get, path = "/api/admin/sources", tag = "registry", responses((status = 200, body = Vec<SourceInfo>), (status = 403)))]
async fn list_sources(State(state): State<AppState>, _admin: Admin) -> Result<Json<Vec<SourceInfo>>, ApiError> {
    let registry = state.store.registry().list().await?;
    let reading = |source_name: &str| {
        registry.iter().filter(|t| state.sync.source_name_for(t).as_deref() == Some(source_name)).count()
    };
    let mut out = vec![SourceInfo {
        name: "files".into(),
        source_type: SourceType::Files,
        settings: BTreeMap::from([("root".to_string(), state.config.files_root.display().to_string())]),
        tables: reading(agnes_connectors::files::SOURCE_NAME),
    }];
    for s in &state.config.postgres {
        out.push(SourceInfo {
            name: s.name.clone(),
            source_type: SourceType::Postgres,
            settings: pg_settings(s),
            tables: reading(&s.source_name()),
        });
    }
    Ok(Json(out))
}

/// Connect to a source and say what it is: version, role, superuser (remote queries want a
/// read-only role), and how many tables the role can read.
#[utoipa::path(post, path = "/api/admin/sources/{name}/test", tag = "registry", params(("name" = String, Path)),
    responses((status = 200, body = SourceTest), (status = 404), (status = 502)))]
async fn test_source(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(name): Path<String>,
) -> Result<Json<SourceTest>, ApiError> {
    let source = postgres_source(&state, &name)?;
    let facts = tokio::task::spawn_blocking(move || {
        let mut client = agnes_connectors::postgres::connect(&source)?;
        agnes_connectors::postgres::server_facts(&mut client)
    })
    .await
    .map_err(ApiError::internal)?;
    let outcome = if facts.is_ok() { "success" } else { "error" };
    Audit::of(&state, &caller, &client).record("source.test", Some(&name), None, outcome).await;
    let facts = facts.map_err(ApiError::source_unavailable)?;
    let mut warnings = Vec::new();
    if facts.superuser {
        warnings.push(format!(
            "role '{}' is a superuser: give agnes a role that can only read the tables it serves (remote queries run as it)",
            facts.role
        ));
    }
    if facts.tables_visible == 0 {
        warnings.push(format!("role '{}' can read no table: GRANT SELECT to it", facts.role));
    }
    Ok(Json(SourceTest {
        name,
        source_type: SourceType::Postgres,
        server_version: facts.server_version,
        role: facts.role,
        superuser: facts.superuser,
        tables_visible: facts.tables_visible,
        warnings,
    }))
}
