//! The crypto provider seam.
//!
//! Every primitive the crate uses goes through a [`CryptoProvider`]: a struct
//! of small `Send + Sync + Debug` trait objects, after rustls'
//! `CryptoProvider`. Two providers exist and are interchangeable:
//!
//! * [`CryptoProvider::aws_lc_rs`] (feature `aws-lc-rs`, the default):
//!   aws-lc-rs, several times faster than the pure-Rust one at AES-256-GCM
//!   and RSA decryption (`docs/performance.md` gives the AES-256-GCM
//!   figure and its command).
//! * [`CryptoProvider::rustcrypto`] (feature `rustcrypto`): pure Rust, from
//!   the RustCrypto crates `aes-gcm`, `aes-kw`, `cbc`, `rsa`, `hkdf`/`hmac`
//!   and `sha2`.
//!
//! The traits are crate-private: callers pick a provider, never implement
//! one, so nobody can plug in a primitive that skips a check. Both providers
//! run the same Wycheproof vectors (`provider/tests/wycheproof.rs`) and a test
//! encrypts with one and decrypts with the other.
//!
//! What the seam covers, and nothing more:
//!
//! | primitive | used for |
//! |---|---|
//! | AES-256-GCM, 12-byte nonce, detached 16-byte tag, in place or from one buffer into another | every chunk of a body |
//! | AES-256-CBC decryption of whole blocks, in place, no padding | the opt-in, insecure read of Azure CSE protocol 1.0 blobs (feature `azure-cse`); Cosmos DB Always Encrypted values, after their tag verified (feature `cosmos-ae`) |
//! | AES-256-CBC encryption of whole blocks, in place, no padding | Cosmos DB Always Encrypted values (feature `cosmos-ae`) |
//! | HKDF-Expand / HKDF-Extract with SHA-512 | chunk key, base nonce and commitment derivation |
//! | HMAC-SHA-256 | Cosmos DB Always Encrypted key derivation, IVs and tags (feature `cosmos-ae`) |
//! | AES key wrap (RFC 3394) and with padding (RFC 5649) | local and scope KEKs |
//! | RSA-OAEP with SHA-256 or SHA-1 (MGF1 of the same hash, empty label) | local RSA KEKs |
//! | the OS CSPRNG | data keys, salts, generated KEKs |

use std::fmt::Debug;

use zeroize::Zeroizing;

use crate::error::CryptoError;

#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
#[cfg(any(feature = "aws-lc-rs", feature = "rustcrypto"))]
mod os_random;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;

#[cfg(not(any(feature = "aws-lc-rs", feature = "rustcrypto")))]
compile_error!("cmk-envelope needs a crypto provider: enable the `aws-lc-rs` (default) or `rustcrypto` feature");

/// AES-256-GCM key length.
pub(crate) const AES256_KEY_LEN: usize = 32;
/// AES-GCM nonce length used throughout.
pub(crate) const GCM_NONCE_LEN: usize = 12;
/// AES-GCM tag length used throughout.
pub(crate) const GCM_TAG_LEN: usize = 16;
/// AES block length (the CBC IV length).
#[cfg_attr(
    not(any(feature = "azure-cse", feature = "cosmos-ae")),
    allow(dead_code)
)]
pub(crate) const AES_BLOCK_LEN: usize = 16;
/// SHA-512 output length (the HKDF hash).
pub(crate) const SHA512_LEN: usize = 64;
/// SHA-256 output length (the HMAC-SHA-256 tag).
#[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
pub(crate) const SHA256_LEN: usize = 32;

/// A set of cryptographic primitives. Obtain one with
/// [`CryptoProvider::default_provider`], [`CryptoProvider::aws_lc_rs`] or
/// [`CryptoProvider::rustcrypto`]; it cannot be built any other way.
///
/// Providers are `'static` and cost nothing to pass around.
pub struct CryptoProvider {
    name: &'static str,
    pub(crate) aead: &'static dyn AeadProvider,
    pub(crate) hkdf: &'static dyn HkdfProvider,
    #[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
    pub(crate) hmac: &'static dyn HmacProvider,
    pub(crate) key_wrap: &'static dyn KeyWrapProvider,
    pub(crate) rsa: &'static dyn RsaProvider,
    pub(crate) random: &'static dyn RandomProvider,
}

