//! Credentials: the signing secret, password hashes and personal access tokens.

pub mod password;
pub mod pat;
pub mod secret;
