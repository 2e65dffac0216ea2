//! Retries for Key Vault calls: [`RetryConfig`], jittered exponential
//! backoff that honours `Retry-After`, a per-request timeout and a total
//! time budget.
//!
//! This is the **only** retry layer: the Azure SDK pipeline is built with
//! its own retry policy turned off (`RetryOptions::none()`). Two layers
//! would multiply (the SDK's default of several retries inside each of ours)
//! and blow through any time budget the caller set; one layer keeps
//! `max_retries` and `max_total_time` exact.
//!
//! What is retried: HTTP 408, 429 and 5xx other than 501/505, connection
//! errors, I/O errors and per-request timeouts. Never retried: 401, 403,
//! 404, other 4xx, credential failures, and anything that is not a
//! transport problem.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, KekError, KekErrorKind};

use super::BACKEND;

/// How Key Vault calls are retried.
///
/// Defaults (documented, and what [`RetryConfig::default`] returns):
///
/// | field | default |
/// |---|---|
/// | `max_retries` | 6 (so at most 7 attempts) |
/// | `initial_backoff` | 200 ms |
/// | `max_backoff` | 10 s |
/// | `max_total_time` | 60 s (all attempts and waits together) |
/// | `per_request_timeout` | 15 s (one HTTP round trip, including the token fetch and the first challenge) |
/// | `seed` | `None` (jitter from a per-process random seed) |
///
/// Attempt *n* (from 0) that fails retryably waits a random duration in
/// `[b/2, b]` with `b = min(max_backoff, initial_backoff · 2ⁿ)` ("equal
/// jitter"), or the server's `Retry-After` / `retry-after-ms` /
/// `x-ms-retry-after-ms` if that is longer. When the wait would end past
/// `max_total_time`, or `max_retries` is used up, the call fails with a
/// retryable [`Error::Kek`] that says how many attempts were made and why
/// the last one failed.
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
    /// Upper bound on one attempt.
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

/// The outcome of one failed attempt.
pub(crate) enum AttemptError {
    /// Give up now with this error.
    Fatal(Error),
    /// Worth another attempt.
    Retryable {
        kind: KekErrorKind,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl fmt::Debug for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Fatal(e) => write!(f, "Fatal({e})"),
            AttemptError::Retryable { kind, message, .. } => {
                write!(f, "Retryable({kind}: {message})")
            }
        }
    }
}

/// What a retried call did, for its tracing span.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) attempts: u32,
}

/// A [`RetryConfig`] in use: the config plus the jitter generator (a
/// SplitMix64 sequence advanced atomically, so it is shared by every task).
#[derive(Debug)]
pub(crate) struct Retrier {
    config: RetryConfig,
    state: AtomicU64,
}

impl Retrier {
    pub(crate) fn new(config: RetryConfig) -> Retrier {
        let seed = config.seed.unwrap_or_else(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x006b_7672_6574_7279);
            h.finish()
        });
        Retrier {
            config,
            state: AtomicU64::new(seed),
        }
    }

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

    /// Runs `attempt` until it succeeds, fails fatally, or the budget is
    /// spent. Each attempt is cut off after `per_request_timeout` (or what
    /// is left of `max_total_time`, if less).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        what: &str,
        stats: &mut Stats,
        mut attempt: F,
    ) -> crate::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let cfg = &self.config;
        let start = Instant::now();
        let mut n: u32 = 0;
        loop {
            let remaining = cfg.max_total_time.saturating_sub(start.elapsed());
            let limit = cfg.per_request_timeout.min(remaining);
            stats.attempts = n + 1;
            let (kind, message, retry_after) = match tokio::time::timeout(limit, attempt()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(AttemptError::Fatal(e))) => return Err(e),
                Ok(Err(AttemptError::Retryable {
                    kind,
                    message,
                    retry_after,
                })) => (kind, message, retry_after),
                Err(_) => (
                    KekErrorKind::Transient,
                    format!("no response within {}", fmt_duration(limit)),
                    None,
                ),
            };
            let elapsed = start.elapsed();
            let give_up = |why: String| -> Error {
                KekError::new(
                    BACKEND,
                    kind,
                    format!(
                        "{what}: gave up after {} attempt{} in {} ({why}); last failure: {message}",
                        n + 1,
                        if n == 0 { "" } else { "s" },
                        fmt_duration(elapsed),
                    ),
                )
                .retryable(true)
                .into()
            };
            if n >= cfg.max_retries {
                return Err(give_up(format!(
                    "max_retries = {} reached",
                    cfg.max_retries
                )));
            }
            let wait = self.delay(n, retry_after);
            if elapsed + wait >= cfg.max_total_time {
                let why = match retry_after {
                    Some(ra) if ra >= wait => format!(
                        "the service asked to retry after {}, beyond max_total_time = {}",
                        fmt_duration(ra),
                        fmt_duration(cfg.max_total_time)
                    ),
                    _ => format!(
                        "max_total_time = {} reached",
                        fmt_duration(cfg.max_total_time)
                    ),
                };
                return Err(give_up(why));
            }
            tracing::debug!(
                attempt = n + 1,
                wait_ms = wait.as_millis() as u64,
                reason = %kind,
                detail = %message,
                "retrying Key Vault call"
            );
            tokio::time::sleep(wait).await;
            n += 1;
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
/// millisecond variants Key Vault also sends.
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
        let a = Retrier::new(c.clone());
        let b = Retrier::new(c);
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

    #[tokio::test]
    async fn gives_up_within_budget() {
        let r = Retrier::new(
            RetryConfig::default()
                .backoff(Duration::from_millis(5), Duration::from_millis(20))
                .max_retries(100)
                .max_total_time(Duration::from_millis(150))
                .seed(1),
        );
        let start = Instant::now();
        let mut stats = Stats::default();
        let e = r
            .run("wrap", &mut stats, || async {
                Err::<(), _>(AttemptError::Retryable {
                    kind: KekErrorKind::Transient,
                    message: "HTTP 503".into(),
                    retry_after: None,
                })
            })
            .await
            .unwrap_err();
        assert!(
            // The budget, plus timer slack (a sleep may overshoot).
            start.elapsed() < Duration::from_millis(150 + 50),
            "{:?}",
            start.elapsed()
        );
        assert!(e.is_retryable());
        let s = e.to_string();
        assert!(
            s.contains("gave up after") && s.contains("max_total_time") && s.contains("HTTP 503"),
            "{s}"
        );
        assert!(stats.attempts > 3);
    }
}
