//! Writes to the record: new scope key versions, CMK rotation, automatic
//! key-version rotation, and the migration of records written before
//! labelling. Every write is a compare-and-swap on the tag last read.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::Counters;
use super::material::{self, Usage};
use super::{
    check_container, check_mode, Cmk, Etag, Inner, ScopeKey, ScopeKeyVersion, ScopeRecord,
};
use crate::error::Error;
use crate::kek::lease::clock;
use crate::kek::KeyEncryptionKey;
use crate::key::DataKey;

/// How many times a seal retries after losing the race to move a scope
/// off a key that may not seal.
const SEALING_ATTEMPTS: usize = 3;

impl Inner {
    fn snapshot(&self) -> (ScopeRecord, Etag) {
        let st = self.lock_state();
        (st.record.clone(), st.etag.clone())
    }

    /// The version seals use now, and its key: the current version, after
    /// moving the scope to a fresh version when the current one may only
    /// open (a key once wrapped bare).
    pub(crate) async fn sealing_key(&self) -> crate::Result<(u32, Arc<ScopeKey>)> {
        for _ in 0..SEALING_ATTEMPTS {
            let v = self.current.load(Ordering::Acquire);
            let key = self.key(v).await?;
            if key.usage == Usage::SealAndOpen {
                return Ok((v, key));
            }
            match self.rotate_scope_key().await {
                Ok(_) => {}
                Err(Error::ScopeConflict { .. }) => {
                    let _flight = self.flight.lock().await;
                    self.read_record().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::scope_conflict(&self.id))
    }

    /// Writes `record` if the stored tag is still `etag`. A lost race makes
    /// the next use re-read the record.
    async fn write(&self, record: &ScopeRecord, etag: &Etag) -> crate::Result<Etag> {
        let r = self
            .store
            .put(&self.id, &record.to_json(), Some(etag))
            .await;
        if matches!(r, Err(Error::ScopeConflict { .. })) {
            self.expire_soon();
        }
        r
    }

    /// `record` with every version re-wrapped by `to` as labelled material
    /// (a bare key becomes open-only material). Cost: one unwrap and one
    /// wrap per version.
    async fn rewrap_record(
        &self,
        record: &ScopeRecord,
        to: &Arc<dyn KeyEncryptionKey>,
    ) -> crate::Result<ScopeRecord> {
        let mut versions = Vec::with_capacity(record.versions.len());
        for v in &record.versions {
            let (key, usage) = self
                .unwrap_entry(v, record.labelled, &record.cmk_container)
                .await?;
            let m = material::encode(self.provider, &self.id, &key, usage)?;
            let wrapped = to.wrap_key_material(&m).await?;
            if wrapped.alg != to.algorithm() {
                return Err(Error::Internal(
                    "a key-encryption key returned a wrapped key of another algorithm",
                ));
            }
            versions.push(ScopeKeyVersion {
                version: v.version,
                wrapped,
            });
        }
        Ok(ScopeRecord {
            versions,
            labelled: true,
            ..record.clone()
        })
    }

    pub(super) async fn rotate_scope_key(&self) -> crate::Result<u32> {
        // Under the single flight: no refresh adopts an older record while
        // this one is written.
        let _flight = self.flight.lock().await;
        let (record, etag) = self.snapshot();
        let next = record
            .versions
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| {
                Error::KeyPolicy(format!(
                    "scope `{}` already holds key version {} (the last one): no new version can be added; \
                     the record is unchanged and stays readable. Create a new scope and re-encrypt into it",
                    self.id,
                    u32::MAX
                ))
            })?;
        let current = record.current_version().ok_or(Error::Internal(
            "a scope record without its current version",
        ))?;
        let wrap_kek = self.kek_for(&current.wrapped.kek_id, &record.cmk_container)?;
        let mut new_record = if record.labelled {
            record.clone()
        } else {
            self.rewrap_record(&record, &wrap_kek).await?
        };
        let key = DataKey::generate(self.provider)?;
        let m = material::encode(
            self.provider,
            &self.id,
            key.expose_secret_bytes(),
            Usage::SealAndOpen,
        )?;
        let wrapped = wrap_kek.wrap_key_material(&m).await?;
        if wrapped.alg != wrap_kek.algorithm() {
            return Err(Error::Internal(
                "a key-encryption key returned a wrapped key of another algorithm",
            ));
        }
        new_record.versions.push(ScopeKeyVersion {
            version: next,
            wrapped,
        });
        new_record.current = next;
        let tag = self.write(&new_record, &etag).await?;
        // Not cached: the first seal under it unwraps it (one CMK call),
        // which proves the CMK can unwrap what it wrapped.
        self.adopt_written(new_record, tag);
        Ok(next)
    }

    /// Re-wraps the record under `new_cmk` (same mode, same container) and
    /// writes it; this instance then knows `new_cmk` under the ids it
    /// recorded. Returns the record written and its tag.
    pub(super) async fn rotate_cmk(&self, new_cmk: &Cmk) -> crate::Result<(ScopeRecord, Etag)> {
        let _flight = self.flight.lock().await;
        let (record, etag) = self.snapshot();
        check_mode(&record, new_cmk)?;
        check_container(&record, new_cmk.kek())?;
        let new_record = self.rewrap_record(&record, new_cmk.kek()).await?;
        let tag = self.write(&new_record, &etag).await?;
        {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for v in &new_record.versions {
                known.insert(v.wrapped.kek_id.to_ascii_lowercase(), new_cmk.kek().clone());
            }
        }
        self.adopt_written(new_record.clone(), tag.clone());
        Ok((new_record, tag))
    }

    /// Automatic key-version rotation (under the single flight, after a
    /// store read): asks the CMK for its current version and, when the
    /// record is wrapped under another version of the same key, re-wraps it
    /// and writes it with compare-and-swap. Losing the race adopts the
    /// winner's record. Never fails the caller: a failure is retried at the
    /// next check, and the scope keeps its current wrapping meanwhile.
    pub(super) async fn auto_rotate(&self, now: u64) {
        self.lock_state().next_rotation_check =
            clock::after(now, self.policy.rotation_check_interval);
        let kid = match self.cmk.kek().current_version().await {
            Ok(Some(kid)) => kid,
            Ok(None) => {
                self.lock_state().movable = false;
                return;
            }
            Err(_) => return,
        };
        let Some(resolver) = &self.cmk_resolver else {
            return;
        };
        let (record, etag) = self.snapshot();
        if record.labelled && record.versions.iter().all(|v| v.wrapped.kek_id == kid) {
            return;
        }
        // Only within the key this scope follows: a record moved to another
        // key (by another process's CMK rotation) is never moved back.
        let follows = record
            .current_version()
            .is_some_and(|c| resolver.resolve(&c.wrapped.kek_id).is_some());
        if !follows {
            return;
        }
        let Ok(to) = self.kek_for(&kid, &record.cmk_container) else {
            return;
        };
        let Ok(new_record) = self.rewrap_record(&record, &to).await else {
            return;
        };
        if new_record.versions.iter().any(|v| v.wrapped.kek_id != kid) {
            return; // the key moved again meanwhile: next check
        }
        match self
            .store
            .put(&self.id, &new_record.to_json(), Some(&etag))
            .await
        {
            Ok(tag) => {
                Counters::bump(&self.counters.rotations);
                self.adopt_written(new_record, tag);
            }
            Err(Error::ScopeConflict { .. }) => {
                Counters::bump(&self.counters.rotation_conflicts);
                let _ = self.read_record().await;
            }
            Err(_) => {}
        }
    }
}
