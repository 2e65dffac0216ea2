//! Ranged reads from stores that serve byte ranges: [`RangeDecryptor`]
//! opens the chunks a [`RangePlan`] says to fetch.

use std::fmt;

use crate::error::Error;
use crate::stream::chunk::{ChunkCipher, CHUNK_CT_SIZE};
use crate::stream::codec::{deliver_range_chunk, open_piece};
use crate::stream::RangePlan;

/// Decrypts ciphertext ranges fetched separately (blob storage ranged
/// GETs), after [`Decryptor::ranges`](crate::Decryptor::ranges) checked the
/// key commitment. Reusable: one per object, any number of ranges.
pub struct RangeDecryptor {
    cipher: ChunkCipher,
}

impl fmt::Debug for RangeDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RangeDecryptor { .. }")
    }
}

impl RangeDecryptor {
    pub(super) fn new(cipher: ChunkCipher) -> RangeDecryptor {
        RangeDecryptor { cipher }
    }

    /// Whether the data key may still be used (see
    /// [`KeyLease`](crate::kek::KeyLease)): for plaintext served from a
    /// cache of opened chunks.
    #[cfg(feature = "index")]
    pub(crate) fn check_lease(&self) -> crate::Result<()> {
        self.cipher.check_lease()
    }

    /// Renews the data key's lease when due, by polling (for async callers,
    /// before [`RangeDecryptor::decrypt_range`]).
    #[cfg(feature = "blob")]
    pub(crate) async fn renew_lease(&self) -> crate::Result<()> {
        self.cipher.renew_lease().await
    }

