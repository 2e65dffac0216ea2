//! [`RetryConfig`]: how every backend that talks to a remote service or a
//! device retries — Azure Key Vault, Azure Blob Storage, and PKCS#11 logins
//! — and the one schedule they share ([`Backoff`]): jittered exponential
//! backoff that honours a server's `Retry-After`, within a retry count and
//! a total time budget.
//!
//! Each backend is the **only** retry layer of its calls: the Azure SDK
//! pipelines are built with the SDK's own retry policy replaced. Two layers
//! would multiply (the SDK's default of several retries inside each of
//! ours) and blow through any budget the caller set; one layer keeps
//! `max_retries` and `max_total_time` exact.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How failed calls to a backend are retried.
///
/// Defaults (what [`RetryConfig::default`] returns):
///
/// | field | default |
/// |---|---|
/// | `max_retries` | 6 (so at most 7 attempts) |
/// | `initial_backoff` | 200 ms |
/// | `max_backoff` | 10 s |
/// | `max_total_time` | 60 s (all attempts and waits of one call together) |
/// | `per_request_timeout` | 15 s (one HTTP request, including its body and, for Key Vault, the token fetch) |
/// | `seed` | `None` (jitter from a per-process random seed) |
///
/// Attempt *n* (from 0) that fails retryably waits a random duration in
/// `[b/2, b]` with `b = min(max_backoff, initial_backoff · 2ⁿ)` ("equal
/// jitter"), or the server's `Retry-After` / `retry-after-ms` /
/// `x-ms-retry-after-ms` if that is longer. When the wait would end past
/// `max_total_time`, or `max_retries` is used up, the call fails with the
/// last failure, marked retryable.
///
/// What is retried:
///
/// * Key Vault ([`AzureKeyVaultKekBuilder::retry`](crate::kek::azure::AzureKeyVaultKekBuilder::retry))
///   and Blob Storage (`EncryptedBlobClientBuilder::retry`,
///   `BlobScopeStore::with_retry`, feature `blob`): HTTP 408, 429 and 5xx
///   other than 501 and 505 (one status table for both), connection and
///   I/O errors, and requests cut off by `per_request_timeout`. Never 401,
///   403, 404, other 4xx, or a failure to get a token.
/// * PKCS#11 ([`Pkcs11KekBuilder::retry`](crate::kek::pkcs11::Pkcs11KekBuilder::retry)):
///   opening a session and `C_Login` when the token fails transiently
///   (device or memory errors, too many sessions, a busy lock). Never a
///   PIN error: retrying a wrong PIN would lock the token.
///   `per_request_timeout` does not apply: a blocking PKCS#11 call cannot
///   be cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Largest backoff computed from the exponent (a longer `Retry-After` is
    /// still honoured, within `max_total_time`).
    pub max_backoff: Duration,
    /// Upper bound on the whole call: attempts plus waits.
    pub max_total_time: Duration,
    /// Upper bound on one attempt of an HTTP backend.
    pub per_request_timeout: Duration,
    /// Seed for the jitter, for deterministic tests; `None` picks a random
    /// one per process.
    pub seed: Option<u64>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_total_time: Duration::from_secs(60),
            per_request_timeout: Duration::from_secs(15),
            seed: None,
        }
    }
}

impl RetryConfig {
    /// Sets `max_retries`.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets `initial_backoff` and `max_backoff`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets `max_total_time`.
    pub fn max_total_time(mut self, d: Duration) -> Self {
        self.max_total_time = d;
        self
    }

    /// Sets `per_request_timeout`.
    pub fn per_request_timeout(mut self, d: Duration) -> Self {
        self.per_request_timeout = d;
        self
    }

    /// Sets the jitter seed (deterministic waits, for tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The un-jittered backoff before retry number `attempt` (from 0).
    pub fn base_backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A [`RetryConfig`] in use by one client: the config plus the jitter
/// generator (a SplitMix64 sequence advanced atomically, so every task of
/// the client shares it).
#[derive(Debug)]
pub(crate) struct Backoff {
    config: RetryConfig,
    state: AtomicU64,
}

impl Backoff {
    pub(crate) fn new(config: RetryConfig) -> Backoff {
        let seed = config.seed.unwrap_or_else(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x006b_7672_6574_7279);
            h.finish()
        });
        Backoff {
            config,
            state: AtomicU64::new(seed),
        }
    }

    #[cfg(feature = "azure")]
    pub(crate) fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// A uniform value in `[0, 1)`.
    fn unit(&self) -> f64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The wait before retry number `attempt` (from 0).
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let b = self.config.base_backoff(attempt);
        let jittered = b / 2 + b.mul_f64(0.5 * self.unit());
        match retry_after {
            Some(ra) => ra.max(jittered),
            None => jittered,
        }
    }

    /// The time limit of an attempt that starts `elapsed` into the call:
    /// `per_request_timeout`, or what is left of `max_total_time` if less.
    #[cfg(feature = "azure")]
    pub(crate) fn attempt_limit(&self, elapsed: Duration) -> Duration {
        let remaining = self.config.max_total_time.saturating_sub(elapsed);
        self.config.per_request_timeout.min(remaining)
    }

    /// After attempt `attempt` (from 0) failed retryably, `elapsed` into
    /// the call: the wait before the next attempt, or why to give up.
    pub(crate) fn next(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Result<Duration, GiveUp> {
        let cfg = &self.config;
        if attempt >= cfg.max_retries {
            return Err(GiveUp::MaxRetries(cfg.max_retries));
        }
        let wait = self.delay(attempt, retry_after);
        if elapsed + wait >= cfg.max_total_time {
            return Err(match retry_after {
                Some(ra) if ra >= wait => GiveUp::RetryAfterBeyondBudget(ra, cfg.max_total_time),
                _ => GiveUp::MaxTotalTime(cfg.max_total_time),
            });
        }
        Ok(wait)
    }

    /// Runs `attempt` on the calling thread until it succeeds, fails with
    /// an error `retryable` refuses, or the budget is spent (then the last
    /// error is returned); waits with `thread::sleep`, so call it from a
    /// blocking thread only.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn run_blocking<T, E>(
        &self,
        mut attempt: impl FnMut() -> Result<T, E>,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let start = std::time::Instant::now();
        let mut n = 0;
        loop {
            let e = match attempt() {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) => e,
                Err(e) => return Err(e),
            };
            match self.next(n, start.elapsed(), None) {
                Ok(wait) => std::thread::sleep(wait),
                Err(_) => return Err(e),
            }
            n += 1;
        }
    }
}

