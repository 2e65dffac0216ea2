//! Sealing: a fresh data key, wrapped by every KEK, driving the writer.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use crate::error::Error;
use crate::format::{Header, Profile, Suite, MAX_KEYS};
use crate::kek::{KeyEncryptionKey, KeyLease};
use crate::key::DataKey;
use crate::provider::CryptoProvider;
use crate::stream::chunk::{
    envelope_context, ChunkCipher, BODY_PREFIX_LEN, CHUNK_SIZE, MAX_CHUNKS, SALT_LEN,
};
use crate::stream::{layout, parallel, EncryptingWriter};

/// The copy buffer of the single-threaded stream paths.
pub(super) const COPY_BUF: usize = 64 * 1024;

/// Everything needed to encrypt one object: a fresh [`DataKey`], the header
/// holding it wrapped by each KEK, and the object's context.
///
/// Build it with [`Encryptor::new`] — the only step that calls KEKs (once
/// each) — then stream with [`Encryptor::writer`] /
/// [`Encryptor::detached_writer`], or use [`Encryptor::seal`] for small
/// objects. Every method consumes the encryptor: one data key, one
/// envelope.
pub struct Encryptor {
    provider: &'static CryptoProvider,
    header: Header,
    dek: DataKey,
    context: Vec<u8>,
    /// The body salt, drawn with the data key (one CSPRNG call). Each
    /// `Encryptor` is consumed by the one stream it starts, so a salt is
    /// used once; [`Encryptor::duplicate_with_salt`] sets a fixed one for
    /// byte-for-byte comparisons in tests only (set
    /// through `__private`).
    salt: [u8; SALT_LEN],
    /// The leases the KEKs gave with their wraps ([`KeyEncryptionKey::lease`]):
    /// sealing stops once any of them ends.
    leases: Option<Arc<[KeyLease]>>,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("provider", &self.provider.name())
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Generates a data key and wraps it with each of `keks` (1 to 16),
    /// for an object of `profile` identified by `app_context` (a container
    /// and blob name, a document id, an index and segment name). The same
    /// `profile` and `app_context` must be given to decrypt.
    ///
    /// Cost: one `wrap_key` call per KEK, made one after the other.
    pub async fn new(
        keks: &[Arc<dyn KeyEncryptionKey>],
        profile: Profile,
        app_context: &[u8],
    ) -> crate::Result<Self> {
        Self::with_provider(
            CryptoProvider::default_provider(),
            keks,
            profile,
            app_context,
        )
        .await
    }

    /// [`Encryptor::new`] with a chosen crypto provider for the body.
    pub async fn with_provider(
        provider: &'static CryptoProvider,
        keks: &[Arc<dyn KeyEncryptionKey>],
        profile: Profile,
        app_context: &[u8],
    ) -> crate::Result<Self> {
        if keks.is_empty() {
            return Err(Error::ApiMisuse(
                "at least one key-encryption key is needed",
            ));
        }
        if keks.len() > MAX_KEYS {
            return Err(Error::ApiMisuse(
                "at most 16 key-encryption keys per envelope",
            ));
        }
        let (dek, salt) = DataKey::generate_with_salt::<SALT_LEN>(provider)?;
        let mut wrapped = Vec::with_capacity(keks.len());
        let mut leases: Option<Arc<[KeyLease]>> = None;
        for kek in keks {
            let w = kek.wrap_key(&dek).await?;
            if w.alg != kek.algorithm() {
                return Err(Error::ApiMisuse(
                    "a KEK returned a wrapped key of another algorithm",
                ));
            }
            if let Some(l) = kek.lease(&w.kek_id) {
                // Usually one: a single allocation.
                leases = Some(match leases.take() {
                    None => Arc::new([l]),
                    Some(more) => more.iter().cloned().chain([l]).collect(),
                });
            }
            wrapped.push(w);
        }
        let suite = Suite::Cobblestone256;
        let header = Header::new(suite, profile, wrapped)?;
        let context = envelope_context(suite, profile, app_context);
        Ok(Encryptor {
            provider,
            header,
            dek,
            context,
            salt,
            leases,
        })
    }

