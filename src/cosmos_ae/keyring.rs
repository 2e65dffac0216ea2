//! The client encryption keys of a database, their unwrapped root keys
//! cached under the scope cache's rules, and the keys derived from them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, KekError, KekErrorKind};
use crate::kek::KeyResolver;
use crate::provider::CryptoProvider;
use crate::scope::{CachePolicy, CacheStats, KeyCache, ScopeSecret};
use crate::untrusted::escape;

use super::algorithm::CekCipher;
use super::cek::ClientEncryptionKey;
use super::lifecycle::unwrap_root_key;
use super::policy::F;

struct Known {
    cek: ClientEncryptionKey,
    /// Bumped when the resource is replaced: the cache slot is
    /// `(id, generation)`, so a replaced key is never served from an older
    /// entry.
    generation: u32,
}

/// The client encryption keys a container's policy may name, and the key
/// material they unwrap to.
///
/// * Root keys are unwrapped through a [`KeyResolver`] (an allow-list: the
///   metadata's `value` must resolve, a KEK it does not know is never
///   contacted) and cached like scope keys ([`CachePolicy`]): a TTL that
///   bounds how long a revoked KEK keeps data readable (5 minutes by
///   default), refresh ahead, single flight (concurrent misses make one
///   KEK call), a failure back-off, an entry bound, zeroized on drop.
/// * The three keys derived from a root key are kept beside it and used
///   only while the cache returns that same root key, so they obey the TTL
///   too.
///
/// Share it between the [`ItemCipher`](super::ItemCipher)s of a database's
/// containers with an `Arc`. Every method takes `&self`.
pub struct CekKeyring {
    keys: RwLock<HashMap<String, Known>>,
    resolver: Arc<dyn KeyResolver>,
    cache: KeyCache,
    derived: Mutex<HashMap<String, (ScopeSecret, Arc<CekCipher>)>>,
    provider: &'static CryptoProvider,
}

impl fmt::Debug for CekKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self
            .keys
            .read()
            .expect("keyring lock")
            .keys()
            .cloned()
            .collect();
        f.debug_struct("CekKeyring")
            .field("ids", &ids)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl CekKeyring {
    /// An empty keyring whose root keys unwrap through `resolver`, cached
    /// under `policy`. No I/O.
    pub fn new(resolver: Arc<dyn KeyResolver>, policy: CachePolicy) -> CekKeyring {
        CekKeyring {
            keys: RwLock::new(HashMap::new()),
            resolver,
            cache: KeyCache::new(policy),
            derived: Mutex::new(HashMap::new()),
            provider: CryptoProvider::default_provider(),
        }
    }

    /// The same keyring computing with `provider` instead of the default.
    pub fn with_provider(mut self, provider: &'static CryptoProvider) -> CekKeyring {
        self.provider = provider;
        self
    }

    /// Adds `cek`, or replaces the key of the same id (after a rewrap, for
    /// example); a replaced key's cached material is dropped. No I/O.
    pub fn insert(&self, cek: ClientEncryptionKey) {
        let id = cek.id().to_owned();
        let mut keys = self.keys.write().expect("keyring lock");
        let generation = keys.get(&id).map_or(0, |k| k.generation.wrapping_add(1));
        keys.insert(id.clone(), Known { cek, generation });
        drop(keys);
        self.cache.invalidate(&id);
        self.derived.lock().expect("derived lock").remove(&id);
    }

    /// The key `id`, if present.
    pub fn get(&self, id: &str) -> Option<ClientEncryptionKey> {
        self.keys
            .read()
            .expect("keyring lock")
            .get(id)
            .map(|k| k.cek.clone())
    }

    /// The allow-list the root keys are unwrapped through.
    #[cfg(feature = "cosmos")]
    pub(crate) fn resolver(&self) -> &Arc<dyn KeyResolver> {
        &self.resolver
    }

    /// Cache counters: hits, misses, KEK calls, errors.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The derived keys of CEK `id`. Cost: nothing when cached; otherwise
    /// one KEK unwrap (single flight) and three HMACs.
    pub(crate) async fn cipher(&self, id: &str) -> crate::Result<Arc<CekCipher>> {
        let (cek, generation) = {
            let keys = self.keys.read().expect("keyring lock");
            let k = keys.get(id).ok_or_else(|| {
                F.err(format!(
                    "the policy names client encryption key `{}`, which is not in the keyring",
                    escape(id)
                ))
            })?;
            (k.cek.clone(), k.generation)
        };
        let resolver = &self.resolver;
        let root = self
            .cache
            .get(id, generation, || unwrap_root_key(&cek, resolver.as_ref()))
            .await
            .map_err(|e| backoff_message(e, id))?;
        let mut derived = self.derived.lock().expect("derived lock");
        if let Some((r, c)) = derived.get(id) {
            if Arc::ptr_eq(r, &root) {
                return Ok(c.clone());
            }
        }
        let cipher = Arc::new(CekCipher::derive(self.provider, &root));
        derived.insert(id.to_owned(), (root, cipher.clone()));
        Ok(cipher)
    }
}

/// The cache's back-off refusal speaks of a scope; say which key it is.
fn backoff_message(e: Error, id: &str) -> Error {
    match e {
        Error::Kek(k) if k.backend() == "scope" => KekError::new(
            "cosmos-ae",
            KekErrorKind::KeyUnavailable,
            format!("client encryption key `{}`: its key-encryption key failed recently; not retrying until the back-off ends", escape(id)),
        )
        .into(),
        other => other,
    }
}
