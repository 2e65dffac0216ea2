//! Opening: resolve and unwrap the data key, then one terminal operation
//! that checks the commitment and decrypts.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use crate::error::Error;
use crate::format::{Header, Profile};
use crate::kek::{KeyEncryptionKey, KeyLease, KeyResolver};
use crate::key::DataKey;
use crate::provider::CryptoProvider;
use crate::stream::chunk::{envelope_context, ChunkCipher, BODY_PREFIX_LEN};
use crate::stream::{layout, parallel, DecryptingReader, Threads};

use super::encryptor::COPY_BUF;
use super::ranges::RangeDecryptor;

/// The unwrapped data key of one envelope, bound to the object's profile
/// and context, ready to open its body.
///
/// [`Decryptor::new`] is the only step that calls a KEK. Options are set
/// once, by value: [`threads`](Self::threads) and
/// [`provider`](Self::provider). One terminal operation consumes the
/// decryptor; each first checks the key commitment against the body, which
/// fails with [`Error::CommitmentMismatch`] for a wrong context, a wrong
/// profile, or a header that does not belong to the body, before any chunk
/// is opened:
///
/// | body | operation |
/// |---|---|
/// | a slice | [`open`](Self::open), or [`open_into`](Self::open_into) to reuse an output buffer |
/// | read piece by piece | [`decrypt`](Self::decrypt) (`Read`, and `Seek` / `read_at` on a seekable source), [`decrypt_async`](Self::decrypt_async) (tokio `AsyncRead`) |
/// | a `Read` into a `Write` | [`decrypt_stream`](Self::decrypt_stream) |
/// | a `File` into a `Write` | [`decrypt_file`](Self::decrypt_file) |
/// | ranges fetched separately | [`ranges`](Self::ranges) |
///
/// Every operation releases a chunk's plaintext only after its tag
/// verified, and reports the end of the object only after its final chunk
/// did. They agree on errors: a damaged body fails each of them with the
/// same error (that of the lowest damaged chunk).
pub struct Decryptor {
    provider: &'static CryptoProvider,
    dek: DataKey,
    context: Vec<u8>,
    threads: Threads,
    /// The lease of the KEK that unwrapped the data key, if it gave one:
    /// chunks are opened only while it holds.
    lease: Option<Arc<[KeyLease]>>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("provider", &self.provider.name())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Resolves the header's key ids through `resolver` (an allow-list) and
    /// unwraps the data key with the first KEK that succeeds, trying the
    /// entries in header order. For an embedded envelope, get the header
    /// with [`Header::read_from`] or [`Header::parse_prefix`]; for the
    /// detached form, with [`Header::parse`].
    ///
    /// Errors: [`Error::CommitmentMismatch`] when the header's profile is
    /// not `profile` (no KEK is called); [`Error::UnknownKek`] when no id is
    /// allowed (no KEK is called); otherwise the error of the first KEK
    /// that failed ([`Error::UnwrapFailed`] for a wrong key or a modified
    /// wrapped key, [`Error::Kek`] for a backend failure).
    ///
    /// Cost: one `unwrap_key` call when the first allowed entry works; at
    /// most one per distinct KEK, however many entries name it.
    pub async fn new(
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
            provider: CryptoProvider::default_provider(),
            dek,
            context,
            threads: Threads::ONE,
            lease,
        })
    }

    /// The threads [`open`](Self::open), [`open_into`](Self::open_into),
    /// [`decrypt_stream`](Self::decrypt_stream),
    /// [`decrypt_file`](Self::decrypt_file) and the
    /// [`read_at`](DecryptingReader::read_at) of large ranges on the
    /// reader of [`decrypt`](Self::decrypt) may use (default
    /// [`Threads::ONE`]). Results and errors do not depend on it.
    pub fn threads(mut self, threads: Threads) -> Self {
        self.threads = threads;
        self
    }

    /// The crypto provider that derives the body keys and opens the chunks
    /// (default: [`CryptoProvider::default_provider`]).
    pub fn provider(mut self, provider: &'static CryptoProvider) -> Self {
        self.provider = provider;
        self
    }

    /// The unwrapped data key, for the crate's own derivations (document
    /// field keys). Never public.
    #[cfg(feature = "document")]
    pub(crate) fn data_key(&self) -> &DataKey {
        &self.dek
    }

    /// Checks the commitment in `prefix` and derives the chunk cipher.
    fn cipher(&self, prefix: &[u8; BODY_PREFIX_LEN]) -> crate::Result<ChunkCipher> {
        let cipher = ChunkCipher::for_decryption(
            self.provider,
            self.dek.expose_secret_bytes(),
            &self.context,
            prefix,
        )?;
        Ok(cipher.with_leases(self.lease.clone()))
    }

    /// Decrypts a whole body held in memory (for an embedded envelope in
    /// memory, the bytes after [`Header::parse_prefix`]'s length; or use
    /// [`open`](crate::open)).
    ///
    /// Nothing is returned unless every chunk verified and the body ends
    /// with its final chunk; the error is that of the lowest failing chunk.
    ///
    /// Cost: one allocation of the plaintext size; chunks are opened
    /// straight into it, on the configured threads (wiped if one fails).
    pub fn open(self, body: &[u8]) -> crate::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(body, &mut out)?;
        Ok(out)
    }

    /// [`Decryptor::open`] into a buffer the caller reuses: `out` is
    /// replaced by the plaintext. A buffer already as long as the plaintext
    /// is overwritten without reallocation or zeroing (saving the page
    /// faults of a fresh allocation). On error `out` is wiped and emptied:
    /// it holds no plaintext.
    pub fn open_into(self, body: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
        let r = self.open_with(body, out);
        if r.is_err() {
            // Chunks that verified before the failure are plaintext: wipe.
            out.fill(0);
            std::hint::black_box(&mut *out);
            out.clear();
        }
        r
    }

    fn open_with(self, body: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
        let len = layout::plaintext_len(body.len() as u64)?;
        let len =
            usize::try_from(len).map_err(|_| Error::TooLarge("object too large for memory"))?;
        let (prefix, chunks) = body
            .split_first_chunk::<BODY_PREFIX_LEN>()
            .ok_or(Error::Truncated)?;
        let cipher = self.cipher(prefix)?;
        if out.len() >= len {
            out.truncate(len);
        } else {
            out.clear();
            out.resize(len, 0);
        }
        parallel::open_into(&cipher, chunks, out, self.threads.count())
    }

    /// Reads the body prefix from `body` (positioned at the start of the
    /// body: right after the header in the embedded form, see
    /// [`Header::read_from`]), checks the commitment, and returns a reader
    /// of the plaintext.
    ///
    /// The reader implements [`Read`], and [`Seek`](std::io::Seek) and
    /// [`read_at`](DecryptingReader::read_at) when `body` can seek; a
    /// `read_at` of at least
    /// [`PARALLEL_READ_MIN`](crate::stream::PARALLEL_READ_MIN) bytes opens
    /// its chunks on the configured threads. Its errors are `io::Error`s
    /// carrying this crate's [`Error`]: `?` into a [`crate::Result`] gives
    /// it back ([`Error::ChunkAuthentication`], [`Error::Truncated`]).
    ///
    /// Cost: reads 56 bytes; one 16 KiB buffer.
    pub fn decrypt<R: Read>(self, mut body: R) -> crate::Result<DecryptingReader<R>> {
        let prefix = read_prefix(&mut body)?;
        let cipher = self.cipher(&prefix)?;
        Ok(DecryptingReader::new(body, cipher, self.threads))
    }

    /// The async [`Decryptor::decrypt`]: reads the body prefix from `body`,
    /// checks the commitment, and returns a tokio
    /// [`AsyncRead`](tokio::io::AsyncRead) reader of the plaintext (see
    /// [`AsyncDecryptingReader`](crate::AsyncDecryptingReader)).
    #[cfg(feature = "tokio")]
    pub async fn decrypt_async<R: tokio::io::AsyncRead + Unpin>(
        self,
        mut body: R,
    ) -> crate::Result<crate::stream::AsyncDecryptingReader<R>> {
        use tokio::io::AsyncReadExt;
        let mut prefix = [0u8; BODY_PREFIX_LEN];
        body.read_exact(&mut prefix).await.map_err(prefix_error)?;
        let cipher = self.cipher(&prefix)?;
        Ok(crate::stream::AsyncDecryptingReader::new(body, cipher))
    }

    /// Decrypts the body read from `reader` (positioned at the start of the
    /// body) into `writer`. Returns the plaintext length, only after the
    /// final chunk authenticated; `writer` is flushed.
    ///
    /// On one thread this is [`Decryptor::decrypt`] and a copy loop with a
    /// 64 KiB buffer. On *n* > 1 the calling thread reads, writes in order
    /// and, when nothing is ready to write, opens chunks too; `n - 1` more
    /// threads open chunks, over a bounded window of 256 KiB groups:
    /// memory is O(*n*), whatever the object size. Either way plaintext is
    /// written strictly in order, a chunk's only after it and every chunk
    /// before it verified; on the first failure the verified chunks before
    /// it are written, nothing after, and the error of the lowest failing
    /// chunk is returned. What was written before an error is an
    /// incomplete prefix: trust it only if this returns `Ok`.
    pub fn decrypt_stream<R: Read, W: Write>(self, reader: R, writer: W) -> crate::Result<u64> {
        let threads = self.threads.count();
        self.decrypt_stream_on(reader, writer, threads)
    }

    fn decrypt_stream_on<R: Read, W: Write>(
        self,
        mut reader: R,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        if threads <= 1 {
            let mut r = self.decrypt(reader)?;
            let mut buf = zeroize::Zeroizing::new(vec![0u8; COPY_BUF]);
            let mut total = 0u64;
            loop {
                let n = match r.read(&mut buf[..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
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

    /// Decrypts the body that starts at the current position of `file`
    /// (for an embedded envelope, after [`Header::read_from`]) and runs to
    /// its end, into `writer`, and leaves the position at the end. Returns
    /// the plaintext length, only after the final chunk authenticated;
    /// `writer` is flushed.
    ///
    /// When `file` is a regular file and there are several threads, the
    /// body length is checked first (a truncated body fails before anything
    /// is written) and each thread reads the groups it opens by position
    /// (`pread`), so reading is parallel too; the calling thread writes
    /// them in order. What is written, and when, is exactly as in
    /// [`Decryptor::decrypt_stream`]. A file that shrinks or grows while it
    /// is read fails with an I/O error saying so. Anything else (a pipe, a
    /// terminal), or one thread, is read as a stream.
    #[cfg(any(unix, windows))]
    pub fn decrypt_file<W: Write>(self, file: &std::fs::File, mut writer: W) -> crate::Result<u64> {
        use crate::stream::positional::{self, FileSpan};
        let threads = self.threads.count();
        let Some(span) = FileSpan::for_threads(file, threads)? else {
            return self.decrypt_stream_on(file, writer, threads);
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

    /// Checks the commitment against the body prefix (the 56 bytes of
    /// [`RangePlan::PREFIX`](crate::RangePlan::PREFIX), fetched once per
    /// object) and returns a decryptor of ranges fetched separately, for
    /// stores that serve byte ranges. Errors: [`Error::Truncated`] unless
    /// `body_prefix` is 56 bytes; [`Error::CommitmentMismatch`].
    pub fn ranges(self, body_prefix: &[u8]) -> crate::Result<RangeDecryptor> {
        let prefix: &[u8; BODY_PREFIX_LEN] =
            body_prefix.try_into().map_err(|_| Error::Truncated)?;
        Ok(RangeDecryptor::new(self.cipher(prefix)?))
    }
}

/// A body that ends inside its prefix is truncated.
fn prefix_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Truncated,
        _ => Error::from(e),
    }
}

/// Reads the 56-byte body prefix; a short body is truncated.
fn read_prefix<R: Read>(body: &mut R) -> crate::Result<[u8; BODY_PREFIX_LEN]> {
    let mut prefix = [0u8; BODY_PREFIX_LEN];
    body.read_exact(&mut prefix).map_err(prefix_error)?;
    Ok(prefix)
}

/// Unwraps the data key of `header` with the first allowed KEK that
/// succeeds, trying entries in header order.
///
/// Each distinct KEK is called at most once: an entry whose KEK was tried
/// already (the same object, or one with the same key id) is skipped. A
/// header is untrusted, and one naming a remote key sixteen times must not
/// cost sixteen remote unwraps, each with its own retries.
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
    let mut tried: Vec<Arc<dyn KeyEncryptionKey>> = Vec::new();
    for entry in header.keys() {
        let Some(kek) = resolver.resolve(&entry.kek_id) else {
            continue;
        };
        if tried
            .iter()
            .any(|t| Arc::ptr_eq(t, &kek) || t.key_id() == kek.key_id())
        {
            continue;
        }
        tried.push(Arc::clone(&kek));
        if kek.algorithm() != entry.alg {
            first_err.get_or_insert(Error::unwrap_failed(&entry.kek_id));
            continue;
        }
        match kek.unwrap_key(&entry.wrapped).await {
            Ok(dek) => return Ok((dek, kek.lease(&entry.kek_id))),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if tried.is_empty() {
        return Err(Error::unknown_kek(
            header.keys().iter().map(|k| k.kek_id.as_str()),
        ));
    }
    Err(first_err.unwrap_or(Error::Internal("no unwrap result for a resolved key")))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use pollster::block_on;

    use super::*;
    use crate::format::Suite;
    use crate::key::KeyMaterial;
    use crate::{LocalKek, StaticResolver, WrapAlgorithm, WrappedKey};

    /// A remote key stand-in: a local key that counts its unwraps.
    #[derive(Debug)]
    struct Counting {
        inner: LocalKek,
        unwraps: AtomicUsize,
    }

    #[async_trait]
    impl KeyEncryptionKey for Counting {
        fn key_id(&self) -> &str {
            self.inner.key_id()
        }
        fn algorithm(&self) -> WrapAlgorithm {
            self.inner.algorithm()
        }
        async fn wrap_key_material(&self, m: &KeyMaterial) -> crate::Result<WrappedKey> {
            self.inner.wrap_key_material(m).await
        }
        async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
            self.unwraps.fetch_add(1, Ordering::Relaxed);
            self.inner.unwrap_key_material(wrapped).await
        }
    }

    fn counting(id: &str, key: u8) -> Arc<Counting> {
        Arc::new(Counting {
            inner: LocalKek::from_aes_key(id, WrapAlgorithm::A256Kw, &[key; 32]).unwrap(),
            unwraps: AtomicUsize::new(0),
        })
    }

    /// A wrapped data key from `kek`, with its last byte flipped when
    /// `broken` (it then fails to unwrap).
    fn entry(kek: &Counting, id: &str, broken: bool) -> WrappedKey {
        let dek = DataKey::generate(CryptoProvider::default_provider()).unwrap();
        let mut w = block_on(kek.wrap_key(&dek)).unwrap();
        if broken {
            *w.wrapped.last_mut().unwrap() ^= 1;
        }
        w.kek_id = id.to_owned();
        w
    }

    fn header(entries: Vec<WrappedKey>) -> Header {
        Header::new(Suite::Cobblestone256, Profile::Blob, entries).unwrap()
    }

    /// A header of 16 entries naming the same remote key makes one unwrap,
    /// not 16 (each of which a remote backend would retry).
    #[test]
    fn each_distinct_kek_is_called_at_most_once_per_header() {
        let kek = counting("remote", 1);
        let resolver = StaticResolver::new().with(kek.clone());
        let h = header((0..16).map(|_| entry(&kek, "remote", true)).collect());
        let r = block_on(Decryptor::new(&h, &resolver, Profile::Blob, b"c"));
        assert!(matches!(r, Err(Error::UnwrapFailed { .. })), "{r:?}");
        assert_eq!(kek.unwraps.load(Ordering::Relaxed), 1);

        // The same key under 16 aliases in the allow-list: one call too.
        let kek = counting("remote", 1);
        let mut resolver = StaticResolver::new();
        for i in 0..16 {
            resolver.insert_as(format!("alias-{i}"), kek.clone());
        }
        let h = header(
            (0..16)
                .map(|i| entry(&kek, &format!("alias-{i}"), true))
                .collect(),
        );
        let r = block_on(Decryptor::new(&h, &resolver, Profile::Blob, b"c"));
        assert!(matches!(r, Err(Error::UnwrapFailed { .. })), "{r:?}");
        assert_eq!(kek.unwraps.load(Ordering::Relaxed), 1);
    }

    /// Distinct keys are still each tried, in header order, until one
    /// works.
    #[test]
    fn distinct_keys_are_each_tried_until_one_unwraps() {
        let a = counting("a", 1);
        let b = counting("b", 2);
        let resolver = StaticResolver::new().with(a.clone()).with(b.clone());
        let h = header(vec![
            entry(&a, "a", true),
            entry(&a, "a", false),
            entry(&b, "b", false),
        ]);
        block_on(Decryptor::new(&h, &resolver, Profile::Blob, b"c")).unwrap();
        assert_eq!(a.unwraps.load(Ordering::Relaxed), 1);
        assert_eq!(b.unwraps.load(Ordering::Relaxed), 1);
    }
}
