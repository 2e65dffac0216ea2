//! The key hierarchy: CMK → scope key → per-object data key.
//!
//! Wrapping every object's data key with a remote CMK would cost a Key Vault
//! round trip per object (a vault serves a few hundred RSA operations a
//! second). So an [`EncryptionScope`] — the unit one customer-managed key
//! protects, such as one AI resource with its documents, blobs and indexes —
//! has a random 256-bit **scope key**:
//!
//! * persisted only wrapped by the CMK, in a versioned [`ScopeRecord`] kept in
//!   a [`ScopeStore`] with compare-and-swap;
//! * unwrapped once per TTL into a [`cache`](CachePolicy) (one CMK call, single
//!   flight), after which sealing an object makes **no** KMS call: object
//!   data keys are wrapped locally with A256KW under the scope key, and the
//!   header's `kek_id` is `scope:<scope-id>/<version>`.
//!
//! The customer-managed-key rules are enforced here:
//!
//! 1. **Rotation is header-only**: [`EncryptionScope::rotate_cmk`] re-wraps
//!    the scope key versions under the new CMK and writes the record with
//!    compare-and-swap. No object is touched: O(scopes) CMK calls.
//! 2. **Same vault only**: the new CMK must live in the same key container
//!    ([`KeyEncryptionKey::key_container`]) as the current one.
//! 3. **Modes never switch**: a scope is created service- or customer-managed
//!    ([`ScopeMode`], stored in the record); every call that names a CMK
//!    says which kind it is ([`Cmk`]) and a mismatch is refused.
//! 4. **Crypto-shredding**: [`EncryptionScope::destroy`] deletes the record;
//!    every object under the scope becomes unreadable.
//! 5. **Revocation within a bound**: once the CMK is disabled, deleted or
//!    access to it revoked, cached scope keys expire within the cache TTL and
//!    the scope fails with [`KekErrorKind::KeyUnavailable`] instead of serving
//!    stale successes.

mod cache;
mod fs_store;
mod record;
mod store;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::Zeroizing;

pub use cache::{CachePolicy, CacheStats};
pub use fs_store::FsScopeStore;
pub use record::{ScopeKeyVersion, ScopeMode, ScopeRecord};
pub use store::{Etag, MemoryScopeStore, ScopeStore};

pub(crate) use self::cache::{KeyCache, ScopeSecret};
pub(crate) use self::record::validate_scope_id;
use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::{KeyEncryptionKey, KeyResolver, WrapAlgorithm, WrappedKey};
use crate::key::{DataKey, KeyMaterial};
use crate::provider::CryptoProvider;

/// The key protecting a scope, labelled with who holds it.
#[derive(Debug, Clone)]
pub enum Cmk {
    /// A key held by the service.
    ServiceManaged(Arc<dyn KeyEncryptionKey>),
    /// A key held by the customer.
    CustomerManaged(Arc<dyn KeyEncryptionKey>),
}

impl Cmk {
    fn mode(&self) -> ScopeMode {
        match self {
            Cmk::ServiceManaged(_) => ScopeMode::ServiceManaged,
            Cmk::CustomerManaged(_) => ScopeMode::CustomerManaged,
        }
    }

    fn kek(&self) -> &Arc<dyn KeyEncryptionKey> {
        match self {
            Cmk::ServiceManaged(k) | Cmk::CustomerManaged(k) => k,
        }
    }
}

/// The prefix of scope key ids in headers.
const SCOPE_KID_PREFIX: &str = "scope:";

fn scope_kid(scope_id: &str, version: u32) -> String {
    format!("{SCOPE_KID_PREFIX}{scope_id}/{version}")
}

/// Parses `scope:<id>/<version>`.
fn parse_scope_kid(kid: &str) -> Option<(&str, u32)> {
    let rest = kid.strip_prefix(SCOPE_KID_PREFIX)?;
    let (id, v) = rest.rsplit_once('/')?;
    let v: u32 = v.parse().ok()?;
    (v > 0 && validate_scope_id(id).is_ok()).then_some((id, v))
}

struct Inner {
    id: String,
    store: Arc<dyn ScopeStore>,
    cmk: Cmk,
    cache: KeyCache,
    provider: &'static CryptoProvider,
    /// The record as last read or written, with its tag.
    record: std::sync::Mutex<(ScopeRecord, Etag)>,
    /// Set by [`EncryptionScope::destroy`]: no key is served any more.
    destroyed: std::sync::atomic::AtomicBool,
}

/// One encryption scope: its key record, its CMK, and a cache of its
/// unwrapped scope keys. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct EncryptionScope {
    inner: Arc<Inner>,
}

