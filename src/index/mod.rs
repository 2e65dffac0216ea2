//! An encrypting `tantivy::Directory` for search-index segments (feature
//! `index`).
//!
//! [`EncryptedDirectory`] wraps another directory (`MmapDirectory`,
//! `RamDirectory`, …). What tantivy writes through it is stored encrypted;
//! what it reads is decrypted on the fly:
//!
//! * **Every file is an envelope** (FORMAT.md, embedded form: header, then
//!   body) with profile `index` (`0x03`) and its own data key, wrapped under
//!   the scope key ([`EncryptionScope::kek`]): no KMS call once the scope
//!   key is cached.
//! * **`app_context` = index name `|| 0x00 ||` file name** (the path
//!   relative to the directory, UTF-8). A file copied from another index,
//!   or renamed within one, fails the key commitment when it is opened
//!   ([`Error::CommitmentMismatch`], inside the `io::Error` as an
//!   [`EncryptedFileError`] naming the file).
//! * **`atomic_write` / `atomic_read`** (`meta.json`, `.managed.json`) are
//!   sealed and opened whole, bound the same way.
//! * **Random access.** `FileHandle::read_bytes(range)` fetches only the
//!   16 KiB chunks covering the range from the inner directory and
//!   decrypts them ([`RangeDecryptor`](crate::RangeDecryptor)); the final chunk is checked when the
//!   file is opened, which authenticates its length. Decrypted chunks go
//!   into a bounded LRU shared by the directory's files (default
//!   [`DEFAULT_CACHE_CHUNKS`] chunks of 16 KiB), so a hot loop over the
//!   same postings or dictionary block decrypts it once. Reads spanning
//!   more than 4 chunks (whole fast-field columns, merges) are decrypted in
//!   one pass and bypass the cache, so scans do not evict the hot set.
//! * Lock files are delegated to the inner directory (they hold no data).
//!
//! ```no_run
//! # async fn index(scope: cmk_envelope::scope::EncryptionScope) -> Result<(), Box<dyn std::error::Error>> {
//! use cmk_envelope::index::EncryptedDirectory;
//! use tantivy::directory::MmapDirectory;
//! use tantivy::schema::{Schema, TEXT};
//! use tantivy::{doc, Index, IndexWriter};
//!
//! let dir = EncryptedDirectory::new(MmapDirectory::open("idx")?, scope, "products")?;
//! dir.warm().await?; // unwrap the scope key once, from async code
//! let mut schema = Schema::builder();
//! let title = schema.add_text_field("title", TEXT);
//! let index = Index::create(dir, schema.build(), Default::default())?;
//! let mut writer: IndexWriter = index.writer(50_000_000)?;
//! writer.add_document(doc!(title => "encrypted at rest"))?;
//! writer.commit()?;
//! # Ok(()) }
//! ```
//!
//! Tantivy's `Directory` is synchronous while KEKs are async: the directory
//! drives the scope KEK's futures with a small parking executor. After the
//! first unwrap the scope key is cached in-process and those futures
//! complete at once. A scope whose CMK needs an async runtime (a remote
//! vault) should be warmed first with [`EncryptedDirectory::warm`] from
//! async code; afterwards only the cache TTL's refreshes reach the CMK.
//!
//! **Open files follow the scope.** Each open file holds the
//! [`KeyLease`](crate::KeyLease) of its data key and checks it before it
//! opens a chunk or serves one from the chunk cache: once the scope is
//! destroyed (seen by this process) reads fail at once, and once its record
//! or CMK could not be reached for a whole cache TTL they fail with the
//! scope's error. A read that finds the lease due renews it on tantivy's
//! thread, through the same executor (an in-process refresh when another
//! user of the scope refreshed it already; otherwise one store read and the
//! CMK calls of the refresh — for a remote CMK or store, keep the scope
//! fresh from async code with
//! [`EncryptionScope::refresh`](crate::scope::EncryptionScope::refresh), or
//! read on threads outside the async runtime). When a file's lease fails,
//! the whole chunk cache is wiped.
//!
//! What is not hidden: the number, names and sizes of files (each file's
//! size is its plaintext size plus 72 bytes, plus 16 per 16 KiB, plus the
//! header), and when they are written — the structure of the index, but
//! no term, posting, stored value or statistic.

mod cache;
mod file;

use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, TerminatingWrite, WatchCallback,
    WatchHandle, WritePtr,
};

