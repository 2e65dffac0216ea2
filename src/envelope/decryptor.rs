//! Opening: resolve and unwrap the data key, check the commitment, then
//! decrypt streams, whole bodies or fetched ranges.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use crate::error::Error;
use crate::format::{Header, Profile};
use crate::kek::{KeyLease, KeyResolver};
use crate::key::DataKey;
use crate::provider::CryptoProvider;
use crate::stream::chunk::{envelope_context, ChunkCipher, BODY_PREFIX_LEN, CHUNK_CT_SIZE};
use crate::stream::codec::{deliver_range_chunk, open_piece};
use crate::stream::{layout, parallel, DecryptingReader, RangePlan};

use super::encryptor::COPY_BUF;

/// The unwrapped data key of one envelope, bound to the object's profile
/// and context, ready to open its body.
///
/// [`Decryptor::new`] is the only step that calls a KEK. The body is
/// untouched until [`Decryptor::reader`] (or `open`, `body`) checks the key
/// commitment, which fails with [`Error::CommitmentMismatch`] for a wrong
/// context, a wrong profile, or a header that does not belong to the body.
pub struct Decryptor {
    provider: &'static CryptoProvider,
    dek: DataKey,
    context: Vec<u8>,
    /// The lease of the KEK that unwrapped the data key, if it gave one:
    /// chunks are opened only while it holds.
    lease: Option<Arc<[KeyLease]>>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Resolves the header's key ids through `resolver` (an allow-list) and
    /// unwraps the data key with the first KEK that succeeds, trying the
    /// entries in header order.
    ///
    /// Errors: [`Error::UnknownKek`] when no id is allowed (no KEK is
    /// called); otherwise the error of the first KEK that failed
    /// ([`Error::UnwrapFailed`] for a wrong key or a modified wrapped key,
    /// [`Error::Kek`] for a backend failure).
    ///
    /// Cost: one `unwrap_key` call when the first allowed entry works.
    pub async fn new(
        header: &Header,
        resolver: &dyn KeyResolver,
        profile: Profile,
        app_context: &[u8],
    ) -> crate::Result<Self> {
        Self::with_provider(
            CryptoProvider::default_provider(),
            header,
            resolver,
            profile,
            app_context,
        )
        .await
    }

    /// [`Decryptor::new`] with a chosen crypto provider for the body.
    pub async fn with_provider(
        provider: &'static CryptoProvider,
        header: &Header,
        resolver: &dyn KeyResolver,
        profile: Profile,
        app_context: &[u8],
    ) -> crate::Result<Self> {
        if header.profile() != profile {
            // The profile is bound into the commitment; a mismatch could
            // only fail it. Say so without calling any KEK.
            return Err(Error::CommitmentMismatch);
        }
        let (dek, lease) = unwrap_leased(header, resolver).await?;
        let lease = lease.map(|l| Arc::from([l]));
        let context = envelope_context(header.suite(), header.profile(), app_context);
        Ok(Decryptor {
            provider,
            dek,
            context,
            lease,
        })
    }

    /// The unwrapped data key. For re-wrapping the header under new KEKs;
    /// see [`DataKey::expose_secret_bytes`] for the care it needs.
    pub fn data_key(&self) -> &DataKey {
        &self.dek
    }

    fn cipher(&self, prefix: &[u8; BODY_PREFIX_LEN]) -> crate::Result<ChunkCipher> {
        let cipher = ChunkCipher::for_decryption(
            self.provider,
            self.dek.expose_secret_bytes(),
            &self.context,
            prefix,
        )?;
        Ok(cipher.with_leases(self.lease.clone()))
    }

    /// Reads the body prefix from `body`, checks the commitment, and returns
    /// a reader of the plaintext. `body` must be positioned at the start of
    /// the body (right after the header in the embedded form).
    pub fn reader<R: Read>(self, mut body: R) -> crate::Result<DecryptingReader<R>> {
        let prefix = read_prefix(&mut body)?;
        let cipher = self.cipher(&prefix)?;
        Ok(DecryptingReader::new(body, cipher))
    }