impl fmt::Debug for EncryptionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rec = self.record();
        f.debug_struct("EncryptionScope")
            .field("id", &self.inner.id)
            .field("mode", &rec.mode)
            .field("current_version", &rec.current)
            .field("cmk", &self.inner.cmk.kek().key_id())
            .finish_non_exhaustive()
    }
}

fn unavailable(scope_id: &str, e: Error) -> Error {
    let retryable = e.is_retryable();
    KekError::new(
        "scope",
        KekErrorKind::KeyUnavailable,
        format!("scope `{scope_id}`: its customer-managed key is unavailable (disabled, deleted, or access revoked): {e}"),
    )
    .with_source(e)
    .retryable(retryable)
    .into()
}

impl EncryptionScope {
    /// Creates a scope: draws scope key version 1, wraps it with `cmk`, and
    /// stores the record only if none exists (compare-and-swap on "absent").
    /// An existing scope is never overwritten, whatever its mode.
    ///
    /// Cost: one CMK wrap, one store write.
    pub async fn create(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        policy: CachePolicy,
    ) -> crate::Result<EncryptionScope> {
        validate_scope_id(scope_id)?;
        let container = cmk.kek().key_container().ok_or_else(|| {
            Error::KeyPolicy(format!(
                "the key `{}` has no known key container (vault, token or key directory), so the same-vault rotation rule could not be enforced",
                cmk.kek().key_id()
            ))
        })?;
        if let Some((bytes, _)) = store.get(scope_id).await? {
            let existing = ScopeRecord::from_json(&bytes)?;
            return Err(Error::KeyPolicy(format!(
                "scope `{scope_id}` already exists as {}; it cannot be created again{}",
                existing.mode,
                if existing.mode != cmk.mode() {
                    " (and modes never switch)"
                } else {
                    ""
                }
            )));
        }
        let provider = CryptoProvider::default_provider();
        let scope_key = DataKey::generate(provider)?;
        let wrapped = cmk.kek().wrap_key(&scope_key).await?;
        let record = ScopeRecord {
            scope_id: scope_id.to_owned(),
            mode: cmk.mode(),
            cmk_container: container,
            current: 1,
            versions: vec![ScopeKeyVersion {
                version: 1,
                wrapped,
            }],
        };
        let etag = store.put(scope_id, &record.to_json(), None).await?;
        Ok(Self::from_parts(store, cmk, policy, provider, record, etag))
    }

