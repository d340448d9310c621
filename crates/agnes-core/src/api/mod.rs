//! Wire types of the HTTP contract: the server answers with them, the CLI (and the web UI
//! and MCP) read them, and (feature `openapi`) the server's OpenAPI schemas derive from
//! them. One module per area of the API, re-exported flat.

mod catalog;
mod identity;
mod jira;
mod knowledge;
mod meta;
mod registry;
mod sql;
mod sync;
mod workspace;

pub use catalog::*;
pub use identity::*;
pub use jira::*;
pub use knowledge::*;
pub use meta::*;
pub use registry::*;
pub use sql::*;
pub use sync::*;
pub use workspace::*;

/// For patch fields: absent is `None` (keep), `null` is `Some(None)` (clear).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
