//! `data_source.keboola` of `instance.yaml` (one project, as the original configures it,
//! or several as named connections), the per-table `source_options`, and the export
//! filter of a row (spec §8.1).

use crate::ConnectorError;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One Keboola project. The Storage API token is named by the environment variable that
/// holds it, read when connecting: never stored, never printed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KeboolaConnectionConfig {
    /// The stack, e.g. `https://connection.keboola.com` (else `KEBOOLA_STACK_URL`).
    pub stack_url: Option<String>,
    /// The environment variable holding the token (default `KEBOOLA_STORAGE_TOKEN`).
    pub token_env: Option<String>,
    /// Slices downloaded at once (default 4).
    pub parallel_downloads: Option<usize>,
    /// Seconds an export job may take (default `AGNES_KEBOOLA_EXPORT_TIMEOUT_SEC` or 1800).
    pub export_timeout_seconds: Option<u64>,
    /// Where `gs://` slices are read (default `https://storage.googleapis.com`).
    pub gcs_endpoint: Option<String>,
    /// Where `s3://` slices are read path-style (default the bucket's regional endpoint).
    pub s3_endpoint: Option<String>,
}

/// The configuration keys of one project: a `data_source.keboola` holding any of them at
/// its top level is the original's single project, not a map of named ones.
const KEYS: [&str; 6] =
    ["stack_url", "token_env", "parallel_downloads", "export_timeout_seconds", "gcs_endpoint", "s3_endpoint"];

/// A configured project: unnamed (the original's `data_source.keboola`, extracts under
/// `extracts/keboola`) or named (`data_source.keboola.<name>`, `extracts/keboola_<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeboolaSource {
    pub name: Option<String>,
    pub config: KeboolaConnectionConfig,
}

impl KeboolaSource {
    /// Every project of `data_source.keboola`; with no section, the one `KEBOOLA_STACK_URL`
    /// names, if set.
    pub fn all_from(section: Option<&serde_json::Value>) -> Result<Vec<KeboolaSource>, ConnectorError> {
        let bad = |m: String| ConnectorError::Config(format!("data_source.keboola: {m}"));
        let Some(section) = section.filter(|v| !v.is_null()) else {
            return Ok(match std::env::var("KEBOOLA_STACK_URL") {
                Ok(url) if !url.trim().is_empty() => {
                    vec![KeboolaSource { name: None, config: KeboolaConnectionConfig::default() }]
                }
                _ => Vec::new(),
            });
        };
        let map = section.as_object().ok_or_else(|| bad("expected a mapping".into()))?;
        if map.keys().any(|k| KEYS.contains(&k.as_str())) {
            let config = serde_json::from_value(section.clone()).map_err(|e| bad(e.to_string()))?;
            return Ok(vec![KeboolaSource { name: None, config }]);
        }
        let named: BTreeMap<String, serde_json::Value> = serde_json::from_value(section.clone())
            .map_err(|_| bad("map connection names to their settings".into()))?;
        named
            .into_iter()
            .map(|(name, v)| {
                if !agnes_core::is_strict_identifier(&name) || name.len() > 40 {
                    return Err(bad(format!("{name}: a connection name is letters, digits and _ (at most 40)")));
                }
                let config = serde_json::from_value(v).map_err(|e| bad(format!("{name}: {e}")))?;
                Ok(KeboolaSource { name: Some(name), config })
            })
            .collect()
    }

    /// The extract directory (and DuckDB catalog) of this project's tables.
    pub fn source_name(&self) -> String {
        match &self.name {
            None => "keboola".into(),
            Some(n) => format!("keboola_{n}"),
        }
    }

    /// What messages call this project.
    pub fn label(&self) -> String {
        match &self.name {
            None => "keboola".into(),
            Some(n) => format!("connection '{n}'"),
        }
    }

    pub fn token_env(&self) -> &str {
        self.config.token_env.as_deref().unwrap_or("KEBOOLA_STORAGE_TOKEN")
    }

    /// The stack URL without a trailing slash.
    pub fn stack_url(&self) -> Result<String, ConnectorError> {
        let url = match &self.config.stack_url {
            Some(u) => u.clone(),
            None => std::env::var("KEBOOLA_STACK_URL").map_err(|_| {
                ConnectorError::Config(format!("{}: set stack_url (or KEBOOLA_STACK_URL)", self.label()))
            })?,
        };
        let url = url.trim().trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConnectorError::Config(format!("{}: stack_url must be an http(s) URL", self.label())));
        }
        Ok(url)
    }

    /// The token, read from its environment variable now.
    pub fn token(&self) -> Result<String, ConnectorError> {
        let var = self.token_env();
        std::env::var(var).ok().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            ConnectorError::Config(format!("{}: the environment variable {var} (token_env) is not set", self.label()))
        })
    }

    pub fn parallel_downloads(&self) -> usize {
        self.config.parallel_downloads.unwrap_or(4).clamp(1, 32)
    }

    pub fn export_timeout(&self) -> std::time::Duration {
        let env = std::env::var("AGNES_KEBOOLA_EXPORT_TIMEOUT_SEC").ok().and_then(|v| v.parse().ok());
        std::time::Duration::from_secs(self.config.export_timeout_seconds.or(env).unwrap_or(1800))
    }
}

/// CSV (read with the column types of Keboola's metadata) or parquet (Keboola's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    #[default]
    Csv,
    Parquet,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Csv => "csv",
            FileType::Parquet => "parquet",
        }
    }
}

/// `source_options` of a `keboola` registry row. Unknown keys are refused at registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct KeboolaTableOptions {
    /// The export's file type (default csv).
    pub file_type: Option<FileType>,
    /// Columns to export (default all).
    pub columns: Option<Vec<String>>,
}

