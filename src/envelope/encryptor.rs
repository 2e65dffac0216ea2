//! Sealing: a fresh data key, wrapped by every KEK, driving the writer.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use crate::error::Error;
use crate::format::{Header, Profile, Suite, MAX_KEYS};
use crate::kek::KeyEncryptionKey;
use crate::key::DataKey;
use crate::provider::CryptoProvider;
use crate::stream::chunk::{envelope_context, ChunkCipher};
use crate::stream::{layout, EncryptingWriter};

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
        let dek = DataKey::generate(provider)?;
        let mut wrapped = Vec::with_capacity(keks.len());
        for kek in keks {
            let w = kek.wrap_key(&dek).await?;
            if w.alg != kek.algorithm() {
                return Err(Error::ApiMisuse(
                    "a KEK returned a wrapped key of another algorithm",
                ));
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
        let (cipher, prefix) = ChunkCipher::for_encryption(
            self.provider,
            self.dek.expose_secret_bytes(),
            &self.context,
        )?;
        EncryptingWriter::start(out, cipher, preamble, &prefix)
    }

    /// Encrypts `plaintext` in memory into an embedded envelope.
    ///
    /// Cost: one allocation of the exact output size.
    pub fn seal(self, plaintext: &[u8]) -> crate::Result<Vec<u8>> {
        let header_len = self.header.encoded_len();
        let total = header_len as u64 + layout::body_len(plaintext.len() as u64);
        let out = Vec::with_capacity(
            usize::try_from(total).map_err(|_| Error::TooLarge("object too large for memory"))?,
        );
        let mut w = self.writer(out)?;
        w.write_all(plaintext)?;
        w.finish()
    }

    /// Encrypts `plaintext` in memory into a detached pair
    /// `(header bytes, body bytes)`.
    pub fn seal_detached(self, plaintext: &[u8]) -> crate::Result<(Vec<u8>, Vec<u8>)> {
        let header = self.header.to_bytes();
        let body_len = usize::try_from(layout::body_len(plaintext.len() as u64))
            .map_err(|_| Error::TooLarge("object too large for memory"))?;
        let mut w = self.detached_writer(Vec::with_capacity(body_len))?;
        w.write_all(plaintext)?;
        Ok((header, w.finish()?))
    }
}
