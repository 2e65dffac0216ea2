//! A read handle on one encrypted index file: random-access reads served
//! chunk by chunk from the envelope body.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use tantivy::directory::{FileHandle, OwnedBytes};
use tantivy::HasLen;

use super::cache::ChunkCache;
use crate::envelope::RangeDecryptor;
use crate::error::Error;
use crate::stream::{layout, RangePlan, BODY_PREFIX_LEN, CHUNK_SIZE};

const CHUNK: u64 = CHUNK_SIZE as u64;

/// Reads spanning more chunks than this are decrypted in one pass and not
/// cached, so that scanning a large file does not evict the hot chunks.
const MAX_CACHED_SPAN: u64 = 4;

pub(crate) struct EncryptedFile {
    /// The whole file as stored: header, then body.
    pub(crate) raw: Arc<dyn FileHandle>,
    /// Where the body starts in `raw` (the header length).
    pub(crate) body_start: usize,
    pub(crate) body_len: u64,
    pub(crate) len: usize,
    pub(crate) body: RangeDecryptor,
    pub(crate) file_key: u128,
    pub(crate) cache: Arc<ChunkCache>,
    pub(crate) name: String,
}

impl fmt::Debug for EncryptedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedFile")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl HasLen for EncryptedFile {
    fn len(&self) -> usize {
        self.len
    }
}

/// An `io::Error` naming the file, keeping the crate error as its source.
pub(crate) fn io_err(name: &str, e: Error) -> io::Error {
    let kind = match e {
        Error::Io(ref io) => io.kind(),
        Error::Truncated => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(
        kind,
        EncryptedFileError {
            file: name.to_owned(),
            source: e,
        },
    )
}

/// The error inside the `io::Error`s of the encrypted directory: which
/// file, and the crate's [`Error`].
#[derive(thiserror::Error)]
#[error("encrypted index file `{file}`: {source}")]
pub struct EncryptedFileError {
    /// The file, relative to the directory.
    pub file: String,
    /// What failed.
    #[source]
    pub source: Error,
}

impl fmt::Debug for EncryptedFileError {
    /// The message itself: tantivy prints the errors it wraps with `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl EncryptedFile {
    /// Fetches and decrypts the plaintext of `range` (within one or more
    /// whole chunks, clipped to the file) in one pass.
    fn decrypt(&self, range: Range<u64>) -> crate::Result<Vec<u8>> {
        let plan = RangePlan::new(range, self.body_len)?;
        let start = self.body_start + plan.ciphertext().start as usize;
        let end = self.body_start + plan.ciphertext().end as usize;
        let fetched = self.raw.read_bytes(start..end)?;
        let mut buf = fetched.as_slice().to_vec();
        self.body.decrypt_range(&plan, &mut buf)
    }

    pub(crate) fn chunk(&self, index: u64) -> crate::Result<Arc<[u8]>> {
        let key = (self.file_key, index);
        if let Some(c) = self.cache.get(&key) {
            // Cached plaintext is released only while the file's data key
            // is: once the scope is destroyed or revoked, the cache is
            // wiped rather than served.
            if let Err(e) = self.body.check_lease() {
                drop(c);
                self.cache.clear();
                return Err(e);
            }
            return Ok(c);
        }
        // `Arc<[u8]>` cannot take the `Vec`'s allocation over: copy, then
        // wipe the `Vec` so no plaintext is left in freed memory.
        let mut v = self
            .decrypt(index * CHUNK..(index + 1) * CHUNK)
            .inspect_err(|e| {
                if matches!(e, Error::ScopeNotFound { .. } | Error::Kek(_)) {
                    // The key was refused: no plaintext of the scope stays.
                    self.cache.clear();
                }
            })?;
        let plain: Arc<[u8]> = Arc::from(&v[..]);
        v.fill(0);
        std::hint::black_box(&mut v);
        self.cache.insert(key, plain.clone());
        Ok(plain)
    }

    fn read(&self, range: Range<usize>) -> crate::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.len {
            return Err(Error::ApiMisuse("read past the end of an index file"));
        }
        if range.is_empty() {
            return Ok(OwnedBytes::empty());
        }
        let (start, end) = (range.start as u64, range.end as u64);
        let (first, last) = (start / CHUNK, (end - 1) / CHUNK);
        if first == last {
            let base = (first * CHUNK) as usize;
            let chunk = self.chunk(first)?;
            return Ok(OwnedBytes::new(chunk).slice(range.start - base..range.end - base));
        }
        if last - first + 1 > MAX_CACHED_SPAN {
            return Ok(OwnedBytes::new(self.decrypt(start..end)?));
        }
        let mut out = Vec::with_capacity(range.len());
        for i in first..=last {
            let chunk = self.chunk(i)?;
            let base = i * CHUNK;
            let lo = (start.max(base) - base) as usize;
            let hi = (end.min(base + chunk.len() as u64) - base) as usize;
            out.extend_from_slice(&chunk[lo..hi]);
        }
        Ok(OwnedBytes::new(out))
    }
}

impl FileHandle for EncryptedFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        self.read(range).map_err(|e| io_err(&self.name, e))
    }
}

/// The plaintext length claimed by a body of `body_len` bytes, and the
/// salt-derived cache key of its prefix.
pub(crate) fn geometry(body_len: u64, prefix: &[u8]) -> crate::Result<(usize, u128)> {
    let len = usize::try_from(layout::plaintext_len(body_len)?)
        .map_err(|_| Error::TooLarge("index file too large for this platform"))?;
    let prefix: &[u8; BODY_PREFIX_LEN] = prefix.try_into().map_err(|_| Error::Truncated)?;
    let key = u128::from_be_bytes(prefix[..16].try_into().expect("16 bytes"));
    Ok((len, key))
}
