//! Encryption: v2.0 (4 MiB regions) or v2.1 (a chosen region size), with
//! the Python SDK's nonces, which every SDK reads.

use std::io::{self, Write};

use zeroize::Zeroizing;

use crate::util::SecretBuf;

use super::decrypt::WRAPPED_MATERIAL_LEN;
use super::metadata::{
    EncryptionData, Protocol, DEFAULT_REGION_DATA_LEN, MAX_REGION_DATA_LEN, MIN_REGION_DATA_LEN,
    NONCE_LEN,
};
use super::nonce::NonceEncoding;
use super::range;
use crate::error::Error;
use crate::kek::{KeyEncryptionKey, WrapAlgorithm};
use crate::key::KeyMaterial;
use crate::provider::{Aes256GcmKey, CryptoProvider, AES256_KEY_LEN};

/// What to write: protocol 2.0 (the default; 4 MiB regions), or 2.1 with
/// a chosen region size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CseEncryptOptions {
    protocol: Protocol,
    region_data_len: u64,
}

impl Default for CseEncryptOptions {
    fn default() -> Self {
        CseEncryptOptions::v2_0()
    }
}

impl CseEncryptOptions {
    /// Protocol 2.0: 4 MiB regions. Read by every SDK that reads v2.
    pub fn v2_0() -> CseEncryptOptions {
        CseEncryptOptions {
            protocol: Protocol::V2_0,
            region_data_len: DEFAULT_REGION_DATA_LEN,
        }
    }

    /// Protocol 2.1 with regions of `region_data_len` bytes (16 B to
    /// 64 MiB). Readers need an SDK release that knows 2.1.
    pub fn v2_1(region_data_len: u64) -> crate::Result<CseEncryptOptions> {
        if !(MIN_REGION_DATA_LEN..=MAX_REGION_DATA_LEN).contains(&region_data_len) {
            return Err(Error::ApiMisuse(
                "the region size of protocol 2.1 must be 16 bytes to 64 MiB",
            ));
        }
        Ok(CseEncryptOptions {
            protocol: Protocol::V2_1,
            region_data_len,
        })
    }

    /// The protocol written.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The region data length written.
    pub fn region_data_len(&self) -> u64 {
        self.region_data_len
    }
}

/// A fresh content key, wrapped for one blob, with the blob's metadata.
/// It encrypts exactly one blob: [`CseEncryptor::writer`] and
/// [`CseEncryptor::encrypt`] consume it, so a nonce is never reused.
pub struct CseEncryptor {
    metadata: EncryptionData,
    key: Box<dyn Aes256GcmKey>,
    region_data_len: u64,
}

impl std::fmt::Debug for CseEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseEncryptor")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl CseEncryptor {
    /// Draws a content key, wraps `UTF-8(protocol)` zero-padded to 8 bytes
    /// followed by the key with `kek` (`A256KW`, `RSA-OAEP` or
    /// `RSA-OAEP-256`), and builds the metadata.
    ///
    /// Cost: one `wrap_key_material` call.
    pub async fn new(
        kek: &dyn KeyEncryptionKey,
        options: &CseEncryptOptions,
    ) -> crate::Result<CseEncryptor> {
        Self::with_provider(kek, options, CryptoProvider::default_provider()).await
    }

    /// [`CseEncryptor::new`] with a chosen crypto provider.
    pub async fn with_provider(
        kek: &dyn KeyEncryptionKey,
        options: &CseEncryptOptions,
        provider: &'static CryptoProvider,
    ) -> crate::Result<CseEncryptor> {
        check_wrap_algorithm(kek.algorithm())?;
        let mut buf = Zeroizing::new([0u8; WRAPPED_MATERIAL_LEN]);
        buf[..8].copy_from_slice(&options.protocol.wrapped_prefix());
        provider.fill_random(&mut buf[8..])?;
        let material = KeyMaterial::from_bytes(&buf[..])?;
        let wrapped = kek.wrap_key_material(&material).await?;
        check_wrap_algorithm(wrapped.alg)?;
        let mut cek = Zeroizing::new([0u8; AES256_KEY_LEN]);
        cek.copy_from_slice(&buf[8..]);
        Ok(CseEncryptor {
            metadata: EncryptionData::new_v2(
                options.protocol,
                options.region_data_len,
                wrapped.kek_id,
                wrapped.alg,
                wrapped.wrapped,
            ),
            key: provider.aead.aes256_gcm(&cek),
            region_data_len: options.region_data_len,
        })
    }

    /// The metadata; store [`EncryptionData::to_json`] as the blob's
    /// `encryptiondata` metadata value.
    pub fn metadata(&self) -> &EncryptionData {
        &self.metadata
    }

    /// The ciphertext length of `plaintext_len` bytes.
    pub fn ciphertext_len(&self, plaintext_len: u64) -> u64 {
        range::ciphertext_len(plaintext_len, self.region_data_len)
    }

    /// A writer that encrypts into `inner`. Memory: one region.
    pub fn writer<W: Write>(self, inner: W) -> CseEncryptingWriter<W> {
        let cap = self.region_data_len as usize;
        CseEncryptingWriter {
            inner,
            key: self.key,
            buf: SecretBuf::with_capacity(cap),
            cap,
            index: 0,
            poisoned: false,
        }
    }

    /// Encrypts a blob held in memory.
    pub fn encrypt(self, plaintext: &[u8]) -> crate::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.ciphertext_len(plaintext.len() as u64) as usize);
        let mut w = self.writer(&mut out);
        w.write_all(plaintext).map_err(Error::from)?;
        w.finish()?;
        Ok(out)
    }
}

