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
/// Plans come only from [`RangePlan::new`], which computes them from the
/// body's geometry; their fields are read through accessors and cannot be
/// set. Fetch [`RangePlan::PREFIX`] (the 56-byte salt and commitment; cache
/// it per object) and [`RangePlan::ciphertext`]; then hand both to
/// [`RangeDecryptor::decrypt_range`](crate::RangeDecryptor::decrypt_range),
/// which checks what it was given against the plan and the geometry again.
///
/// A plan built for a forged body length gains nothing: every chunk's tag
/// and its final-chunk status are verified when it is decrypted.
///
/// ```
/// use cmk_envelope::RangePlan;
/// let body_len = cmk_envelope::stream::layout::body_len(100_000);
/// let plan = RangePlan::new(20_000..30_000, body_len)?;
/// assert_eq!(plan.ciphertext(), 56 + 16_400..56 + 2 * 16_400);
/// # Ok::<(), cmk_envelope::Error>(())
/// ```
///
/// A plan cannot be written by hand, so it cannot claim more plaintext
/// than its chunks hold:
///
/// ```compile_fail,E0451
/// use cmk_envelope::RangePlan;
/// let plan = RangePlan {
///     plaintext: 0..40_000,
///     ciphertext: 56..56 + 16_400,
///     first_chunk: 0,
///     includes_final_chunk: false,
///     body_len: 100_000,
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    plaintext: Range<u64>,
    ciphertext: Range<u64>,
    first_chunk: u64,
    includes_final_chunk: bool,
    body_len: u64,
}

impl RangePlan {
    /// Body bytes holding the salt and commitment.
    pub const PREFIX: Range<u64> = 0..PREFIX;

    /// Plans the fetch of plaintext `range` from a body of `body_len` bytes.
    /// A range reaching past the end is clipped; an empty result still
    /// fetches the final chunk, so that the object's length is
    /// authenticated.
    ///
    /// Errors: [`Error::ApiMisuse`] when `range.start > range.end`;
    /// [`Error::Truncated`] when no valid body has length `body_len`.
    /// Cost: arithmetic only.
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
            body_len,
        })
    }

    /// The plaintext range that will be returned (the request, clipped to
    /// the end of the object).
    pub fn plaintext(&self) -> Range<u64> {
        self.plaintext.clone()
    }

    /// The body bytes to fetch: the chunks that cover
    /// [`plaintext`](Self::plaintext), plus the final chunk when the range
    /// reaches or passes the end.
    pub fn ciphertext(&self) -> Range<u64> {
        self.ciphertext.clone()
    }

    /// Index of the first chunk in [`ciphertext`](Self::ciphertext).
    pub fn first_chunk(&self) -> u64 {
        self.first_chunk
    }

    /// Whether [`ciphertext`](Self::ciphertext) ends with the final chunk.
    pub fn includes_final_chunk(&self) -> bool {
        self.includes_final_chunk
    }

    /// The body length the plan was computed for.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// A plan with any fields, for tests that show a forged plan is
    /// refused.
    #[cfg(test)]
    pub(crate) fn forged(
        plaintext: Range<u64>,
        ciphertext: Range<u64>,
        first_chunk: u64,
        includes_final_chunk: bool,
        body_len: u64,
    ) -> RangePlan {
        RangePlan {
            plaintext,
            ciphertext,
            first_chunk,
            includes_final_chunk,
            body_len,
        }
    }

    /// The plan's own geometry, checked again: `plaintext` lies in the
    /// chunks `ciphertext` holds, `ciphertext` starts at `first_chunk` and
    /// ends at a chunk boundary or, with the final chunk, at `body_len`,
    /// which is a valid body length. Holds for every plan
    /// [`RangePlan::new`] makes; the range readers check it before they
    /// trust a plan with a buffer.
    pub(crate) fn check(&self) -> crate::Result<()> {
        let len = plaintext_len(self.body_len)?;
        let final_chunk = len / CHUNK;
        let ct = &self.ciphertext;
        let pt = &self.plaintext;
        let last = if self.includes_final_chunk {
            final_chunk
        } else {
            // `ct.end` is the start of the chunk after the last one.
            let Some(next) = ct.end.checked_sub(PREFIX).map(|n| n / CHUNK_CT) else {
                return Err(Error::Internal("a range plan ends before the chunks"));
            };
            if chunk_offset(next) != ct.end || next == 0 || next > final_chunk {
                return Err(Error::Internal("a range plan ends inside a chunk"));
            }
            next - 1
        };
        let ct_end = if self.includes_final_chunk {
            self.body_len
        } else {
            chunk_offset(last + 1)
        };
        let ok = self.first_chunk <= last
            && ct.start == chunk_offset(self.first_chunk)
            && ct.end == ct_end
            && pt.start <= pt.end
            && pt.end <= len
            && (pt.is_empty() || pt.start >= self.first_chunk * CHUNK)
            && (pt.is_empty() || pt.end <= (last + 1) * CHUNK);
        if ok {
            Ok(())
        } else {
            Err(Error::Internal("a range plan does not fit its body"))
        }
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
        assert_eq!(p.ciphertext(), 56..56 + 16400);
        assert_eq!(p.first_chunk(), 0);
        assert!(!p.includes_final_chunk());
        let p = RangePlan::new(16380..16390, body).unwrap();
        assert_eq!(p.ciphertext(), 56..56 + 2 * 16400);
        let p = RangePlan::new(99_000..200_000, body).unwrap();
        assert_eq!(p.plaintext(), 99_000..100_000);
        assert_eq!(p.first_chunk(), 6);
        assert_eq!(p.ciphertext(), chunk_offset(6)..body);
        assert!(p.includes_final_chunk());
        let p = RangePlan::new(500_000..600_000, body).unwrap();
        assert_eq!(p.plaintext(), 100_000..100_000);
        assert!(p.includes_final_chunk());
        // a range that ends inside the object but was not clipped
        let p = RangePlan::new(0..100_000, body).unwrap();
        assert!(p.includes_final_chunk());
        let (lo, hi) = (5, 4);
        assert!(matches!(
            RangePlan::new(lo..hi, body),
            Err(Error::ApiMisuse(_))
        ));
    }
}

