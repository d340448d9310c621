//! Per-IP rate limits of the auth endpoints (spec §3.2: token and login 10/min,
//! bootstrap 3/min). A sliding window in memory: limits protect against guessing, and
//! losing the window on restart only resets a minute of counting.

use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct RateLimiter {
    enabled: bool,
    window: Duration,
    hits: Mutex<HashMap<(&'static str, String), VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Enabled unless `AGNES_AUTH_RATELIMIT_ENABLED=0` (tests switch it off).
    pub fn from_env() -> RateLimiter {
        let enabled = !matches!(std::env::var("AGNES_AUTH_RATELIMIT_ENABLED").as_deref(), Ok("0" | "false" | "no"));
        RateLimiter { enabled, window: Duration::from_secs(60), hits: Mutex::new(HashMap::new()) }
    }

    /// Count a hit on `bucket` from `ip`; refuse it when the last minute already holds
    /// `per_minute` hits.
    pub fn check(&self, bucket: &'static str, ip: &str, per_minute: usize) -> Result<(), RateLimited> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut hits = self.hits.lock();
        if hits.len() > 10_000 {
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let q = hits.entry((bucket, ip.to_string())).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            q.pop_front();
        }
        if q.len() >= per_minute {
            let retry_after = self.window.saturating_sub(now.duration_since(q[0])).as_secs().max(1);
            return Err(RateLimited { per_minute, retry_after });
        }
        q.push_back(now);
        Ok(())
    }
}

/// A refused request: answered 429 with `Retry-After`.
#[derive(Debug)]
pub struct RateLimited {
    per_minute: usize,
    retry_after: u64,
}

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let detail = format!("Rate limit exceeded: {} per minute", self.per_minute);
        let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail).into_response();
        r.headers_mut().insert("retry-after", HeaderValue::from(self.retry_after));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_bucket_and_ip() {
        let rl = RateLimiter { enabled: true, window: Duration::from_secs(60), hits: Mutex::new(HashMap::new()) };
        for _ in 0..3 {
            rl.check("bootstrap", "1.2.3.4", 3).unwrap();
        }
        let refused = rl.check("bootstrap", "1.2.3.4", 3).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key("retry-after"));
        rl.check("bootstrap", "5.6.7.8", 3).unwrap();
        rl.check("login", "1.2.3.4", 3).unwrap();
    }
}
