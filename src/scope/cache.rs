//! How an open scope caches and refreshes: the settings ([`CachePolicy`])
//! and the counters ([`CacheStats`]). The engine is in `state.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How an open [`EncryptionScope`](super::EncryptionScope) caches its
/// record and unwrapped scope keys, and how often it checks the store and
/// the CMK again.
///
/// Every bound below is safe for any value: `Duration::MAX` means "never"
/// (no overflow, no panic).
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// The revocation bound: how long the record read from the store and
    /// the scope keys the CMK unwrapped may be used without reading and
    /// asking again. Within it, every instance sees a destroy, a key or CMK
    /// rotation, or a CMK revocation made anywhere; after it, nothing is
    /// served on stale state. Default [`CachePolicy::DEFAULT_TTL`].
    pub ttl: Duration,
    /// Refresh ahead once this fraction of the TTL has passed (0.0–1.0,
    /// with ±5 % jitter so that replicas do not refresh in step): the next
    /// caller re-reads the record and re-unwraps the keys in use while
    /// everyone else keeps using the cached ones. Default 0.8.
    pub refresh_fraction: f64,
    /// How long a failed refresh (store or CMK) is remembered before it is
    /// retried. Default 1 s.
    pub failure_backoff: Duration,
    /// Most scope key versions held at once (least recently used evicted).
    /// Default 1024.
    pub max_entries: usize,
    /// The shortest interval between two store reads caused by headers
    /// naming a key version the cached record lacks (headers are untrusted,
    /// so this bounds the reads they can cause). Default 1 s.
    pub unknown_version_reread: Duration,
    /// How often, at most, a scope bound to a key that names no version
    /// asks the key's backend for its current version, to re-wrap the
    /// record under it (automatic key-version rotation; see
    /// [`KeyEncryptionKey::current_version`](crate::KeyEncryptionKey::current_version)).
    /// Default [`CachePolicy::DEFAULT_ROTATION_CHECK`].
    pub rotation_check_interval: Duration,
}

impl CachePolicy {
    /// The default TTL: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default interval of automatic key-version rotation checks:
    /// 1 hour.
    pub const DEFAULT_ROTATION_CHECK: Duration = Duration::from_secs(3600);
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: Self::DEFAULT_TTL,
            refresh_fraction: 0.8,
            failure_backoff: Duration::from_secs(1),
            max_entries: 1024,
            unknown_version_reread: Duration::from_secs(1),
            rotation_check_interval: Self::DEFAULT_ROTATION_CHECK,
        }
    }
}

/// Counters of an open scope, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Key lookups answered from the cache.
    pub hits: u64,
    /// Key lookups that had to fetch.
    pub misses: u64,
    /// Calls made to the CMK (unwraps of scope key versions).
    pub kms_calls: u64,
    /// Failed lookups (failed refreshes and back-off refusals).
    pub errors: u64,
    /// Reads of the scope record from the store (opening included).
    pub store_reads: u64,
    /// Automatic key-version rotations this instance wrote.
    pub rotations: u64,
    /// Automatic key-version rotations this instance lost to another
    /// instance's write (it adopted the winner's record instead).
    pub rotation_conflicts: u64,
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) kms_calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) store_reads: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) rotation_conflicts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: g(&self.hits),
            misses: g(&self.misses),
            kms_calls: g(&self.kms_calls),
            errors: g(&self.errors),
            store_reads: g(&self.store_reads),
            rotations: g(&self.rotations),
            rotation_conflicts: g(&self.rotation_conflicts),
        }
    }
}

/// Spreads refresh points over ±5 %: a xorshift on a seed drawn from the
/// CSPRNG (not cryptographic; it only keeps replicas out of step).
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let mut seed = [0u8; 8];
        let _ = crate::CryptoProvider::default_provider().fill_random(&mut seed);
        Jitter(AtomicU64::new(u64::from_le_bytes(seed) | 1))
    }

    /// A factor in [0.95, 1.05).
    pub(crate) fn factor(&self) -> f64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        0.95 + (x % 10_000) as f64 / 100_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let j = Jitter::new();
        for _ in 0..10_000 {
            let f = j.factor();
            assert!((0.95..1.05).contains(&f), "{f}");
        }
    }
}
