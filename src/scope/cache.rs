//! The cache of unwrapped scope keys.
//!
//! * **TTL** per entry (default [`CachePolicy::DEFAULT_TTL`], 5 minutes):
//!   after it, the CMK must be asked again. This bounds how long a revoked,
//!   disabled or deleted CMK keeps a scope readable.
//! * **Refresh ahead**: once an entry is older than `refresh_fraction` of
//!   its TTL (with ±5 % jitter so that replicas do not refresh in step), the
//!   next caller to touch it re-fetches it; everyone else keeps using the
//!   cached key meanwhile, so a hot scope never stalls at the TTL boundary.
//!   A failed refresh keeps the old key until its TTL ends, never beyond.
//! * **Single flight**: concurrent misses on one key make one CMK call; the
//!   others wait for it.
//! * **Failures** are remembered for a short back-off
//!   ([`CachePolicy::failure_backoff`], default 1 s) and then retried;
//!   they are never cached beyond it.
//! * **Bounded**: at most `max_entries` keys (least recently used evicted).
//!   Keys are zeroized when the last user drops them.
//! * **Counters** ([`CacheStats`]) for metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::lock::Mutex as AsyncMutex;
use zeroize::Zeroizing;

use crate::error::{Error, KekError, KekErrorKind};

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    /// How long an unwrapped scope key may be used without asking the CMK
    /// again. This is the revocation bound.
    pub ttl: Duration,
    /// Refresh once an entry is this fraction of its TTL old (0.0–1.0).
    pub refresh_fraction: f64,
    /// How long a failed CMK call is remembered before it is retried.
    pub failure_backoff: Duration,
    /// Most keys held at once.
    pub max_entries: usize,
}

impl CachePolicy {
    /// The default TTL: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: Self::DEFAULT_TTL,
            refresh_fraction: 0.8,
            failure_backoff: Duration::from_secs(1),
            max_entries: 1024,
        }
    }
}

/// Cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to fetch.
    pub misses: u64,
    /// Calls made to the CMK (fetches and refreshes).
    pub kms_calls: u64,
    /// Failed lookups (failed fetches and back-off refusals).
    pub errors: u64,
}

/// An unwrapped 256-bit scope key, zeroized on drop.
pub(crate) type ScopeSecret = Arc<Zeroizing<[u8; 32]>>;

#[derive(Clone)]
struct Entry {
    key: ScopeSecret,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct Slot {
    entry: Option<Entry>,
    failed_until: Option<Instant>,
    last_used: u64,
    fetch: Arc<AsyncMutex<()>>,
}

enum Probe {
    Hit(ScopeSecret),
    Refresh(futures_util::lock::OwnedMutexGuard<()>, ScopeSecret),
    Miss(Arc<AsyncMutex<()>>),
    BackingOff,
}

/// The cache. Keyed by `(scope id, version)`.
pub(crate) struct KeyCache {
    policy: CachePolicy,
    slots: Mutex<HashMap<(String, u32), Slot>>,
    tick: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    kms_calls: AtomicU64,
    errors: AtomicU64,
    jitter_seed: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish()
    }
}

impl KeyCache {
    pub(crate) fn new(policy: CachePolicy) -> Self {
        let mut seed = [0u8; 8];
        let _ = crate::CryptoProvider::default_provider().fill_random(&mut seed);
        KeyCache {
            policy,
            slots: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            kms_calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            jitter_seed: AtomicU64::new(u64::from_le_bytes(seed) | 1),
        }
    }

    pub(crate) fn policy(&self) -> &CachePolicy {
        &self.policy
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            kms_calls: self.kms_calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// A factor in [0.95, 1.05).
    fn jitter(&self) -> f64 {
        // xorshift on a shared seed: not cryptographic, only spreads refreshes.
        let mut x = self.jitter_seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_seed.store(x, Ordering::Relaxed);
        0.95 + (x % 10_000) as f64 / 100_000.0
    }

    fn new_entry(&self, key: ScopeSecret) -> Entry {
        let now = Instant::now();
        let ttl = self.policy.ttl;
        let refresh = ttl.mul_f64((self.policy.refresh_fraction * self.jitter()).clamp(0.0, 1.0));
        Entry {
            key,
            refresh_at: now + refresh,
            expires_at: now + ttl,
        }
    }

    /// Drops every cached key of `scope_id` (after a rotation or a
    /// destruction).
    pub(crate) fn invalidate(&self, scope_id: &str) {
        self.slots
            .lock()
            .expect("cache lock")
            .retain(|(s, _), _| s != scope_id);
    }

    fn backoff_error(scope_id: &str) -> Error {
        KekError::new(
            "scope",
            KekErrorKind::KeyUnavailable,
            format!("scope `{scope_id}`: the customer-managed key failed recently; not retrying until the back-off ends"),
        )
        .into()
    }

    /// The synchronous first look at a slot.
    fn probe(&self, id: &(String, u32)) -> Probe {
        let mut slots = self.slots.lock().expect("cache lock");
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let slot = slots.entry(id.clone()).or_default();
        slot.last_used = tick;
        match &slot.entry {
            Some(e) if now < e.expires_at => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                if now < e.refresh_at {
                    return Probe::Hit(e.key.clone());
                }
                // Due for refresh: one caller refreshes, the rest go on.
                match slot.fetch.clone().try_lock_owned() {
                    Some(guard) => Probe::Refresh(guard, e.key.clone()),
                    None => Probe::Hit(e.key.clone()),
                }
            }
            _ if slot.failed_until.is_some_and(|t| now < t) => Probe::BackingOff,
            _ => Probe::Miss(slot.fetch.clone()),
        }
    }

