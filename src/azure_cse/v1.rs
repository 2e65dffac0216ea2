//! **Insecure**, opt-in read of protocol 1.0 blobs (AES-256-CBC with
//! PKCS#7 padding, no authentication; CVE-2022-30187). Only to migrate.
//! Nothing in this crate writes protocol 1.0.

use std::io::{self, Read};

use zeroize::Zeroizing;

use super::decrypt::check_kek;
use super::metadata::{EncryptionData, Protocol};
use crate::error::Error;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::provider::{CryptoProvider, AES256_KEY_LEN, AES_BLOCK_LEN};
use crate::util::SecretBuf;

/// The explicit opt-in to read Azure CSE **protocol 1.0** blobs, which are
/// **insecure**: see [`InsecureCseV1Decryptor`]. Its only value is named so
/// that it cannot be passed by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureV1 {
    /// "I know the blob is AES-CBC without any integrity protection
    /// (CVE-2022-30187): its plaintext may have been modified by whoever
    /// could write the blob, and I read it only to re-encrypt it."
    AcceptUnauthenticatedCbc,
}

/// The one error of a protocol 1.0 body, whatever went wrong (length,
/// padding, key): a padding failure must not be told apart from any other
/// failure, or the error becomes a padding oracle.
fn body_error() -> Error {
    Error::CseRegion {
        region: 0,
        problem: "the protocol 1.0 body did not decrypt: wrong content key, or the ciphertext \
                  was modified or truncated (protocol 1.0 has no integrity protection)",
    }
}

/// Unwraps the content key of a protocol 1.0 blob: the KEK wraps the bare
/// 32-byte key (no protocol prefix).
async fn unwrap_v1_cek(
    metadata: &EncryptionData,
    kek: &dyn KeyEncryptionKey,
) -> crate::Result<Zeroizing<[u8; AES256_KEY_LEN]>> {
    check_kek(metadata, kek)?;
    let material = kek.unwrap_key_material(metadata.encrypted_key()).await?;
    let bytes = material.expose_secret_bytes();
    if bytes.len() != AES256_KEY_LEN {
        // A 40-byte protocol 2.x key under metadata changed to 1.0 ends here.
        return Err(Error::CseMetadata(
            "the wrapped key of a protocol 1.0 blob must be a bare 32-byte content key; \
             this one is not (metadata changed from protocol 2.x to 1.0?)"
                .into(),
        ));
    }
    let mut cek = Zeroizing::new([0u8; AES256_KEY_LEN]);
    cek.copy_from_slice(bytes);
    Ok(cek)
}

/// Decrypts Azure CSE **protocol 1.0** blobs: **INSECURE, for migration
/// only.**
///
/// # Security
///
/// Protocol 1.0 encrypts the whole blob with AES-256-CBC and PKCS#7
/// padding and authenticates **nothing** (CVE-2022-30187):
///
/// * **Plaintext is released without any integrity check.** Whoever could
///   write the blob or its metadata can flip chosen plaintext bits (CBC
///   malleability), cut blocks, or splice blocks, and this decryptor
///   returns the result as if it were genuine.
/// * Whoever can submit modified blobs and observe whether reading them
///   succeeds has a **padding oracle**, which recovers plaintext. This
///   crate reports every failure of the body with one generic error
///   ([`Error::CseRegion`], region 0) and checks the padding without
///   data-dependent branches, but success versus failure itself still leaks.
///   Never run it as a service that decrypts blobs others can write.
/// * Only the content key is protected (by the KEK's unwrap). The wrapped
///   key of 1.0 is the bare 32-byte key; a 2.x wrapped key (40 bytes, with
///   its protocol prefix) is refused here, so 2.x metadata rewritten to 1.0
///   cannot reach CBC.
///
/// Use it only to **migrate**: read each blob once, in a trusted setting,
/// and re-encrypt it with protocol 2.x ([`CseEncryptor`](super::CseEncryptor))
/// or this crate's envelope format. This crate never writes protocol 1.0:
/// there is no API for it.
///
/// [`CseDecryptor`](super::CseDecryptor) keeps refusing protocol 1.0; this
/// type is the only way in, and it needs [`InsecureV1::AcceptUnauthenticatedCbc`].
/// It reads block blobs (padded); page blobs written by 1.0 are not padded
/// and are not supported. Ranged reads are not supported: read whole blobs.
pub struct InsecureCseV1Decryptor {
    cek: Zeroizing<[u8; AES256_KEY_LEN]>,
    iv: [u8; AES_BLOCK_LEN],
    provider: &'static CryptoProvider,
    key_id: String,
}

