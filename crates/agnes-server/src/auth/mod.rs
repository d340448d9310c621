//! Who is calling and what they may do: credentials (passwords, session JWTs, personal
//! access tokens), the default-deny authentication middleware, the one access check,
//! and rate limits of the sign-in endpoints.

pub mod access;
pub mod authenticate;
pub mod password;
pub mod pat;
pub mod ratelimit;
pub mod secret;
pub mod session;

use agnes_store::identity::User;
use std::net::IpAddr;

/// Authentication settings shared by handlers and the middleware.
pub struct AuthSettings {
    pub secret: Vec<u8>,
    /// Mark the session cookie `Secure` (the server is reached over HTTPS).
    pub cookie_secure: bool,
    pub rate_limit: ratelimit::RateLimiter,
    /// Serializes `POST /auth/bootstrap`.
    pub bootstrap_lock: tokio::sync::Mutex<()>,
    /// `--dev`: the seeded admin every request is signed in as.
    pub dev_user: Option<User>,
    pub trusted_proxies: Vec<IpAddr>,
}