pub use file::EncryptedFileError;

use self::cache::ChunkCache;
use self::file::{io_err, EncryptedFile};
use crate::envelope::{Decryptor, Encryptor};
use crate::error::Error;
use crate::format::{Header, Profile};
use crate::scope::{EncryptionScope, ScopeResolver};
use crate::stream::{EncryptingWriter, BODY_PREFIX_LEN, CHUNK_SIZE};
use pollster::block_on;

/// Default size of the decrypted-chunk cache, in 16 KiB chunks (4 MiB).
pub const DEFAULT_CACHE_CHUNKS: usize = 256;

/// An encrypting `tantivy::Directory`. See the [module docs](self).
///
/// Cheap to clone: clones share the chunk cache.
#[derive(Clone)]
pub struct EncryptedDirectory {
    inner: Box<dyn Directory>,
    scope: EncryptionScope,
    resolver: ScopeResolver,
    index_name: Arc<str>,
    cache: Arc<ChunkCache>,
}

impl fmt::Debug for EncryptedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedDirectory")
            .field("index", &self.index_name)
            .field("scope", &self.scope.id())
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Counters of the decrypted-chunk cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that had to fetch and decrypt a chunk.
    pub misses: u64,
    /// Chunks held now.
    pub chunks: usize,
}

impl EncryptedDirectory {
    /// Wraps `inner` for the index `index_name` (which must not contain a
    /// NUL byte), with keys of `scope` and a cache of
    /// [`DEFAULT_CACHE_CHUNKS`] chunks.
    pub fn new(
        inner: impl Into<Box<dyn Directory>>,
        scope: EncryptionScope,
        index_name: &str,
    ) -> crate::Result<EncryptedDirectory> {
        Self::with_cache_chunks(inner, scope, index_name, DEFAULT_CACHE_CHUNKS)
    }

    /// [`EncryptedDirectory::new`] with a cache of `chunks` decrypted
    /// chunks of 16 KiB (0 disables it).
    pub fn with_cache_chunks(
        inner: impl Into<Box<dyn Directory>>,
        scope: EncryptionScope,
        index_name: &str,
        chunks: usize,
    ) -> crate::Result<EncryptedDirectory> {
        if index_name.is_empty() || index_name.contains('\0') {
            return Err(Error::ApiMisuse(
                "an index name must be non-empty and without NUL bytes",
            ));
        }
        Ok(EncryptedDirectory {
            inner: inner.into(),
            resolver: scope.resolver(),
            scope,
            index_name: index_name.into(),
            cache: Arc::new(ChunkCache::new(chunks)),
        })
    }

    /// The index name bound into every file.
    pub fn index_name(&self) -> &str {
        &self.index_name
    }

    /// Unwraps the current scope key into the scope's cache (one CMK call
    /// if it is cold), from async code, so that tantivy's synchronous calls
    /// need no CMK call.
    pub async fn warm(&self) -> crate::Result<()> {
        let dek =
            crate::key::DataKey::generate(crate::provider::CryptoProvider::default_provider())?;
        self.scope.kek().wrap_key(&dek).await.map(drop)
    }

    /// Counters of the decrypted-chunk cache.
    pub fn cache_stats(&self) -> ChunkCacheStats {
        let (hits, misses) = self.cache.counters();
        ChunkCacheStats {
            hits,
            misses,
            chunks: self.cache.len(),
        }
    }

    /// `index name || 0x00 || file name`.
    fn app_context(&self, path: &Path) -> crate::Result<Vec<u8>> {
        let name = path
            .to_str()
            .ok_or(Error::ApiMisuse("an index file name must be UTF-8"))?;
        let mut ctx = Vec::with_capacity(self.index_name.len() + 1 + name.len());
        ctx.extend_from_slice(self.index_name.as_bytes());
        ctx.push(0);
        ctx.extend_from_slice(name.as_bytes());
        Ok(ctx)
    }