impl std::fmt::Debug for InsecureCseV1Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureCseV1Decryptor")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl InsecureCseV1Decryptor {
    /// Resolves `WrappedContentKey.KeyId` through `resolver` (an
    /// allow-list) and unwraps the content key of a protocol 1.0 blob.
    /// **Insecure**: read the type's documentation.
    ///
    /// Cost: one `unwrap_key_material` call. Errors:
    /// [`Error::UnknownKek`], [`Error::CseMetadata`] (not protocol 1.0,
    /// wrong `KeyId` or `Algorithm`, a wrapped key that is not 32 bytes),
    /// [`Error::UnwrapFailed`].
    pub async fn new(
        metadata: &EncryptionData,
        resolver: &dyn KeyResolver,
        opt_in: InsecureV1,
    ) -> crate::Result<InsecureCseV1Decryptor> {
        Self::with_provider(
            metadata,
            resolver,
            CryptoProvider::default_provider(),
            opt_in,
        )
        .await
    }

    /// [`InsecureCseV1Decryptor::new`] with a chosen crypto provider.
    pub async fn with_provider(
        metadata: &EncryptionData,
        resolver: &dyn KeyResolver,
        provider: &'static CryptoProvider,
        opt_in: InsecureV1,
    ) -> crate::Result<InsecureCseV1Decryptor> {
        let kek = resolver
            .resolve(metadata.key_id())
            .ok_or_else(|| Error::unknown_kek([metadata.key_id()]))?;
        Self::with_kek(metadata, kek.as_ref(), provider, opt_in).await
    }

    /// Unwraps with a given KEK, which must be the one `KeyId` names.
    pub async fn with_kek(
        metadata: &EncryptionData,
        kek: &dyn KeyEncryptionKey,
        provider: &'static CryptoProvider,
        opt_in: InsecureV1,
    ) -> crate::Result<InsecureCseV1Decryptor> {
        let InsecureV1::AcceptUnauthenticatedCbc = opt_in;
        let iv = match (metadata.protocol(), metadata.content_encryption_iv()) {
            (Protocol::V1_0, Some(iv)) => *iv,
            _ => {
                return Err(Error::CseMetadata(format!(
                    "protocol {} is not 1.0: read it with `CseDecryptor`, which authenticates it",
                    metadata.protocol()
                )))
            }
        };
        let cek = unwrap_v1_cek(metadata, kek).await?;
        Ok(InsecureCseV1Decryptor {
            cek,
            iv,
            provider,
            key_id: metadata.key_id().to_owned(),
        })
    }

    /// Decrypts a whole blob held in memory and removes its padding.
    /// Nothing is returned on failure, and every failure is the same
    /// [`Error::CseRegion`] (region 0). **Not authenticated**: a success
    /// does not mean the plaintext is what was written.
    ///
    /// Cost: one pass over the data.
    pub fn decrypt(&self, ciphertext: &[u8]) -> crate::Result<Vec<u8>> {
        let len = ciphertext.len();
        if len == 0 || !len.is_multiple_of(AES_BLOCK_LEN) {
            return Err(body_error());
        }
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        self.provider
            .aead
            .aes256_cbc(&self.cek)
            .decrypt_blocks(&self.iv, &mut buf)
            .map_err(|_| body_error())?;
        let last: &[u8; AES_BLOCK_LEN] = buf[len - AES_BLOCK_LEN..].try_into().expect("one block");
        let keep = crate::pkcs7::unpadded_len(last).ok_or_else(body_error)?;
        buf.truncate(len - AES_BLOCK_LEN + keep);
        Ok(std::mem::take(&mut *buf))
    }

    /// A streaming reader of the whole blob's plaintext, with constant
    /// memory (about 128 KiB). It holds back the last block until the end
    /// of the input to remove the padding, so **plaintext is released
    /// before the padding is checked**: when it fails at the end, what it
    /// returned before is suspect too. Errors are `io::Error`s wrapping
    /// the same generic [`Error::CseRegion`] as [`Self::decrypt`]
    /// (`?` into a [`crate::Result`] gives it back); after one, the reader
    /// returns it again.
    pub fn reader<R: Read>(&self, inner: R) -> InsecureCseV1Reader<R> {
        InsecureCseV1Reader {
            inner,
            cek: self.cek.clone(),
            iv: self.iv,
            provider: self.provider,
            ct: Vec::new(),
            ct_len: 0,
            out: SecretBuf::with_capacity(0),
            pos: 0,
            end: 0,
            done: false,
            failed: false,
        }
    }
}