    /// Checks the commitment against a body prefix (salt and commitment,
    /// [`RangePlan::PREFIX`]) and returns a decryptor for fetched ranges.
    pub fn body(self, prefix: &[u8]) -> crate::Result<BodyDecryptor> {
        let prefix: &[u8; BODY_PREFIX_LEN] = prefix.try_into().map_err(|_| Error::Truncated)?;
        Ok(BodyDecryptor {
            cipher: self.cipher(prefix)?,
        })
    }

    /// Decrypts a whole body held in memory.
    pub fn open(self, body: &[u8]) -> crate::Result<Vec<u8>> {
        // Chunks are opened straight into one plaintext-sized allocation
        // (no reader buffer), with the same checks and errors as the reader.
        self.open_parallel(body, 1)
    }
    /// [`Decryptor::open`] on `threads` threads (`0`: the available cores).
    /// Nothing is returned unless every chunk verified and the body ends
    /// with its final chunk; the error is that of the lowest failing chunk,
    /// as `open` reports it.
    ///
    /// Cost: one allocation of the plaintext size; chunks are decrypted
    /// directly into it (wiped if a chunk fails).
    pub fn open_parallel(self, body: &[u8], threads: usize) -> crate::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_parallel_to(body, &mut out, threads)?;
        Ok(out)
    }

    /// [`Decryptor::open_parallel`] into a buffer the caller reuses: `out`
    /// is replaced by the plaintext. A buffer already as long as the
    /// plaintext is overwritten without reallocation or zeroing (saving the
    /// page faults of a fresh allocation). On error `out` is wiped and
    /// emptied: it holds no plaintext.
    pub fn open_parallel_to(
        self,
        body: &[u8],
        out: &mut Vec<u8>,
        threads: usize,
    ) -> crate::Result<()> {
        let threads = parallel::resolve_threads(threads);
        let r = (|| {
            let len = layout::plaintext_len(body.len() as u64)?;
            let len =
                usize::try_from(len).map_err(|_| Error::TooLarge("object too large for memory"))?;
            let prefix: &[u8; BODY_PREFIX_LEN] = body[..BODY_PREFIX_LEN]
                .try_into()
                .map_err(|_| Error::Truncated)?;
            let cipher = self.cipher(prefix)?;
            if out.len() >= len {
                out.truncate(len);
            } else {
                out.clear();
                out.resize(len, 0);
            }
            parallel::open_into(&cipher, &body[BODY_PREFIX_LEN..], out, threads)
        })();
        if r.is_err() {
            // Chunks that verified before the failure are plaintext: wipe.
            out.fill(0);
            std::hint::black_box(&mut *out);
            out.clear();
        }
        r
    }

    /// Decrypts the body read from `reader` (positioned at the start of the
    /// body) into `writer`, on `threads` threads (`0`: the available
    /// cores). Returns the plaintext length, only after the final chunk
    /// authenticated; `writer` is flushed.
    ///
    /// With `threads == 1` this is [`Decryptor::reader`] and a copy loop.
    /// Otherwise the calling thread reads, writes in order and, when
    /// nothing is ready to write, works too; `threads - 1` more threads
    /// open chunks, over a bounded window of 256 KiB groups: memory is
    /// O(threads), whatever the object size. Plaintext is written strictly
    /// in order, and a chunk's plaintext only after it and every chunk
    /// before it verified. On the first failure the verified chunks before
    /// it are written, nothing after, and the error of the lowest failing
    /// chunk is returned — what the sequential reader writes and reports.
    /// As there, what was written before an error is an incomplete prefix:
    /// trust it only if this returns `Ok`.
    pub fn decrypt_stream<R: Read, W: Write>(
        self,
        mut reader: R,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        let threads = parallel::resolve_threads(threads);
        if threads <= 1 {
            let mut r = self.reader(reader)?;
            let mut buf = zeroize::Zeroizing::new(vec![0u8; COPY_BUF]);
            let mut total = 0u64;
            loop {
                let n = match r.read(&mut buf[..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::from_io(e)),
                };
                writer.write_all(&buf[..n])?;
                total += n as u64;
            }
            writer.flush()?;
            return Ok(total);
        }
        let prefix = read_prefix(&mut reader)?;
        let cipher = self.cipher(&prefix)?;
        let total = parallel::decrypt_stream(&cipher, reader, &mut writer, threads)?;
        writer.flush()?;
        Ok(total)
    }

    /// [`Decryptor::decrypt_stream`] from a file: decrypts the body that
    /// starts at the current position of `file` (for an embedded envelope,
    /// after [`read_header`](crate::read_header)) and runs to its end, into
    /// `writer`, and leaves the position at the end. Returns the plaintext
    /// length, only after the final chunk authenticated; `writer` is
    /// flushed.
    ///
    /// When `file` is a regular file and `threads > 1`, the body length is
    /// checked first (a truncated body fails before anything is written)
    /// and each thread reads the groups it opens by position (`pread`), so
    /// reading is parallel too; the calling thread writes them in order. What is
    /// written, and when, is exactly as in [`Decryptor::decrypt_stream`]:
    /// in order, a chunk's plaintext only after it and every chunk before
    /// it verified; on failure an incomplete prefix, to be trusted only if
    /// this returns `Ok`. A file that shrinks or grows while it is read
    /// fails with an I/O error saying so. Anything else (a pipe, a
    /// terminal), or `threads == 1`, is read as a stream by
    /// [`Decryptor::decrypt_stream`].
    #[cfg(any(unix, windows))]
    pub fn decrypt_file<W: Write>(
        self,
        file: &std::fs::File,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        use crate::stream::positional::{self, FileSpan};
        let threads = parallel::resolve_threads(threads);
        let Some(span) = FileSpan::for_threads(file, threads)? else {
            return self.decrypt_stream(file, writer, threads);
        };
        layout::plaintext_len(span.len())?;
        let mut prefix = [0u8; BODY_PREFIX_LEN];
        span.read_exact_at(&mut prefix, 0)?;
        let cipher = self.cipher(&prefix)?;
        let chunks = span.skip(BODY_PREFIX_LEN as u64);
        let total = positional::decrypt_file(&cipher, &chunks, &mut writer, threads)?;
        writer.flush()?;
        Ok(total)
    }

    /// Reads the body prefix from `body`, checks the commitment, and
    /// returns an [`AsyncRead`](tokio::io::AsyncRead) reader of the
    /// plaintext (see
    /// [`AsyncDecryptingReader`](crate::stream::AsyncDecryptingReader)).
    #[cfg(feature = "tokio")]
    pub async fn async_reader<R: tokio::io::AsyncRead + Unpin>(
        self,
        mut body: R,
    ) -> crate::Result<crate::stream::AsyncDecryptingReader<R>> {
        use tokio::io::AsyncReadExt;
        let mut prefix = [0u8; BODY_PREFIX_LEN];
        body.read_exact(&mut prefix)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::Truncated,
                _ => Error::Io(e),
            })?;
        let cipher = self.cipher(&prefix)?;
        Ok(crate::stream::AsyncDecryptingReader::new(body, cipher))
    }
}

