//! An allow-list resolver.

use std::collections::HashMap;
use std::sync::Arc;

use super::{KeyEncryptionKey, KeyResolver};

/// A [`KeyResolver`] over a fixed set of KEKs, keyed by
/// [`KeyEncryptionKey::key_id`]. Anything else is unknown.
///
/// Lookups are a hash-map probe: no I/O, no allocation.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    keys: HashMap<String, Arc<dyn KeyEncryptionKey>>,
}

impl StaticResolver {
    /// An empty allow-list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `kek` under its own key id (replacing an earlier one with the
    /// same id).
    pub fn with(mut self, kek: Arc<dyn KeyEncryptionKey>) -> Self {
        self.insert(kek);
        self
    }

    /// Adds `kek` under its own key id.
    pub fn insert(&mut self, kek: Arc<dyn KeyEncryptionKey>) {
        self.keys.insert(kek.key_id().to_owned(), kek);
    }

    /// Adds `kek` under an extra id (an alias), for backends whose header id
    /// differs from [`KeyEncryptionKey::key_id`].
    pub fn insert_as(&mut self, kek_id: impl Into<String>, kek: Arc<dyn KeyEncryptionKey>) {
        self.keys.insert(kek_id.into(), kek);
    }

    /// Number of allowed ids.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the allow-list is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<Arc<dyn KeyEncryptionKey>> for StaticResolver {
    fn from_iter<I: IntoIterator<Item = Arc<dyn KeyEncryptionKey>>>(iter: I) -> Self {
        let mut r = StaticResolver::new();
        for k in iter {
            r.insert(k);
        }
        r
    }
}

impl KeyResolver for StaticResolver {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        self.keys.get(kek_id).cloned()
    }
}