    /// Decrypts `fetched` — exactly the body bytes
    /// [`plan.ciphertext()`](RangePlan::ciphertext) — in place, and returns
    /// the plaintext of [`plan.plaintext()`](RangePlan::plaintext).
    ///
    /// Every chunk's tag is verified, and so is its place: only the final
    /// chunk of the object may be short, and when the plan includes it, it
    /// must be there, which authenticates the object's length. Nothing is
    /// returned unless every chunk verified and the plaintext returned is
    /// exactly what they hold; `fetched` is left holding no plaintext.
    ///
    /// Errors: [`Error::Truncated`] when `fetched` is not as long as the
    /// plan says or the final chunk is not where the plan says (the object
    /// is not the length the plan was made for);
    /// [`Error::ChunkAuthentication`] for a chunk that fails.
    ///
    /// Cost: one allocation of the range's plaintext length.
    pub fn decrypt_range(&self, plan: &RangePlan, fetched: &mut [u8]) -> crate::Result<Vec<u8>> {
        plan.check()?;
        let ciphertext = plan.ciphertext();
        let plaintext = plan.plaintext();
        if fetched.len() as u64 != ciphertext.end - ciphertext.start {
            return Err(Error::Truncated);
        }
        let len = usize::try_from(plaintext.end - plaintext.start)
            .map_err(|_| Error::TooLarge("range too large for memory"))?;
        // Zeroizing: if a later chunk fails, what was copied is wiped.
        let mut out = zeroize::Zeroizing::new(vec![0u8; len]);
        let mut covered = plaintext.start;
        let mut index = plan.first_chunk();
        let mut rest: &mut [u8] = fetched;
        while !rest.is_empty() {
            let take = rest.len().min(CHUNK_CT_SIZE);
            let is_last_piece = take == rest.len();
            let expect_final = is_last_piece && plan.includes_final_chunk();
            let (piece, tail) = rest.split_at_mut(take);
            // Only the last piece may be short, and only when it is the
            // final chunk (checked again on the opened chunk below).
            if take < CHUNK_CT_SIZE && !expect_final {
                return Err(Error::Truncated);
            }
            let d = open_piece(&self.cipher, index, piece)?;
            let r = deliver_range_chunk(plan, index, d, expect_final, piece, &mut out);
            zeroize::Zeroize::zeroize(&mut piece[..d.len]);
            r?;
            let chunk_end = index * crate::stream::CHUNK_SIZE as u64 + d.len as u64;
            covered = covered.max(chunk_end.min(plaintext.end));
            index += 1;
            rest = tail;
        }
        // Every byte returned came out of a verified chunk: no zero filler.
        if covered != plaintext.end {
            return Err(Error::Internal(
                "a range plan claims plaintext its chunks do not hold",
            ));
        }
        Ok(std::mem::take(&mut *out))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stream::layout::{body_len, chunk_offset};
    use crate::{Decryptor, Encryptor, KeyEncryptionKey, LocalKek, Profile, StaticResolver};
    use pollster::block_on;

    const LEN: usize = 100_000; // six full chunks and a short seventh

    /// A detached body of `LEN` bytes and its range decryptor.
    fn fixture() -> (Vec<u8>, Vec<u8>, RangeDecryptor) {
        let kek: Arc<dyn KeyEncryptionKey> = Arc::new(
            LocalKek::from_aes_key("ranges", crate::WrapAlgorithm::A256Kw, &[9; 32]).unwrap(),
        );
        let msg: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let enc = block_on(Encryptor::new(
            std::slice::from_ref(&kek),
            Profile::Blob,
            b"r",
        ))
        .unwrap();
        let header = enc.header().clone();
        let body = enc.detached().seal(&msg).unwrap();
        let resolver = StaticResolver::new().with(kek);
        let dec = block_on(Decryptor::new(&header, &resolver, Profile::Blob, b"r")).unwrap();
        let ranges = dec.ranges(&body[..56]).unwrap();
        (msg, body, ranges)
    }

    fn fetch(body: &[u8], plan: &RangePlan) -> Vec<u8> {
        let ct = plan.ciphertext();
        body[ct.start as usize..ct.end as usize].to_vec()
    }

    #[test]
    fn computed_plans_decrypt_exactly_their_range() {
        let (msg, body, ranges) = fixture();
        for (a, b) in [
            (0, 10),
            (16_380, 16_390),
            (99_000, 200_000),
            (0, 100_000),
            (7, 7),
        ] {
            let plan = RangePlan::new(a..b, body.len() as u64).unwrap();
            let got = ranges
                .decrypt_range(&plan, &mut fetch(&body, &plan))
                .unwrap();
            let p = plan.plaintext();
            assert_eq!(got, &msg[p.start as usize..p.end as usize], "{a}..{b}");
        }
    }

    /// A plan claiming more plaintext than its one fetched chunk holds:
    /// refused, where trusting the plan returned `Ok` with 23,616 zero
    /// bytes that no tag authenticated.
    #[test]
    fn a_plan_claiming_more_plaintext_is_refused() {
        let (_, body, ranges) = fixture();
        let plan = RangePlan::forged(0..40_000, 56..56 + 16_400, 0, false, body.len() as u64);
        let r = ranges.decrypt_range(&plan, &mut fetch(&body, &plan));
        assert!(r.is_err(), "{r:?}");
    }

    /// A plan whose plaintext starts after it ends: an error, where the
    /// length computation underflowed.
    #[test]
    fn a_plan_with_start_after_end_is_refused() {
        let (_, body, ranges) = fixture();
        #[allow(clippy::reversed_empty_ranges)] // the forgery under test
        let plan = RangePlan::forged(10..5, 56..56 + 16_400, 0, false, body.len() as u64);
        let r = ranges.decrypt_range(&plan, &mut fetch(&body, &plan));
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn forged_geometry_is_refused() {
        let (_, body, ranges) = fixture();
        let n = body.len() as u64;
        let forged = [
            // a final chunk claimed in the middle
            RangePlan::forged(0..10, 56..56 + 16_400, 0, true, n),
            // ciphertext that does not start where its first chunk does
            RangePlan::forged(16_384..16_394, 56..56 + 16_400, 1, false, n),
            // ciphertext cut inside a chunk
            RangePlan::forged(0..10, 56..1_000, 0, false, n),
        ];
        for plan in forged {
            let mut fetched = fetch(&body, &plan);
            assert!(
                ranges.decrypt_range(&plan, &mut fetched).is_err(),
                "{plan:?}"
            );
        }
    }

    /// Plans are computed from a length the caller gives: a wrong one
    /// gets an error from the chunks themselves, never plaintext that no
    /// tag covers.
    #[test]
    fn a_plan_for_another_body_length_fails_on_the_chunks() {
        let (_, body, ranges) = fixture();
        let real = body.len() as u64;
        for claimed in [
            body_len(LEN as u64 + 5_000),
            body_len(LEN as u64 - 3_000),
            body_len(40_000),
        ] {
            let plan = RangePlan::new(0..u64::MAX, claimed).unwrap();
            let ct = plan.ciphertext();
            let mut fetched = body[ct.start as usize..(ct.end.min(real)) as usize].to_vec();
            fetched.resize((ct.end - ct.start) as usize, 0);
            let r = ranges.decrypt_range(&plan, &mut fetched);
            assert!(
                matches!(r, Err(Error::Truncated | Error::ChunkAuthentication { .. })),
                "claimed {claimed}: {r:?}"
            );
        }
    }

    #[test]
    fn a_short_fetch_is_truncated_and_a_bad_chunk_fails() {
        let (_, body, ranges) = fixture();
        let plan = RangePlan::new(20_000..40_000, body.len() as u64).unwrap();
        let mut short = fetch(&body, &plan);
        short.pop();
        assert!(matches!(
            ranges.decrypt_range(&plan, &mut short),
            Err(Error::Truncated)
        ));
        let mut bad = fetch(&body, &plan);
        bad[100] ^= 1;
        assert!(matches!(
            ranges.decrypt_range(&plan, &mut bad),
            Err(Error::ChunkAuthentication { chunk: 1 })
        ));
        assert_eq!(plan.ciphertext().start, chunk_offset(1));
    }
}