/// Reads the 56-byte body prefix; a short body is truncated.
fn read_prefix<R: Read>(body: &mut R) -> crate::Result<[u8; BODY_PREFIX_LEN]> {
    let mut prefix = [0u8; BODY_PREFIX_LEN];
    body.read_exact(&mut prefix).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Truncated,
        _ => Error::Io(e),
    })?;
    Ok(prefix)
}

/// Unwraps the data key of `header` with the first allowed KEK that
/// succeeds, trying entries in header order.
pub(crate) async fn unwrap_data_key(
    header: &Header,
    resolver: &dyn KeyResolver,
) -> crate::Result<DataKey> {
    unwrap_leased(header, resolver).await.map(|(dek, _)| dek)
}

/// [`unwrap_data_key`], with the lease the unwrapping KEK gave.
async fn unwrap_leased(
    header: &Header,
    resolver: &dyn KeyResolver,
) -> crate::Result<(DataKey, Option<KeyLease>)> {
    let mut first_err = None;
    let mut resolved_any = false;
    for entry in header.keys() {
        let Some(kek) = resolver.resolve(&entry.kek_id) else {
            continue;
        };
        resolved_any = true;
        if kek.algorithm() != entry.alg {
            first_err.get_or_insert(Error::UnwrapFailed {
                kek_id: entry.kek_id.clone(),
            });
            continue;
        }
        match kek.unwrap_key(&entry.wrapped).await {
            Ok(dek) => return Ok((dek, kek.lease(&entry.kek_id))),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if !resolved_any {
        return Err(Error::UnknownKek {
            kek_ids: header.keys().iter().map(|k| k.kek_id.clone()).collect(),
        });
    }
    Err(first_err.unwrap_or(Error::ApiMisuse("internal: no unwrap result")))
}

/// Decrypts ciphertext ranges fetched separately (for ranged GETs), after
/// the commitment has been checked. See [`RangePlan`].
pub struct BodyDecryptor {
    cipher: ChunkCipher,
}

impl fmt::Debug for BodyDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyDecryptor { .. }")
    }
}

