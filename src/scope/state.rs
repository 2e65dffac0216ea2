//! The engine of an open scope: the record and the unwrapped keys it
//! caches, the window in which they may be used, single-flight refreshes
//! from the store and the CMK, and the leases handed out with data keys.
//!
//! * **One window for the scope.** The record read at time *t* and every
//!   key unwrapped since may be used until *t* + TTL (`hard`); from
//!   *t* + `refresh_fraction`·TTL (`soft`, jittered, and no later than the
//!   next automatic-rotation check) the next caller refreshes: **one**
//!   store read, then one CMK unwrap per key version used since the last
//!   refresh (versions not used are dropped). Everyone else keeps using the
//!   cached keys meanwhile. A failed refresh keeps them until `hard`,
//!   never beyond, and is retried after the back-off.
//! * **Hits** take one lock (the state's), no store read, no CMK call.
//! * **Misses** wait for the single flight: a key version not cached is
//!   unwrapped (no store read while the window lasts); a version the
//!   record lacks causes one store read, at most once per
//!   `unknown_version_reread`, before [`Error::UnknownKek`].
//! * **What a read finds**: the record gone marks the scope destroyed
//!   (keys wiped, leases revoked, every call fails); a changed record is
//!   adopted (new current version, new versions), and the cached keys of
//!   versions whose wrapping changed are dropped and unwrapped again with
//!   the key the record now names.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use zeroize::Zeroizing;

use super::cache::{CachePolicy, Counters, Jitter};
use super::material::{self, Usage};
use super::{
    check_mode, scope_kid, unavailable, Etag, Inner, ScopeKey, ScopeKeyVersion, ScopeRecord,
};
use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::lease::{clock, BoxFuture, LeaseHolder, Window};
use crate::kek::KeyEncryptionKey;

/// What an open scope knows, behind its state lock.
pub(crate) struct State {
    pub(super) record: ScopeRecord,
    pub(super) etag: Etag,
    pub(super) window: Window,
    keys: HashMap<u32, Slot>,
    pub(super) failed_until: u64,
    /// What the last failed refresh reported (crate messages: no secrets).
    last_failure: Option<String>,
    last_forced_read: Option<u64>,
    pub(super) next_rotation_check: u64,
    /// Whether the CMK may move by itself (until it says it does not).
    pub(super) movable: bool,
    tick: u64,
}

struct Slot {
    key: Arc<ScopeKey>,
    /// Used since the last refresh: re-unwrapped by the next one.
    used: bool,
    last_used: u64,
}

impl State {
    pub(super) fn new(
        record: ScopeRecord,
        etag: Etag,
        window: Window,
        next_rotation_check: u64,
    ) -> State {
        State {
            record,
            etag,
            window,
            keys: HashMap::new(),
            failed_until: 0,
            last_failure: None,
            last_forced_read: None,
            next_rotation_check,
            movable: true,
            tick: 0,
        }
    }

    fn rotation_at(&self) -> u64 {
        if self.movable {
            self.next_rotation_check
        } else {
            u64::MAX
        }
    }
}

/// The window of a refresh that started at `start`.
pub(super) fn window_from(
    policy: &CachePolicy,
    jitter: &Jitter,
    start: u64,
    rotation_at: u64,
) -> Window {
    let f = (policy.refresh_fraction * jitter.factor()).clamp(0.0, 1.0);
    let f = if f.is_nan() { 1.0 } else { f };
    let ahead = Duration::try_from_secs_f64(policy.ttl.as_secs_f64() * f).unwrap_or(policy.ttl);
    let hard = clock::after(start, policy.ttl);
    Window {
        soft: clock::after(start, ahead).min(rotation_at).min(hard),
        hard,
    }
}

enum Probe {
    /// Cached and fresh (or due, while a failed refresh backs off).
    Hit(Arc<ScopeKey>),
    /// Cached, valid, and due for a refresh.
    Due(Arc<ScopeKey>),
    /// Not cached, or the window is over.
    Miss,
}

impl Inner {
    pub(super) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_found(&self) -> Error {
        Error::ScopeNotFound {
            scope_id: self.id.clone(),
        }
    }

    fn unknown(&self, version: u32) -> Error {
        Error::UnknownKek {
            kek_ids: vec![scope_kid(&self.id, version)],
        }
    }

    fn set_window(&self, st: &mut State, w: Window) {
        st.window = w;
        self.window_soft.store(w.soft, Ordering::Relaxed);
        self.window_hard.store(w.hard, Ordering::Relaxed);
    }

