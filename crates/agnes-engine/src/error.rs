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
    /// Something agnes itself got wrong or could not do (not the caller's input).
    #[error("{0}")]
    Invalid(String),
    /// The caller's SQL does not parse.
    #[error("Query error: {0}")]
    InvalidSql(String),
    /// A request names something that is not there or not allowed (a column, an order).
    #[error("{0}")]
    InvalidRequest(String),
    /// The sandbox refused the statement before running it: not exactly one query.
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
    /// A stable name for this kind of failure, for clients and tests to tell apart a
    /// refusal from a mistake in the SQL from a failure of ours: `not_select`,
    /// `file_access_denied`, `invalid_sql`, `table_not_found`, `invalid_request`,
    /// `validator_rejected`, `query_timeout`, `result_too_large`, `out_of_memory`, `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::DuckDb(e) => duckdb_error_code(&e.to_string()),
            EngineError::InvalidSql(_) => "invalid_sql",
            EngineError::InvalidRequest(_) | EngineError::InvalidIdentifier(_) => "invalid_request",
            EngineError::NotAllowed(_) => "not_select",
            EngineError::Rejected { .. } => "validator_rejected",
            EngineError::Timeout { .. } => "query_timeout",
            EngineError::ResultTooLarge { .. } => "result_too_large",
            EngineError::Io { .. } | EngineError::Invalid(_) => "internal",
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io { action, path, source }
    }
}

/// The kind of a DuckDB error, from the error class DuckDB puts first in its message
/// (`Parser Error: …`, `Permission Error: …`); DuckDB's C API gives no other.
fn duckdb_error_code(message: &str) -> &'static str {
    let class = message.split(':').next().unwrap_or_default().trim();
    match class {
        // Reading a file or URL the connection may not open.
        "Permission Error" => "file_access_denied",
        "Catalog Error" if message.contains("Table with name") && message.contains("does not exist") => {
            "table_not_found"
        }
        "Parser Error"
        | "Syntax Error"
        | "Catalog Error"
        | "Binder Error"
        | "Conversion Error"
        | "Invalid Input Error"
        | "Out of Range Error"
        | "Not implemented Error"
        | "Constraint Error"
        | "Type Error"
        | "Mismatch Type Error"
        | "Dependency Error"
        | "Sequence Error"
        | "Invalid Error" => "invalid_sql",
        "Out of Memory Error" => "out_of_memory",
        "Interrupt Error" => "query_timeout",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn duckdb_errors_are_told_apart() {
        for (message, code) in [
            (
                "Permission Error: Cannot access file \"/etc/passwd\" - file system operations are disabled",
                "file_access_denied",
            ),
            ("Parser Error: syntax error at or near \"FROM\"", "invalid_sql"),
            ("Catalog Error: Table with name secret does not exist!\nDid you mean \"a\"?", "table_not_found"),
            ("Catalog Error: Scalar Function with name nope does not exist!", "invalid_sql"),
            ("Binder Error: Referenced column \"x\" not found", "invalid_sql"),
            ("Out of Memory Error: could not allocate block", "out_of_memory"),
            ("INTERNAL Error: Attempted to access index 3", "internal"),
            ("IO Error: No space left on device", "internal"),
        ] {
            assert_eq!(super::duckdb_error_code(message), code, "{message}");
        }
    }
}