impl BodyDecryptor {
    /// Whether the data key may still be used (see [`KeyLease`]): for
    /// plaintext served from a cache of opened chunks.
    #[cfg(feature = "index")]
    pub(crate) fn check_lease(&self) -> crate::Result<()> {
        self.cipher.check_lease()
    }

    /// Renews the data key's lease when due, by polling (for async callers,
    /// before [`BodyDecryptor::decrypt_range`]).
    #[cfg(feature = "blob")]
    pub(crate) async fn renew_lease(&self) -> crate::Result<()> {
        self.cipher.renew_lease().await
    }

    /// Decrypts `fetched` — exactly the body bytes `plan.ciphertext` — in
    /// place, and returns the plaintext of `plan.plaintext`.
    ///
    /// Every chunk's tag is verified; when the plan includes the final chunk
    /// it must be short, which authenticates the object's length. Nothing is
    /// returned unless every chunk verified.
    pub fn decrypt_range(&self, plan: &RangePlan, fetched: &mut [u8]) -> crate::Result<Vec<u8>> {
        let expected = plan.ciphertext.end - plan.ciphertext.start;
        if fetched.len() as u64 != expected {
            return Err(Error::Truncated);
        }
        // Zeroizing: if a later chunk fails, what was copied is wiped.
        let mut out = zeroize::Zeroizing::new(vec![
            0u8;
            (plan.plaintext.end - plan.plaintext.start)
                as usize
        ]);
        let mut index = plan.first_chunk;
        let mut rest: &mut [u8] = fetched;
        while !rest.is_empty() {
            let take = rest.len().min(CHUNK_CT_SIZE);
            let is_last_piece = take == rest.len();
            let (piece, tail) = rest.split_at_mut(take);
            // Only the last piece may be short, and only when it is the
            // final chunk (checked again on the opened chunk below).
            if take < CHUNK_CT_SIZE && !(is_last_piece && plan.includes_final_chunk) {
                return Err(Error::Truncated);
            }
            let d = open_piece(&self.cipher, index, piece)?;
            let expect_final = is_last_piece && plan.includes_final_chunk;
            let r = deliver_range_chunk(plan, index, d, expect_final, piece, &mut out);
            zeroize::Zeroize::zeroize(&mut piece[..d.len]);
            r?;
            index += 1;
            rest = tail;
        }
        Ok(std::mem::take(&mut *out))
    }
}