/// Refuses wrap algorithms the SDKs cannot unwrap.
pub(super) fn check_wrap_algorithm(alg: WrapAlgorithm) -> crate::Result<()> {
    match alg {
        WrapAlgorithm::A256Kw | WrapAlgorithm::RsaOaep | WrapAlgorithm::RsaOaep256 => Ok(()),
        other => Err(Error::CseMetadata(format!(
            "the SDKs do not read content keys wrapped with {other}; use A256KW, RSA-OAEP or RSA-OAEP-256"
        ))),
    }
}

/// Encrypts region by region as data is written. Call
/// [`CseEncryptingWriter::finish`]: it writes the last, shorter region.
/// Dropping the writer without it leaves the output incomplete (and a
/// blob truncated at a region boundary still decrypts: see the module
/// documentation).
///
/// A failed write poisons the writer: every later call fails. (Sealing the
/// region buffer a second time after a failed write would encrypt its
/// ciphertext again under the same nonce, which would write the plaintext
/// out.) The plaintext buffer is wiped on drop.
pub struct CseEncryptingWriter<W: Write> {
    inner: W,
    key: Box<dyn Aes256GcmKey>,
    buf: SecretBuf,
    cap: usize,
    index: u64,
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for CseEncryptingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseEncryptingWriter")
            .field("region", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> CseEncryptingWriter<W> {
    fn check(&self) -> io::Result<()> {
        if self.poisoned {
            return Err(
                Error::ApiMisuse("a previous write failed; the output is incomplete").into_io(),
            );
        }
        Ok(())
    }

    fn seal_region(&mut self) -> io::Result<()> {
        // Poisoned until the region is sealed and written: the buffer then
        // holds ciphertext, which must never be sealed again.
        self.poisoned = true;
        let nonce: [u8; NONCE_LEN] = NonceEncoding::Python.nonce(self.index);
        let tag = self
            .key
            .seal_in_place(&nonce, &[], &mut self.buf)
            .map_err(|_| Error::Internal("AES-GCM encryption failed").into_io())?;
        self.inner.write_all(&nonce)?;
        self.inner.write_all(&self.buf)?;
        self.inner.write_all(&tag)?;
        self.buf.clear();
        self.index += 1;
        self.poisoned = false;
        Ok(())
    }

    /// Writes the last region (if any data is pending), flushes, and
    /// returns the inner writer.
    pub fn finish(mut self) -> crate::Result<W> {
        self.check().map_err(Error::from)?;
        if !self.buf.is_empty() {
            self.seal_region().map_err(Error::from)?;
        }
        self.inner.flush()?;
        let Self { inner, .. } = self;
        Ok(inner)
    }
}

impl<W: Write> Write for CseEncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        if self.buf.len() == self.cap {
            self.seal_region()?;
        }
        let n = data.len().min(self.cap - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Flushes the inner writer. A partly filled region stays buffered:
    /// only [`CseEncryptingWriter::finish`] writes it.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
