//! Small helpers shared across the crate.

/// Constant-time equality of two byte strings (`subtle`): the time depends
/// only on the lengths, which are not secret. Different lengths compare
/// unequal.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ct_eq_works() {
        assert!(super::ct_eq(b"abc", b"abc"));
        assert!(!super::ct_eq(b"abc", b"abd"));
        assert!(!super::ct_eq(b"abc", b"ab"));
        assert!(super::ct_eq(b"", b""));
    }
}

/// A heap buffer that may hold plaintext or key-derived bytes, wiped when
/// dropped.
///
/// `zeroize` wipes byte slices with one volatile store per byte: for the
/// 16 KiB chunk buffers of every stream that cost ~6 µs per reader or
/// writer (a third of a 1 KiB seal). This wipes with a plain `fill(0)` (a
/// `memset`) followed by `black_box` on the buffer, which keeps the
/// compiler from proving the stores dead and removing them. It is the same
/// zero-on-drop contract, enforced by an optimisation barrier instead of
/// volatile writes.
pub(crate) struct SecretBuf(Vec<u8>);

impl SecretBuf {
    /// A buffer of `len` zero bytes.
    pub(crate) fn zeroed(len: usize) -> SecretBuf {
        SecretBuf(vec![0u8; len])
    }

    /// An empty buffer with room for `cap` bytes.
    #[cfg_attr(not(feature = "azure-cse"), allow(dead_code))]
    pub(crate) fn with_capacity(cap: usize) -> SecretBuf {
        SecretBuf(Vec::with_capacity(cap))
    }
}

impl std::ops::Deref for SecretBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for SecretBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        // Wipe the contents, then the spare capacity (a `truncate` may have
        // left bytes there): each byte is written once.
        let cap = self.0.capacity();
        self.0.fill(0);
        self.0.resize(cap, 0);
        std::hint::black_box(&mut self.0);
    }
}

#[cfg(test)]
mod secret_buf_tests {
    use super::SecretBuf;

    #[test]
    fn derefs_to_its_vec() {
        let mut b = SecretBuf::zeroed(4);
        b[0] = 7;
        b.truncate(2);
        assert_eq!(&b[..], &[7, 0]);
    }
}
