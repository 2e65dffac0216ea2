//! Secret key material of variable length, for formats that wrap more than
//! a bare 32-byte data key (Azure Storage client-side encryption v2 wraps
//! an 8-byte protocol prefix followed by the 32-byte content key).

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::DataKey;

/// The shortest key material a KEK wraps, in bytes.
pub const KEY_MATERIAL_MIN_LEN: usize = 16;
/// The longest key material a KEK wraps, in bytes.
pub const KEY_MATERIAL_MAX_LEN: usize = 64;

/// Secret bytes a key-encryption key wraps or has unwrapped: 16 to 64 bytes.
///
/// Like [`DataKey`] it is not `Clone`, its `Debug` prints only the length,
/// and it is zeroized when dropped. Its bytes leave it only through
/// [`KeyMaterial::expose_secret_bytes`].
pub struct KeyMaterial {
    bytes: [u8; KEY_MATERIAL_MAX_LEN],
    len: usize,
}

impl KeyMaterial {
    /// Copies `bytes` (16 to 64 of them). Any other length is refused with
    /// [`Error::InvalidKey`](crate::Error::InvalidKey), which names the
    /// length but never the bytes.
    pub fn from_bytes(bytes: &[u8]) -> crate::Result<KeyMaterial> {
        if !(KEY_MATERIAL_MIN_LEN..=KEY_MATERIAL_MAX_LEN).contains(&bytes.len()) {
            return Err(crate::Error::InvalidKey(format!(
                "key material must be {KEY_MATERIAL_MIN_LEN} to {KEY_MATERIAL_MAX_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut m = KeyMaterial {
            bytes: [0u8; KEY_MATERIAL_MAX_LEN],
            len: bytes.len(),
        };
        m.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(m)
    }

    /// The material of a data key (32 bytes).
    pub fn from_data_key(dek: &DataKey) -> KeyMaterial {
        let mut m = KeyMaterial {
            bytes: [0u8; KEY_MATERIAL_MAX_LEN],
            len: dek.expose_secret_bytes().len(),
        };
        m.bytes[..m.len].copy_from_slice(dek.expose_secret_bytes());
        m
    }

    /// Turns 32 bytes of material into a [`DataKey`]; any other length is
    /// [`Error::InvalidKey`](crate::Error::InvalidKey).
    pub fn into_data_key(self) -> crate::Result<DataKey> {
        DataKey::from_unwrapped(self.expose_secret_bytes())
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: material is at least 16 bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, in clear. Use them only to hand them to a wrapping
    /// operation or a cipher, and do not keep copies.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for KeyMaterial {}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial([REDACTED; {} bytes])", self.len)
    }
}

impl PartialEq for KeyMaterial {
    /// Constant-time in the bytes (the lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && crate::util::ct_eq(self.expose_secret_bytes(), other.expose_secret_bytes())
    }
}

impl Eq for KeyMaterial {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_redaction() {
        for n in [0usize, 15, 65, 100] {
            let e = KeyMaterial::from_bytes(&vec![0x5A; n]).unwrap_err();
            assert!(e.to_string().contains(&n.to_string()));
            assert!(!e.to_string().to_lowercase().contains("5a"));
        }
        for n in [16usize, 32, 40, 64] {
            let m = KeyMaterial::from_bytes(&vec![0xAB; n]).unwrap();
            assert_eq!(m.len(), n);
            assert_eq!(m.expose_secret_bytes(), &vec![0xAB; n][..]);
            let s = format!("{m:?}");
            assert!(!s.to_lowercase().contains("ab"), "{s}");
        }
        let m = KeyMaterial::from_bytes(&[1; 40]).unwrap();
        assert!(m.into_data_key().is_err());
        let m = KeyMaterial::from_bytes(&[1; 32]).unwrap();
        assert!(m.into_data_key().unwrap() == DataKey::from_unwrapped(&[1; 32]).unwrap());
    }
}
