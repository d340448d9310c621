//! Client commands that talk to an agnes server.

pub mod admin;
pub mod auth;
pub mod discover;
pub mod hybrid;
pub mod init;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod pull;
pub mod push;
pub mod query;
pub mod registry;
pub mod snapshot;