    /// Makes the next use refresh (after a lost compare-and-swap).
    pub(super) fn expire_soon(&self) {
        let mut st = self.lock_state();
        let w = Window {
            soft: 0,
            hard: st.window.hard,
        };
        self.set_window(&mut st, w);
    }

    /// Caches `key` as version `v` (used now); evicts the least recently
    /// used version beyond `max_entries`.
    pub(super) fn insert_key(&self, v: u32, key: ScopeKey) -> Arc<ScopeKey> {
        let key = Arc::new(key);
        let mut st = self.lock_state();
        st.tick += 1;
        let tick = st.tick;
        st.keys.insert(
            v,
            Slot {
                key: key.clone(),
                used: true,
                last_used: tick,
            },
        );
        self.trim(&mut st, v);
        key
    }

    /// Evicts the least recently used versions (never `keep`) beyond
    /// `max_entries`.
    fn trim(&self, st: &mut State, keep: u32) {
        while st.keys.len() > self.policy.max_entries.max(1) {
            let victim = st
                .keys
                .iter()
                .filter(|(ver, _)| **ver != keep)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(ver, _)| *ver);
            match victim {
                Some(ver) => {
                    st.keys.remove(&ver);
                }
                None => break,
            }
        }
    }

    fn probe(&self, v: u32) -> crate::Result<Probe> {
        let mut st = self.lock_state();
        if self.revoked.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let now = clock::now();
        if now >= st.window.hard {
            return Ok(Probe::Miss);
        }
        let fresh = now < st.window.soft || now < st.failed_until;
        st.tick += 1;
        let tick = st.tick;
        let Some(slot) = st.keys.get_mut(&v) else {
            return Ok(Probe::Miss);
        };
        slot.used = true;
        slot.last_used = tick;
        Counters::bump(&self.counters.hits);
        Ok(if fresh {
            Probe::Hit(slot.key.clone())
        } else {
            Probe::Due(slot.key.clone())
        })
    }

    /// Scope key version `v`: from the cache, or unwrapped (and the record
    /// re-read) under the single flight. See the module docs.
    pub(crate) async fn key(&self, v: u32) -> crate::Result<Arc<ScopeKey>> {
        match self.probe(v)? {
            Probe::Hit(k) => Ok(k),
            Probe::Due(k) => {
                // One caller refreshes ahead; the others go on meanwhile.
                let Some(_flight) = self.flight.try_lock() else {
                    return Ok(k);
                };
                match self.refresh(v).await {
                    Ok(fresh) => Ok(fresh),
                    Err(e) if self.revoked.load(Ordering::Acquire) => Err(e),
                    // A failed refresh: the old key until the end of its
                    // window, never beyond.
                    Err(e) if clock::now() < self.lock_state().window.hard => {
                        drop(e);
                        Ok(k)
                    }
                    Err(e) => Err(e),
                }
            }
            Probe::Miss => {
                let _flight = self.flight.lock().await;
                if let Probe::Hit(k) | Probe::Due(k) = self.probe(v)? {
                    return Ok(k);
                }
                let backing_off = {
                    let st = self.lock_state();
                    (clock::now() < st.failed_until).then(|| st.last_failure.clone())
                };
                if let Some(cause) = backing_off {
                    Counters::bump(&self.counters.errors);
                    return Err(self.backoff_error(cause));
                }
                Counters::bump(&self.counters.misses);
                self.load(v).await
            }
        }
    }

    fn backoff_error(&self, cause: Option<String>) -> Error {
        KekError::new(
            "scope",
            KekErrorKind::KeyUnavailable,
            format!(
                "scope `{}`: its customer-managed key or its store failed recently; not retrying until the back-off ends (last failure: {})",
                self.id,
                cause.as_deref().unwrap_or("unknown")
            ),
        )
        .into()
    }

    /// A miss, under the single flight.
    async fn load(&self, v: u32) -> crate::Result<Arc<ScopeKey>> {
        let now = clock::now();
        let (valid, known, last_forced) = {
            let st = self.lock_state();
            (
                now < st.window.hard,
                st.record.version(v).is_some(),
                st.last_forced_read,
            )
        };
        if !valid {
            return self.refresh(v).await;
        }
        if !known {
            // A header names a version the cached record lacks: it may
            // have been added elsewhere. Re-read, at a bounded rate.
            if last_forced
                .is_some_and(|t| now < clock::after(t, self.policy.unknown_version_reread))
            {
                return Err(self.unknown(v));
            }
            self.lock_state().last_forced_read = Some(now);
            self.read_record().await.inspect_err(|e| self.fail(e))?;
            if self.lock_state().record.version(v).is_none() {
                return Err(self.unknown(v));
            }
        }
        match self.unwrap_version(v).await {
            Ok(k) => Ok(self.insert_key(v, k)),
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// A full refresh, under the single flight: one store read (and, when
    /// due, the automatic rotation check), then one CMK unwrap per version
    /// used since the last refresh and `v`. Returns `v`'s key.
    pub(super) async fn refresh(&self, v: u32) -> crate::Result<Arc<ScopeKey>> {
        let start = clock::now();
        if let Err(e) = self.read_record().await {
            if !self.revoked.load(Ordering::Acquire) {
                self.fail(&e);
            }
            return Err(e);
        }
        if start >= self.lock_state().next_rotation_check {
            self.auto_rotate(start).await;
            if self.revoked.load(Ordering::Acquire) {
                return Err(self.not_found());
            }
        }
        let targets: Vec<u32> = {
            let mut st = self.lock_state();
            let mut t: Vec<u32> = st
                .keys
                .iter_mut()
                .filter_map(|(ver, s)| {
                    let hot = s.used || *ver == v;
                    s.used = false;
                    hot.then_some(*ver)
                })
                .collect();
            if !t.contains(&v) {
                t.push(v);
            }
            t.retain(|ver| st.record.version(*ver).is_some());
            t
        };
        let mut fresh = Vec::with_capacity(targets.len());
        let mut first_err = None;
        for ver in targets {
            match self.unwrap_version(ver).await {
                Ok(k) => fresh.push((ver, k)),
                Err(e) => {
                    if ver == v || first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if fresh.is_empty() {
            if let Some(e) = first_err {
                // Nothing could be unwrapped (the CMK is down or revoked):
                // keep what is cached until the end of its window.
                self.fail(&e);
                return Err(e);
            }
        }
        let mut out = None;
        {
            let mut st = self.lock_state();
            st.keys.clear();
            for (ver, k) in fresh {
                st.tick += 1;
                let key = Arc::new(k);
                if ver == v {
                    out = Some(key.clone());
                }
                let last_used = st.tick;
                st.keys.insert(
                    ver,
                    Slot {
                        key,
                        used: ver == v,
                        last_used,
                    },
                );
            }
            self.trim(&mut st, v);
            st.failed_until = 0;
            st.last_failure = None;
            let rotation_at = st.rotation_at();
            let w = window_from(&self.policy, &self.jitter, start, rotation_at);
            self.set_window(&mut st, w);
        }
        match (out, first_err) {
            (Some(k), _) => Ok(k),
            (None, Some(e)) => Err(e),
            (None, None) => Err(self.unknown(v)),
        }
    }

    /// Reads the record (under the single flight) and adopts it, or marks
    /// the scope destroyed when it is gone.
    pub(super) async fn read_record(&self) -> crate::Result<()> {
        Counters::bump(&self.counters.store_reads);
        match self.store.get(&self.id).await? {
            None => {
                self.mark_destroyed();
                Err(self.not_found())
            }
            Some((bytes, tag)) => self.adopt_read(&bytes, tag),
        }
    }

    /// Adopts a record read from the store (when its tag changed): the
    /// same scope, mode and key container, or it is refused. Keys of
    /// versions whose wrapping changed are dropped.
    fn adopt_read(&self, bytes: &[u8], tag: Etag) -> crate::Result<()> {
        if self.lock_state().etag == tag {
            return Ok(());
        }
        let record = ScopeRecord::from_json(bytes)?;
        if record.scope_id != self.id {
            return Err(Error::KeyPolicy(format!(
                "the record stored for `{}` names another scope",
                self.id
            )));
        }
        check_mode(&record, &self.cmk)?;
        let mut st = self.lock_state();
        if record.cmk_container != st.record.cmk_container {
            return Err(Error::KeyPolicy(format!(
                "the record of scope `{}` now names key container `{}`, but it is in `{}`; keys never leave their vault",
                self.id, record.cmk_container, st.record.cmk_container
            )));
        }
        let State {
            record: old, keys, ..
        } = &mut *st;
        keys.retain(|ver, _| {
            record
                .version(*ver)
                .is_some_and(|new| old.version(*ver) == Some(new))
        });
        self.current.store(record.current, Ordering::Release);
        st.record = record;
        st.etag = tag;
        Ok(())
    }

    /// Adopts a record this instance wrote (its cached keys stay valid:
    /// writes re-wrap keys, never change them).
    pub(super) fn adopt_written(&self, record: ScopeRecord, tag: Etag) {
        let mut st = self.lock_state();
        self.current.store(record.current, Ordering::Release);
        st.record = record;
        st.etag = tag;
    }

    async fn unwrap_version(&self, v: u32) -> crate::Result<ScopeKey> {
        let (entry, labelled, container) = {
            let st = self.lock_state();
            (
                st.record.version(v).cloned(),
                st.record.labelled,
                st.record.cmk_container.clone(),
            )
        };
        let entry = entry.ok_or_else(|| self.unknown(v))?;
        let (key, usage) = self.unwrap_entry(&entry, labelled, &container).await?;
        Ok(ScopeKey {
            key,
            usage,
            kid: scope_kid(&self.id, v),
        })
    }

    /// Unwraps one version of a record (of key container `container`)
    /// with the key it names. Cost: one CMK call.
    pub(super) async fn unwrap_entry(
        &self,
        entry: &ScopeKeyVersion,
        labelled: bool,
        container: &str,
    ) -> crate::Result<(Zeroizing<[u8; 32]>, Usage)> {
        let kek = self.kek_for(&entry.wrapped.kek_id, container)?;
        if kek.algorithm() != entry.wrapped.alg {
            return Err(unavailable(
                &self.id,
                Error::unwrap_failed(&entry.wrapped.kek_id),
            ));
        }
        Counters::bump(&self.counters.kms_calls);
        let m = kek
            .unwrap_key_material(&entry.wrapped.wrapped)
            .await
            .map_err(|e| unavailable(&self.id, e))?;
        material::decode(self.provider, &self.id, entry.version, &m, labelled)
    }

    /// The KEK for a key id a record names: through the resolver (which
    /// must return a key of the scope's container), else the configured
    /// CMK under an id it is known by. Anything else is a clear error
    /// naming the key, and no key is called.
    pub(super) fn kek_for(
        &self,
        kid: &str,
        container: &str,
    ) -> crate::Result<Arc<dyn KeyEncryptionKey>> {
        if let Some(k) = self.cmk_resolver.as_ref().and_then(|r| r.resolve(kid)) {
            if k.key_container().as_deref() != Some(container) {
                return Err(Error::KeyPolicy(format!(
                    "scope `{}`: the key `{kid}` is not in the scope's key container `{container}`",
                    self.id
                )));
            }
            return Ok(k);
        }
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = known.get(&kid.to_ascii_lowercase()) {
            return Ok(k.clone());
        }
        Err(KekError::new(
            "scope",
            KekErrorKind::KeyUnavailable,
            format!(
                "scope `{}`: its record is wrapped by `{kid}`, a key this instance was not given \
                 (was the CMK rotated by another process?): open the scope with that key, or with a resolver that allows it",
                self.id
            ),
        )
        .into())
    }

    /// The record is gone: wipe every cached key and revoke every lease.
    pub(super) fn mark_destroyed(&self) {
        self.revoked.store(true, Ordering::Release);
        let mut st = self.lock_state();
        st.keys.clear();
        self.set_window(&mut st, Window { soft: 0, hard: 0 });
    }

    fn fail(&self, e: &Error) {
        Counters::bump(&self.counters.errors);
        let mut st = self.lock_state();
        st.failed_until = clock::after(clock::now(), self.policy.failure_backoff);
        st.last_failure = Some(e.to_string());
    }
}

impl LeaseHolder for Inner {
    fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    fn window(&self, v: u32) -> crate::Result<Option<Window>> {
        let st = self.lock_state();
        if self.revoked.load(Ordering::Acquire) {
            return Err(self.not_found());
        }
        let cached = clock::now() < st.window.hard && st.keys.contains_key(&v);
        Ok(cached.then_some(st.window))
    }

    fn renew(self: Arc<Self>, v: u32) -> BoxFuture<crate::Result<Window>> {
        Box::pin(async move {
            // The key was just vouched for: its window, even if it ends at
            // once (a zero TTL renews at every chunk).
            self.key(v).await?;
            if self.revoked.load(Ordering::Acquire) {
                return Err(self.not_found());
            }
            Ok(self.lock_state().window)
        })
    }

    fn backoff(&self) -> Duration {
        self.policy.failure_backoff
    }

    fn expired(&self, v: u32, cause: Error) -> Error {
        if matches!(&cause, Error::Kek(k) if k.backend() == "scope") {
            // Already names the scope and why its key is unavailable.
            return cause;
        }
        let retryable = cause.is_retryable();
        KekError::new(
            "scope",
            KekErrorKind::KeyUnavailable,
            format!(
                "scope `{}`: the lease on scope key version {v} expired and could not be renewed: {cause}",
                self.id
            ),
        )
        .with_source(cause)
        .retryable(retryable)
        .into()
    }

    fn revoked(&self, _v: u32) -> Error {
        self.not_found()
    }
}
