//! A TTL cache of unwrapped 256-bit keys, keyed by `(id, generation)`,
//! under the rules of [`CachePolicy`]: for keys that are unwrapped one by
//! one, each on its own schedule (the client encryption keys of
//! `cosmos_ae`). An encryption scope's own keys follow its record instead,
//! one window for the scope (`state.rs`).
//!
//! * **TTL** per entry: after it, the key must be unwrapped again. This
//!   bounds how long a revoked, disabled or deleted KEK keeps data
//!   readable.
//! * **Refresh ahead**: once an entry is older than `refresh_fraction` of
//!   its TTL (±5 % jitter), the next caller to touch it re-fetches it;
//!   everyone else keeps using the cached key meanwhile. A failed refresh
//!   keeps the old key until its TTL ends, never beyond, and is retried
//!   only after the back-off.
//! * **Single flight**: concurrent misses on one key make one KEK call.
//! * **Failures** are remembered for [`CachePolicy::failure_backoff`] and
//!   then retried.
//! * **Bounded**: at most `max_entries` keys (least recently used evicted).
//!   Keys are zeroized when the last user drops them.
//! * Every duration may be `Duration::MAX` (saturating arithmetic).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::lock::{Mutex as AsyncMutex, OwnedMutexGuard};
use zeroize::Zeroizing;

use super::cache::{CachePolicy, CacheStats, Counters, Jitter};
use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::lease::clock;

/// An unwrapped 256-bit key, zeroized on drop.
pub(crate) type ScopeSecret = Arc<Zeroizing<[u8; 32]>>;

#[derive(Clone)]
struct Entry {
    key: ScopeSecret,
    refresh_at: u64,
    expires_at: u64,
}

#[derive(Default)]
struct Slot {
    entry: Option<Entry>,
    failed_until: u64,
    last_used: u64,
    fetch: Arc<AsyncMutex<()>>,
}

enum Probe {
    Hit(ScopeSecret),
    Refresh(OwnedMutexGuard<()>, Entry),
    Miss(Arc<AsyncMutex<()>>),
    BackingOff,
}

