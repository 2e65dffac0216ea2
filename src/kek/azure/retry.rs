//! The async retry loop of Key Vault calls: [`RetryConfig`](crate::RetryConfig)
//! (the crate's one retry policy, `src/retry.rs`) applied to one
//! `get`/`wrapKey`/`unwrapKey`, with each attempt cut off after
//! `per_request_timeout`.
//!
//! What is retried is decided by the caller's classification of each
//! failure ([`AttemptError`]): for HTTP responses, the crate's one status
//! table (`src/http/status.rs`); connection and I/O errors and timeouts are
//! retried; credential failures never are.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, KekError, KekErrorKind};
use crate::retry::{fmt_duration, Backoff, RetryConfig};

use super::BACKEND;

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

/// A [`RetryConfig`] in use by one Key Vault client.
#[derive(Debug)]
pub(crate) struct Retrier {
    backoff: Backoff,
}

impl Retrier {
    pub(crate) fn new(config: RetryConfig) -> Retrier {
        Retrier {
            backoff: Backoff::new(config),
        }
    }

    pub(crate) fn config(&self) -> &RetryConfig {
        self.backoff.config()
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
        let start = Instant::now();
        let mut n: u32 = 0;
        loop {
            let limit = self.backoff.attempt_limit(start.elapsed());
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
            let wait = match self.backoff.next(n, elapsed, retry_after) {
                Ok(wait) => wait,
                Err(why) => {
                    return Err(KekError::new(
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
                    .into())
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;

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
