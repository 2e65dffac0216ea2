//! Small helpers shared across the crate.

/// Constant-time equality of two byte strings of equal length (length is
/// not secret). Returns `false` for different lengths.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u8;
    for (x, y) in a.iter().zip(b) {
        acc |= x ^ y;
    }
    // Keep the optimiser from short-circuiting the loop above.
    std::hint::black_box(acc) == 0
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
