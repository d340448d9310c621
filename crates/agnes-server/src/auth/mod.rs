//! Who is calling and what they may do: credentials (passwords, session JWTs, personal
//! access tokens), the default-deny authentication middleware, the one access check,
//! and rate limits of the sign-in endpoints.

pub mod access;
pub mod authenticate;
pub mod mail;
pub mod oidc;
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
    /// When each user's `last_pull_at` was last written.
    pub recent_pulls: Throttle,
    /// The OpenID Connect providers people may sign in with.
    pub sso: oidc::Sso,
    /// SMTP for sign-in links (`SMTP_HOST`); `None`: not configured.
    pub mailer: Option<mail::Mailer>,
    /// `agnes auth login`'s one-time codes: code → (token, e-mail, issued at).
    pub cli_codes: parking_lot::Mutex<std::collections::HashMap<String, (String, String, std::time::Instant)>>,
}

/// "At most once a minute per key": keeps frequent, informational writes (such as
/// `users.last_pull_at` on every manifest fetch) off the hot path.
#[derive(Default)]
pub struct Throttle(parking_lot::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl Throttle {
    /// True when `key` was not seen in the last minute (and records it now).
    pub fn due(&self, key: &str) -> bool {
        let mut seen = self.0.lock();
        let now = std::time::Instant::now();
        match seen.get(key) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(60) => false,
            _ => {
                seen.insert(key.to_string(), now);
                true
            }
        }
    }
}
