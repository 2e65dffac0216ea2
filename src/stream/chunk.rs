//! The chunk engine: C2SP chunked encryption v1 (<https://c2sp.org/chunked-encryption>)
//! in its Cobblestone-256 instantiation.
//!
//! ```text
//! key || base_nonce || commitment = HKDF-Expand-SHA-512(
//!     prk  = input key (the 32-byte data key),
//!     info = "c2sp.org/chunked-encryption@v1+" || "AEAD_AES_256_GCM" || 0x00
//!            || salt(24) || context,
//!     len  = 32 + 12 + 32)
//! body  = salt(24) || commitment(32) || chunk_0 || chunk_1 || … || chunk_n
//! chunk_i = AES-256-GCM(key, nonce = base_nonce XOR be96(i), aad = "",
//!                       plaintext_i) || tag(16)
//! ```
//!
//! Every chunk holds exactly 16 KiB of plaintext except the last, which is
//! always shorter (possibly empty): a short chunk *is* the end-of-message
//! marker, so truncation at a chunk boundary is detected. The commitment is
//! checked, in constant time, before any chunk is opened.
//!
//! This file knows nothing of I/O: [`ChunkCipher`] derives the keys, seals
//! and opens chunk *i* in place. The `Read`/`Write` adapters, the range
//! helper and the async and parallel engines all drive it.
//!
//! It also carries the [`KeyLease`]s of the data key (from a caching KEK
//! such as a scope key) and checks them before every chunk it seals or
//! opens, so that every handle stops once the key behind it was destroyed
//! or revoked (see `kek/lease.rs`).

use std::sync::Arc;

use crate::error::Error;
use crate::format::{Profile, Suite};
use crate::kek::KeyLease;
use crate::provider::{Aes256GcmKey, CryptoProvider, GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::util::ct_eq;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = GCM_TAG_LEN;
/// Ciphertext bytes of a full chunk.
pub const CHUNK_CT_SIZE: usize = CHUNK_SIZE + TAG_LEN;
/// Salt length.
pub const SALT_LEN: usize = 24;
/// Commitment length.
pub const COMMITMENT_LEN: usize = 32;
/// Bytes before the first chunk: salt and commitment.
pub const BODY_PREFIX_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// The chunk counter must stay below 2^38.
pub const MAX_CHUNKS: u64 = 1 << 38;

const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+";
const AEAD_NAME: &[u8] = b"AEAD_AES_256_GCM";
const OKM_LEN: usize = 32 + GCM_NONCE_LEN + COMMITMENT_LEN;

/// The chunked-encryption `context` for an envelope:
/// `"cmk-envelope/v1" || 0x00 || suite || profile || app_context`.
pub(crate) fn envelope_context(suite: Suite, profile: Profile, app_context: &[u8]) -> Vec<u8> {
    const LABEL: &[u8] = b"cmk-envelope/v1";
    let mut c = Vec::with_capacity(LABEL.len() + 3 + app_context.len());
    c.extend_from_slice(LABEL);
    c.push(0);
    c.push(suite.to_byte());
    c.push(profile.to_byte());
    c.extend_from_slice(app_context);
    c
}

/// The per-message AEAD key and base nonce. Holds an expanded AES key;
/// neither printable nor cloneable.
pub(crate) struct ChunkCipher {
    aead: Box<dyn Aes256GcmKey>,
    base_nonce: [u8; GCM_NONCE_LEN],
    /// Checked before each chunk is sealed or opened (usually none or one).
    leases: Option<Arc<[KeyLease]>>,
}

impl Drop for ChunkCipher {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.base_nonce);
    }
}

impl ChunkCipher {
    /// Runs the key derivation. Returns the cipher and the commitment.
    /// A key that is not 32 bytes is refused.
    pub(crate) fn derive(
        provider: &CryptoProvider,
        input_key: &[u8],
        salt: &[u8; SALT_LEN],
        context: &[u8],
    ) -> crate::Result<(ChunkCipher, [u8; COMMITMENT_LEN])> {
        if input_key.len() != 32 {
            return Err(Error::InvalidKey(format!(
                "the chunked-encryption input key must be 32 bytes, got {}",
                input_key.len()
            )));
        }
        let mut okm = zeroize::Zeroizing::new([0u8; OKM_LEN]);
        provider
            .hkdf
            .expand_sha512(
                input_key,
                &[INFO_PREFIX, AEAD_NAME, &[0u8], salt, context],
                &mut okm[..],
            )
            .map_err(|_| Error::Internal("HKDF output length"))?;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&okm[..32]);
        let mut base_nonce = [0u8; GCM_NONCE_LEN];
        base_nonce.copy_from_slice(&okm[32..32 + GCM_NONCE_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&okm[32 + GCM_NONCE_LEN..]);
        Ok((
            ChunkCipher {
                aead: provider.aead.aes256_gcm(&key),
                base_nonce,
                leases: None,
            },
            commitment,
        ))
    }