impl KeboolaTableOptions {
    pub fn from_json(v: Option<&serde_json::Value>) -> Result<KeboolaTableOptions, ConnectorError> {
        crate::parse_options(v)
    }
}

/// One of `where_filters`: a column compared with values (`eq` and `ne` take several).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhereFilter {
    pub column: String,
    #[serde(default = "eq")]
    pub operator: String,
    pub values: Vec<serde_json::Value>,
}

fn eq() -> String {
    "eq".into()
}

const OPERATORS: [&str; 6] = ["eq", "ne", "gt", "ge", "lt", "le"];

/// A materialized row's `source_query`: the export filter, as JSON (spec §8.1).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExportQuery {
    pub where_filters: Vec<WhereFilter>,
    pub columns: Vec<String>,
    pub changed_since: Option<String>,
    pub changed_until: Option<String>,
    pub limit: Option<u64>,
    #[serde(alias = "fileType")]
    pub file_type: Option<FileType>,
}

impl ExportQuery {
    pub fn parse(text: &str) -> Result<ExportQuery, ConnectorError> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text)).map_err(|e| {
            ConnectorError::Config(format!(
                "a keboola source_query is a JSON export filter (where_filters, columns, changed_since, changed_until, \
                 limit, file_type): {} at {}",
                e.inner(),
                e.path()
            ))
        })
    }
}

/// `where_filters` with their values as strings and placeholders resolved against `today`;
/// an unknown operator or placeholder, or a filter without values, is an error naming it.
pub fn resolve_filters(filters: &[WhereFilter], today: NaiveDate) -> Result<Vec<serde_json::Value>, ConnectorError> {
    filters
        .iter()
        .map(|f| {
            if !OPERATORS.contains(&f.operator.as_str()) {
                return Err(ConnectorError::Config(format!(
                    "where_filters on {}: unknown operator '{}' (eq, ne, gt, ge, lt, le)",
                    f.column, f.operator
                )));
            }
            if f.values.is_empty() {
                return Err(ConnectorError::Config(format!("where_filters on {}: give at least one value", f.column)));
            }
            let values = f
                .values
                .iter()
                .map(|v| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    placeholder(&text, today)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(serde_json::json!({"column": f.column, "operator": f.operator, "values": values}))
        })
        .collect()
}

/// A value, or the date a `{{…}}` placeholder stands for (spec §8.1).
pub fn placeholder(text: &str, today: NaiveDate) -> Result<String, ConnectorError> {
    let Some(name) = text.trim().strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) else {
        return Ok(text.to_string());
    };
    let days = |n: i64| (today - Duration::days(n)).format("%Y-%m-%d").to_string();
    Ok(match name.trim() {
        "today" => days(0),
        "last_week" => days(7),
        "last_month" => days(30),
        "last_2_months" => days(60),
        "last_3_months" => days(90),
        "last_6_months" => days(180),
        "last_year" => days(365),
        "last_2_years" => days(730),
        "start_of_3_months_ago" => {
            let months = today.year() * 12 + today.month0() as i32 - 3;
            NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        }
        other => {
            return Err(ConnectorError::Config(format!(
                "unknown placeholder {{{{{other}}}}} (today, last_week, last_month, last_2_months, last_3_months, \
                 last_6_months, last_year, last_2_years, start_of_3_months_ago)"
            )))
        }
    })
}

/// A Storage API `changedSince`/`changedUntil` value: unix seconds.
pub fn unix(t: DateTime<Utc>) -> String {
    t.timestamp().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_and_unknown_ones_are_named() {
        let today = NaiveDate::from_ymd_opt(2026, 2, 15).unwrap();
        assert_eq!(placeholder("{{today}}", today).unwrap(), "2026-02-15");
        assert_eq!(placeholder("{{last_week}}", today).unwrap(), "2026-02-08");
        assert_eq!(placeholder("{{last_year}}", today).unwrap(), "2025-02-15");
        assert_eq!(placeholder("{{start_of_3_months_ago}}", today).unwrap(), "2025-11-01");
        assert_eq!(placeholder("plain", today).unwrap(), "plain");
        let err = placeholder("{{yesterday}}", today).unwrap_err().to_string();
        assert!(err.contains("{{yesterday}}"), "{err}");
        let bad = vec![WhereFilter { column: "c".into(), operator: "like".into(), values: vec!["x".into()] }];
        assert!(resolve_filters(&bad, today).unwrap_err().to_string().contains("'like'"));
        let ok = vec![WhereFilter { column: "n".into(), operator: "ge".into(), values: vec![serde_json::json!(5)] }];
        assert_eq!(resolve_filters(&ok, today).unwrap()[0]["values"], serde_json::json!(["5"]));
    }

    #[test]
    fn the_original_single_project_and_named_connections_both_parse() {
        let single = serde_json::json!({"stack_url": "https://connection.keboola.com", "token_env": "KBC"});
        let s = KeboolaSource::all_from(Some(&single)).unwrap();
        assert_eq!((s.len(), s[0].source_name()), (1, "keboola".to_string()));
        let named = serde_json::json!({"eu": {"stack_url": "https://connection.eu-central-1.keboola.com"}, "us": {}});
        let n = KeboolaSource::all_from(Some(&named)).unwrap();
        assert_eq!(n.iter().map(|s| s.source_name()).collect::<Vec<_>>(), ["keboola_eu", "keboola_us"]);
        let typo = serde_json::json!({"eu": {"stack_ur": "x"}});
        assert!(KeboolaSource::all_from(Some(&typo)).unwrap_err().to_string().contains("stack_ur"));
    }
}
