use crate::ConnectorError;
use serde::Deserialize;
use std::path::PathBuf;

/// `data_source.files` of `instance.yaml`.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Every path a table names is relative to this directory and may not leave it.
    pub root: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Tsv,
    Json,
    Parquet,
}

impl FileFormat {
    /// The format a file name implies.
    pub fn from_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        match ext {
            "csv" | "txt" => Some(FileFormat::Csv),
            "tsv" | "tab" => Some(FileFormat::Tsv),
            "json" | "ndjson" | "jsonl" => Some(FileFormat::Json),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// Per-table reader settings, from the registry's `source_options`. Unknown keys are
/// refused so a typo never silently falls back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderOptions {
    /// Forced format; by default taken from the file extension.
    pub format: Option<FileFormat>,
    /// Strings read as NULL in CSV/TSV.
    pub null_markers: Vec<String>,
    pub delimiter: Option<String>,
    pub header: Option<bool>,
    pub quote: Option<String>,
    /// Column name → DuckDB type, overriding inference.
    pub types: std::collections::BTreeMap<String, String>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            format: None,
            null_markers: ["", "NA", "N/A", "NULL"].into_iter().map(String::from).collect(),
            delimiter: None,
            header: None,
            quote: None,
            types: Default::default(),
        }
    }
}

impl ReaderOptions {
    pub fn from_json(v: Option<&serde_json::Value>) -> Result<ReaderOptions, ConnectorError> {
        crate::parse_options(v)
    }
}
