//! The per-region nonces of the three SDKs, and the check that every
//! region of a blob follows one of them at its index.

use super::metadata::NONCE_LEN;

/// How an SDK derives the nonce of region `i` (zero-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NonceEncoding {
    /// Python: `i` as a 12-byte big-endian integer. What this crate writes.
    Python,
    /// Java: `i` as an 8-byte big-endian integer, then 4 zero bytes.
    Java,
    /// .NET: 4 zero bytes, then `i + 1` as an 8-byte little-endian integer.
    DotNet,
}

impl NonceEncoding {
    /// Every encoding, in the order they are tried.
    pub const ALL: [NonceEncoding; 3] = [
        NonceEncoding::Python,
        NonceEncoding::Java,
        NonceEncoding::DotNet,
    ];

    /// The nonce of region `index`.
    pub fn nonce(self, index: u64) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        match self {
            NonceEncoding::Python => n[4..].copy_from_slice(&index.to_be_bytes()),
            NonceEncoding::Java => n[..8].copy_from_slice(&index.to_be_bytes()),
            NonceEncoding::DotNet => n[4..].copy_from_slice(&index.wrapping_add(1).to_le_bytes()),
        }
        n
    }

    fn bit(self) -> u8 {
        match self {
            NonceEncoding::Python => 1,
            NonceEncoding::Java => 2,
            NonceEncoding::DotNet => 4,
        }
    }
}

/// Narrows the candidate encodings region by region. A blob is accepted
/// only if one encoding explains the nonce of **every** region at its
/// index (as the Python SDK 12.31 does): the encodings share a value space
/// (Java's nonce of region 1 is .NET's nonce of region 16 777 215), so
/// accepting each region under any encoding would let a region move.
#[derive(Debug, Clone)]
pub(crate) struct NonceValidator {
    candidates: u8,
}

impl NonceValidator {
    pub(crate) fn new() -> NonceValidator {
        NonceValidator { candidates: 7 }
    }

    /// Checks the nonce read from region `index`. On failure the set of
    /// candidates is left as it was.
    pub(crate) fn check(&mut self, index: u64, nonce: &[u8; NONCE_LEN]) -> crate::Result<()> {
        let mut left = 0u8;
        for e in NonceEncoding::ALL {
            if self.candidates & e.bit() != 0 && e.nonce(index) == *nonce {
                left |= e.bit();
            }
        }
        if left == 0 {
            return Err(crate::Error::CseRegion {
                region: index,
                problem: "its nonce does not follow the nonce encoding of the other regions at this position: regions were reordered, dropped, duplicated or spliced from another blob",
            });
        }
        self.candidates = left;
        Ok(())
    }

    /// The encoding, once only one is left.
    #[cfg(test)]
    pub(crate) fn encoding(&self) -> Option<NonceEncoding> {
        NonceEncoding::ALL
            .into_iter()
            .find(|e| e.bit() == self.candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(NonceEncoding::Python.nonce(0), [0; 12]);
        assert_eq!(NonceEncoding::Java.nonce(0), [0; 12]);
        assert_eq!(
            NonceEncoding::DotNet.nonce(0),
            [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            NonceEncoding::Python.nonce(0x0102),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            NonceEncoding::Java.nonce(0x0102),
            [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0]
        );
        assert_eq!(
            NonceEncoding::DotNet.nonce(0x0102),
            [0, 0, 0, 0, 3, 1, 0, 0, 0, 0, 0, 0]
        );
        // The collision the single-encoding rule exists for.
        assert_eq!(
            NonceEncoding::Java.nonce(1),
            NonceEncoding::DotNet.nonce(16_777_215)
        );
    }

    #[test]
    fn one_encoding_for_all_regions() {
        for e in NonceEncoding::ALL {
            let mut v = NonceValidator::new();
            for i in 0..5 {
                v.check(i, &e.nonce(i)).unwrap();
            }
            assert_eq!(v.encoding(), Some(e));
        }
        // Java for region 1, then .NET at the colliding index: refused.
        let mut v = NonceValidator::new();
        v.check(1, &NonceEncoding::Java.nonce(1)).unwrap();
        assert!(v.check(2, &NonceEncoding::DotNet.nonce(2)).is_err());
        // A region at the wrong index.
        let mut v = NonceValidator::new();
        v.check(0, &NonceEncoding::Python.nonce(0)).unwrap();
        assert!(v.check(1, &NonceEncoding::Python.nonce(2)).is_err());
        assert!(v.check(1, &NonceEncoding::Python.nonce(0)).is_err());
    }
}
