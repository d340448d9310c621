//! What analysts' workspaces send back: session transcripts and local notes.

use serde::{Deserialize, Serialize};

/// `POST /api/upload/sessions` and `/api/upload/local-md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uploaded {
    /// Always `uploaded`.
    pub status: String,
    /// The stored name (sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LocalMd {
    pub content: String,
}