#[cfg(test)]
mod plan_checks {
    use super::*;

    /// Every plan `new` makes passes `check`, over many ranges and bodies.
    #[test]
    fn computed_plans_pass_their_own_check() {
        for len in [0u64, 1, 16383, 16384, 16385, 100_000, 5 * 16384] {
            let body = body_len(len);
            let points = [0, 1, 16383, 16384, 16385, 50_000, len, len + 1, u64::MAX];
            for &a in &points {
                for &b in &points {
                    if a <= b {
                        let p = RangePlan::new(a..b, body).unwrap();
                        p.check().unwrap_or_else(|e| panic!("{len} {a}..{b}: {e}"));
                    }
                }
            }
        }
    }

    #[test]
    #[allow(clippy::reversed_empty_ranges)] // the forgeries under test
    fn forged_plans_fail_the_check() {
        let body = body_len(100_000); // chunks 0..=6, the last one short
        let good = RangePlan::new(0..4096, body).unwrap();
        let forged = [
            // more plaintext than the fetched chunk holds
            RangePlan {
                plaintext: 0..40_000,
                ..good.clone()
            },
            // start after end
            RangePlan {
                plaintext: 10..5,
                ..good.clone()
            },
            // ciphertext that does not start at the first chunk
            RangePlan {
                first_chunk: 1,
                ..good.clone()
            },
            // a final chunk claimed in the middle of the body
            RangePlan {
                includes_final_chunk: true,
                ..good.clone()
            },
            // ciphertext ending inside a chunk
            RangePlan {
                ciphertext: 56..100,
                ..good.clone()
            },
            // a body length no envelope has
            RangePlan {
                body_len: 56 + 16400,
                ..good.clone()
            },
        ];
        for p in forged {
            assert!(p.check().is_err(), "{p:?}");
        }
    }
}
