//! Limits that keep one client from hurting the server: token buckets and a deadline on every
//! request.
//!
//! Buckets are charged after authentication, by token: behind a proxy every client shares one
//! address, so an address says nothing about who is calling. Requests that fail authentication
//! all share one small bucket of their own, so anonymous traffic can neither guess tokens
//! quickly nor use up the bucket of a token holder such as Alertmanager.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many requests a caller may make: a burst, refilled at a steady rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_minute: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            burst: 10,
            per_minute: 60,
        }
    }
}

/// The bucket every unauthenticated request shares: small, so guessing is slow.
pub const ANONYMOUS: RateLimit = RateLimit {
    burst: 5,
    per_minute: 30,
};

/// Above this many tracked callers, buckets that have refilled are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// One token bucket per caller (a token's name).
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limit.per_minute) / 60.0
    }

    /// Takes one token for `caller`, or says how many seconds until one is available.
    pub fn check(&self, caller: &str, now: Instant) -> Result<(), u64> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = self.per_second();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(60);
        }
        Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
    }
}

/// The deadline of a request, from arrival to the response's head.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let limiter = RateLimiter::new(RateLimit {
            burst: 2,
            per_minute: 60,
        });
        let start = Instant::now();
        let client = "ops_write";
        assert!(limiter.check(client, start).is_ok());
        assert!(limiter.check(client, start).is_ok());
        assert_eq!(limiter.check(client, start), Err(1));
        // Another caller has its own bucket.
        assert!(limiter.check("alertmanager", start).is_ok());
        assert!(limiter
            .check(client, start + Duration::from_millis(1100))
            .is_ok());
        assert!(limiter
            .check(client, start + Duration::from_millis(1100))
            .is_err());
    }
}
