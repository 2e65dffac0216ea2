//! Header-only re-wrapping: the same data key under new KEKs, body
//! untouched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};

use crate::error::Error;
use crate::format::{Header, MAX_KEYS};
use crate::kek::{KeyEncryptionKey, KeyResolver};

/// Returns a new header holding the same data key as `header`, wrapped by
/// each of `new_keks` (and nothing else). The body is untouched and stays
/// valid, because the body depends only on the data key.
///
/// This does not see the body, so it cannot check the key commitment: a
/// header whose entries wrap a key other than the body's yields a new header
/// that fails the commitment just as the old one did.
///
/// Cost: one unwrap (through `resolver`), then one wrap per new KEK.
pub async fn rewrap(
    header: &Header,
    resolver: &dyn KeyResolver,
    new_keks: &[Arc<dyn KeyEncryptionKey>],
) -> crate::Result<Header> {
    if new_keks.is_empty() || new_keks.len() > MAX_KEYS {
        return Err(Error::ApiMisuse(
            "a header needs 1 to 16 key-encryption keys",
        ));
    }
    let dek = super::decryptor::unwrap_data_key(header, resolver).await?;
    let mut keys = Vec::with_capacity(new_keks.len());
    for kek in new_keks {
        keys.push(kek.wrap_key(&dek).await?);
    }
    header.with_keys(keys)
}

/// Re-wraps many detached headers with at most `concurrency` in flight.
/// One failure does not stop the others: the result has one entry per
/// input, in input order. `progress(done, total)` is called after each
/// header.
pub async fn rewrap_batch(
    headers: &[Header],
    resolver: &dyn KeyResolver,
    new_keks: &[Arc<dyn KeyEncryptionKey>],
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Vec<crate::Result<Header>> {
    let total = headers.len();
    let done = AtomicUsize::new(0);
    let mut results: Vec<(usize, crate::Result<Header>)> = stream::iter(headers.iter().enumerate())
        .map(|(i, h)| {
            let done = &done;
            async move {
                let r = rewrap(h, resolver, new_keks).await;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                (i, r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