    fn open_file(&self, path: &Path) -> Result<EncryptedFile, OpenReadError> {
        let name = path.display().to_string();
        let raw = self.inner.get_file_handle(path)?;
        let wrap = |e: Error| OpenReadError::wrap_io_error(io_err(&name, e), path.to_path_buf());
        let ctx = self.app_context(path).map_err(wrap)?;
        let raw_len = raw.len();
        let read = |r: std::ops::Range<usize>| -> crate::Result<tantivy::directory::OwnedBytes> {
            if r.end > raw_len {
                return Err(Error::MalformedHeader("the file ends inside the header"));
            }
            Ok(raw.read_bytes(r)?)
        };
        let prefix = read(0..11).map_err(wrap)?;
        let header_len =
            Header::peek_len(prefix.as_slice().try_into().expect("11 bytes")).map_err(wrap)?;
        let header = Header::parse(read(0..header_len).map_err(wrap)?.as_slice()).map_err(wrap)?;
        if header.profile() != Profile::Index {
            return Err(wrap(Error::MalformedHeader(
                "not an index file (the header's profile is not `index`)",
            )));
        }
        let decryptor = block_on(Decryptor::new(
            &header,
            &self.resolver,
            Profile::Index,
            &ctx,
        ))
        .map_err(wrap)?;
        if raw_len < header_len + BODY_PREFIX_LEN {
            return Err(wrap(Error::Truncated));
        }
        let body_prefix = raw
            .read_bytes(header_len..header_len + BODY_PREFIX_LEN)
            .map_err(|e| wrap(e.into()))?;
        let body = decryptor.ranges(body_prefix.as_slice()).map_err(wrap)?;
        let body_len = (raw_len - header_len) as u64;
        let (len, file_key) = file::geometry(body_len, body_prefix.as_slice()).map_err(wrap)?;
        let file = EncryptedFile {
            raw,
            body_start: header_len,
            body_len,
            len,
            body,
            file_key,
            cache: self.cache.clone(),
            name: name.clone(),
        };
        // Open the final chunk now: it authenticates the file's length.
        file.chunk((len / CHUNK_SIZE) as u64).map_err(wrap)?;
        Ok(file)
    }
}

impl Directory for EncryptedDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        Ok(Arc::new(self.open_file(path)?))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let wrap = |e: Error| {
            OpenWriteError::wrap_io_error(io_err(&path.display().to_string(), e), path.into())
        };
        let ctx = self.app_context(path).map_err(wrap)?;
        let out = self.inner.open_write(path)?;
        let enc =
            block_on(Encryptor::new(&[self.scope.kek()], Profile::Index, &ctx)).map_err(wrap)?;
        let writer = enc.wrap_output(out).map_err(wrap)?;
        Ok(io::BufWriter::with_capacity(
            CHUNK_SIZE,
            Box::new(EncryptingFileWriter {
                writer: Some(writer),
                name: path.display().to_string(),
            }),
        ))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let sealed = self.inner.atomic_read(path)?;
        let name = path.display().to_string();
        let wrap = |e: Error| OpenReadError::wrap_io_error(io_err(&name, e), path.to_path_buf());
        let ctx = self.app_context(path).map_err(wrap)?;
        block_on(crate::envelope::open(
            &self.resolver,
            Profile::Index,
            &ctx,
            &sealed,
        ))
        .map_err(wrap)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let name = path.display().to_string();
        let ctx = self.app_context(path).map_err(|e| io_err(&name, e))?;
        let sealed = block_on(crate::envelope::seal(
            &[self.scope.kek()],
            Profile::Index,
            &ctx,
            data,
        ))
        .map_err(|e| io_err(&name, e))?;
        self.inner.atomic_write(path, &sealed)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.inner.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}

/// The `TerminatingWrite` behind [`EncryptedDirectory::open_write`]:
/// encrypts into the inner directory's writer, and on `terminate` seals
/// the final chunk and terminates the inner writer.
struct EncryptingFileWriter {
    writer: Option<EncryptingWriter<WritePtr>>,
    name: String,
}

impl EncryptingFileWriter {
    fn live(&mut self) -> io::Result<&mut EncryptingWriter<WritePtr>> {
        self.writer.as_mut().ok_or_else(|| {
            io_err(
                &self.name,
                Error::ApiMisuse("write to an index file after it was terminated"),
            )
        })
    }
}

impl Write for EncryptingFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.live()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.live()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A partial chunk cannot be sealed before the end; flushing passes
        // on what is sealed.
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl TerminatingWrite for EncryptingFileWriter {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        let writer = self.writer.take().ok_or_else(|| {
            io_err(
                &self.name,
                Error::ApiMisuse("an index file was terminated twice"),
            )
        })?;
        let inner = writer.finish().map_err(|e| io_err(&self.name, e))?;
        inner.terminate()
    }
}
