//! Where scope key records live: the [`ScopeStore`] trait and an in-memory
//! store.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::Error;

/// An opaque version tag of a stored record (an ETag, a generation number).
/// Compare-and-swap writes pass the tag they read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Etag(pub String);

/// Persists scope key records with compare-and-swap, so that two processes
/// can never lose each other's update.
///
/// Implementations: [`MemoryScopeStore`], [`FsScopeStore`](crate::scope::FsScopeStore),
/// with feature `blob` `BlobScopeStore` (Azure Blob Storage, with
/// `If-Match` / `If-None-Match: *`), and with feature `cosmos`
/// `CosmosScopeStore` (Azure Cosmos DB items, with `If-Match`). Another
/// implementation can check itself with the store suite of
/// `cmk_envelope::conformance` (feature `conformance`). Records hold only
/// wrapped keys, but a store must still not be world-readable, and writing
/// it must be restricted: the crate's `SECURITY.md` says what a store
/// writer can and cannot do.
///
/// An open scope reads the record once per cache refresh period, and once
/// more (rate-limited) for a header naming a version it lacks; a `None`
/// from [`ScopeStore::get`] means the scope was destroyed.
#[async_trait]
pub trait ScopeStore: Send + Sync + Debug {
    /// The record of `scope_id` and its tag, or `None`.
    async fn get(&self, scope_id: &str) -> crate::Result<Option<(Vec<u8>, Etag)>>;

    /// Writes `record` if the stored tag equals `expected` (`None`: only if
    /// there is no record yet). Returns the new tag, or
    /// [`Error::ScopeConflict`] without writing anything.
    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> crate::Result<Etag>;

    /// Deletes the record if its tag equals `expected`
    /// ([`Error::ScopeConflict`] otherwise, [`Error::ScopeNotFound`] if
    /// there is none).
    async fn delete(&self, scope_id: &str, expected: &Etag) -> crate::Result<()>;
}

/// A [`ScopeStore`] in process memory, for tests and single-process use.
#[derive(Debug, Default)]
pub struct MemoryScopeStore {
    records: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl MemoryScopeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ScopeStore for MemoryScopeStore {
    async fn get(&self, scope_id: &str) -> crate::Result<Option<(Vec<u8>, Etag)>> {
        let map = self.records.lock().expect("store lock");
        Ok(map
            .get(scope_id)
            .map(|(r, g)| (r.clone(), Etag(g.to_string()))))
    }

    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> crate::Result<Etag> {
        let mut map = self.records.lock().expect("store lock");
        let current = map.get(scope_id).map(|(_, g)| Etag(g.to_string()));
        if current.as_ref() != expected {
            return Err(Error::scope_conflict(scope_id));
        }
        let g = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        map.insert(scope_id.to_owned(), (record.to_vec(), g));
        Ok(Etag(g.to_string()))
    }

    async fn delete(&self, scope_id: &str, expected: &Etag) -> crate::Result<()> {
        let mut map = self.records.lock().expect("store lock");
        match map.get(scope_id) {
            None => Err(Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            }),
            Some((_, g)) if g.to_string() != expected.0 => Err(Error::scope_conflict(scope_id)),
            Some(_) => {
                map.remove(scope_id);
                Ok(())
            }
        }
    }
}