    /// Starts a new message under `salt` (fresh from the CSPRNG, used
    /// once): returns the cipher and the 56-byte body prefix
    /// (salt || commitment).
    pub(crate) fn for_encryption(
        provider: &CryptoProvider,
        input_key: &[u8],
        salt: &[u8; SALT_LEN],
        context: &[u8],
    ) -> crate::Result<(ChunkCipher, [u8; BODY_PREFIX_LEN])> {
        let (cipher, commitment) = Self::derive(provider, input_key, salt, context)?;
        let mut prefix = [0u8; BODY_PREFIX_LEN];
        prefix[..SALT_LEN].copy_from_slice(salt);
        prefix[SALT_LEN..].copy_from_slice(&commitment);
        Ok((cipher, prefix))
    }

    /// Checks a body prefix against the key and context. On a mismatch
    /// ([`Error::CommitmentMismatch`]) no chunk key is returned.
    pub(crate) fn for_decryption(
        provider: &CryptoProvider,
        input_key: &[u8],
        context: &[u8],
        prefix: &[u8; BODY_PREFIX_LEN],
    ) -> crate::Result<ChunkCipher> {
        let salt: &[u8; SALT_LEN] = prefix[..SALT_LEN].try_into().expect("salt length");
        let (cipher, commitment) = Self::derive(provider, input_key, salt, context)?;
        if !ct_eq(&commitment, &prefix[SALT_LEN..]) {
            return Err(Error::CommitmentMismatch);
        }
        Ok(cipher)
    }

    /// Binds this cipher to the leases of its data key: every chunk sealed
    /// or opened from now on needs all of them valid.
    pub(crate) fn with_leases(mut self, leases: Option<Arc<[KeyLease]>>) -> ChunkCipher {
        self.leases = leases;
        self
    }

    /// Whether the data key may still be used (renewing due leases on this
    /// thread). Cost without leases: nothing; with one: a clock read and
    /// two atomic loads.
    #[inline]
    pub(crate) fn check_lease(&self) -> crate::Result<()> {
        self.leases().iter().try_for_each(KeyLease::check)
    }

    fn leases(&self) -> &[KeyLease] {
        self.leases.as_deref().unwrap_or_default()
    }