    /// Opens an existing scope. `cmk` must be of the scope's mode and in
    /// the scope's key container. No CMK call is made until a key is needed.
    pub async fn open(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        policy: CachePolicy,
    ) -> crate::Result<EncryptionScope> {
        validate_scope_id(scope_id)?;
        let (bytes, etag) = store
            .get(scope_id)
            .await?
            .ok_or_else(|| Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            })?;
        let record = ScopeRecord::from_json(&bytes)?;
        if record.scope_id != scope_id {
            return Err(Error::KeyPolicy(format!(
                "the record stored for `{scope_id}` names another scope"
            )));
        }
        check_mode(&record, &cmk)?;
        check_container(&record, cmk.kek())?;
        Ok(Self::from_parts(
            store,
            cmk,
            policy,
            CryptoProvider::default_provider(),
            record,
            etag,
        ))
    }

    fn from_parts(
        store: Arc<dyn ScopeStore>,
        cmk: Cmk,
        policy: CachePolicy,
        provider: &'static CryptoProvider,
        record: ScopeRecord,
        etag: Etag,
    ) -> EncryptionScope {
        EncryptionScope {
            inner: Arc::new(Inner {
                id: record.scope_id.clone(),
                store,
                cmk,
                cache: KeyCache::new(policy),
                provider,
                record: std::sync::Mutex::new((record, etag)),
                destroyed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The scope id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A copy of the record as last read or written.
    pub fn record(&self) -> ScopeRecord {
        self.inner.record.lock().expect("record lock").0.clone()
    }

    /// Cache counters (hits, misses, CMK calls, errors).
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// The KEK to seal new objects with: A256KW under the current scope key
    /// version, key id `scope:<id>/<version>`. Wrapping makes no KMS call
    /// once the scope key is cached.
    pub fn kek(&self) -> Arc<dyn KeyEncryptionKey> {
        let v = self.inner.record.lock().expect("record lock").0.current;
        Arc::new(ScopeKek {
            scope: self.clone(),
            version: v,
            kid: scope_kid(&self.inner.id, v),
        })
    }

    /// A resolver that knows every version of this scope's key (and nothing
    /// else).
    pub fn resolver(&self) -> ScopeResolver {
        ScopeResolver {
            scope: self.clone(),
        }
    }

    async fn scope_key(&self, version: u32) -> crate::Result<ScopeSecret> {
        let inner = &self.inner;
        if inner.destroyed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::ScopeNotFound {
                scope_id: inner.id.clone(),
            });
        }
        inner
            .cache
            .get(&inner.id, version, || async move {
                let wrapped = {
                    let rec = inner.record.lock().expect("record lock");
                    rec.0.version(version).map(|v| v.wrapped.clone())
                };
                let wrapped = wrapped.ok_or_else(|| Error::UnknownKek {
                    kek_ids: vec![scope_kid(&inner.id, version)],
                })?;
                unwrap_with(inner.cmk.kek(), &wrapped)
                    .await
                    .map_err(|e| match e {
                        Error::UnknownKek { .. } => e,
                        other => unavailable(&inner.id, other),
                    })
            })
            .await
    }

    /// A 64-byte key derived from scope key `version` with HKDF-SHA-512
    /// (the scope key as PRK, `info` = a fixed label, then `label`), for
    /// keys that must be the same across objects of the scope (document
    /// fields in deterministic mode). Goes through the key cache like
    /// [`EncryptionScope::kek`], so it fails once the CMK is revoked and the
    /// cache has expired.
    #[cfg(feature = "document")]
    pub(crate) async fn derive_key(
        &self,
        version: u32,
        label: &[u8],
    ) -> crate::Result<Zeroizing<[u8; 64]>> {
        const DERIVE_LABEL: &[u8] = b"cmk-envelope/v1 scope-derived key\0";
        let key = self.scope_key(version).await?;
        let mut out = Zeroizing::new([0u8; 64]);
        self.inner
            .provider
            .hkdf
            .expand_sha512(&key[..], &[DERIVE_LABEL, label], &mut out[..])
            .map_err(|_| Error::Internal("HKDF expansion failed"))?;
        Ok(out)
    }

    /// Re-wraps every scope key version under `new_cmk` and stores the
    /// record with compare-and-swap. Refused when `new_cmk` is of the other
    /// mode or in another key container. Objects are not touched.
    ///
    /// Cost: one unwrap with the old CMK and one wrap with the new one per
    /// version, one store write. Returns [`Error::ScopeConflict`] if another
    /// process changed the record meanwhile (nothing is written; re-open and
    /// retry).
    pub async fn rotate_cmk(&self, new_cmk: Cmk) -> crate::Result<EncryptionScope> {
        let (record, etag) = self.inner.record.lock().expect("record lock").clone();
        check_mode(&record, &new_cmk)?;
        check_container(&record, new_cmk.kek())?;
        let mut versions = Vec::with_capacity(record.versions.len());
        for v in &record.versions {
            let key = unwrap_with(self.inner.cmk.kek(), &v.wrapped).await?;
            let dk = DataKey::from_unwrapped(&key[..])?;
            versions.push(ScopeKeyVersion {
                version: v.version,
                wrapped: new_cmk.kek().wrap_key(&dk).await?,
            });
        }
        let new_record = ScopeRecord { versions, ..record };
        let etag = self
            .inner
            .store
            .put(&self.inner.id, &new_record.to_json(), Some(&etag))
            .await?;
        self.inner.cache.invalidate(&self.inner.id);
        let policy = self.inner.cache_policy();
        Ok(Self::from_parts(
            self.inner.store.clone(),
            new_cmk,
            policy,
            self.inner.provider,
            new_record,
            etag,
        ))
    }

    /// Adds a new scope key version (wrapped by the current CMK) and makes it
    /// current; older versions stay for reading. Compare-and-swap as for
    /// [`EncryptionScope::rotate_cmk`]. Returns the new version.
    pub async fn rotate_scope_key(&self) -> crate::Result<u32> {
        let (mut record, etag) = self.inner.record.lock().expect("record lock").clone();
        let next = record.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let key = DataKey::generate(self.inner.provider)?;
        let wrapped = self.inner.cmk.kek().wrap_key(&key).await?;
        record.versions.push(ScopeKeyVersion {
            version: next,
            wrapped,
        });
        record.current = next;
        let etag = self
            .inner
            .store
            .put(&self.inner.id, &record.to_json(), Some(&etag))
            .await?;
        *self.inner.record.lock().expect("record lock") = (record, etag);
        Ok(next)
    }

    /// Crypto-shreds this scope: deletes its key record and drops every
    /// cached scope key, after which no object sealed under it can be
    /// decrypted, by this instance at once and by any process once its cache
    /// TTL has passed (unless a copy of the record survives elsewhere, such
    /// as a backup of the store). `confirm_scope_id` must repeat the id.
    pub async fn destroy(&self, confirm_scope_id: &str) -> crate::Result<()> {
        Self::destroy_record(self.inner.store.as_ref(), &self.inner.id, confirm_scope_id).await?;
        self.inner
            .destroyed
            .store(true, std::sync::atomic::Ordering::Release);
        self.inner.cache.invalidate(&self.inner.id);
        Ok(())
    }

    /// Crypto-shreds a scope by id, without opening it (see
    /// [`EncryptionScope::destroy`]). `confirm_scope_id` must repeat
    /// `scope_id`.
    pub async fn destroy_record(
        store: &dyn ScopeStore,
        scope_id: &str,
        confirm_scope_id: &str,
    ) -> crate::Result<()> {
        if scope_id != confirm_scope_id {
            return Err(Error::KeyPolicy(
                "destroying a scope needs its id twice, and the two differ".into(),
            ));
        }
        validate_scope_id(scope_id)?;
        let (_, etag) = store
            .get(scope_id)
            .await?
            .ok_or_else(|| Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            })?;
        store.delete(scope_id, &etag).await
    }
}

