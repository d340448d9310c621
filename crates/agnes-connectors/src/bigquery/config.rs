//! `data_source.bigquery` of `instance.yaml` (spec §8.2): the data project, the billing
//! project jobs run in, the location, where the API is, and how agnes signs in. The
//! service-account key is named by the environment variable holding its path, read when
//! signing in: never stored, never printed.

use crate::ConnectorError;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    /// The project whose tables are read (`BIGQUERY_PROJECT` overrides it).
    pub project: Option<String>,
    /// The project jobs run in and are billed to (default: `project`).
    pub billing_project: Option<String>,
    /// Where jobs run, e.g. `EU` or `us-central1`.
    pub location: Option<String>,
    /// The API root (default `https://bigquery.googleapis.com`): an emulator, a private
    /// endpoint or a test can stand in for Google.
    pub api_endpoint: Option<String>,
    /// The environment variable holding the path of a service-account JSON key (default
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials_env: Option<String>,
    /// A materialization whose dry run would scan more is refused (default 10 GiB; 0: no
    /// cap); also the job's `maximumBytesBilled`.
    pub max_bytes_per_materialize: Option<u64>,
    /// How long a materialization's job may run before it is cancelled (default 3600 s).
    pub job_timeout_seconds: Option<u64>,
    /// USD per TiB scanned, for cost estimates (default 6.25, on-demand pricing).
    pub price_per_tib_usd: Option<f64>,
    /// A remote query or scan whose dry run would scan more is refused with
    /// `remote_scan_too_large` (default 5 GiB; 0: no cap); also its `maximumBytesBilled`.
    pub max_scan_bytes: Option<u64>,
    /// How often the metadata cache of remote tables is refreshed (default 4 h).
    pub metadata_refresh_seconds: Option<u64>,
}

/// The configured BigQuery source, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct BigQuerySource {
    pub config: BigQueryConfig,
}

impl BigQuerySource {
    /// `data_source.bigquery`, if configured (or `BIGQUERY_PROJECT` is set).
    pub fn from_section(section: Option<&serde_json::Value>) -> Result<Option<BigQuerySource>, ConnectorError> {
        let config: BigQueryConfig = match section.filter(|v| !v.is_null()) {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ConnectorError::Config(format!("data_source.bigquery: {e}")))?,
            None if std::env::var("BIGQUERY_PROJECT").is_ok_and(|p| !p.trim().is_empty()) => BigQueryConfig::default(),
            None => return Ok(None),
        };
        let source = BigQuerySource { config };
        source.project()?;
        Ok(Some(source))
    }

    /// The data project: `BIGQUERY_PROJECT`, else `project`.
    pub fn project(&self) -> Result<String, ConnectorError> {
        std::env::var("BIGQUERY_PROJECT")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| self.config.project.clone())
            .ok_or_else(|| ConnectorError::Config("data_source.bigquery: set project (or BIGQUERY_PROJECT)".into()))
    }

    /// The project jobs are billed to.
    pub fn billing_project(&self) -> Result<String, ConnectorError> {
        match &self.config.billing_project {
            Some(b) => Ok(b.clone()),
            None => self.project(),
        }
    }

    pub fn api_endpoint(&self) -> String {
        self.config
            .api_endpoint
            .as_deref()
            .unwrap_or("https://bigquery.googleapis.com")
            .trim_end_matches('/')
            .to_string()
    }

    pub fn max_bytes_per_materialize(&self) -> Option<u64> {
        match self.config.max_bytes_per_materialize.unwrap_or(10 << 30) {
            0 => None,
            cap => Some(cap),
        }
    }

    pub fn max_scan_bytes(&self) -> Option<u64> {
        match self.config.max_scan_bytes.unwrap_or(5 << 30) {
            0 => None,
            cap => Some(cap),
        }
    }

    /// What scanning `bytes` costs at on-demand prices, in USD rounded to 4 places.
    pub fn cost_usd(&self, bytes: u64) -> f64 {
        let usd = bytes as f64 / (1u64 << 40) as f64 * self.config.price_per_tib_usd.unwrap_or(6.25);
        (usd * 10_000.0).round() / 10_000.0
    }

    pub fn metadata_refresh(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.metadata_refresh_seconds.unwrap_or(4 * 3600).max(60))
    }

    pub fn job_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.job_timeout_seconds.unwrap_or(3600))
    }

    pub fn credentials_env(&self) -> &str {
        self.config.credentials_env.as_deref().unwrap_or("GOOGLE_APPLICATION_CREDENTIALS")
    }
}