    /// [`ChunkCipher::check_lease`] for async drivers: renews due leases by
    /// polling, never blocking.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_lease(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<crate::Result<()>> {
        for lease in self.leases() {
            std::task::ready!(lease.poll_renew(cx))?;
        }
        std::task::Poll::Ready(Ok(()))
    }

    /// [`ChunkCipher::poll_lease`] as a future.
    #[cfg(feature = "blob")]
    pub(crate) async fn renew_lease(&self) -> crate::Result<()> {
        for lease in self.leases() {
            lease.renew_if_due().await?;
        }
        Ok(())
    }

    /// The base nonce (for tests against published vectors).
    #[cfg(test)]
    pub(crate) fn base_nonce(&self) -> &[u8; GCM_NONCE_LEN] {
        &self.base_nonce
    }

    fn nonce(&self, index: u64) -> crate::Result<[u8; GCM_NONCE_LEN]> {
        if index >= MAX_CHUNKS {
            return Err(Error::TooLarge("more than 2^38 chunks"));
        }
        let mut n = self.base_nonce;
        for (b, c) in n[4..].iter_mut().zip(index.to_be_bytes()) {
            *b ^= c;
        }
        Ok(n)
    }

    /// Encrypts chunk `index` in place and returns its tag. `buf` holds at
    /// most [`CHUNK_SIZE`] bytes; exactly `CHUNK_SIZE` for all but the last.
    pub(crate) fn seal_chunk(&self, index: u64, buf: &mut [u8]) -> crate::Result<[u8; TAG_LEN]> {
        debug_assert!(buf.len() <= CHUNK_SIZE);
        self.check_lease()?;
        let nonce = self.nonce(index)?;
        self.aead
            .seal_in_place(&nonce, &[], buf)
            .map_err(|_| Error::Internal("AES-GCM seal failed"))
    }

    /// Encrypts chunk `index` from `input` into `output` (the same length)
    /// and returns its tag: [`ChunkCipher::seal_chunk`] without the copy of
    /// the plaintext into the output buffer.
    pub(crate) fn seal_chunk_to(
        &self,
        index: u64,
        input: &[u8],
        output: &mut [u8],
    ) -> crate::Result<[u8; TAG_LEN]> {
        debug_assert!(input.len() <= CHUNK_SIZE);
        self.check_lease()?;
        let nonce = self.nonce(index)?;
        self.aead
            .seal_to(&nonce, &[], input, output)
            .map_err(|_| Error::Internal("AES-GCM seal failed"))
    }

    /// Verifies chunk `index` (`data` and `tag`) and decrypts it into
    /// `output` (the length of `data`). On failure `output` holds no
    /// plaintext and the error is [`Error::ChunkAuthentication`].
    pub(crate) fn open_chunk_to(
        &self,
        index: u64,
        data: &[u8],
        tag: &[u8; TAG_LEN],
        output: &mut [u8],
    ) -> crate::Result<()> {
        self.check_lease()?;
        let nonce = self.nonce(index)?;
        if data.len() > CHUNK_SIZE || output.len() != data.len() {
            return Err(Error::ChunkAuthentication { chunk: index });
        }
        self.aead
            .open_to(&nonce, &[], data, tag, output)
            .map_err(|_| Error::ChunkAuthentication { chunk: index })
    }

    /// Verifies and decrypts chunk `index` in place. On failure `buf` holds
    /// no plaintext and the error is [`Error::ChunkAuthentication`].
    pub(crate) fn open_chunk(
        &self,
        index: u64,
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> crate::Result<()> {
        self.check_lease()?;
        let nonce = self.nonce(index)?;
        if buf.len() > CHUNK_SIZE {
            return Err(Error::ChunkAuthentication { chunk: index });
        }
        self.aead
            .open_in_place(&nonce, &[], buf, tag)
            .map_err(|_| Error::ChunkAuthentication { chunk: index })
    }

    /// Opens a whole ciphertext chunk (`data || tag`) held in `buf`, in
    /// place; returns the plaintext length.
    pub(crate) fn open_chunk_with_tag(&self, index: u64, buf: &mut [u8]) -> crate::Result<usize> {
        if buf.len() < TAG_LEN {
            return Err(Error::Truncated);
        }
        let split = buf.len() - TAG_LEN;
        let (data, tag) = buf.split_at_mut(split);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("tag length");
        self.open_chunk(index, data, &tag)?;
        Ok(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_xors_low_bytes() {
        let p = CryptoProvider::default_provider();
        let (c, _) = ChunkCipher::derive(p, &[1; 32], &[2; 24], b"ctx").unwrap();
        let base = *c.base_nonce();
        assert_eq!(c.nonce(0).unwrap(), base);
        let n = c.nonce(0x01_0203_0405).unwrap();
        assert_eq!(&n[..7], &base[..7]);
        assert_eq!(n[7], base[7] ^ 0x01);
        assert_eq!(n[11], base[11] ^ 0x05);
        assert!(c.nonce(MAX_CHUNKS - 1).is_ok());
        assert!(matches!(c.nonce(MAX_CHUNKS), Err(Error::TooLarge(_))));
    }

    #[test]
    fn seal_open_and_commitment() {
        let p = CryptoProvider::default_provider();
        let mut salt = [0u8; SALT_LEN];
        p.fill_random(&mut salt).unwrap();
        let (c, prefix) = ChunkCipher::for_encryption(p, &[9; 32], &salt, b"ctx").unwrap();
        let mut buf = b"hello chunk".to_vec();
        let tag = c.seal_chunk(3, &mut buf).unwrap();
        let d = ChunkCipher::for_decryption(p, &[9; 32], b"ctx", &prefix).unwrap();
        let mut wrong_index = buf.clone();
        assert!(matches!(
            d.open_chunk(4, &mut wrong_index, &tag),
            Err(Error::ChunkAuthentication { chunk: 4 })
        ));
        assert!(
            wrong_index.iter().all(|b| *b == 0),
            "failed open must leave no plaintext"
        );
        d.open_chunk(3, &mut buf, &tag).unwrap();
        assert_eq!(buf, b"hello chunk");
        assert!(matches!(
            ChunkCipher::for_decryption(p, &[9; 32], b"ctX", &prefix),
            Err(Error::CommitmentMismatch)
        ));
        assert!(matches!(
            ChunkCipher::for_decryption(p, &[8; 32], b"ctx", &prefix),
            Err(Error::CommitmentMismatch)
        ));
        assert!(matches!(
            ChunkCipher::derive(p, &[1; 31], &[0; 24], b""),
            Err(Error::InvalidKey(_))
        ));
    }

    #[test]
    fn context_layout() {
        let c = envelope_context(Suite::Cobblestone256, Profile::Index, b"idx/seg");
        assert_eq!(c, b"cmk-envelope/v1\x00\x01\x03idx/seg");
    }
}
