//! The key hierarchy: CMK → scope key → per-object data key.
//!
//! Wrapping every object's data key with a remote CMK would cost a Key Vault
//! round trip per object (a vault serves a few hundred RSA operations a
//! second). So an [`EncryptionScope`] — the unit one customer-managed key
//! protects, such as one AI resource with its documents, blobs and indexes —
//! has a random 256-bit **scope key**:
//!
//! * persisted only wrapped by the CMK, as labelled material (so it can be
//!   taken for no other kind of key), in a versioned [`ScopeRecord`] kept in
//!   a [`ScopeStore`] with compare-and-swap;
//! * unwrapped into a cache (one CMK call per key version in use, single
//!   flight), after which sealing an object makes **no** KMS call and no
//!   store read: object data keys are wrapped locally with A256KW under the
//!   scope key, and the header's `kek_id` is `scope:<scope-id>/<version>`.
//!
//! **The store is the truth.** An open scope re-reads its record once per
//! refresh period of its [`CachePolicy`] (one read per scope, whatever the
//! number of key versions in use), re-unwraps the keys in use with the CMK,
//! and acts on what it finds, so that every process sharing a store sees
//! what any of them did within the cache TTL:
//!
//! * the record is **gone**: the scope was destroyed. Cached keys are
//!   wiped and every call fails with [`Error::ScopeNotFound`], including
//!   handles already open (readers, writers, index files, blobs: they hold
//!   a [`KeyLease`](crate::KeyLease));
//! * a **new current version**: new objects are sealed under it (the
//!   [`EncryptionScope::kek`] of an open scope follows the record);
//! * a **new CMK** (rotated elsewhere): keys are unwrapped with the key
//!   the record names, if this instance may use it (see
//!   [`EncryptionScope::open_with_resolver`]), else the scope fails with a
//!   clear error once its cached state expires;
//! * a header naming a **version the cached record lacks** causes a
//!   re-read (rate-limited) before [`Error::UnknownKek`].
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
//!    every object under the scope becomes unreadable, by this instance at
//!    once and by every other one within its cache TTL.
//! 5. **Revocation within a bound**: once the CMK is disabled, deleted or
//!    access to it revoked, cached scope keys expire within the cache TTL
//!    and the scope — open handles included — fails with
//!    [`KekErrorKind::KeyUnavailable`] instead of serving stale successes.
//! 6. **Automatic key-version rotation**: a scope bound to a Key Vault key
//!    that names no version checks the key's current version at most once
//!    per [`CachePolicy::rotation_check_interval`] and re-wraps its record
//!    under a new version with compare-and-swap (one instance's write wins,
//!    the others adopt it). Versioned keys never move by themselves.
//!
//! # Timing
//!
//! With the default [`CachePolicy`] (TTL 5 minutes), the first user of the
//! scope after 0.8 of the TTL (±5 % jitter, so that instances do not
//! refresh in step) refreshes: one store read, and one CMK unwrap per key
//! version used since the last refresh. Everyone else keeps using the
//! cached keys meanwhile. A failed refresh keeps them until the TTL since
//! the last successful one has passed, never beyond, and is retried after
//! a back-off of 1 s. A steady-state instance therefore makes about one
//! store read and one CMK call per version in use per refresh period,
//! whatever the number of objects it seals or opens.
//!
//! # Open handles
//!
//! Every data key a scope key wraps or unwraps comes with a
//! [`KeyLease`](crate::KeyLease), and the chunk engine checks it before
//! each chunk it seals or opens (a clock read and two atomic loads). So
//! readers, writers, the parallel and range decryptors, encrypted index
//! files (feature `index`; their cached plaintext chunks are wiped) and
//! blobs (feature `blob`) stop at once when their process sees
//! the scope destroyed, and within the TTL when the record or the CMK
//! cannot be reached or refuses. Until then a lease renews from the
//! scope's cache, or by refreshing the scope: async readers and
//! `EncryptedBlob::read_range` by polling that refresh, sync readers on
//! their own thread. For a remote CMK or store, keep the scope fresh from
//! async code with [`EncryptionScope::refresh`], or read on threads that
//! can drive its calls.
//!
//! What a lease cannot take back: plaintext already handed to the caller,
//! the rest of a chunk a reader has already opened into its buffer (at
//! most 16 KiB), and what tantivy keeps of what it read.
//!
//! # What the CMK wraps
//!
//! A scope key is wrapped as 56 bytes of labelled material bound to its
//! scope id (`"cmk-sk1"`, a usage byte, the key, a 16-byte HKDF binding),
//! a length no other use of a KEK has (data keys are 32 bytes, Azure CSE
//! v2 content keys 40). So a scope key is refused as a data key or a CSE
//! content key, and nothing but its own material is accepted as a scope
//! key; with a symmetric CMK, one scope's wrapped key copied into another
//! scope's record is refused too. Records written before labelling
//! (`cmk-envelope/scope-record/v1`, bare 32-byte keys) stay readable, but
//! are never sealed under again: the first seal moves the scope to a fresh
//! key version and re-wraps the old ones as open-only material, in one
//! compare-and-swap write.
//!
//! # Stores
//!
//! A [`ScopeStore`] keeps records with compare-and-swap:
//! [`MemoryScopeStore`] (one process), [`FsScopeStore`] (a directory; one
//! machine, or a file system with working `flock`), and, for instances on
//! many machines, `BlobScopeStore` (feature `blob`) and `CosmosScopeStore`
//! (feature `cosmos`). Another implementation checks itself with the store
//! suite of `cmk_envelope::conformance` (feature `conformance`).
//!
//! A store holds only wrapped keys, but who may write it matters: deleting
//! a record shreds the scope, and with an RSA CMK, whoever can write the
//! store and holds the public key can plant a scope key of their own. The
//! crate's `SECURITY.md` lists what a store writer can and cannot do.
//!
//! Operators manage scopes without code with `cmk-envelope scope create |
//! show | rotate-cmk | rotate-key | destroy` (feature `cli`; the crate's
//! `docs/cli.md`).