/// The ciphertext decrypted per provider call by the streaming reader.
const V1_CHUNK: usize = 64 * 1024;

/// A streaming reader of a protocol 1.0 blob's plaintext; see
/// [`InsecureCseV1Decryptor::reader`]. **Not authenticated.**
pub struct InsecureCseV1Reader<R> {
    inner: R,
    cek: Zeroizing<[u8; AES256_KEY_LEN]>,
    /// The CBC chaining value: the ciphertext block before `ct`.
    iv: [u8; AES_BLOCK_LEN],
    provider: &'static CryptoProvider,
    /// Ciphertext not yet decrypted (`V1_CHUNK` + one held-back block).
    ct: Vec<u8>,
    ct_len: usize,
    /// Decrypted plaintext, `out[pos..end]` not yet handed out.
    out: SecretBuf,
    pos: usize,
    end: usize,
    done: bool,
    failed: bool,
}

impl<R> std::fmt::Debug for InsecureCseV1Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureCseV1Reader")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> InsecureCseV1Reader<R> {
    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Decrypts the next chunk into `out[pos..end]`.
    fn refill(&mut self) -> crate::Result<()> {
        if self.ct.is_empty() {
            self.ct = vec![0u8; V1_CHUNK + AES_BLOCK_LEN];
            self.out = SecretBuf::zeroed(V1_CHUNK + AES_BLOCK_LEN);
        }
        let mut eof = false;
        while self.ct_len < self.ct.len() {
            match self.inner.read(&mut self.ct[self.ct_len..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => self.ct_len += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        // Not at the end: decrypt all but the last block, which may be the
        // padded one. At the end: decrypt everything and unpad.
        let n = if eof { self.ct_len } else { V1_CHUNK };
        if eof && (n == 0 || !n.is_multiple_of(AES_BLOCK_LEN)) {
            return Err(body_error());
        }
        self.out[..n].copy_from_slice(&self.ct[..n]);
        self.provider
            .aead
            .aes256_cbc(&self.cek)
            .decrypt_blocks(&self.iv, &mut self.out[..n])
            .map_err(|_| body_error())?;
        self.pos = 0;
        self.end = n;
        if eof {
            let last: &[u8; AES_BLOCK_LEN] = self.out[n - AES_BLOCK_LEN..n]
                .try_into()
                .expect("one block");
            let keep = crate::pkcs7::unpadded_len(last).ok_or_else(body_error)?;
            self.end = n - AES_BLOCK_LEN + keep;
            self.done = true;
        } else {
            self.iv.copy_from_slice(&self.ct[n - AES_BLOCK_LEN..n]);
            self.ct.copy_within(n..self.ct_len, 0);
            self.ct_len -= n;
        }
        Ok(())
    }
}

impl<R: Read> Read for InsecureCseV1Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(body_error().into_io());
        }
        loop {
            if self.pos < self.end {
                let n = buf.len().min(self.end - self.pos);
                buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.refill() {
                self.failed = true;
                self.out.fill(0);
                self.pos = 0;
                self.end = 0;
                return Err(e.into_io());
            }
        }
    }
}

/// Decrypts a protocol 1.0 blob held in memory: **insecure, for migration
/// only** (see [`InsecureCseV1Decryptor`]).
pub async fn decrypt_insecure_v1(
    metadata: &EncryptionData,
    resolver: &dyn KeyResolver,
    ciphertext: &[u8],
    opt_in: InsecureV1,
) -> crate::Result<Vec<u8>> {
    InsecureCseV1Decryptor::new(metadata, resolver, opt_in)
        .await?
        .decrypt(ciphertext)
}