    /// The header (for the detached form, store `header().to_bytes()`).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// A writer that emits the embedded form: header, then body.
    pub fn writer<W: Write>(self, out: W) -> crate::Result<EncryptingWriter<W>> {
        let header = self.header.to_bytes();
        self.start(out, &header)
    }

    /// A writer that emits only the body (detached form). Store
    /// [`Encryptor::header`] elsewhere first: without it the body cannot be
    /// decrypted.
    pub fn detached_writer<W: Write>(self, out: W) -> crate::Result<EncryptingWriter<W>> {
        self.start(out, &[])
    }

    fn start<W: Write>(self, out: W, preamble: &[u8]) -> crate::Result<EncryptingWriter<W>> {
        let (cipher, prefix) = self.cipher()?;
        EncryptingWriter::start(out, cipher, preamble, &prefix)
    }

    /// The chunk cipher and body prefix of this envelope (random salt,
    /// unless a test fixed it).
    fn cipher(&self) -> crate::Result<(ChunkCipher, [u8; BODY_PREFIX_LEN])> {
        let (cipher, prefix) = ChunkCipher::for_encryption(
            self.provider,
            self.dek.expose_secret_bytes(),
            &self.salt,
            &self.context,
        )?;
        Ok((cipher.with_leases(self.leases.clone()), prefix))
    }

    /// A copy with the same data key, header and context and a fixed salt,
    /// so that two encryptions can be compared byte for byte. Test-only
    /// (`__private`): a fixed salt must never be used for real data.
    pub(crate) fn duplicate_with_salt(&self, salt: [u8; SALT_LEN]) -> crate::Result<Encryptor> {
        Ok(Encryptor {
            provider: self.provider,
            header: self.header.clone(),
            dek: DataKey::from_unwrapped(self.dek.expose_secret_bytes())?,
            context: self.context.clone(),
            salt,
            leases: self.leases.clone(),
        })
    }

    /// An [`AsyncWrite`](tokio::io::AsyncWrite) writer that emits the
    /// embedded form (header, then body). See
    /// [`AsyncEncryptingWriter`](crate::stream::AsyncEncryptingWriter):
    /// call its `finish`.
    #[cfg(feature = "tokio")]
    pub fn async_writer<W: tokio::io::AsyncWrite + Unpin>(
        self,
        out: W,
    ) -> crate::Result<crate::stream::AsyncEncryptingWriter<W>> {
        let header = self.header.to_bytes();
        let (cipher, prefix) = self.cipher()?;
        Ok(crate::stream::AsyncEncryptingWriter::new(
            out, cipher, &header, &prefix,
        ))
    }

    /// [`Encryptor::async_writer`] for the detached form (body only).
    #[cfg(feature = "tokio")]
    pub fn async_detached_writer<W: tokio::io::AsyncWrite + Unpin>(
        self,
        out: W,
    ) -> crate::Result<crate::stream::AsyncEncryptingWriter<W>> {
        let (cipher, prefix) = self.cipher()?;
        Ok(crate::stream::AsyncEncryptingWriter::new(
            out,
            cipher,
            &[],
            &prefix,
        ))
    }

    /// [`Encryptor::seal`] on `threads` threads (`0`: the available cores,
    /// [`default_threads`](crate::stream::default_threads)). The output is
    /// byte-for-byte what `seal` would produce with the same data key and
    /// salt: chunk *i* is sealed with nonce *i* whichever thread seals it.
    ///
    /// Cost: one allocation of the exact output size; the chunks are
    /// sealed directly into it.
    pub fn seal_parallel(self, plaintext: &[u8], threads: usize) -> crate::Result<Vec<u8>> {
        let header = self.header.to_bytes();
        self.seal_parallel_into(&header, plaintext, threads)
    }