mod cache;
mod fs_store;
mod kek;
#[cfg(any(feature = "cosmos-ae", test))]
mod key_cache;
mod material;
mod record;
mod rotate;
mod state;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::lock::Mutex as AsyncMutex;
use zeroize::Zeroizing;

pub use cache::{CachePolicy, CacheStats};
pub use fs_store::FsScopeStore;
pub use kek::ScopeResolver;
pub use record::{ScopeKeyVersion, ScopeMode, ScopeRecord};
pub use store::{Etag, MemoryScopeStore, ScopeStore};

use self::cache::{Counters, Jitter};
use self::kek::ScopeKek;
#[cfg(any(feature = "cosmos-ae", test))]
pub(crate) use self::key_cache::{KeyCache, ScopeSecret};
use self::material::Usage;
/// The scope key material check, for the `scope_record` fuzz target.
#[cfg(fuzzing)]
pub(crate) use self::material::{
    decode as fuzz_decode_material, encode as fuzz_encode_material, Usage as FuzzUsage,
};
pub(crate) use self::record::validate_scope_id;
use self::state::State;
use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::lease::clock;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::key::DataKey;
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

/// The version in `kid` if it is `scope:<scope_id>/<version>` (a cheaper
/// [`parse_scope_kid`] when the scope id is known).
fn scope_kid_version(kid: &str, scope_id: &str) -> Option<u32> {
    let v: u32 = kid
        .strip_prefix(SCOPE_KID_PREFIX)?
        .strip_prefix(scope_id)?
        .strip_prefix('/')?
        .parse()
        .ok()?;
    (v > 0).then_some(v)
}

/// Parses `scope:<id>/<version>`.
fn parse_scope_kid(kid: &str) -> Option<(&str, u32)> {
    let rest = kid.strip_prefix(SCOPE_KID_PREFIX)?;
    let (id, v) = rest.rsplit_once('/')?;
    let v: u32 = v.parse().ok()?;
    (v > 0 && validate_scope_id(id).is_ok()).then_some((id, v))
}

/// An unwrapped scope key version: the key, zeroized on drop, what it may
/// be used for, and its id in headers. Neither printable nor cloneable.
pub(crate) struct ScopeKey {
    key: Zeroizing<[u8; 32]>,
    usage: Usage,
    /// `scope:<id>/<version>`, made once per unwrap rather than per seal.
    kid: String,
}

