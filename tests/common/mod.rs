//! Shared test support. Each integration test includes what it needs with
//! `mod common;`.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use cmk_envelope::{CryptoProvider, KeyEncryptionKey, LocalKek, WrapAlgorithm};

/// A fresh local AES KEK with a random key.
pub fn aes_kek(kid: &str, alg: WrapAlgorithm) -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::generate(alg, Some(kid.to_string()), None).expect("generate AES KEK"))
}

/// RSA-3072 test keys, generated once per test binary (generation is slow),
/// as private JWK texts so each test can load them with any provider.
pub fn rsa_jwk(slot: usize) -> &'static str {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let dir = tempdir();
        (0..2)
            .map(|i| {
                let k = LocalKek::generate(
                    WrapAlgorithm::RsaOaep256,
                    Some(format!("rsa-{i}")),
                    Some(3072),
                )
                .unwrap();
                let p = dir.join(format!("rsa-{i}.jwk"));
                k.save_jwk(&p, false).unwrap();
                std::fs::read_to_string(&p).unwrap()
            })
            .collect()
    });
    &keys[slot]
}

/// A local RSA KEK from test key `slot`, re-labelled for `alg`.
pub fn rsa_kek(
    slot: usize,
    alg: WrapAlgorithm,
    provider: &'static CryptoProvider,
) -> Arc<dyn KeyEncryptionKey> {
    let jwk = rsa_jwk(slot).replace("\"RSA-OAEP-256\"", &format!("\"{}\"", alg.jose_name()));
    Arc::new(
        LocalKek::from_jwk_bytes(jwk.as_bytes())
            .unwrap()
            .with_provider(provider)
            .unwrap(),
    )
}

/// A unique temporary directory (removed at process exit by the OS's tmp
/// cleaning; tests keep their files small).
pub fn tempdir() -> std::path::PathBuf {
    let mut rnd = [0u8; 8];
    getrandom_fill(&mut rnd);
    let d = std::env::temp_dir().join(format!("cmk-test-{}", u64::from_le_bytes(rnd)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn getrandom_fill(out: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(out)
        .unwrap();
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A local A256KW KEK saved as a JWK file in a fresh directory (its key
/// container), as customer-managed scopes require.
pub fn file_kek(kid: &str) -> Arc<dyn KeyEncryptionKey> {
    let path = tempdir().join(format!("{kid}.jwk"));
    LocalKek::generate(WrapAlgorithm::A256Kw, Some(kid.into()), None)
        .unwrap()
        .save_jwk(&path, false)
        .unwrap();
    Arc::new(LocalKek::from_jwk_file(&path).unwrap())
}

/// Reads an embedded envelope's header from `r`, unwraps its data key
/// through `resolver` and returns the plaintext reader: the embedded-form
/// stream path (`Header::read_from`, `Decryptor::new`, `decrypt`).
pub async fn open_reader<R: std::io::Read>(
    mut r: R,
    resolver: &dyn cmk_envelope::KeyResolver,
    profile: cmk_envelope::Profile,
    app_context: &[u8],
) -> cmk_envelope::Result<cmk_envelope::DecryptingReader<R>> {
    let header = cmk_envelope::Header::read_from(&mut r)?;
    cmk_envelope::Decryptor::new(&header, resolver, profile, app_context)
        .await?
        .decrypt(r)
}