/// Why a retried call stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// Every retry was used.
    MaxRetries(u32),
    /// The next wait would end past the budget.
    MaxTotalTime(Duration),
    /// The service asked for a wait that ends past the budget.
    RetryAfterBeyondBudget(Duration, Duration),
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::MaxRetries(n) => write!(f, "max_retries = {n} reached"),
            GiveUp::MaxTotalTime(t) => {
                write!(f, "max_total_time = {} reached", fmt_duration(*t))
            }
            GiveUp::RetryAfterBeyondBudget(ra, t) => write!(
                f,
                "the service asked to retry after {}, beyond max_total_time = {}",
                fmt_duration(*ra),
                fmt_duration(*t)
            ),
        }
    }
}

/// `1.5s`, `250ms`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parses `Retry-After` (delay-seconds; an HTTP date is ignored) or the
/// millisecond variants Azure services also send.
#[cfg(feature = "azure")]
pub(crate) fn parse_retry_after(seconds: Option<&str>, millis: Option<&str>) -> Option<Duration> {
    if let Some(ms) = millis.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    seconds
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c =
            RetryConfig::default().backoff(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<_> = (0..5).map(|i| c.base_backoff(i).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        assert_eq!(c.base_backoff(200), Duration::from_millis(500));
    }

    #[test]
    fn jitter_is_bounded_and_seeded() {
        let c = RetryConfig::default()
            .backoff(Duration::from_millis(100), Duration::from_secs(10))
            .seed(7);
        let a = Backoff::new(c.clone());
        let b = Backoff::new(c);
        for i in 0..6 {
            let d = a.delay(i, None);
            assert_eq!(d, b.delay(i, None), "same seed, same waits");
            let base = Duration::from_millis(100) * (1 << i);
            assert!(d >= base / 2 && d <= base, "{d:?} vs {base:?}");
        }
        // Retry-After wins when longer, never shortens the backoff.
        assert_eq!(
            a.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(a.delay(5, Some(Duration::from_millis(1))) >= Duration::from_millis(1600));
    }

    #[test]
    fn gives_up_on_count_then_on_budget() {
        let b = Backoff::new(
            RetryConfig::default()
                .max_retries(2)
                .backoff(Duration::from_millis(100), Duration::from_millis(100))
                .max_total_time(Duration::from_secs(1))
                .seed(3),
        );
        assert!(b.next(0, Duration::ZERO, None).is_ok());
        assert!(b.next(1, Duration::ZERO, None).is_ok());
        assert_eq!(b.next(2, Duration::ZERO, None), Err(GiveUp::MaxRetries(2)));
        assert_eq!(
            b.next(0, Duration::from_millis(990), None),
            Err(GiveUp::MaxTotalTime(Duration::from_secs(1)))
        );
        assert_eq!(
            b.next(0, Duration::ZERO, Some(Duration::from_secs(5))),
            Err(GiveUp::RetryAfterBeyondBudget(
                Duration::from_secs(5),
                Duration::from_secs(1)
            ))
        );
    }

    #[cfg(feature = "azure")]
    #[test]
    fn retry_after_parsing() {
        assert_eq!(
            parse_retry_after(Some("2"), None),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse_retry_after(Some("2"), Some("150")),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            None
        );
        assert_eq!(parse_retry_after(Some("-1"), None), None);
        assert_eq!(parse_retry_after(None, None), None);
    }

    #[cfg(feature = "pkcs11")]
    #[test]
    fn blocking_retries_only_what_is_retryable_within_the_bound() {
        let b = Backoff::new(
            RetryConfig::default()
                .max_retries(3)
                .backoff(Duration::from_millis(1), Duration::from_millis(2))
                .seed(1),
        );
        let mut calls = 0;
        let r: Result<u32, &str> = b.run_blocking(
            || {
                calls += 1;
                if calls < 3 {
                    Err("busy")
                } else {
                    Ok(7)
                }
            },
            |e| *e == "busy",
        );
        assert_eq!((r, calls), (Ok(7), 3));
        let mut calls = 0;
        let r: Result<(), &str> = b.run_blocking(
            || {
                calls += 1;
                Err("busy")
            },
            |e| *e == "busy",
        );
        assert_eq!((r, calls), (Err("busy"), 4), "1 attempt + max_retries");
        let mut calls = 0;
        let r: Result<(), &str> = b.run_blocking(
            || {
                calls += 1;
                Err("wrong pin")
            },
            |e| *e == "busy",
        );
        assert_eq!((r, calls), (Err("wrong pin"), 1), "never retried");
    }
}
