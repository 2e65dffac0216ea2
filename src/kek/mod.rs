//! Key-encryption keys (KEKs): the one joint where key backends plug in.
//!
//! A KEK only **wraps and unwraps data keys**. It never sees plaintext and
//! never hands out its own key material. Backends:
//!
//! * [`LocalKek`]: a JWK file (`oct` A256KW/A256KWP, or RSA-OAEP), always
//!   available;
//! * Azure Key Vault / Managed HSM keys (feature `azure`, [`azure`]);
//! * keys in PKCS#11 HSMs (feature `pkcs11`, [`pkcs11`]);
//! * the scope key of an [`EncryptionScope`](crate::scope::EncryptionScope)
//!   ([`EncryptionScope::kek`](crate::scope::EncryptionScope::kek)).
//!
//! Reading an envelope goes through a [`KeyResolver`], an allow-list from the
//! key ids found in headers to KEKs. A header is untrusted, so the crate
//! never contacts a key just because a header names it.
//!
//! Every backend passes one conformance suite, which another implementation
//! of [`KeyEncryptionKey`] can run too: `cmk_envelope::conformance`
//! (feature `conformance`).

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;

use crate::key::{DataKey, KeyMaterial};

#[cfg(feature = "azure")]
pub mod azure;
pub(crate) mod lease;
mod local;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
mod resolver;

pub use lease::KeyLease;
#[cfg(fuzzing)]
pub(crate) use local::fuzz_jwk_round_trip;
pub use local::{LocalKek, LocalKeyKind};
pub use resolver::StaticResolver;

/// How a KEK wraps a data key. The byte values are the `alg` field of
/// FORMAT.md; any other value is rejected when a header is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WrapAlgorithm {
    /// AES key wrap, RFC 3394, 256-bit KEK (`0x01`).
    A256Kw,
    /// AES key wrap with padding, RFC 5649, 256-bit KEK (`0x02`).
    A256Kwp,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label (`0x03`).
    RsaOaep256,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1, empty label (`0x04`). Kept for
    /// HSMs (such as SoftHSM2) and services that offer nothing else.
    RsaOaep,
}

impl WrapAlgorithm {
    /// Every algorithm, in wire order.
    pub const ALL: [WrapAlgorithm; 4] = [
        WrapAlgorithm::A256Kw,
        WrapAlgorithm::A256Kwp,
        WrapAlgorithm::RsaOaep256,
        WrapAlgorithm::RsaOaep,
    ];

    /// The FORMAT.md `alg` byte.
    pub fn to_byte(self) -> u8 {
        match self {
            WrapAlgorithm::A256Kw => 0x01,
            WrapAlgorithm::A256Kwp => 0x02,
            WrapAlgorithm::RsaOaep256 => 0x03,
            WrapAlgorithm::RsaOaep => 0x04,
        }
    }

    /// Parses the FORMAT.md `alg` byte; reserved values give `None`.
    pub fn from_byte(b: u8) -> Option<WrapAlgorithm> {
        Some(match b {
            0x01 => WrapAlgorithm::A256Kw,
            0x02 => WrapAlgorithm::A256Kwp,
            0x03 => WrapAlgorithm::RsaOaep256,
            0x04 => WrapAlgorithm::RsaOaep,
            _ => return None,
        })
    }

