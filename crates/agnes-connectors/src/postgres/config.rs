//! `data_source.postgres.<name>` of `instance.yaml`: one named connection each, secrets by
//! environment variable name only, and the per-table `source_options`.

use crate::ConnectorError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How the connection is encrypted: `disable`, `prefer` (TLS when the server offers it,
/// unverified), `require` (TLS, unverified, as libpq's `require`) or `verify-full` (TLS,
/// the certificate checked against the web PKI roots or `sslrootcert`, and the host name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyFull,
}

/// One named connection as configured. The password or a whole URL is named by the
/// environment variable that holds it, read when connecting: never stored, never printed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PgConnectionConfig {
    /// An environment variable holding a `postgresql://` URL; the fields below override
    /// its parts.
    pub url_env: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    #[serde(default)]
    pub sslmode: SslMode,
    /// A PEM file of CA certificates for `verify-full` instead of the web PKI roots.
    pub sslrootcert: Option<std::path::PathBuf>,
    /// `statement_timeout` of materialization and remote queries (default 300 s).
    pub statement_timeout_seconds: Option<u64>,
    /// A materialization whose `EXPLAIN` estimate (rows × width) is above this many
    /// bytes is refused before it runs (default 10 GiB).
    pub max_materialize_bytes: Option<u64>,
}

/// A named connection: `data_source.postgres.<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSource {
    pub name: String,
    pub config: PgConnectionConfig,
}

impl PgSource {
    /// Every connection of `data_source.postgres` (a map of name → settings).
    pub fn all_from(section: Option<&serde_json::Value>) -> Result<Vec<PgSource>, ConnectorError> {
        let Some(section) = section.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_value(section.clone()).map_err(|_| {
            ConnectorError::Config("data_source.postgres must map connection names to their settings".into())
        })?;
        map.into_iter()
            .map(|(name, v)| {
                if !agnes_core::is_strict_identifier(&name) || name.len() > 40 {
                    return Err(ConnectorError::Config(format!(
                        "data_source.postgres.{name}: a connection name is letters, digits and _ (at most 40)"
                    )));
                }
                let config: PgConnectionConfig = serde_json::from_value(v)
                    .map_err(|e| ConnectorError::Config(format!("data_source.postgres.{name}: {e}")))?;
                if config.url_env.is_none() && config.host.is_none() {
                    return Err(ConnectorError::Config(format!(
                        "data_source.postgres.{name}: give host (and database, user, password_env) or url_env"
                    )));
                }
                Ok(PgSource { name, config })
            })
            .collect()
    }

    /// The extract directory (and DuckDB catalog) of this connection's tables.
    pub fn source_name(&self) -> String {
        format!("postgres_{}", self.name)
    }

    pub fn statement_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.statement_timeout_seconds.unwrap_or(300))
    }

    pub fn max_materialize_bytes(&self) -> u64 {
        self.config.max_materialize_bytes.unwrap_or(10 << 30)
    }

    /// The client configuration, reading the referenced environment variables now.
    pub fn client_config(&self) -> Result<postgres::Config, ConnectorError> {
        let c = &self.config;
        let env = |var: &str, what: &str| {
            std::env::var(var).map_err(|_| {
                ConnectorError::Config(format!(
                    "connection '{}': the environment variable {var} ({what}) is not set",
                    self.name
                ))
            })
        };
        let mut config = match &c.url_env {
            Some(var) => env(var, "url_env")?.parse::<postgres::Config>().map_err(|_| {
                // The URL holds the password: never echo it.
                ConnectorError::Config(format!("connection '{}': {var} is not a valid postgresql:// URL", self.name))
            })?,
            None => postgres::Config::new(),
        };
        if let Some(host) = &c.host {
            config.host(host);
        }
        if let Some(port) = c.port {
            config.port(port);
        }
        if let Some(db) = &c.database {
            config.dbname(db);
        }
        if let Some(user) = &c.user {
            config.user(user);
        }
        if let Some(var) = &c.password_env {
            config.password(env(var, "password_env")?);
        }
        config.ssl_mode(match c.sslmode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
        });
        config.application_name("agnes");
        config.connect_timeout(std::time::Duration::from_secs(10));
        Ok(config)
    }
}

/// `source_options` of a `postgres` registry row. Unknown keys are refused at registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PgTableOptions {
    /// Rows per parquet row group and per Arrow batch (default 122,880, DuckDB's own).
    pub batch_rows: Option<usize>,
}

impl PgTableOptions {
    pub fn from_json(v: Option<&serde_json::Value>) -> Result<PgTableOptions, ConnectorError> {
        crate::parse_options(v)
    }

    pub fn batch_rows(&self) -> usize {
        self.batch_rows.unwrap_or(122_880).clamp(1_024, 1_048_576)
    }
}
