//! Blob geometry: region lengths, the plaintext length a ciphertext length
//! implies, and which ciphertext bytes a plaintext range needs.
//!
//! Region `i` holds plaintext bytes `i·D .. (i+1)·D` (`D` =
//! `DataLength`) and sits at ciphertext offset `i·(D + 28)`. Every region
//! is full except the last, which holds 1 to `D` bytes. An empty blob has
//! no region at all (what the Python SDK writes); a single region with no
//! data is accepted too.

use std::ops::Range;

use super::metadata::{NONCE_LEN, TAG_LEN};
use crate::error::Error;

/// Bytes a region adds to its data: the nonce and the tag (28).
pub const REGION_OVERHEAD: u64 = (NONCE_LEN + TAG_LEN) as u64;

/// The ciphertext length of `plaintext_len` bytes in regions of
/// `region_data_len`.
pub fn ciphertext_len(plaintext_len: u64, region_data_len: u64) -> u64 {
    // A region length of 0 (protocol 1.0 metadata has none) counts as 1
    // rather than dividing by zero.
    plaintext_len + plaintext_len.div_ceil(region_data_len.max(1)) * REGION_OVERHEAD
}

/// The plaintext length a ciphertext of `ciphertext_len` bytes holds, or
/// [`Error::CseRegion`] if no writer produces that length (the blob was
/// truncated inside a region, or extended). A blob truncated exactly at a
/// region boundary has a valid length: CSE cannot detect that (the
/// metadata does not record the plaintext length).
pub fn plaintext_len(ciphertext_len: u64, region_data_len: u64) -> crate::Result<u64> {
    if region_data_len == 0 {
        return Err(Error::ApiMisuse(
            "a region length of 0: protocol 1.0 blobs have no regions",
        ));
    }
    let region = region_data_len + REGION_OVERHEAD;
    let full = ciphertext_len / region;
    let rem = ciphertext_len % region;
    if rem == 0 {
        return Ok(full * region_data_len);
    }
    if rem < REGION_OVERHEAD || (rem == REGION_OVERHEAD && full > 0) {
        return Err(Error::CseRegion {
            region: full,
            problem: "the blob's length is not one a writer produces: it is truncated or has trailing bytes",
        });
    }
    Ok(full * region_data_len + rem - REGION_OVERHEAD)
}

/// Which ciphertext to fetch to decrypt a plaintext range (a ranged GET of
/// a blob), and where the range lies in the decrypted regions.
///
/// Hand the fetched bytes to
/// [`CseDecryptor::decrypt_range`](super::CseDecryptor::decrypt_range) or
/// [`CseDecryptor::range_reader`](super::CseDecryptor::range_reader).
///
/// Plans come only from [`CseRangePlan::new`] (or
/// [`CseDecryptor::plan_range`](super::CseDecryptor::plan_range)); their
/// fields are read through accessors, so a plan cannot claim a range its
/// regions do not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CseRangePlan {
    plaintext: Range<u64>,
    ciphertext: Range<u64>,
    first_region: u64,
    regions: u64,
    skip: u64,
}

impl CseRangePlan {
    /// Plans the fetch of plaintext `range` from a blob of
    /// `ciphertext_len` bytes (its Content-Length) in regions of
    /// `region_data_len`. A range reaching past the end is clipped.
    pub fn new(
        range: Range<u64>,
        ciphertext_len: u64,
        region_data_len: u64,
    ) -> crate::Result<CseRangePlan> {
        if range.start > range.end {
            return Err(Error::ApiMisuse("range start is after its end"));
        }
        let len = plaintext_len(ciphertext_len, region_data_len)?;
        let region = region_data_len + REGION_OVERHEAD;
        let start = range.start.min(len);
        let end = range.end.min(len);
        if start == end {
            let at = (start / region_data_len * region).min(ciphertext_len);
            return Ok(CseRangePlan {
                plaintext: start..end,
                ciphertext: at..at,
                first_region: start / region_data_len,
                regions: 0,
                skip: 0,
            });
        }
        let first = start / region_data_len;
        let last = (end - 1) / region_data_len;
        Ok(CseRangePlan {
            plaintext: start..end,
            ciphertext: first * region..((last + 1) * region).min(ciphertext_len),
            first_region: first,
            regions: last - first + 1,
            skip: start - first * region_data_len,
        })
    }

    /// The plaintext range that will be returned (the request clipped to
    /// the end of the blob).
    pub fn plaintext(&self) -> Range<u64> {
        self.plaintext.clone()
    }

    /// The region-aligned ciphertext bytes to fetch (empty for an empty
    /// range).
    pub fn ciphertext(&self) -> Range<u64> {
        self.ciphertext.clone()
    }

    /// Index of the first region in [`ciphertext`](Self::ciphertext).
    pub fn first_region(&self) -> u64 {
        self.first_region
    }

    /// How many regions [`ciphertext`](Self::ciphertext) holds.
    pub fn regions(&self) -> u64 {
        self.regions
    }

    /// Offset of the plaintext's start in the decrypted data of the first
    /// region.
    pub(super) fn skip(&self) -> u64 {
        self.skip
    }

    /// Plaintext bytes the range holds.
    pub fn len(&self) -> u64 {
        self.plaintext.end - self.plaintext.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 4 << 20;

    #[test]
    fn lengths() {
        for p in [0u64, 1, M - 1, M, M + 1, 9 << 20, 3 * M] {
            let c = ciphertext_len(p, M);
            assert_eq!(plaintext_len(c, M).unwrap(), p, "{p}");
        }
        assert_eq!(ciphertext_len(0, M), 0);
        assert_eq!(ciphertext_len(M, M), M + 28);
        assert_eq!(plaintext_len(28, M).unwrap(), 0);
        for bad in [1u64, 27, M + 28 + 5, M + 28 + 28] {
            assert!(plaintext_len(bad, M).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans() {
        let d = 16u64;
        let r = d + 28;
        let c = ciphertext_len(40, d); // regions 16, 16, 8
        let p = CseRangePlan::new(0..40, c, d).unwrap();
        assert_eq!(
            (p.ciphertext.clone(), p.first_region, p.regions, p.skip),
            (0..c, 0, 3, 0)
        );
        let p = CseRangePlan::new(17..18, c, d).unwrap();
        assert_eq!(
            (p.ciphertext.clone(), p.first_region, p.regions, p.skip),
            (r..2 * r, 1, 1, 1)
        );
        let p = CseRangePlan::new(15..33, c, d).unwrap();
        assert_eq!((p.ciphertext.clone(), p.regions, p.skip), (0..c, 3, 15));
        let p = CseRangePlan::new(30..1000, c, d).unwrap();
        assert_eq!((p.plaintext.clone(), p.ciphertext.clone()), (30..40, r..c));
        let p = CseRangePlan::new(50..60, c, d).unwrap();
        assert!(p.is_empty() && p.ciphertext.is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..4;
        assert!(CseRangePlan::new(backwards, c, d).is_err());
    }
}
