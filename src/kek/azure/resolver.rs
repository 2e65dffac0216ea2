//! [`AzureKeyVaultResolver`]: the allow-list that maps the versioned key ids
//! in headers to KEKs bound to exactly that version.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::url::KeyUrl;
use super::AzureKeyVaultKek;
use crate::kek::{KeyEncryptionKey, KeyResolver};

/// Most per-version KEKs kept; beyond it the cache is cleared (headers are
/// untrusted and could name many versions).
const MAX_CACHED_VERSIONS: usize = 64;

/// Resolves `https://VAULT/keys/NAME/VERSION` ids for **one** configured key.
///
/// * Only ids whose host and key name equal the configured URL's are
///   allowed (host and name compared ignoring ASCII case, as Key Vault
///   does). Anything else, including unversioned ids, other vaults, other
///   keys, or malformed URLs, resolves to `None`: no request is ever made to
///   a vault just because a header names it.
/// * Built from a versioned KEK, only that version is allowed; built from an
///   unversioned one, every version of the key is.
/// * The KEK returned for a version shares the base KEK's client,
///   credential and retry state, and unwraps with exactly that version.
///
/// Cost: a URL parse and a hash-map probe; building a per-version KEK makes
/// no call (its preflight runs on first use).
pub struct AzureKeyVaultResolver {
    base: AzureKeyVaultKek,
    cache: Mutex<HashMap<String, Arc<dyn KeyEncryptionKey>>>,
}

impl fmt::Debug for AzureKeyVaultResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultResolver")
            .field("key", &self.base.url().to_string())
            .finish_non_exhaustive()
    }
}

impl AzureKeyVaultResolver {
    /// A resolver for the key (and, if versioned, the version) of `kek`.
    pub fn new(kek: AzureKeyVaultKek) -> Self {
        AzureKeyVaultResolver {
            base: kek,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The configured KEK (for wrapping).
    pub fn kek(&self) -> &AzureKeyVaultKek {
        &self.base
    }

    /// Whether `kek_id` is allowed, and if so its parsed form.
    pub fn allows(&self, kek_id: &str) -> Option<KeyUrl> {
        let id = KeyUrl::parse(kek_id).ok()?;
        id.version()?;
        let base = self.base.url();
        let ok = match base.version() {
            Some(_) => id.same_version(base),
            None => id.same_key(base),
        };
        ok.then_some(id)
    }
}

impl KeyResolver for AzureKeyVaultResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        let id = self.allows(kek_id)?;
        let version = id.version()?.to_ascii_lowercase();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&version) {
            return Some(Arc::clone(k));
        }
        let kek: Arc<dyn KeyEncryptionKey> = Arc::new(self.base.for_version(id.version()?).ok()?);
        if cache.len() >= MAX_CACHED_VERSIONS {
            cache.clear();
        }
        cache.insert(version, Arc::clone(&kek));
        Some(kek)
    }
}
