//! PKCS#7 padding (RFC 5652 §6.3) to 16-byte AES blocks, for the two
//! AES-CBC formats the crate speaks: the opt-in read of Azure CSE protocol
//! 1.0 and Cosmos DB Always Encrypted values.

use crate::provider::AES_BLOCK_LEN;

/// The length of a message of `len` bytes once padded: the next multiple
/// of 16 strictly above `len` (padding is always 1 to 16 bytes).
#[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
pub(crate) fn padded_len(len: usize) -> usize {
    (len / AES_BLOCK_LEN + 1) * AES_BLOCK_LEN
}

/// Writes the padding of a `len`-byte message into `buf[len..]`, where
/// `buf.len()` is [`padded_len`]`(len)`: every padding byte holds the
/// padding length.
#[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
pub(crate) fn pad(buf: &mut [u8], len: usize) {
    debug_assert_eq!(buf.len(), padded_len(len));
    let p = buf.len() - len;
    // 1..=16 by the definition of `padded_len`.
    buf[len..].fill(p as u8);
}

/// The length of the plaintext in a final decrypted block, after its
/// PKCS#7 padding (1 to 16 bytes, each equal to the padding length), or
/// `None`. The bytes are examined without data-dependent branches.
#[cfg_attr(
    not(any(feature = "azure-cse", feature = "cosmos-ae")),
    allow(dead_code)
)]
pub(crate) fn unpadded_len(last: &[u8; AES_BLOCK_LEN]) -> Option<usize> {
    let p = u32::from(last[AES_BLOCK_LEN - 1]);
    // 1 if p == 0 or p > 16 (the subtractions wrap to values with bit 31 set).
    let mut bad = (p.wrapping_sub(1) >> 31) | ((AES_BLOCK_LEN as u32).wrapping_sub(p) >> 31);
    for (i, &b) in last.iter().enumerate() {
        let from_end = (AES_BLOCK_LEN - 1 - i) as u32;
        // All ones if this byte is inside the padding (from_end < p).
        let in_pad = 0u32.wrapping_sub(from_end.wrapping_sub(p) >> 31);
        bad |= in_pad & (u32::from(b) ^ p);
    }
    if std::hint::black_box(bad) == 0 {
        Some(AES_BLOCK_LEN - p as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpad() {
        for p in 1..=16u8 {
            let mut b = [0xAAu8; 16];
            b[16 - p as usize..].fill(p);
            assert_eq!(unpadded_len(&b), Some(16 - p as usize), "{p}");
            if p > 1 {
                // One wrong padding byte.
                b[16 - p as usize] ^= 1;
                assert_eq!(unpadded_len(&b), None, "{p}");
            }
        }
        for p in [0u8, 17, 0x20, 0xFF] {
            assert_eq!(unpadded_len(&[p; 16]), None, "{p}");
        }
    }

    #[test]
    fn pad_then_unpad() {
        for len in 0..=48usize {
            let n = padded_len(len);
            assert!(n > len && n - len <= 16 && n.is_multiple_of(16), "{len}");
            let mut buf = vec![0x55u8; n];
            pad(&mut buf, len);
            let last: &[u8; 16] = buf[n - 16..].try_into().unwrap();
            assert_eq!(n - 16 + unpadded_len(last).unwrap(), len);
        }
    }
}
