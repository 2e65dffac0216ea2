//! The two providers are interchangeable: what one produces, the other
//! accepts, and the deterministic primitives give identical bytes.

use super::hazmat;
use crate::provider::CryptoProvider;

fn pair() -> [(&'static CryptoProvider, &'static CryptoProvider); 2] {
    let a = CryptoProvider::aws_lc_rs();
    let r = CryptoProvider::rustcrypto();
    [(a, r), (r, a)]
}

/// Deterministic test bytes (xorshift64*), so failures reproduce.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn arr<const N: usize>(v: &[u8]) -> [u8; N] {
    v.try_into().unwrap()
}

#[test]
fn aes_gcm_interoperates() {
    for (i, len) in [0usize, 1, 15, 16, 17, 255, 4096, 16 * 1024 + 3]
        .into_iter()
        .enumerate()
    {
        let seed = i as u64;
        let key: [u8; 32] = arr(&bytes(seed, 32));
        let nonce: [u8; 12] = arr(&bytes(seed + 100, 12));
        let aad = bytes(seed + 200, i * 7);
        let msg = bytes(seed + 300, len);
        for (x, y) in pair() {
            let sealed = hazmat::aes256_gcm_seal(x, &key, &nonce, &aad, &msg);
            assert_eq!(
                sealed,
                hazmat::aes256_gcm_seal(y, &key, &nonce, &aad, &msg),
                "len {len}: same ciphertext"
            );
            let (ct, tag) = sealed.split_at(len);
            let tag: [u8; 16] = arr(tag);
            let mut buf = ct.to_vec();
            hazmat::aes256_gcm_open_in_place(y, &key, &nonce, &aad, &mut buf, &tag)
                .unwrap_or_else(|_| panic!("{} -> {}: len {len}", x.name(), y.name()));
            assert_eq!(buf, msg);
            // A tampered copy fails on the other side too, and is wiped.
            let mut bad = tag;
            bad[0] ^= 0x10;
            let mut buf = ct.to_vec();
            assert!(
                hazmat::aes256_gcm_open_in_place(y, &key, &nonce, &aad, &mut buf, &bad).is_err()
            );
            assert!(buf.iter().all(|b| *b == 0));
        }
    }
}

#[test]
fn key_wrap_interoperates() {
    for (i, len) in [16usize, 24, 32, 40, 64, 512].into_iter().enumerate() {
        let kek: [u8; 32] = arr(&bytes(i as u64 + 1000, 32));
        let key = bytes(i as u64 + 2000, len);
        for (x, y) in pair() {
            let w = hazmat::aes_kw_wrap(x, &kek, false, &key).unwrap();
            assert_eq!(
                w,
                hazmat::aes_kw_wrap(y, &kek, false, &key).unwrap(),
                "KW {len}: same output"
            );
            assert_eq!(
                &hazmat::aes_kw_unwrap(y, &kek, false, &w).unwrap()[..],
                &key[..],
                "KW {len}"
            );
        }
    }
    for (i, len) in [1usize, 5, 8, 9, 16, 31, 32, 33, 100, 513]
        .into_iter()
        .enumerate()
    {
        let kek: [u8; 32] = arr(&bytes(i as u64 + 3000, 32));
        let key = bytes(i as u64 + 4000, len);
        for (x, y) in pair() {
            let w = hazmat::aes_kw_wrap(x, &kek, true, &key).unwrap();
            assert_eq!(
                w,
                hazmat::aes_kw_wrap(y, &kek, true, &key).unwrap(),
                "KWP {len}: same output"
            );
            assert_eq!(
                &hazmat::aes_kw_unwrap(y, &kek, true, &w).unwrap()[..],
                &key[..],
                "KWP {len}"
            );
            let mut bad = w.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(
                hazmat::aes_kw_unwrap(y, &kek, true, &bad).is_err(),
                "KWP {len}: tampered"
            );
        }
    }
}

#[test]
fn hkdf_agrees() {
    let [(a, r), _] = pair();
    for (i, prk_len) in [0usize, 1, 32, 63, 64, 65, 128, 129, 300]
        .into_iter()
        .enumerate()
    {
        let prk = bytes(i as u64 + 5000, prk_len);
        let info1 = bytes(i as u64 + 6000, 13);
        let info2 = bytes(i as u64 + 7000, 40);
        for out_len in [0usize, 1, 32, 64, 65, 200, 255 * 64] {
            let info: [&[u8]; 3] = [&info1, b"", &info2];
            let x = hazmat::hkdf_expand_sha512(a, &prk, &info, out_len).unwrap();
            let y = hazmat::hkdf_expand_sha512(r, &prk, &info, out_len).unwrap();
            assert_eq!(x, y, "expand: prk {prk_len}, out {out_len}");
        }
        assert!(hazmat::hkdf_expand_sha512(a, &prk, &[], 255 * 64 + 1).is_err());
        assert!(hazmat::hkdf_expand_sha512(r, &prk, &[], 255 * 64 + 1).is_err());
    }
    for (i, (salt_len, ikm_len)) in [(0usize, 0usize), (0, 32), (16, 32), (64, 64), (129, 200)]
        .into_iter()
        .enumerate()
    {
        let salt = bytes(i as u64 + 8000, salt_len);
        let ikm = bytes(i as u64 + 9000, ikm_len);
        let x = hazmat::hkdf_sha512(a, &salt, &ikm, b"info", 100).unwrap();
        let y = hazmat::hkdf_sha512(r, &salt, &ikm, b"info", 100).unwrap();
        assert_eq!(x, y, "extract+expand: salt {salt_len}, ikm {ikm_len}");
    }
}

/// Keys generated by `generator` work in both directions with both hashes.
fn rsa_oaep_interoperates(generator: &'static CryptoProvider) {
    let pkcs8 = hazmat::rsa_generate_pkcs8(generator, 3072).expect("generate");
    let [(a, r), _] = pair();
    let spki = hazmat::rsa_public_spki_from_pkcs8(a, &pkcs8).expect("aws-lc-rs parses it");
    assert_eq!(
        spki,
        hazmat::rsa_public_spki_from_pkcs8(r, &pkcs8).expect("rustcrypto parses it"),
        "both derive the same SPKI from a key generated by {}",
        generator.name()
    );
    for sha256 in [true, false] {
        let h_len = if sha256 { 32 } else { 20 };
        let max = 3072 / 8 - 2 * h_len - 2;
        for msg in [Vec::new(), bytes(1, 32), bytes(2, max)] {
            for (x, y) in pair() {
                let ct = hazmat::rsa_oaep_encrypt(x, &spki, sha256, &msg).expect("encrypt");
                assert_eq!(ct.len(), 3072 / 8);
                let pt = hazmat::rsa_oaep_decrypt(y, &pkcs8, sha256, &ct)
                    .unwrap_or_else(|_| panic!("{} -> {} (sha256 {sha256})", x.name(), y.name()));
                assert_eq!(&pt[..], &msg[..]);
                assert!(
                    hazmat::rsa_oaep_decrypt(y, &pkcs8, !sha256, &ct).is_err(),
                    "other hash"
                );
            }
        }
        for p in [a, r] {
            assert!(
                hazmat::rsa_oaep_encrypt(p, &spki, sha256, &bytes(3, max + 1)).is_err(),
                "{}: too long",
                p.name()
            );
        }
    }
}

#[test]
fn rsa_oaep_keys_from_aws_lc_rs() {
    rsa_oaep_interoperates(CryptoProvider::aws_lc_rs());
}

#[test]
fn rsa_oaep_keys_from_rustcrypto() {
    rsa_oaep_interoperates(CryptoProvider::rustcrypto());
}
