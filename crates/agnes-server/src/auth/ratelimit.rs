//! Per-IP rate limits of the auth endpoints (spec §3.2: token and login 10/min,
//! bootstrap 3/min), in memory with `governor` (GCRA: up to the limit at once, then one
//! more each 60/limit seconds). Limits protect against guessing; losing them on restart
//! only resets a minute of counting.

use crate::error::ApiError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

/// Past this many addresses a limiter forgets those whose limit has recovered.
const FORGET_AFTER: usize = 10_000;

/// One endpoint's limiter, keyed by client address.
type PerIp = Arc<DefaultKeyedRateLimiter<String>>;

pub struct RateLimiter {
    enabled: bool,
    /// One limiter per endpoint and limit, created on first use.
    buckets: Mutex<HashMap<(&'static str, u32), PerIp>>,
}

impl RateLimiter {
    /// Enabled unless `AGNES_AUTH_RATELIMIT_ENABLED=0` (tests switch it off).
    pub fn from_env() -> RateLimiter {
        let enabled = !matches!(std::env::var("AGNES_AUTH_RATELIMIT_ENABLED").as_deref(), Ok("0" | "false" | "no"));
        RateLimiter { enabled, buckets: Mutex::default() }
    }

    /// Count a hit on `bucket` from `ip`; refuse it when `ip` has used up `per_minute`.
    pub fn check(&self, bucket: &'static str, ip: &str, per_minute: u32) -> Result<(), RateLimited> {
        if !self.enabled {
            return Ok(());
        }
        let Some(rate) = NonZeroU32::new(per_minute) else { return Ok(()) };
        let limiter = self
            .buckets
            .lock()
            .entry((bucket, per_minute))
            .or_insert_with(|| Arc::new(DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate))))
            .clone();
        if limiter.len() > FORGET_AFTER {
            limiter.retain_recent();
        }
        limiter.check_key(&ip.to_string()).map_err(|not_until| RateLimited {
            per_minute,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1),
        })
    }
}

/// A refused request: answered 429 with `Retry-After`.
#[derive(Debug)]
pub struct RateLimited {
    per_minute: u32,
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
        let rl = RateLimiter { enabled: true, buckets: Mutex::default() };
        for _ in 0..3 {
            rl.check("bootstrap", "1.2.3.4", 3).unwrap();
        }
        let refused = rl.check("bootstrap", "1.2.3.4", 3).unwrap_err().into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=20).contains(&wait), "the next hit is due within 60/3 s: {wait}");
        rl.check("bootstrap", "5.6.7.8", 3).unwrap();
        rl.check("login", "1.2.3.4", 3).unwrap();
    }
}
