//! A small, bounded LRU of decrypted chunks, shared by the files of one
//! [`EncryptedDirectory`](super::EncryptedDirectory).
//!
//! Keys are `(file key, chunk index)`, where the file key is taken from the
//! envelope's random 24-byte body salt: two envelopes never share one, so a
//! file deleted and written again under the same name can never be served
//! stale chunks.
//!
//! Plaintext leaving the cache (evicted, or the whole cache cleared when a
//! file's data key is no longer usable) is wiped when the cache holds its
//! last reference. A chunk tantivy still holds is tantivy's: its memory is
//! freed, unwiped, when tantivy drops it, like any plaintext it reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) type ChunkKey = (u128, u64);

struct Lru {
    capacity: usize,
    tick: u64,
    map: HashMap<ChunkKey, (Arc<[u8]>, u64)>,
    order: BTreeMap<u64, ChunkKey>,
}

pub(crate) struct ChunkCache {
    inner: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ChunkCache {
    pub(crate) fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Lru {
                capacity,
                tick: 0,
                map: HashMap::with_capacity(capacity.min(4096)),
                order: BTreeMap::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, key: &ChunkKey) -> Option<Arc<[u8]>> {
        let mut lru = self.inner.lock().expect("chunk cache lock");
        let lru = &mut *lru;
        lru.tick += 1;
        let tick = lru.tick;
        match lru.map.get_mut(key) {
            Some((data, stamp)) => {
                lru.order.remove(stamp);
                *stamp = tick;
                lru.order.insert(tick, *key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(data.clone())
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn insert(&self, key: ChunkKey, data: Arc<[u8]>) {
        let mut lru = self.inner.lock().expect("chunk cache lock");
        let lru = &mut *lru;
        if lru.capacity == 0 {
            return;
        }
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((_, old)) = lru.map.insert(key, (data, tick)) {
            lru.order.remove(&old);
        }
        lru.order.insert(tick, key);
        while lru.map.len() > lru.capacity {
            let Some((_, evict)) = lru.order.pop_first() else {
                break;
            };
            if let Some((mut data, _)) = lru.map.remove(&evict) {
                wipe(&mut data);
            }
        }
    }

    /// Drops (and wipes) every cached chunk.
    pub(crate) fn clear(&self) {
        let mut lru = self.inner.lock().expect("chunk cache lock");
        lru.order.clear();
        for (_, (mut data, _)) in lru.map.drain() {
            wipe(&mut data);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("chunk cache lock").map.len()
    }

    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Zeroes a chunk's plaintext if `data` is its last reference (before it
/// is dropped); returns whether it did.
fn wipe(data: &mut Arc<[u8]>) -> bool {
    match Arc::get_mut(data) {
        Some(bytes) => {
            zeroize::Zeroize::zeroize(bytes);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c = ChunkCache::new(2);
        let d: Arc<[u8]> = Arc::from(&b"x"[..]);
        c.insert((1, 0), d.clone());
        c.insert((1, 1), d.clone());
        assert!(c.get(&(1, 0)).is_some()); // 0 is now the most recent
        c.insert((1, 2), d.clone()); // evicts 1
        assert!(c.get(&(1, 1)).is_none());
        assert!(c.get(&(1, 0)).is_some());
        assert!(c.get(&(1, 2)).is_some());
        assert_eq!(c.len(), 2);
        assert_eq!(c.counters(), (3, 1));
        let z = ChunkCache::new(0);
        z.insert((1, 0), d);
        assert_eq!(z.len(), 0);
    }

    #[test]
    fn cleared_chunks_still_held_by_a_reader_stay_intact() {
        let c = ChunkCache::new(1);
        c.insert((1, 0), Arc::from(&[0xAAu8; 64][..]));
        c.insert((1, 1), Arc::from(&[0xBBu8; 64][..])); // evicts (1, 0)
        assert!(c.get(&(1, 0)).is_none());
        let held = c.get(&(1, 1)).unwrap();
        c.clear();
        assert_eq!(c.len(), 0);
        assert!(
            held.iter().all(|b| *b == 0xBB),
            "a reader's copy is its own"
        );
    }

    #[test]
    fn wipe_zeroes_only_a_last_reference() {
        let mut unique: Arc<[u8]> = Arc::from(&[0xCCu8; 16][..]);
        assert!(wipe(&mut unique));
        assert!(unique.iter().all(|b| *b == 0));
        let mut shared: Arc<[u8]> = Arc::from(&[0xDDu8; 16][..]);
        let reader = shared.clone();
        assert!(!wipe(&mut shared));
        assert!(reader.iter().all(|b| *b == 0xDD));
    }
}
