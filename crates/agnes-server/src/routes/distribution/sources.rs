//! `/api/admin/sources…`: the configured sources, and whether each answers (admin).

use crate::auth::authenticate::{Admin, ClientInfo};
use crate::error::ApiError;
use crate::routes::audit::Audit;
use crate::state::AppState;
use agnes_connectors::bigquery::BigQuerySource;
use agnes_connectors::keboola::KeboolaSource;
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
    let mut known: Vec<String> = state.config.postgres.iter().map(|s| s.name.clone()).collect();
    known.extend(state.config.keboola.iter().map(keboola_name));
    if state.config.bigquery.is_some() {
        known.push(agnes_connectors::bigquery::SOURCE_NAME.into());
    }
    known.insert(0, "files".into());
    ApiError::coded(
        StatusCode::NOT_FOUND,
        "source_not_found",
        format!("No source named '{name}' (configured: {})", known.join(", ")),
    )
}

/// What a Keboola project is called in `/api/admin/sources`: its connection name, or
/// `keboola` for the original's single project.
fn keboola_name(s: &KeboolaSource) -> String {
    s.name.clone().unwrap_or_else(|| s.source_name())
}

fn keboola_settings(s: &KeboolaSource) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("stack_url".to_string(), s.config.stack_url.clone().unwrap_or_else(|| "$KEBOOLA_STACK_URL".into())),
        ("token_env".to_string(), s.token_env().to_string()),
    ])
}

fn bigquery_settings(s: &BigQuerySource) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("project".to_string(), s.project().unwrap_or_default());
    m.insert("billing_project".to_string(), s.billing_project().unwrap_or_default());
    if let Some(l) = &s.config.location {
        m.insert("location".to_string(), l.clone());
    }
    m.insert("api_endpoint".to_string(), s.api_endpoint());
    m.insert("credentials_env".to_string(), s.credentials_env().to_string());
    m
}

fn jira_settings(s: &agnes_connectors::jira::JiraSource) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([
        ("base_url".to_string(), s.base_url().unwrap_or_default()),
        ("email_env".to_string(), s.email_env().to_string()),
        ("api_token_env".to_string(), s.api_token_env().to_string()),
        ("webhook_secret_env".to_string(), s.webhook_secret_env().to_string()),
    ]);
    for (column, field) in &s.config.custom_fields {
        m.insert(format!("custom_fields.{column}"), field.clone());
    }
    m
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
    let registry = state.store.snapshot().await?.registry.clone();
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
    for s in &state.config.keboola {
        out.push(SourceInfo {
            name: keboola_name(s),
            source_type: SourceType::Keboola,
            settings: keboola_settings(s),
            tables: reading(&s.source_name()),
        });
    }
    if let Some(s) = &state.config.bigquery {
        out.push(SourceInfo {
            name: agnes_connectors::bigquery::SOURCE_NAME.into(),
            source_type: SourceType::Bigquery,
            settings: bigquery_settings(s),
            tables: reading(agnes_connectors::bigquery::SOURCE_NAME),
        });
    }
    if let Some(s) = &state.config.jira {
        out.push(SourceInfo {
            name: agnes_connectors::jira::SOURCE.into(),
            source_type: SourceType::Jira,
            settings: jira_settings(s),
            tables: reading(agnes_connectors::jira::SOURCE),
        });
    }
    Ok(Json(out))
}

/// Reach a source and say what answered, as whom (a superuser role or master token is
/// warned about: remote queries run as it), and how many tables it can read.
#[utoipa::path(post, path = "/api/admin/sources/{name}/test", tag = "registry", params(("name" = String, Path)),
    responses((status = 200, body = SourceTest), (status = 404), (status = 502)))]
async fn test_source(
    State(state): State<AppState>,
    Admin(caller): Admin,
    client: ClientInfo,
    Path(name): Path<String>,
) -> Result<Json<SourceTest>, ApiError> {
    let connector = state.sync.connector_named(&name).ok_or_else(|| unknown_source(&state, &name))?;
    let probed = tokio::task::spawn_blocking(move || connector.probe()).await.map_err(ApiError::internal)?;
    let outcome = if probed.is_ok() { "success" } else { "error" };
    Audit::of(&state, &caller, &client).record("source.test", Some(&name), None, outcome).await;
    Ok(Json(probed.map_err(ApiError::source_unavailable)?))
}
