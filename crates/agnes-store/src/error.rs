use thiserror::Error;

/// Everything that can go wrong in the state store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "the state database is at schema version {found}, newer than this agnes supports ({supported}); \
         upgrade agnes or restore a backup — the database was not modified"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("corrupt value in column {column}: {message}")]
    Corrupt { column: &'static str, message: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;