/// The state of one open scope, shared by its clones, its KEKs and the
/// leases of the data keys they wrapped or unwrapped.
pub(crate) struct Inner {
    id: String,
    store: Arc<dyn ScopeStore>,
    cmk: Cmk,
    cmk_resolver: Option<Arc<dyn KeyResolver>>,
    /// The CMKs this instance was given, by key id in ASCII lower case: the
    /// configured one, and the one of its own `rotate_cmk` (a record
    /// rewritten by another process may name another key: that one needs
    /// `cmk_resolver`).
    known: Mutex<HashMap<String, Arc<dyn KeyEncryptionKey>>>,
    provider: &'static CryptoProvider,
    policy: CachePolicy,
    state: Mutex<State>,
    /// Single flight for store reads and CMK unwraps.
    flight: AsyncMutex<()>,
    /// The record's current version (read without the state lock).
    current: AtomicU32,
    /// The state's window, for new leases (read without the state lock).
    window_soft: AtomicU64,
    window_hard: AtomicU64,
    /// Set once the record is known to be gone: every lease stops.
    revoked: AtomicBool,
    counters: Counters,
    jitter: Jitter,
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

/// A CMK failure, as the scope reports it: the key is unavailable.
fn unavailable(scope_id: &str, e: Error) -> Error {
    if matches!(e, Error::UnknownKek { .. } | Error::KeyPolicy(_)) {
        return e;
    }
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
    /// Creates a scope: draws scope key version 1, wraps it (as labelled
    /// scope key material) with `cmk`, and stores the record only if none
    /// exists (compare-and-swap on "absent"). An existing scope is never
    /// overwritten, whatever its mode.
    ///
    /// Cost: one store read, one CMK wrap, one store write.
    pub async fn create(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        policy: CachePolicy,
    ) -> crate::Result<EncryptionScope> {
        Self::create_with_resolver(store, scope_id, cmk, None, policy).await
    }

    /// [`EncryptionScope::create`] for a scope that unwraps its record with
    /// the key each version names, through `cmk_resolver` (see
    /// [`EncryptionScope::open_with_resolver`]).
    pub async fn create_with_resolver(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        cmk_resolver: Option<Arc<dyn KeyResolver>>,
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
        let material = material::encode(
            provider,
            scope_id,
            scope_key.expose_secret_bytes(),
            Usage::SealAndOpen,
        )?;
        let wrapped = cmk.kek().wrap_key_material(&material).await?;
        let record = ScopeRecord {
            scope_id: scope_id.to_owned(),
            mode: cmk.mode(),
            cmk_container: container,
            current: 1,
            versions: vec![ScopeKeyVersion {
                version: 1,
                wrapped,
            }],
            labelled: true,
        };
        let etag = store.put(scope_id, &record.to_json(), None).await?;
        // The key just drawn is not cached: its first use unwraps it, which
        // proves the CMK can unwrap what it wrapped before anything is
        // sealed under it.
        Ok(Self::from_parts(
            store,
            cmk,
            cmk_resolver,
            policy,
            provider,
            record,
            etag,
        ))
    }

    /// Opens an existing scope. `cmk` must be of the scope's mode and in
    /// the scope's key container. No CMK call is made until a key is needed.
    ///
    /// `cmk` unwraps the versions whose `kek_id` is its
    /// [`key_id`](KeyEncryptionKey::key_id) (compared ignoring ASCII case);
    /// a version wrapped by another key fails with
    /// [`KekErrorKind::KeyUnavailable`], naming that key, and that key is
    /// not called. So if another process rotates the scope to another key
    /// ([`EncryptionScope::rotate_cmk`]), this instance stops once its
    /// cached state expires. To follow such rotations, and for a Key Vault
    /// key that names no version, use
    /// [`EncryptionScope::open_with_resolver`].
    ///
    /// Cost: one store read.
    pub async fn open(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        policy: CachePolicy,
    ) -> crate::Result<EncryptionScope> {
        Self::open_with_resolver(store, scope_id, cmk, None, policy).await
    }

    /// [`EncryptionScope::open`], unwrapping each record version with the
    /// key its `kek_id` names through `cmk_resolver` (an allow-list; a key
    /// it returns must be in the scope's key container). `cmk` still gives
    /// the mode, and is the key asked for its current version by automatic
    /// rotation; a new scope key version is wrapped by the key that wraps
    /// the current one.
    ///
    /// * Following another process's CMK rotation: a resolver that allows
    ///   the keys of the vault the scope may move to.
    /// * A Key Vault key named **without a version**
    ///   (`https://NAME.vault.azure.net/keys/KEY`), with
    ///   [`AzureKeyVaultResolver`](crate::kek::azure::AzureKeyVaultResolver)
    ///   over the same URL: each version is unwrapped with the key version
    ///   that wrapped it, and the scope rotates automatically to the key's
    ///   current version (see [`CachePolicy::rotation_check_interval`]).
    ///
    /// Cost: one store read.
    pub async fn open_with_resolver(
        store: Arc<dyn ScopeStore>,
        scope_id: &str,
        cmk: Cmk,
        cmk_resolver: Option<Arc<dyn KeyResolver>>,
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
        let scope = Self::from_parts(
            store,
            cmk,
            cmk_resolver,
            policy,
            CryptoProvider::default_provider(),
            record,
            etag,
        );
        Counters::bump(&scope.inner.counters.store_reads);
        Ok(scope)
    }

    fn from_parts(
        store: Arc<dyn ScopeStore>,
        cmk: Cmk,
        cmk_resolver: Option<Arc<dyn KeyResolver>>,
        policy: CachePolicy,
        provider: &'static CryptoProvider,
        record: ScopeRecord,
        etag: Etag,
    ) -> EncryptionScope {
        let known = [(cmk.kek().key_id().to_ascii_lowercase(), cmk.kek().clone())]
            .into_iter()
            .collect();
        let now = clock::now();
        let jitter = Jitter::new();
        let first_check = clock::after(now, policy.rotation_check_interval);
        let window = state::window_from(&policy, &jitter, now, first_check);
        let inner = Inner {
            id: record.scope_id.clone(),
            store,
            cmk,
            cmk_resolver,
            known: Mutex::new(known),
            provider,
            current: AtomicU32::new(record.current),
            window_soft: AtomicU64::new(window.soft),
            window_hard: AtomicU64::new(window.hard),
            state: Mutex::new(State::new(record, etag, window, first_check)),
            flight: AsyncMutex::new(()),
            policy,
            revoked: AtomicBool::new(false),
            counters: Counters::default(),
            jitter,
        };
        EncryptionScope {
            inner: Arc::new(inner),
        }
    }

    /// The scope id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// A copy of the record as last read or written. Cost: a clone.
    pub fn record(&self) -> ScopeRecord {
        self.inner.lock_state().record.clone()
    }

    /// Counters: cache hits and misses, CMK calls, store reads, rotations.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// The KEK to seal new objects with: A256KW under the record's current
    /// scope key version **at wrap time** (it follows rotations made here
    /// or, after a refresh, anywhere). The id recorded in each header is
    /// the one in the returned [`WrappedKey`](crate::WrappedKey),
    /// `scope:<id>/<version>`; this KEK's own
    /// [`key_id`](KeyEncryptionKey::key_id) is `scope:<id>`, without a
    /// version. Read objects through [`EncryptionScope::resolver`].
    ///
    /// Wrapping makes no KMS call and no store read once the scope key is
    /// cached, and hands out a [`KeyLease`](crate::KeyLease) that bounds
    /// the sealing of the object by the scope's TTL.
    pub fn kek(&self) -> Arc<dyn KeyEncryptionKey> {
        Arc::new(ScopeKek::following(self.inner.clone()))
    }

    /// A resolver that knows every version of this scope's key (and nothing
    /// else). A version the cached record lacks is looked up in the store
    /// again (rate-limited) when a header names it.
    pub fn resolver(&self) -> ScopeResolver {
        ScopeResolver::new(self.inner.clone())
    }

    /// Re-reads the record now and re-unwraps the scope key versions in use
    /// (what the cache does by itself once per refresh period). Call it to
    /// keep a scope fresh from async code when only long-running handles
    /// use it (their leases otherwise renew on their own threads).
    ///
    /// Cost: one store read, one CMK unwrap per key version in use.
    pub async fn refresh(&self) -> crate::Result<()> {
        let v = self.inner.current.load(Ordering::Acquire);
        let _guard = self.inner.flight.lock().await;
        self.inner.refresh(v).await.map(drop)
    }

    /// The version a seal uses now (the current one, moved to a fresh
    /// version first if the current one may not seal: a key of a record
    /// written before labelling).
    #[cfg(feature = "document")]
    pub(crate) async fn sealing_version(&self) -> crate::Result<u32> {
        self.inner.sealing_key().await.map(|(v, _)| v)
    }

    /// A 64-byte key derived from scope key `version` with HKDF-SHA-512
    /// (the scope key as PRK, `info` = a fixed label, then `label`), for
    /// keys that must be the same across objects of the scope (document
    /// fields in deterministic mode). Goes through the key cache like
    /// [`EncryptionScope::kek`], so it fails once the scope is destroyed or
    /// the CMK revoked and the cache has expired.
    #[cfg(feature = "document")]
    pub(crate) async fn derive_key(
        &self,
        version: u32,
        label: &[u8],
    ) -> crate::Result<Zeroizing<[u8; 64]>> {
        const DERIVE_LABEL: &[u8] = b"cmk-envelope/v1 scope-derived key\0";
        let key = self.inner.key(version).await?;
        let mut out = Zeroizing::new([0u8; 64]);
        self.inner
            .provider
            .hkdf
            .expand_sha512(&key.key[..], &[DERIVE_LABEL, label], &mut out[..])
            .map_err(|_| Error::Internal("HKDF expansion failed"))?;
        Ok(out)
    }

    /// Re-wraps every scope key version under `new_cmk` and stores the
    /// record with compare-and-swap. Refused when `new_cmk` is of the other
    /// mode or in another key container. Objects are not touched.
    ///
    /// Returns a scope bound to `new_cmk`; this one keeps working too (it
    /// now knows `new_cmk` under the ids it recorded). Other instances
    /// follow within their TTL if they can use `new_cmk` (see
    /// [`EncryptionScope::open_with_resolver`]).
    ///
    /// Cost: one unwrap with the old CMK and one wrap with the new one per
    /// version, one store write. Returns [`Error::ScopeConflict`] if another
    /// process changed the record meanwhile (nothing is written; this
    /// instance re-reads the record on its next use, so retrying is enough).
    pub async fn rotate_cmk(&self, new_cmk: Cmk) -> crate::Result<EncryptionScope> {
        let (record, etag) = self.inner.rotate_cmk(&new_cmk).await?;
        Ok(Self::from_parts(
            self.inner.store.clone(),
            new_cmk,
            self.inner.cmk_resolver.clone(),
            self.inner.policy.clone(),
            self.inner.provider,
            record,
            etag,
        ))
    }

    /// Adds a new scope key version (wrapped by the CMK that wraps the
    /// current one) and makes it current; older versions stay for reading.
    /// A record written before labelling is migrated in the same write.
    /// Compare-and-swap as for [`EncryptionScope::rotate_cmk`]. Returns the
    /// new version.
    ///
    /// Errors: [`Error::KeyPolicy`] when the record already holds version
    /// `u32::MAX` (nothing is written; the record stays readable).
    ///
    /// Cost: one CMK wrap (plus one unwrap and wrap per version when
    /// migrating), one store write.
    pub async fn rotate_scope_key(&self) -> crate::Result<u32> {
        self.inner.rotate_scope_key().await
    }

    /// Crypto-shreds this scope: deletes its key record and drops every
    /// cached scope key, after which no object sealed under it can be
    /// decrypted — by this instance and its open handles at once, and by
    /// every other instance within its cache TTL (unless a copy of the
    /// record survives elsewhere, such as a backup of the store).
    /// `confirm_scope_id` must repeat the id.
    pub async fn destroy(&self, confirm_scope_id: &str) -> crate::Result<()> {
        Self::destroy_record(self.inner.store.as_ref(), &self.inner.id, confirm_scope_id).await?;
        self.inner.mark_destroyed();
        Ok(())
    }

    /// Crypto-shreds a scope by id, without opening it (see
    /// [`EncryptionScope::destroy`]). `confirm_scope_id` must repeat
    /// `scope_id`.
    ///
    /// Cost: one store read, one store delete.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_kids() {
        assert_eq!(scope_kid("t-1", 3), "scope:t-1/3");
        assert_eq!(parse_scope_kid("scope:t-1/3"), Some(("t-1", 3)));
        assert_eq!(scope_kid_version("scope:t-1/3", "t-1"), Some(3));
        for bad in [
            "scope:t-1/0",
            "scope:t-1/x",
            "scope:t-2/3",
            "scope:t-1x/3",
            "scope:t-1",
        ] {
            assert_eq!(scope_kid_version(bad, "t-1"), None, "{bad}");
        }
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