/// The cache. Keyed by `(id, generation)`.
pub(crate) struct KeyCache {
    policy: CachePolicy,
    slots: Mutex<HashMap<(String, u32), Slot>>,
    tick: AtomicU64,
    counters: Counters,
    jitter: Jitter,
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
        KeyCache {
            policy,
            slots: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            counters: Counters::default(),
            jitter: Jitter::new(),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_entry(&self, key: ScopeSecret) -> Entry {
        let now = clock::now();
        let ttl = self.policy.ttl;
        let f = (self.policy.refresh_fraction * self.jitter.factor()).clamp(0.0, 1.0);
        let f = if f.is_nan() { 1.0 } else { f };
        let ahead = Duration::try_from_secs_f64(ttl.as_secs_f64() * f).unwrap_or(ttl);
        Entry {
            key,
            refresh_at: clock::after(now, ahead),
            expires_at: clock::after(now, ttl),
        }
    }

    /// Drops every cached key of `id` (after a rotation or a destruction).
    pub(crate) fn invalidate(&self, id: &str) {
        self.lock().retain(|(s, _), _| s != id);
    }

    fn backoff_error(id: &str) -> Error {
        KekError::new(
            "scope",
            KekErrorKind::KeyUnavailable,
            format!("`{id}`: the key-encryption key failed recently; not retrying until the back-off ends"),
        )
        .into()
    }

    /// The synchronous first look at a slot.
    fn probe(&self, id: &(String, u32)) -> Probe {
        let mut slots = self.lock();
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        let now = clock::now();
        let slot = slots.entry(id.clone()).or_default();
        slot.last_used = tick;
        let backing_off = now < slot.failed_until;
        match &slot.entry {
            Some(e) if now < e.expires_at => {
                Counters::bump(&self.counters.hits);
                if now < e.refresh_at || backing_off {
                    return Probe::Hit(e.key.clone());
                }
                // Due for refresh: one caller refreshes, the rest go on.
                match slot.fetch.clone().try_lock_owned() {
                    Some(guard) => Probe::Refresh(guard, e.clone()),
                    None => Probe::Hit(e.key.clone()),
                }
            }
            _ if backing_off => Probe::BackingOff,
            _ => Probe::Miss(slot.fetch.clone()),
        }
    }

    /// After winning the single-flight lock: did someone else fill the slot?
    fn recheck(&self, id: &(String, u32)) -> Option<Probe> {
        let mut slots = self.lock();
        let slot = slots.entry(id.clone()).or_default();
        let now = clock::now();
        if let Some(e) = slot.entry.as_ref().filter(|e| now < e.expires_at) {
            Counters::bump(&self.counters.hits);
            return Some(Probe::Hit(e.key.clone()));
        }
        if now < slot.failed_until {
            return Some(Probe::BackingOff);
        }
        None
    }

    /// Records the outcome of a KEK call.
    fn store(&self, id: (String, u32), result: &crate::Result<ScopeSecret>) {
        let mut slots = self.lock();
        match result {
            Ok(key) => {
                let entry = self.new_entry(key.clone());
                let slot = slots.entry(id).or_default();
                slot.entry = Some(entry);
                slot.failed_until = 0;
            }
            Err(_) => {
                Counters::bump(&self.counters.errors);
                let slot = slots.entry(id).or_default();
                slot.failed_until = clock::after(clock::now(), self.policy.failure_backoff);
            }
        }
        self.evict(&mut slots);
    }

    /// Returns the key for `(id, generation)`, calling `fetch` (one KEK
    /// unwrap) when it is missing, expired, or due for refresh.
    pub(crate) async fn get<F, Fut>(
        &self,
        id: &str,
        generation: u32,
        fetch: F,
    ) -> crate::Result<ScopeSecret>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = crate::Result<Zeroizing<[u8; 32]>>>,
    {
        let slot_id = (id.to_owned(), generation);
        let backoff = || {
            Counters::bump(&self.counters.errors);
            Err(Self::backoff_error(id))
        };
        let (guard, refresh_of) = match self.probe(&slot_id) {
            Probe::Hit(k) => return Ok(k),
            Probe::BackingOff => return backoff(),
            Probe::Refresh(guard, old) => (guard, Some(old)),
            Probe::Miss(lock) => {
                // Single flight: wait for whoever is fetching, then look again.
                let guard = lock.lock_owned().await;
                match self.recheck(&slot_id) {
                    Some(Probe::Hit(k)) => return Ok(k),
                    Some(_) => return backoff(),
                    None => {}
                }
                Counters::bump(&self.counters.misses);
                (guard, None)
            }
        };
        Counters::bump(&self.counters.kms_calls);
        let result = fetch().await.map(Arc::new);
        self.store(slot_id, &result);
        drop(guard);
        match (result, refresh_of) {
            (Ok(k), _) => Ok(k),
            // A failed refresh: the old key until its TTL ends, never beyond
            // (the call may have taken longer than what was left of it).
            (Err(_), Some(old)) if clock::now() < old.expires_at => Ok(old.key),
            (Err(e), _) => Err(e),
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
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.kms_calls, s.errors), (1, 1, 1, 0));
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
    fn a_failed_refresh_never_serves_past_the_ttl() {
        let c = KeyCache::new(CachePolicy {
            ttl: Duration::from_millis(60),
            refresh_fraction: 0.1,
            failure_backoff: Duration::from_millis(5),
            ..Default::default()
        });
        block_on(c.get("s", 1, || async { key(1) })).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        // due for refresh; the KEK call fails slowly, past the TTL
        let slow_failure = || async {
            std::thread::sleep(Duration::from_millis(70));
            Err(Error::ApiMisuse("down"))
        };
        assert!(block_on(c.get("s", 1, slow_failure)).is_err());
        // a quick failure within the TTL keeps the old key
        let c = KeyCache::new(CachePolicy {
            ttl: Duration::from_secs(60),
            refresh_fraction: 0.0,
            ..Default::default()
        });
        block_on(c.get("s", 1, || async { key(1) })).unwrap();
        let k = block_on(c.get("s", 1, || async { Err(Error::ApiMisuse("down")) })).unwrap();
        assert_eq!(k[0], 1);
        // and does not retry at every call during the back-off
        block_on(c.get("s", 1, || async { Err(Error::ApiMisuse("down")) })).unwrap();
        assert_eq!(c.stats().kms_calls, 2);
    }

    #[test]
    fn maximal_durations_do_not_overflow() {
        let c = KeyCache::new(CachePolicy {
            ttl: Duration::MAX,
            failure_backoff: Duration::MAX,
            ..Default::default()
        });
        block_on(c.get("s", 1, || async { key(1) })).unwrap();
        assert!(block_on(c.get("t", 1, || async { Err(Error::ApiMisuse("down")) })).is_err());
        assert!(
            block_on(c.get("t", 1, || async { key(1) })).is_err(),
            "backing off"
        );
        assert_eq!(block_on(c.get("s", 1, || async { key(2) })).unwrap()[0], 1);
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
        assert_eq!(c.lock().len(), 2);
        assert!(!c.lock().contains_key(&("s".to_string(), 1)));
    }
}
