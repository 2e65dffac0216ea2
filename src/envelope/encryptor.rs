//! Sealing: a fresh data key, wrapped by every KEK, then one terminal
//! operation that writes the envelope.

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
use crate::stream::{layout, parallel, EncryptingWriter, Threads};

/// The copy buffer of the single-threaded stream paths.
pub(super) const COPY_BUF: usize = 64 * 1024;

/// Everything needed to encrypt one object: a fresh data key, the header
/// holding it wrapped by each KEK, and the object's context.
///
/// [`Encryptor::new`] is the only step that calls KEKs (once each). Options
/// are then set once, by value: [`detached`](Self::detached) (write only
/// the body; store [`header`](Self::header) elsewhere),
/// [`threads`](Self::threads) and [`provider`](Self::provider). One
/// terminal operation consumes the encryptor and writes the envelope — one
/// data key and one salt, one envelope:
///
/// | input | operation |
/// |---|---|
/// | a slice | [`seal`](Self::seal), or [`seal_into`](Self::seal_into) to reuse an output buffer |
/// | written piece by piece | [`wrap_output`](Self::wrap_output) (`Write`), [`wrap_async_output`](Self::wrap_async_output) (tokio `AsyncWrite`) |
/// | a `Read` | [`encrypt_stream`](Self::encrypt_stream) |
/// | a `File` | [`encrypt_file`](Self::encrypt_file) |
///
/// Whatever the operation and thread count, the bytes are those of one
/// format: chunk *i* is sealed with nonce *i* on whichever thread.
pub struct Encryptor {
    provider: &'static CryptoProvider,
    header: Header,
    dek: DataKey,
    context: Vec<u8>,
    /// The body salt, drawn with the data key (one CSPRNG call). The
    /// encryptor is consumed by the one envelope it writes, so a salt is
    /// used once.
    salt: [u8; SALT_LEN],
    detached: bool,
    threads: Threads,
    /// The leases the KEKs gave with their wraps ([`KeyEncryptionKey::lease`]):
    /// sealing stops once any of them ends.
    leases: Option<Arc<[KeyLease]>>,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("provider", &self.provider.name())
            .field("header", &self.header)
            .field("detached", &self.detached)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Generates a data key and wraps it with each of `keks` (1 to 16),
    /// for an object of `profile` identified by `app_context` (a container
    /// and blob name, a document id, an index and segment name). The same
    /// `profile` and `app_context` must be given to decrypt.
    ///
    /// The result writes the embedded form (header, then body) on one
    /// thread with the default [`CryptoProvider`] until told otherwise.
    ///
    /// Errors: [`Error::ApiMisuse`] for no KEK or more than 16; a KEK's own
    /// error; [`Error::Internal`] if a KEK returns a wrapped key of another
    /// algorithm than its own.
    ///
    /// Cost: one CSPRNG draw (data key and salt), then one `wrap_key` call
    /// per KEK, made one after the other.
    pub async fn new(
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
        let provider = CryptoProvider::default_provider();
        let (dek, salt) = DataKey::generate_with_salt::<SALT_LEN>(provider)?;
        let mut wrapped = Vec::with_capacity(keks.len());
        let mut leases: Option<Arc<[KeyLease]>> = None;
        for kek in keks {
            let w = kek.wrap_key(&dek).await?;
            if w.alg != kek.algorithm() {
                return Err(Error::Internal(
                    "a key-encryption key returned a wrapped key of another algorithm",
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
            detached: false,
            threads: Threads::ONE,
            leases,
        })
    }

    /// Writes the detached form: the output holds the body only. Store
    /// [`Encryptor::header`] (`header().to_bytes()`) elsewhere — blob
    /// metadata, a document property — first: without it the body cannot
    /// be decrypted. Decrypt with [`Decryptor::new`](crate::Decryptor::new)
    /// on the stored header.
    pub fn detached(mut self) -> Self {
        self.detached = true;
        self
    }

    /// The threads [`seal`](Self::seal), [`seal_into`](Self::seal_into),
    /// [`encrypt_stream`](Self::encrypt_stream) and
    /// [`encrypt_file`](Self::encrypt_file) may use (default
    /// [`Threads::ONE`]). The output is the same byte for byte. The
    /// `Write`/`AsyncWrite` adapters always seal on the calling thread.
    pub fn threads(mut self, threads: Threads) -> Self {
        self.threads = threads;
        self
    }

    /// The crypto provider that derives the body keys and seals the
    /// chunks (default: [`CryptoProvider::default_provider`]). Every
    /// provider writes the same format; this picks an implementation.
    pub fn provider(mut self, provider: &'static CryptoProvider) -> Self {
        self.provider = provider;
        self
    }

    /// The header: written first in the embedded form; in the detached
    /// form, store `header().to_bytes()` yourself.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header bytes this envelope starts with: none when detached.
    fn preamble(&self) -> Vec<u8> {
        if self.detached {
            Vec::new()
        } else {
            self.header.to_bytes()
        }
    }

    /// The chunk cipher and body prefix of this envelope.
    fn cipher(&self) -> crate::Result<(ChunkCipher, [u8; BODY_PREFIX_LEN])> {
        let (cipher, prefix) = ChunkCipher::for_encryption(
            self.provider,
            self.dek.expose_secret_bytes(),
            &self.salt,
            &self.context,
        )?;
        Ok((cipher.with_leases(self.leases.clone()), prefix))
    }

    /// Encrypts `plaintext`, held in memory, into a new envelope.
    ///
    /// Cost: one allocation of the exact output size; each chunk is sealed
    /// straight from `plaintext` into its place in it, on the configured
    /// threads.
    pub fn seal(self, plaintext: &[u8]) -> crate::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(plaintext, &mut out)?;
        Ok(out)
    }

    /// [`Encryptor::seal`] into a buffer the caller reuses: `out` is
    /// replaced by the envelope. A buffer already as long as the envelope is
    /// overwritten without reallocation or zeroing, which for large objects
    /// saves the page faults of a fresh allocation (on a 2-vCPU machine
    /// they cost more than encrypting a 256 MiB object). On error `out` is
    /// emptied: it never holds a partial envelope.
    pub fn seal_into(self, plaintext: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
        let r = self.seal_with(plaintext, out);
        if r.is_err() {
            out.clear();
        }
        r
    }

    fn seal_with(self, plaintext: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
        let preamble = self.preamble();
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
        out[..preamble.len()].copy_from_slice(&preamble);
        let chunks_at = preamble.len() + BODY_PREFIX_LEN;
        out[preamble.len()..chunks_at].copy_from_slice(&prefix);
        parallel::seal_into(
            &cipher,
            plaintext,
            &mut out[chunks_at..],
            self.threads.count(),
        )
    }

    /// A [`Write`] adapter: everything written to it is encrypted into
    /// `out`, chunk by chunk, on the calling thread. The header (embedded
    /// form) and the body prefix are written before this returns.
    ///
    /// **Call [`EncryptingWriter::finish`]**: it writes the final chunk
    /// that ends the message. Output of a writer dropped without it fails
    /// to decrypt (truncated), never as a valid shorter object.
    ///
    /// Cost: one 16 KiB buffer; one `write_all` per sealed chunk.
    pub fn wrap_output<W: Write>(self, out: W) -> crate::Result<EncryptingWriter<W>> {
        let (cipher, prefix) = self.cipher()?;
        EncryptingWriter::start(out, cipher, &self.preamble(), &prefix)
    }

    /// A tokio [`AsyncWrite`](tokio::io::AsyncWrite) adapter: the async
    /// [`Encryptor::wrap_output`]. Nothing is written before the first
    /// poll. **Call
    /// [`AsyncEncryptingWriter::finish`](crate::AsyncEncryptingWriter::finish)**;
    /// `shutdown` does not end the message.
    #[cfg(feature = "tokio")]
    pub fn wrap_async_output<W: tokio::io::AsyncWrite + Unpin>(
        self,
        out: W,
    ) -> crate::Result<crate::stream::AsyncEncryptingWriter<W>> {
        let (cipher, prefix) = self.cipher()?;
        Ok(crate::stream::AsyncEncryptingWriter::new(
            out,
            cipher,
            &self.preamble(),
            &prefix,
        ))
    }

    /// Encrypts everything `reader` yields into `writer`. Returns the
    /// plaintext length; `writer` is flushed.
    ///
    /// On one thread this is [`Encryptor::wrap_output`] and a copy loop
    /// with a 64 KiB buffer. On *n* > 1 the calling thread reads, writes in
    /// order and, when nothing is ready to write, seals too; `n - 1` more
    /// threads seal, over a bounded window of 256 KiB groups of chunks:
    /// memory is O(*n*), independent of the object size, and a slow
    /// `writer` stops the reading (no unbounded buffering).
    ///
    /// On error the output ends without its final chunk, so it never
    /// decrypts as a valid, shorter object.
    pub fn encrypt_stream<R: Read, W: Write>(self, reader: R, writer: W) -> crate::Result<u64> {
        let threads = self.threads.count();
        self.encrypt_stream_on(reader, writer, threads)
    }

    fn encrypt_stream_on<R: Read, W: Write>(
        self,
        mut reader: R,
        mut writer: W,
        threads: usize,
    ) -> crate::Result<u64> {
        if threads <= 1 {
            let mut w = self.wrap_output(&mut writer)?;
            let mut buf = zeroize::Zeroizing::new(vec![0u8; COPY_BUF]);
            loop {
                let n = match reader.read(&mut buf[..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                w.write_all(&buf[..n])?;
            }
            let len = w.plaintext_len();
            w.finish()?;
            return Ok(len);
        }
        let cipher = self.start_parallel(&mut writer)?;
        let len = parallel::encrypt_stream(&cipher, reader, &mut writer, threads)?;
        writer.flush()?;
        Ok(len)
    }

    /// Writes the header (embedded form) and the body prefix; returns the
    /// chunk cipher.
    fn start_parallel<W: Write>(&self, writer: &mut W) -> crate::Result<ChunkCipher> {
        let (cipher, prefix) = self.cipher()?;
        let preamble = self.preamble();
        if !preamble.is_empty() {
            writer.write_all(&preamble)?;
        }
        writer.write_all(&prefix)?;
        Ok(cipher)
    }

    /// Encrypts `file` from its current position to its end into `writer`
    /// and leaves the position at the end. Returns the plaintext length;
    /// `writer` is flushed.
    ///
    /// When `file` is a regular file and there are several threads, each
    /// thread reads the groups it seals by position (`pread`), so reading
    /// is parallel too, not only sealing; the calling thread writes them in
    /// order, in the bounded memory of
    /// [`encrypt_stream`](Self::encrypt_stream). The file is taken at the
    /// length it has when the call starts; if it shrinks or grows meanwhile
    /// the call fails (an I/O error saying so) and the output ends without
    /// its final chunk, so it never decrypts. Anything else (a pipe, a
    /// terminal), or one thread, is read as a stream.
    #[cfg(any(unix, windows))]
    pub fn encrypt_file<W: Write>(self, file: &std::fs::File, mut writer: W) -> crate::Result<u64> {
        use crate::stream::positional::{self, FileSpan};
        let threads = self.threads.count();
        let Some(span) = FileSpan::for_threads(file, threads)? else {
            return self.encrypt_stream_on(file, writer, threads);
        };
        if span.len() / CHUNK_SIZE as u64 >= MAX_CHUNKS {
            return Err(Error::TooLarge("more than 2^38 chunks"));
        }
        let cipher = self.start_parallel(&mut writer)?;
        let len = positional::encrypt_file(&cipher, &span, &mut writer, threads)?;
        writer.flush()?;
        Ok(len)
    }

    /// A copy with the same data key, header, context and options and the
    /// salt `salt`, so that tests can compare two encryptions byte for
    /// byte. Exists in test builds only: a fixed salt must never protect
    /// real data.
    #[cfg(test)]
    pub(crate) fn duplicate_with_salt(&self, salt: [u8; SALT_LEN]) -> Encryptor {
        Encryptor {
            provider: self.provider,
            header: self.header.clone(),
            dek: DataKey::from_unwrapped(self.dek.expose_secret_bytes()).expect("32 bytes"),
            context: self.context.clone(),
            salt,
            detached: self.detached,
            threads: self.threads,
            leases: self.leases.clone(),
        }
    }
}
