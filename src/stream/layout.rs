//! Body geometry: where chunk *i* lives, how long a body is, and which
//! ciphertext bytes a plaintext range needs (for ranged GETs).
//!
//! Plaintext byte `p` is at offset `p % 16384` of chunk `p / 16384`; chunk
//! `k` starts at body offset `56 + k × 16400`. A body of length `L` is valid
//! only if `L ≥ 72` and `(L − 56) mod 16400 ≥ 16`: anything else is
//! truncated (it ends inside a tag, or right after a full chunk).

use std::ops::Range;

use super::chunk::{BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE, MAX_CHUNKS, TAG_LEN};
use crate::error::Error;

const CHUNK: u64 = CHUNK_SIZE as u64;
const CHUNK_CT: u64 = CHUNK_CT_SIZE as u64;
const PREFIX: u64 = BODY_PREFIX_LEN as u64;
const TAG: u64 = TAG_LEN as u64;

/// Body length for a plaintext of `plaintext_len` bytes.
pub fn body_len(plaintext_len: u64) -> u64 {
    let full = plaintext_len / CHUNK;
    let rem = plaintext_len % CHUNK;
    PREFIX + full * CHUNK_CT + rem + TAG
}

/// The plaintext length a body of `body_len` bytes claims, or
/// [`Error::Truncated`] if no valid body has that length. The claim is
/// authenticated only once the final chunk has been opened.
pub fn plaintext_len(body_len: u64) -> crate::Result<u64> {
    if body_len < PREFIX + TAG {
        return Err(Error::Truncated);
    }
    let n = body_len - PREFIX;
    let full = n / CHUNK_CT;
    let rem = n % CHUNK_CT;
    if rem < TAG {
        return Err(Error::Truncated);
    }
    if full >= MAX_CHUNKS {
        return Err(Error::TooLarge("more than 2^38 chunks"));
    }
    Ok(full * CHUNK + rem - TAG)
}

/// Body offset of chunk `index`.
pub fn chunk_offset(index: u64) -> u64 {
    PREFIX + index * CHUNK_CT
}

/// Which ciphertext to fetch to decrypt a plaintext range, for stores that
/// serve byte ranges (blob storage ranged GETs).
///
/// Fetch [`RangePlan::PREFIX`] (the 56-byte salt and commitment; cache it
/// per object) and [`RangePlan::ciphertext`]; then hand both to
/// [`BodyDecryptor::decrypt_range`](crate::BodyDecryptor::decrypt_range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    /// The plaintext range that will be returned (the request, clipped to
    /// the end of the object).
    pub plaintext: Range<u64>,
    /// Body bytes holding the chunks that cover `plaintext`.
    pub ciphertext: Range<u64>,
    /// Index of the first chunk in `ciphertext`.
    pub first_chunk: u64,
    /// Whether `ciphertext` ends with the final chunk.
    pub includes_final_chunk: bool,
}

impl RangePlan {
    /// Body bytes holding the salt and commitment.
    pub const PREFIX: Range<u64> = 0..PREFIX;

    /// Plans the fetch of plaintext `range` from a body of `body_len` bytes.
    /// A range reaching past the end is clipped; an empty result still
    /// fetches the final chunk, so that the object's length is
    /// authenticated.
    pub fn new(range: Range<u64>, body_len: u64) -> crate::Result<RangePlan> {
        if range.start > range.end {
            return Err(Error::ApiMisuse("range start is after its end"));
        }
        let len = plaintext_len(body_len)?;
        let final_chunk = len / CHUNK;
        let start = range.start.min(len);
        let end = range.end.min(len);
        let (first, last) = if start == end {
            (final_chunk, final_chunk)
        } else {
            (start / CHUNK, (end - 1) / CHUNK)
        };
        // A range that stops short of the end but was clipped must still
        // prove where the end is: include the final chunk.
        let last = if range.end > len { final_chunk } else { last };
        let ct_start = chunk_offset(first);
        let ct_end = if last == final_chunk {
            body_len
        } else {
            chunk_offset(last + 1)
        };
        Ok(RangePlan {
            plaintext: start..end,
            ciphertext: ct_start..ct_end,
            first_chunk: first,
            includes_final_chunk: last == final_chunk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0u64, 1, 16383, 16384, 16385, 32768, 1 << 30] {
            let b = body_len(len);
            assert_eq!(plaintext_len(b).unwrap(), len, "len {len}");
        }
        assert_eq!(body_len(0), 72);
        assert_eq!(body_len(16384), 56 + 16400 + 16);
    }

    #[test]
    fn invalid_lengths_are_truncated() {
        for b in [
            0u64,
            55,
            56,
            71,
            56 + 16400,
            56 + 16400 + 15,
            56 + 2 * 16400,
        ] {
            assert!(matches!(plaintext_len(b), Err(Error::Truncated)), "{b}");
        }
    }

    #[test]
    fn plans() {
        let body = body_len(100_000); // 6 full chunks + 1696 bytes
        let p = RangePlan::new(0..4096, body).unwrap();
        assert_eq!(p.ciphertext, 56..56 + 16400);
        assert_eq!(p.first_chunk, 0);
        assert!(!p.includes_final_chunk);
        let p = RangePlan::new(16380..16390, body).unwrap();
        assert_eq!(p.ciphertext, 56..56 + 2 * 16400);
        let p = RangePlan::new(99_000..200_000, body).unwrap();
        assert_eq!(p.plaintext, 99_000..100_000);
        assert_eq!(p.first_chunk, 6);
        assert_eq!(p.ciphertext, chunk_offset(6)..body);
        assert!(p.includes_final_chunk);
        let p = RangePlan::new(500_000..600_000, body).unwrap();
        assert_eq!(p.plaintext, 100_000..100_000);
        assert!(p.includes_final_chunk);
        // a range that ends inside the object but was not clipped
        let p = RangePlan::new(0..100_000, body).unwrap();
        assert!(p.includes_final_chunk);
        let (lo, hi) = (5, 4);
        assert!(RangePlan::new(lo..hi, body).is_err());
    }
}