impl Debug for CryptoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name)
            .finish()
    }
}

impl CryptoProvider {
    /// The provider used when none is given: aws-lc-rs when the `aws-lc-rs`
    /// feature is on, otherwise RustCrypto.
    pub fn default_provider() -> &'static CryptoProvider {
        #[cfg(feature = "aws-lc-rs")]
        {
            Self::aws_lc_rs()
        }
        #[cfg(not(feature = "aws-lc-rs"))]
        {
            Self::rustcrypto()
        }
    }

    /// The aws-lc-rs provider.
    #[cfg(feature = "aws-lc-rs")]
    pub fn aws_lc_rs() -> &'static CryptoProvider {
        &aws_lc::PROVIDER
    }

    /// The pure-Rust RustCrypto provider.
    #[cfg(feature = "rustcrypto")]
    pub fn rustcrypto() -> &'static CryptoProvider {
        &rustcrypto::PROVIDER
    }

    /// Every provider compiled into this build, default first.
    #[allow(clippy::vec_init_then_push)] // the pushes are feature-gated
    pub fn all() -> Vec<&'static CryptoProvider> {
        let mut v: Vec<&'static CryptoProvider> = Vec::new();
        #[cfg(feature = "aws-lc-rs")]
        v.push(Self::aws_lc_rs());
        #[cfg(feature = "rustcrypto")]
        v.push(Self::rustcrypto());
        v
    }

    /// A short name: `"aws-lc-rs"` or `"rustcrypto"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Fills `out` from the OS CSPRNG. Fails only if the OS refuses.
    pub(crate) fn fill_random(&self, out: &mut [u8]) -> crate::Result<()> {
        self.random.fill(out).map_err(|_| {
            crate::Error::Io(std::io::Error::other(
                "the OS random number generator failed",
            ))
        })
    }
}

/// The hash used by RSA-OAEP (and its MGF1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OaepHash {
    Sha1,
    Sha256,
}

/// AES-256-GCM.
pub(crate) trait AeadProvider: Send + Sync + Debug {
    /// Expands a key for repeated use. Costs one key schedule.
    fn aes256_gcm(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256GcmKey>;

    /// Expands a key for AES-256-CBC over whole blocks, no padding and
    /// no authentication: the opt-in read of Azure CSE protocol 1.0
    /// (`azure_cse::InsecureV1`), and Cosmos DB Always Encrypted values
    /// (AEAD_AES_256_CBC_HMAC_SHA256, which pads and MACs around it, and
    /// decrypts only after its tag verified). Costs one key schedule.
    #[cfg_attr(
        not(any(feature = "azure-cse", feature = "cosmos-ae")),
        allow(dead_code)
    )]
    fn aes256_cbc(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256CbcKey>;
}

/// An expanded AES-256 key for CBC. The IV is the caller's: within this
/// crate it is always drawn from the CSPRNG, derived by the format, or
/// read from the ciphertext, never chosen by a user.
#[cfg_attr(
    not(any(feature = "azure-cse", feature = "cosmos-ae")),
    allow(dead_code)
)]
pub(crate) trait Aes256CbcKey: Send + Sync {
    /// Encrypts whole blocks in place. Fails if `in_out.len()` is not a
    /// multiple of 16.
    #[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
    fn encrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError>;

    /// Decrypts whole blocks in place; no padding is removed or checked.
    /// Fails (leaving `in_out` unspecified) if `in_out.len()` is not a
    /// multiple of 16.
    fn decrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError>;
}

/// An expanded AES-256-GCM key.
pub(crate) trait Aes256GcmKey: Send + Sync {
    /// Encrypts `in_out` in place and returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError>;

    /// Verifies `tag` and decrypts `in_out` in place. On failure `in_out`
    /// holds no plaintext: implementations zero it.
    fn open_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError>;

