use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The registry row cannot be synced as configured.
    #[error("{0}")]
    Config(String),
    /// The source could not be read (a malformed file, a refused request…).
    #[error("{0}")]
    Source(String),
    /// Publishing the result failed; the previous data is untouched.
    #[error("{0}")]
    Engine(#[from] agnes_engine::EngineError),
}