    /// [`Encryptor::seal_detached`] on `threads` threads; see
    /// [`Encryptor::seal_parallel`].
    pub fn seal_detached_parallel(
        self,
        plaintext: &[u8],
        threads: usize,
    ) -> crate::Result<(Vec<u8>, Vec<u8>)> {
        let header = self.header.to_bytes();
        let body = self.seal_parallel_into(&[], plaintext, threads)?;
        Ok((header, body))
    }

    fn seal_parallel_into(
        self,
        preamble: &[u8],
        plaintext: &[u8],
        threads: usize,
    ) -> crate::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_parallel_with(preamble, plaintext, &mut out, threads)?;
        Ok(out)
    }

    fn seal_parallel_with(
        self,
        preamble: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
        threads: usize,
    ) -> crate::Result<()> {
        let threads = parallel::resolve_threads(threads);
        let body = layout::body_len(plaintext.len() as u64);
        let total = usize::try_from(preamble.len() as u64 + body)
            .map_err(|_| Error::TooLarge("object too large for memory"))?;
        if plaintext.len() as u64 / CHUNK_SIZE as u64 >= MAX_CHUNKS {
            return Err(Error::TooLarge("more than 2^38 chunks"));
        }
        let (cipher, prefix) = self.cipher()?;
        // Every byte of `out[..total]` is written below, so a reused buffer
        // that is long enough is only truncated (no zeroing pass), and a
        // fresh one is zero-allocated (pages are touched by the threads
        // that seal into them).
        if out.len() >= total {
            out.truncate(total);
        } else {
            out.clear();
            out.resize(total, 0);
        }
        out[..preamble.len()].copy_from_slice(preamble);
        let chunks_at = preamble.len() + BODY_PREFIX_LEN;
        out[preamble.len()..chunks_at].copy_from_slice(&prefix);
        parallel::seal_into(&cipher, plaintext, &mut out[chunks_at..], threads)
    }

    /// [`Encryptor::seal_parallel`] into a buffer the caller reuses: `out`
    /// is replaced by the envelope. A buffer already as long as the
    /// envelope is overwritten without reallocation or zeroing, which for
    /// large objects saves the page faults of a fresh allocation (on the
    /// 2-vCPU build machine these cost more than the encryption of a
    /// 256 MiB object). On error `out` holds no valid envelope.
    pub fn seal_parallel_to(
        self,
        plaintext: &[u8],
        out: &mut Vec<u8>,
        threads: usize,
    ) -> crate::Result<()> {
        let header = self.header.to_bytes();
        let r = self.seal_parallel_with(&header, plaintext, out, threads);
        if r.is_err() {
            out.clear();
        }
        r
    }

    /// Encrypts everything `reader` yields into `writer` as an embedded
    /// envelope, on `threads` threads (`0`: the available cores). Returns
    /// the plaintext length; `writer` is flushed.
    ///
    /// With `threads == 1` this is [`Encryptor::writer`] and a copy loop.
    /// Otherwise the calling thread reads, writes in order and, when
    /// nothing is ready to write, works too; `threads - 1` more threads
    /// seal, over a bounded window of 256 KiB groups of chunks: memory is
    /// O(threads), independent of the object size, and a slow `writer`
    /// stops the reading (no unbounded buffering). The output is byte for
    /// byte that of the single-threaded path for the same key and salt.
    ///
    /// On error the output ends without its final chunk, so it never
    /// decrypts as a valid, shorter object.
    pub fn encrypt_stream<R: Read, W: Write>(
        self,
        reader: R,
        writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        let header = self.header.to_bytes();
        self.encrypt_stream_with(&header, reader, writer, threads)
    }

    /// [`Encryptor::encrypt_stream`] for the detached form: writes only the
    /// body. Store [`Encryptor::header`] first.
    pub fn encrypt_stream_detached<R: Read, W: Write>(
        self,
        reader: R,
        writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        self.encrypt_stream_with(&[], reader, writer, threads)
    }

    fn encrypt_stream_with<R: Read, W: Write>(
        self,
        preamble: &[u8],
        mut reader: R,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        let threads = parallel::resolve_threads(threads);
        if threads <= 1 {
            let mut w = self.start(&mut writer, preamble)?;
            let mut buf = zeroize::Zeroizing::new(vec![0u8; COPY_BUF]);
            loop {
                let n = match reader.read(&mut buf[..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::Io(e)),
                };
                w.write_all(&buf[..n]).map_err(Error::from_io)?;
            }
            let len = w.plaintext_len();
            w.finish()?;
            return Ok(len);
        }
        let cipher = self.start_parallel(&mut writer, preamble)?;
        let len = parallel::encrypt_stream(&cipher, reader, &mut writer, threads)?;
        writer.flush()?;
        Ok(len)
    }

    /// Writes `preamble` and the body prefix; returns the chunk cipher.
    fn start_parallel<W: Write>(
        &self,
        writer: &mut W,
        preamble: &[u8],
    ) -> crate::Result<ChunkCipher> {
        let (cipher, prefix) = self.cipher()?;
        if !preamble.is_empty() {
            writer.write_all(preamble)?;
        }
        writer.write_all(&prefix)?;
        Ok(cipher)
    }

    /// [`Encryptor::encrypt_stream`] from a file: encrypts `file` from its
    /// current position to its end into `writer` as an embedded envelope,
    /// and leaves the position at the end. Returns the plaintext length;
    /// `writer` is flushed.
    ///
    /// When `file` is a regular file and `threads > 1`, each thread reads
    /// the groups it seals by position (`pread`), so reading is parallel
    /// too, not only sealing; the calling thread writes them in order. The
    /// output is byte for byte that of [`Encryptor::encrypt_stream`], in
    /// the same bounded memory. The file is taken at the length it has
    /// when the call starts; if it shrinks or grows meanwhile the call
    /// fails (an I/O error saying so) and the output ends without its
    /// final chunk, so it never decrypts. Anything else (a pipe, a
    /// terminal), or `threads == 1`, is read as a stream by
    /// [`Encryptor::encrypt_stream`].
    #[cfg(any(unix, windows))]
    pub fn encrypt_file<W: Write>(
        self,
        file: &std::fs::File,
        writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        let header = self.header.to_bytes();
        self.encrypt_file_with(&header, file, writer, threads)
    }

    /// [`Encryptor::encrypt_file`] for the detached form: writes only the
    /// body. Store [`Encryptor::header`] first.
    #[cfg(any(unix, windows))]
    pub fn encrypt_file_detached<W: Write>(
        self,
        file: &std::fs::File,
        writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        self.encrypt_file_with(&[], file, writer, threads)
    }

    #[cfg(any(unix, windows))]
    fn encrypt_file_with<W: Write>(
        self,
        preamble: &[u8],
        file: &std::fs::File,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        use crate::stream::positional::{self, FileSpan};
        let threads = parallel::resolve_threads(threads);
        let Some(span) = FileSpan::for_threads(file, threads)? else {
            return self.encrypt_stream_with(preamble, file, writer, threads);
        };
        if span.len() / CHUNK_SIZE as u64 >= MAX_CHUNKS {
            return Err(Error::TooLarge("more than 2^38 chunks"));
        }
        let cipher = self.start_parallel(&mut writer, preamble)?;
        let len = positional::encrypt_file(&cipher, &span, &mut writer, threads)?;
        writer.flush()?;
        Ok(len)
    }

    /// Encrypts `plaintext` in memory into an embedded envelope.
    ///
    /// Cost: one allocation of the exact output size.
    pub fn seal(self, plaintext: &[u8]) -> crate::Result<Vec<u8>> {
        // One output allocation of the exact size; each chunk is sealed out
        // of place from the plaintext into its slot (no writer buffer).
        let header = self.header.to_bytes();
        self.seal_parallel_into(&header, plaintext, 1)
    }

    /// Encrypts `plaintext` in memory into a detached pair
    /// `(header bytes, body bytes)`.
    pub fn seal_detached(self, plaintext: &[u8]) -> crate::Result<(Vec<u8>, Vec<u8>)> {
        let header = self.header.to_bytes();
        let body = self.seal_parallel_into(&[], plaintext, 1)?;
        Ok((header, body))
    }
}
