//! What every remote source shares: why a query is refused before it reaches the source,
//! the limits one remote run is held to, its answer and how it fails. The PostgreSQL and
//! BigQuery remote paths (`postgres::remote`, `bigquery::remote`) speak these, so the
//! server answers both alike.

use crate::ConnectorError;
use std::time::Duration;

pub mod sql;

/// Why a remote query is refused before it reaches its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not SQL of the source's dialect the parser understands.
    Invalid(String),
    /// Not one read-only SELECT (a write, DDL, several statements, `SELECT INTO`, …).
    NotSelect(String),
    /// A function outside what a remote query may call.
    Function(String),
    /// A relation that is not a remote table the caller may read. Its name is not told.
    Relation,
    /// A path the caller wrote (`dataset.table`, `` `project.dataset.table` ``) that is
    /// not a registered remote table they may read; the path is theirs, so it is told.
    Path(String),
}

/// Limits of one remote query.
#[derive(Debug, Clone, Copy)]
pub struct RemoteLimits {
    pub timeout: Duration,
    pub max_rows: usize,
    pub max_bytes: usize,
}

/// A remote query's answer, as `/api/query` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteAnswer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub truncated: bool,
    /// The answer's size as the source sent it (JSON text).
    pub bytes: usize,
    /// What the source billed for it (BigQuery's bytes billed; 0 where nothing is billed).
    pub billed_bytes: u64,
}

#[derive(Debug)]
pub enum RemoteError {
    /// The time limit stopped it (the source's statement or job was cancelled).
    Timeout(Duration),
    /// The answer grew past `max_bytes`.
    TooLarge(usize),
    /// The source's own estimate says the query would scan more than the cap allows; it
    /// did not run.
    ScanTooLarge { scan_bytes: u64, limit_bytes: u64 },
    /// The source refused the SQL (an unknown column, a type error…): the caller's to fix.
    Sql(String),
    /// The source failed (unreachable, …).
    Source(ConnectorError),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Timeout(t) => {
                write!(f, "the query did not finish within {} s and was cancelled at the source", t.as_secs())
            }
            RemoteError::TooLarge(limit) => write!(f, "the answer is larger than the limit of {limit} bytes"),
            RemoteError::ScanTooLarge { scan_bytes, limit_bytes } => {
                write!(f, "the query would scan {scan_bytes} bytes, over the cap of {limit_bytes}")
            }
            RemoteError::Sql(m) => write!(f, "{m}"),
            RemoteError::Source(e) => write!(f, "{e}"),
        }
    }
}

impl From<RemoteError> for ConnectorError {
    fn from(e: RemoteError) -> ConnectorError {
        match e {
            RemoteError::Source(e) => e,
            other => ConnectorError::Source(other.to_string()),
        }
    }
}

impl From<ConnectorError> for RemoteError {
    fn from(e: ConnectorError) -> RemoteError {
        RemoteError::Source(e)
    }
}