impl Inner {
    fn cache_policy(&self) -> CachePolicy {
        self.cache.policy().clone()
    }
}

fn check_mode(record: &ScopeRecord, cmk: &Cmk) -> crate::Result<()> {
    if record.mode != cmk.mode() {
        return Err(Error::KeyPolicy(format!(
            "scope `{}` is {}; it can never switch to a {} key",
            record.scope_id,
            record.mode,
            cmk.mode()
        )));
    }
    Ok(())
}

fn check_container(record: &ScopeRecord, kek: &Arc<dyn KeyEncryptionKey>) -> crate::Result<()> {
    match kek.key_container() {
        Some(c) if c == record.cmk_container => Ok(()),
        Some(c) => Err(Error::KeyPolicy(format!(
            "the customer-managed key can only be rotated within the same key vault: scope `{}` is in `{}`, the new key `{}` is in `{c}`",
            record.scope_id,
            record.cmk_container,
            kek.key_id()
        ))),
        None => Err(Error::KeyPolicy(format!(
            "the key `{}` has no known key container, so it cannot protect scope `{}`",
            kek.key_id(),
            record.scope_id
        ))),
    }
}

async fn unwrap_with(
    kek: &Arc<dyn KeyEncryptionKey>,
    wrapped: &WrappedKey,
) -> crate::Result<Zeroizing<[u8; 32]>> {
    if kek.algorithm() != wrapped.alg {
        return Err(Error::unwrap_failed(&wrapped.kek_id));
    }
    let dk = kek.unwrap_key(&wrapped.wrapped).await?;
    Ok(Zeroizing::new(*dk.expose_secret_bytes()))
}

/// The KEK of one scope key version.
struct ScopeKek {
    scope: EncryptionScope,
    version: u32,
    kid: String,
}

impl fmt::Debug for ScopeKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeKek").field("kid", &self.kid).finish()
    }
}

#[async_trait]
impl KeyEncryptionKey for ScopeKek {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn algorithm(&self) -> WrapAlgorithm {
        WrapAlgorithm::A256Kw
    }

    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey> {
        WrapAlgorithm::A256Kw.check_material_len(material.len())?;
        let key = self.scope.scope_key(self.version).await?;
        let wrapped = self
            .scope
            .inner
            .provider
            .key_wrap
            .wrap(&key, false, material.expose_secret_bytes())
            .map_err(|_| Error::ApiMisuse("AES key wrap failed"))?;
        Ok(WrappedKey {
            alg: WrapAlgorithm::A256Kw,
            kek_id: self.kid.clone(),
            wrapped,
        })
    }

    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        let key = self.scope.scope_key(self.version).await?;
        let clear = self
            .scope
            .inner
            .provider
            .key_wrap
            .unwrap(&key, false, wrapped)
            .map_err(|_| Error::UnwrapFailed {
                kek_id: self.kid.clone(),
            })?;
        KeyMaterial::from_bytes(&clear).map_err(|_| Error::UnwrapFailed {
            kek_id: self.kid.clone(),
        })
    }
}

/// Resolves `scope:<id>/<version>` for the versions of one scope.
#[derive(Debug, Clone)]
pub struct ScopeResolver {
    scope: EncryptionScope,
}

impl KeyResolver for ScopeResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        let (id, v) = parse_scope_kid(kek_id)?;
        if id != self.scope.inner.id {
            return None;
        }
        self.scope
            .inner
            .record
            .lock()
            .expect("record lock")
            .0
            .version(v)?;
        Some(Arc::new(ScopeKek {
            scope: self.scope.clone(),
            version: v,
            kid: kek_id.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_kids() {
        assert_eq!(scope_kid("t-1", 3), "scope:t-1/3");
        assert_eq!(parse_scope_kid("scope:t-1/3"), Some(("t-1", 3)));
        for bad in [
            "scope:t-1/0",
            "scope:t-1/x",
            "scope:/1",
            "scopes:t/1",
            "scope:a/b/1",
            "scope:t-1",
        ] {
            assert_eq!(parse_scope_kid(bad), None, "{bad}");
        }
    }
}