    /// Encrypts `input` into `output` (the same length) and returns the tag.
    /// Saves the copy of the plaintext into the output buffer that
    /// [`Aes256GcmKey::seal_in_place`] needs. The default copies and seals in
    /// place.
    fn seal_to(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError> {
        if input.len() != output.len() {
            return Err(CryptoError);
        }
        output.copy_from_slice(input);
        let r = self.seal_in_place(nonce, aad, output);
        if r.is_err() {
            // The output may still hold plaintext.
            zeroize::Zeroize::zeroize(output);
        }
        r
    }

    /// Verifies `tag` over `input` and decrypts it into `output` (the same
    /// length). On failure `output` holds no plaintext: implementations
    /// zero it. The default copies and opens in place.
    fn open_to(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        tag: &[u8; GCM_TAG_LEN],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        if input.len() != output.len() {
            return Err(CryptoError);
        }
        output.copy_from_slice(input);
        self.open_in_place(nonce, aad, output, tag)
    }
}

/// HKDF over SHA-512 (RFC 5869).
pub(crate) trait HkdfProvider: Send + Sync + Debug {
    /// HKDF-Expand. `prk` may be of any length (Cobblestone uses the 32-byte
    /// data key directly as the PRK, as C2SP chunked encryption specifies).
    /// `info` is the concatenation of the slices. Fails if `out` is longer
    /// than 255 × 64 bytes.
    fn expand_sha512(&self, prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError>;

    /// HKDF-Extract.
    #[cfg(test)] // only the vector and cross-provider tests call it
    fn extract_sha512(&self, salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; SHA512_LEN]>;
}

/// HMAC-SHA-256 (RFC 2104, FIPS 180-4).
#[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
pub(crate) trait HmacProvider: Send + Sync + Debug {
    /// Keys HMAC-SHA-256 with `key` (any length) for repeated use. Costs
    /// the key setup (two SHA-256 blocks); each
    /// [`sign`](HmacSha256Key::sign) then costs only its message. Wiped on
    /// drop.
    fn hmac_sha256_key(&self, key: &[u8]) -> Box<dyn HmacSha256Key>;

    /// One HMAC-SHA-256 under `key`: [`hmac_sha256_key`](Self::hmac_sha256_key)
    /// then [`sign`](HmacSha256Key::sign).
    fn hmac_sha256(&self, key: &[u8], message: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]> {
        self.hmac_sha256_key(key).sign(message)
    }
}

/// A keyed HMAC-SHA-256.
#[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
pub(crate) trait HmacSha256Key: Send + Sync {
    /// The HMAC of the concatenation of `message`. The output is zeroized
    /// on drop: it is a derived key in some uses. Tags are compared by the
    /// caller, in constant time.
    fn sign(&self, message: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]>;
}

/// AES key wrap with a 256-bit KEK.
pub(crate) trait KeyWrapProvider: Send + Sync + Debug {
    /// RFC 3394 (`padded == false`, input a multiple of 8 bytes, ≥ 16) or
    /// RFC 5649 (`padded == true`, any non-empty input).
    fn wrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        key: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;

    /// The inverse of [`KeyWrapProvider::wrap`]; fails on any integrity
    /// check failure.
    fn unwrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}

/// RSA-OAEP.
pub(crate) trait RsaProvider: Send + Sync + Debug {
    /// Parses a PKCS#8 `PrivateKeyInfo` holding an RSA private key.
    fn private_key_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivateKey>, CryptoError>;

    /// Parses an X.509 `SubjectPublicKeyInfo` holding an RSA public key.
    fn public_key_from_spki(&self, der: &[u8]) -> Result<Box<dyn RsaPublicKey>, CryptoError>;

    /// Generates a key of `bits` bits (e = 65537) and returns it as PKCS#8.
    fn generate_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError>;

    /// The X.509 `SubjectPublicKeyInfo` of the public half of a PKCS#8 RSA
    /// private key (same acceptance rules as
    /// [`RsaProvider::private_key_from_pkcs8`]).
    #[cfg(test)] // only the vector and cross-provider tests call it
    fn public_spki_from_pkcs8(&self, der: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// An RSA public key.
pub(crate) trait RsaPublicKey: Send + Sync {
    /// OAEP encryption with `hash` for both the label hash and MGF1, empty
    /// label.
    fn encrypt_oaep(&self, hash: OaepHash, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// An RSA private key.
pub(crate) trait RsaPrivateKey: Send + Sync {
    /// OAEP decryption with `hash` for both the label hash and MGF1, empty
    /// label.
    fn decrypt_oaep(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}

/// The OS CSPRNG.
pub(crate) trait RandomProvider: Send + Sync + Debug {
    /// Fills `out` with random bytes.
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError>;
}

#[cfg(test)]
mod tests;