    /// After winning the single-flight lock: did someone else fill the slot?
    fn recheck(&self, id: &(String, u32)) -> Option<Probe> {
        let mut slots = self.slots.lock().expect("cache lock");
        let slot = slots.entry(id.clone()).or_default();
        let now = Instant::now();
        if let Some(e) = slot.entry.as_ref().filter(|e| now < e.expires_at) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Some(Probe::Hit(e.key.clone()));
        }
        if slot.failed_until.is_some_and(|t| now < t) {
            return Some(Probe::BackingOff);
        }
        None
    }

    /// Records the outcome of a CMK call.
    fn store(&self, id: (String, u32), result: &crate::Result<ScopeSecret>) {
        let mut slots = self.slots.lock().expect("cache lock");
        match result {
            Ok(key) => {
                let entry = self.new_entry(key.clone());
                let slot = slots.entry(id).or_default();
                slot.entry = Some(entry);
                slot.failed_until = None;
            }
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let slot = slots.entry(id).or_default();
                slot.failed_until = Some(Instant::now() + self.policy.failure_backoff);
            }
        }
        self.evict(&mut slots);
    }

    /// Returns the key for `(scope_id, version)`, calling `fetch` (one CMK
    /// unwrap) when it is missing, expired, or due for refresh.
    pub(crate) async fn get<F, Fut>(
        &self,
        scope_id: &str,
        version: u32,
        fetch: F,
    ) -> crate::Result<ScopeSecret>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = crate::Result<Zeroizing<[u8; 32]>>>,
    {
        let id = (scope_id.to_owned(), version);
        let backoff = || {
            self.errors.fetch_add(1, Ordering::Relaxed);
            Err(Self::backoff_error(scope_id))
        };
        let (guard, refresh_of) = match self.probe(&id) {
            Probe::Hit(k) => return Ok(k),
            Probe::BackingOff => return backoff(),
            Probe::Refresh(guard, old) => (guard, Some(old)),
            Probe::Miss(lock) => {
                // Single flight: wait for whoever is fetching, then look again.
                let guard = lock.lock_owned().await;
                match self.recheck(&id) {
                    Some(Probe::Hit(k)) => return Ok(k),
                    Some(_) => return backoff(),
                    None => {}
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
                (guard, None)
            }
        };
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let result = fetch().await.map(Arc::new);
        self.store(id, &result);
        drop(guard);
        match (result, refresh_of) {
            (Ok(k), _) => Ok(k),
            // A failed refresh: keep serving the old key until its TTL ends.
            (Err(_), Some(old)) => Ok(old),
            (Err(e), None) => Err(e),
        }
    }

    fn evict(&self, slots: &mut HashMap<(String, u32), Slot>) {
        while slots.len() > self.policy.max_entries.max(1) {
            let victim = slots
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    slots.remove(&k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollster::block_on;

    fn key(b: u8) -> crate::Result<Zeroizing<[u8; 32]>> {
        Ok(Zeroizing::new([b; 32]))
    }

    #[test]
    fn hit_miss_and_ttl() {
        let c = KeyCache::new(CachePolicy {
            ttl: Duration::from_millis(80),
            refresh_fraction: 1.0,
            ..Default::default()
        });
        let k = block_on(c.get("s", 1, || async { key(1) })).unwrap();
        assert_eq!(k[0], 1);
        let k = block_on(c.get("s", 1, || async { key(2) })).unwrap();
        assert_eq!(k[0], 1, "served from cache");
        assert_eq!(
            c.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                kms_calls: 1,
                errors: 0
            }
        );
        std::thread::sleep(Duration::from_millis(100));
        let k = block_on(c.get("s", 1, || async { key(3) })).unwrap();
        assert_eq!(k[0], 3, "refetched after the TTL");
    }

    #[test]
    fn failures_back_off_then_retry() {
        let c = KeyCache::new(CachePolicy {
            failure_backoff: Duration::from_millis(50),
            ..Default::default()
        });
        let fail = || async { Err(Error::ApiMisuse("down")) };
        assert!(matches!(
            block_on(c.get("s", 1, fail)),
            Err(Error::ApiMisuse(_))
        ));
        // during the back-off: refused without a call
        assert!(matches!(
            block_on(c.get("s", 1, || async { key(1) })),
            Err(Error::Kek(_))
        ));
        assert_eq!(c.stats().kms_calls, 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(block_on(c.get("s", 1, || async { key(1) })).is_ok());
    }

    #[test]
    fn lru_bound() {
        let c = KeyCache::new(CachePolicy {
            max_entries: 2,
            ..Default::default()
        });
        for v in 1..=3 {
            block_on(c.get("s", v, || async { key(v as u8) })).unwrap();
        }
        assert_eq!(c.slots.lock().unwrap().len(), 2);
        assert!(!c.slots.lock().unwrap().contains_key(&("s".to_string(), 1)));
    }
}
