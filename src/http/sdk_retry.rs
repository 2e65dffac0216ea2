//! [`SdkRetryPolicy`]: the crate's [`RetryConfig`] as the retry step of an
//! Azure SDK HTTP pipeline, in place of the SDK's own policy, so that a
//! storage client retries exactly like the Key Vault backend: the same
//! schedule, budget and per-request timeout, and the same status table
//! ([`StatusKind`]).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, Request, RetryOptions};

use super::StatusKind;
use crate::retry::{fmt_duration, parse_retry_after, Backoff, RetryConfig};

/// Retries one HTTP request of an SDK client under a [`RetryConfig`].
///
/// It retries responses whose status the table marks retryable (408, 429,
/// 5xx but 501 and 505), connection and I/O errors, and attempts cut off
/// by `per_request_timeout`; when the budget is spent it returns the last
/// response or error, which the SDK then turns into its error. Every other
/// response, success or not, is returned at once.
#[derive(Debug)]
pub(crate) struct SdkRetryPolicy {
    backoff: Backoff,
}

impl SdkRetryPolicy {
    /// Turns the SDK's retry policy of `options` off and puts one following
    /// `config` last among the per-call policies: it wraps every attempt
    /// (authentication included), and a per-call policy of the caller sees
    /// each call once.
    pub(crate) fn install(options: &mut ClientOptions, config: RetryConfig) {
        options.retry = RetryOptions::none();
        options.per_call_policies.push(Arc::new(SdkRetryPolicy {
            backoff: Backoff::new(config),
        }));
    }
}

// `Context` is spelled without its lifetime, as the trait declares it (an
// explicit `'_` would make the lifetime early-bound and not match).
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl Policy for SdkRetryPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let start = Instant::now();
        let mut n: u32 = 0;
        loop {
            if n > 0 {
                request.body_mut().reset().await?;
            }
            let limit = self.backoff.attempt_limit(start.elapsed());
            let attempt = next[0].send(ctx, request, &next[1..]);
            let (last, retry_after) = match tokio::time::timeout(limit, attempt).await {
                Ok(Ok(response)) => {
                    if !StatusKind::of(u16::from(response.status())).is_retryable() {
                        return Ok(response);
                    }
                    let h = response.headers();
                    let retry_after = parse_retry_after(
                        h.get_optional_str(&RETRY_AFTER),
                        h.get_optional_str(&RETRY_AFTER_MS)
                            .or_else(|| h.get_optional_str(&X_MS_RETRY_AFTER_MS)),
                    );
                    (Ok(response), retry_after)
                }
                Ok(Err(e)) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection) => {
                    (Err(e), None)
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let message = format!("no response within {}", fmt_duration(limit));
                    (
                        Err(azure_core::Error::with_message(ErrorKind::Io, message)),
                        None,
                    )
                }
            };
            match self.backoff.next(n, start.elapsed(), retry_after) {
                Ok(wait) => {
                    drop(last);
                    tracing::debug!(
                        attempt = n + 1,
                        wait_ms = wait.as_millis() as u64,
                        "retrying Azure Storage request"
                    );
                    tokio::time::sleep(wait).await;
                    n += 1;
                }
                Err(_) => return last,
            }
        }
    }
}
