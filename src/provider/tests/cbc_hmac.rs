//! Known-answer vectors for the AES-256-CBC and HMAC-SHA-256 primitives of
//! the provider seam (NIST SP 800-38A, RFC 4231), on every provider.

use crate::provider::CryptoProvider;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// NIST SP 800-38A, appendix F.2.5 (CBC-AES256.Encrypt) and F.2.6
/// (CBC-AES256.Decrypt): the same four blocks both ways, on every
/// provider, whole and one block at a time (the IV chaining).
#[test]
fn aes256_cbc_sp800_38a() {
    let key: [u8; 32] = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
        .try_into()
        .unwrap();
    let iv: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f")
        .try_into()
        .unwrap();
    let plain = unhex(
        "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
    );
    let cipher = unhex(
        "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
         39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
    );
    for p in CryptoProvider::all() {
        let k = p.aead.aes256_cbc(&key);
        let mut buf = plain.clone();
        k.encrypt_blocks(&iv, &mut buf).unwrap();
        assert_eq!(buf, cipher, "{} encrypt", p.name());
        k.decrypt_blocks(&iv, &mut buf).unwrap();
        assert_eq!(buf, plain, "{} decrypt", p.name());
        // Block by block, each block's IV being the previous ciphertext;
        // the key is reused.
        let mut chain = iv;
        for (i, block) in plain.chunks(16).enumerate() {
            let mut b = block.to_vec();
            k.encrypt_blocks(&chain, &mut b).unwrap();
            assert_eq!(b, cipher[i * 16..(i + 1) * 16], "{} block {i}", p.name());
            k.decrypt_blocks(&chain, &mut b).unwrap();
            assert_eq!(b, block, "{} block {i}", p.name());
            chain.copy_from_slice(&cipher[i * 16..(i + 1) * 16]);
        }
        let mut empty = [0u8; 0];
        assert!(k.encrypt_blocks(&iv, &mut empty).is_ok());
        let mut odd = [0u8; 17];
        assert!(k.encrypt_blocks(&iv, &mut odd).is_err());
        assert!(k.decrypt_blocks(&iv, &mut odd).is_err());
    }
}

/// RFC 4231 test cases 1 to 7 (HMAC-SHA-256; case 5 compares the first
/// 128 bits, as the RFC does), on every provider, with the message given
/// whole and split into parts.
#[test]
fn hmac_sha256_rfc4231() {
    let long_key = [0xaau8; 131];
    let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            (1u8..=25).collect(),
            vec![0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            vec![0x0c; 20],
            b"Test With Truncation".to_vec(),
            "a3b6167473100ee06e0c796c2955552b",
        ),
        (
            long_key.to_vec(),
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            long_key.to_vec(),
            b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for p in CryptoProvider::all() {
        for (i, (key, data, want)) in cases.iter().enumerate() {
            let want = unhex(want);
            let whole = p.hmac.hmac_sha256(key, &[data]);
            assert_eq!(
                &whole[..want.len()],
                &want[..],
                "{} case {}",
                p.name(),
                i + 1
            );
            let (a, b) = data.split_at(data.len() / 3);
            let parts = p.hmac.hmac_sha256(key, &[a, &[], b]);
            assert_eq!(*parts, *whole, "{} case {} in parts", p.name(), i + 1);
        }
    }
}
