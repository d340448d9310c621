use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid identifier {0:?}: must match ^[a-zA-Z_][a-zA-Z0-9_]{{0,63}}$")]
    InvalidIdentifier(String),
    #[error("{0}")]
    Invalid(String),
    /// The sandbox refused the statement before running it.
    #[error("{0}")]
    NotAllowed(String),
    /// A scan's WHERE is not one predicate over the table's columns.
    #[error("{kind}: {details}")]
    Rejected { kind: &'static str, details: String },
    #[error("the query ran longer than its limit of {seconds} s and was stopped")]
    Timeout { seconds: f64 },
    #[error("the result is larger than the limit of {limit_bytes} bytes: select fewer columns or rows")]
    ResultTooLarge { limit_bytes: usize },
}

impl EngineError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io { action, path, source }
    }
}