    /// The JOSE (RFC 7518) name, also used by Key Vault: `A256KW`,
    /// `A256KWP`, `RSA-OAEP-256`, `RSA-OAEP`.
    pub fn jose_name(self) -> &'static str {
        match self {
            WrapAlgorithm::A256Kw => "A256KW",
            WrapAlgorithm::A256Kwp => "A256KWP",
            WrapAlgorithm::RsaOaep256 => "RSA-OAEP-256",
            WrapAlgorithm::RsaOaep => "RSA-OAEP",
        }
    }

    /// Parses a JOSE name (exact, case-sensitive).
    pub fn from_jose_name(name: &str) -> Option<WrapAlgorithm> {
        WrapAlgorithm::ALL
            .into_iter()
            .find(|a| a.jose_name() == name)
    }

    /// Whether this is an RSA algorithm.
    pub fn is_rsa(self) -> bool {
        matches!(self, WrapAlgorithm::RsaOaep256 | WrapAlgorithm::RsaOaep)
    }

    /// Checks that this algorithm can wrap `len` bytes of key material:
    /// A256KW (RFC 3394) takes only multiples of 8; the others take any
    /// length. Every backend calls this before wrapping.
    pub(crate) fn check_material_len(self, len: usize) -> crate::Result<()> {
        if self == WrapAlgorithm::A256Kw && !len.is_multiple_of(8) {
            return Err(crate::Error::InvalidKey(format!(
                "A256KW wraps a multiple of 8 bytes, not {len}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for WrapAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jose_name())
    }
}

/// A data key wrapped by one KEK: one entry of an envelope header.
///
/// The wrapped bytes are ciphertext, not secret, so this type is `Clone`
/// and `Debug` (which shows only lengths).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// How it was wrapped.
    pub alg: WrapAlgorithm,
    /// The id of the KEK that wrapped it, exactly as it goes into the header
    /// (for Key Vault: the versioned key URL the service returned).
    pub kek_id: String,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
}

impl Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("alg", &self.alg)
            .field("kek_id", &self.kek_id)
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// A key-encryption key: wraps and unwraps data keys, nothing else.
///
/// Implementations must be usable as `Arc<dyn KeyEncryptionKey>` from many
/// tasks at once. Calls may do network or HSM I/O, which is why they are
/// async; the crate makes them once per envelope (or once per scope when a
/// key hierarchy is used), never per chunk.
///
/// Backends map their failures to [`Error::Kek`](crate::Error::Kek) with a
/// [`KekErrorKind`](crate::KekErrorKind) and a retry hint, except that an
/// unwrap which fails because the wrapped bytes do not open under this key
/// returns [`Error::UnwrapFailed`](crate::Error::UnwrapFailed).
#[async_trait]
pub trait KeyEncryptionKey: Send + Sync + Debug {
    /// The id recorded in headers, and the id a [`KeyResolver`] looks up.
    /// For versioned backends it is the versioned id when known; the id
    /// actually recorded is the one in the [`WrappedKey`] that
    /// [`wrap_key`](KeyEncryptionKey::wrap_key) returns.
    fn key_id(&self) -> &str;

    /// The wrap algorithm this KEK uses.
    fn algorithm(&self) -> WrapAlgorithm;

    /// The key container that holds this key: a Key Vault or Managed HSM
    /// host, a PKCS#11 token, a local key directory. The key hierarchy only
    /// lets a customer-managed key be rotated to another key in the **same**
    /// container. `None` (the default) means the container is unknown, and
    /// such a key can be neither the source nor the target of a rotation.
    fn key_container(&self) -> Option<String> {
        None
    }

    /// Wraps secret key material of 16 to 64 bytes (a data key, or the
    /// 40-byte protocol-prefixed content key of Azure Storage client-side
    /// encryption). Cost: one backend call.
    ///
    /// AES key wrap (`A256KW`, RFC 3394) needs a multiple of 8 bytes;
    /// backends refuse other lengths with
    /// [`Error::InvalidKey`](crate::Error::InvalidKey), before any backend
    /// call. A backend whose device cannot wrap other lengths exactly may
    /// refuse them the same way for `A256KWP` (the PKCS#11 key-object
    /// path does); it never returns a wrapped key that unwraps to anything
    /// but the material given. The crate's own material (data keys, scope
    /// keys, Azure CSE content keys) is always a multiple of 8 bytes.
    async fn wrap_key_material(&self, material: &KeyMaterial) -> crate::Result<WrappedKey>;

    /// Unwraps `wrapped` into key material of whatever length was wrapped
    /// (16 to 64 bytes; anything else is
    /// [`Error::UnwrapFailed`](crate::Error::UnwrapFailed)). Cost: one
    /// backend call.
    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial>;

    /// Wraps `dek`. Cost: one backend call.
    ///
    /// Provided: [`wrap_key_material`](KeyEncryptionKey::wrap_key_material)
    /// of the key's 32 bytes.
    async fn wrap_key(&self, dek: &DataKey) -> crate::Result<WrappedKey> {
        self.wrap_key_material(&KeyMaterial::from_data_key(dek))
            .await
    }

    /// Unwraps `wrapped` (the bytes of a header entry whose `alg` equals
    /// [`algorithm`](KeyEncryptionKey::algorithm)). Cost: one backend call.
    ///
    /// Provided: [`unwrap_key_material`](KeyEncryptionKey::unwrap_key_material),
    /// then a length check: material of any length but 32 bytes is not one
    /// of our data keys and gives [`Error::UnwrapFailed`](crate::Error::UnwrapFailed).
    async fn unwrap_key(&self, wrapped: &[u8]) -> crate::Result<DataKey> {
        let material = self.unwrap_key_material(wrapped).await?;
        material
            .into_data_key()
            .map_err(|_| crate::Error::UnwrapFailed {
                kek_id: self.key_id().to_string(),
            })
    }

    /// A bound on how long a data key this KEK has just wrapped or
    /// unwrapped under `kek_id` (the id in the header entry) may keep being
    /// used by handles that outlive the call: readers, writers, encrypted
    /// index files and blobs check it before each chunk (see
    /// [`KeyLease`]). KEKs that cache their own key (the scope keys of an
    /// [`EncryptionScope`](crate::scope::EncryptionScope)) return one, so
    /// that destroying or revoking that key stops open handles within the
    /// cache TTL.
    ///
    /// Provided: `None` (the data key, once unwrapped, is not bound by this
    /// KEK). Cost: no I/O, no lock.
    fn lease(&self, kek_id: &str) -> Option<KeyLease> {
        let _ = kek_id;
        None
    }

    /// For a key configured **without a version** whose backend rotates it
    /// (an Azure Key Vault key URL without version): asks the backend which
    /// version is current now, makes [`wrap_key`](KeyEncryptionKey::wrap_key)
    /// use it from now on, and returns the versioned id that wrapping
    /// records. A scope bound to such a key uses this to re-wrap its
    /// record when the customer rotates the key (automatic key-version
    /// rotation).
    ///
    /// Provided: `Ok(None)`, the key never moves by itself (versioned keys,
    /// local keys, HSM keys). Cost: one backend call for keys that move
    /// (Key Vault: one `get`), none otherwise.
    async fn current_version(&self) -> crate::Result<Option<String>> {
        Ok(None)
    }
}

/// Maps the key ids read from a header to KEKs. A resolver is an
/// **allow-list**: an id it does not know yields `None`, and the crate then
/// tries the next entry or fails with
/// [`Error::UnknownKek`](crate::Error::UnknownKek). It must never fetch or
/// construct a key merely because an untrusted header names it.
pub trait KeyResolver: Send + Sync {
    /// The KEK for `kek_id`, if it is allowed.
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>>;
}

impl<T: KeyResolver + ?Sized> KeyResolver for Arc<T> {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        (**self).resolve(kek_id)
    }
}

impl<T: KeyResolver + ?Sized> KeyResolver for &T {
    fn resolve(&self, kek_id: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
        (**self).resolve(kek_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_bytes_and_names_round_trip() {
        for a in WrapAlgorithm::ALL {
            assert_eq!(WrapAlgorithm::from_byte(a.to_byte()), Some(a));
            assert_eq!(WrapAlgorithm::from_jose_name(a.jose_name()), Some(a));
        }
        for b in [0u8, 5, 0x80, 0xff] {
            assert_eq!(WrapAlgorithm::from_byte(b), None);
        }
        assert_eq!(WrapAlgorithm::from_jose_name("RSA1_5"), None);
        assert_eq!(WrapAlgorithm::from_jose_name("a256kw"), None);
    }

    #[test]
    fn object_safe() {
        fn takes(_: Option<Arc<dyn KeyEncryptionKey>>) {}
        takes(None);
    }
}
