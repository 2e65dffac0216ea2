//! A [`ScopeStore`] on a local file system.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::record::validate_scope_id;
use super::store::{Etag, ScopeStore};
use crate::atomic_file;
use crate::error::Error;

/// Scope key records as files `<dir>/<scope-id>.json` (mode 0600).
///
/// * Writes go to a temporary file that is fsynced and renamed over the
///   record, then the directory is fsynced: a crash leaves the old record or
///   the new one, never a mix.
/// * Compare-and-swap: the tag of a record is its length and a 64-bit
///   FNV-1a hash of its bytes. A write takes an exclusive advisory lock on
///   `<dir>/.<scope-id>.lock` (`flock`), re-reads the tag, and writes only if
///   it still matches, so processes on one machine (or on a file system with
///   working `flock`) cannot lose each other's update. Two records with the
///   same bytes have the same tag, which is harmless: a writer that saw those
///   bytes computed its update from exactly what is stored.
///
/// The calls block on file I/O; records are small.
#[derive(Debug, Clone)]
pub struct FsScopeStore {
    dir: PathBuf,
}

impl FsScopeStore {
    /// A store in `dir`, created (mode 0700) if missing.
    pub fn new(dir: impl Into<PathBuf>) -> crate::Result<Self> {
        let dir = dir.into();
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)?;
        Ok(FsScopeStore { dir })
    }

    fn path(&self, scope_id: &str) -> crate::Result<PathBuf> {
        validate_scope_id(scope_id)?;
        Ok(self.dir.join(format!("{scope_id}.json")))
    }

    fn lock(&self, scope_id: &str) -> crate::Result<File> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!(".{scope_id}.lock")))?;
        f.lock()?;
        Ok(f)
    }

    fn read(path: &Path) -> crate::Result<Option<(Vec<u8>, Etag)>> {
        match fs::read(path) {
            Ok(b) => {
                let tag = etag_of(&b);
                Ok(Some((b, tag)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn etag_of(bytes: &[u8]) -> Etag {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Etag(format!("{}-{h:016x}", bytes.len()))
}

#[async_trait]
impl ScopeStore for FsScopeStore {
    async fn get(&self, scope_id: &str) -> crate::Result<Option<(Vec<u8>, Etag)>> {
        Self::read(&self.path(scope_id)?)
    }

    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> crate::Result<Etag> {
        let path = self.path(scope_id)?;
        let _lock = self.lock(scope_id)?;
        let current = Self::read(&path)?.map(|(_, t)| t);
        if current.as_ref() != expected {
            return Err(Error::scope_conflict(scope_id));
        }
        atomic_file::write(&path, 0o600, true, record)?;
        Ok(etag_of(record))
    }

    async fn delete(&self, scope_id: &str, expected: &Etag) -> crate::Result<()> {
        let path = self.path(scope_id)?;
        let _lock = self.lock(scope_id)?;
        match Self::read(&path)? {
            None => Err(Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            }),
            Some((_, t)) if &t != expected => Err(Error::scope_conflict(scope_id)),
            Some(_) => {
                fs::remove_file(&path)?;
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                Ok(())
            }
        }
    }
}
