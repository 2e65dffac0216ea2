//! Internal entry points for the Wycheproof tests, fuzz targets and
//! benchmarks. **Not a public API**: hidden from the docs, exempt from
//! semver, and nothing here is needed to use the crate.

#![allow(missing_docs)]

use zeroize::Zeroizing;

use crate::provider::{CryptoProvider, OaepHash};

/// Opaque primitive failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

fn f<E>(_: E) -> Failed {
    Failed
}

/// AES-256-GCM seal with a 12-byte nonce; returns ciphertext || tag.
pub fn aes256_gcm_seal(
    p: &CryptoProvider,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
) -> Vec<u8> {
    let k = p.aead.aes256_gcm(key);
    let mut buf = msg.to_vec();
    let tag = k.seal_in_place(nonce, aad, &mut buf).expect("seal");
    buf.extend_from_slice(&tag);
    buf
}

/// AES-256-GCM open in place. On failure `buf` must hold no plaintext.
pub fn aes256_gcm_open_in_place(
    p: &CryptoProvider,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; 16],
) -> Result<(), Failed> {
    p.aead
        .aes256_gcm(key)
        .open_in_place(nonce, aad, buf, tag)
        .map_err(f)
}

/// HKDF-SHA-512 (extract then expand).
pub fn hkdf_sha512(
    p: &CryptoProvider,
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Vec<u8>, Failed> {
    let prk = p.hkdf.extract_sha512(salt, ikm);
    let mut out = vec![0u8; len];
    p.hkdf
        .expand_sha512(&prk[..], &[info], &mut out)
        .map_err(f)?;
    Ok(out)
}

/// HKDF-Expand-SHA-512 with an arbitrary-length PRK.
pub fn hkdf_expand_sha512(
    p: &CryptoProvider,
    prk: &[u8],
    info: &[&[u8]],
    len: usize,
) -> Result<Vec<u8>, Failed> {
    let mut out = vec![0u8; len];
    p.hkdf.expand_sha512(prk, info, &mut out).map_err(f)?;
    Ok(out)
}

/// AES key wrap (RFC 3394, or RFC 5649 when `padded`) under a 256-bit KEK.
pub fn aes_kw_wrap(
    p: &CryptoProvider,
    kek: &[u8; 32],
    padded: bool,
    key: &[u8],
) -> Result<Vec<u8>, Failed> {
    p.key_wrap.wrap(kek, padded, key).map_err(f)
}

/// AES key unwrap (RFC 3394, or RFC 5649 when `padded`).
pub fn aes_kw_unwrap(
    p: &CryptoProvider,
    kek: &[u8; 32],
    padded: bool,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Failed> {
    p.key_wrap.unwrap(kek, padded, wrapped).map_err(f)
}

/// RSA-OAEP decrypt with a PKCS#8 key; `sha256` picks SHA-256 (else SHA-1)
/// for both the label hash and MGF1. Label is empty.
pub fn rsa_oaep_decrypt(
    p: &CryptoProvider,
    pkcs8: &[u8],
    sha256: bool,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Failed> {
    let k = p.rsa.private_key_from_pkcs8(pkcs8).map_err(f)?;
    k.decrypt_oaep(
        if sha256 {
            OaepHash::Sha256
        } else {
            OaepHash::Sha1
        },
        ct,
    )
    .map_err(f)
}

/// RSA-OAEP encrypt with an SPKI public key.
pub fn rsa_oaep_encrypt(
    p: &CryptoProvider,
    spki: &[u8],
    sha256: bool,
    msg: &[u8],
) -> Result<Vec<u8>, Failed> {
    let k = p.rsa.public_key_from_spki(spki).map_err(f)?;
    k.encrypt_oaep(
        if sha256 {
            OaepHash::Sha256
        } else {
            OaepHash::Sha1
        },
        msg,
    )
    .map_err(f)
}

/// Generates an RSA key (e = 65537) of `bits` bits; returns PKCS#8 DER.
pub fn rsa_generate_pkcs8(p: &CryptoProvider, bits: usize) -> Result<Zeroizing<Vec<u8>>, Failed> {
    p.rsa.generate_pkcs8(bits).map_err(f)
}

/// The SPKI DER of the public half of a PKCS#8 RSA private key.
pub fn rsa_public_spki_from_pkcs8(p: &CryptoProvider, pkcs8: &[u8]) -> Result<Vec<u8>, Failed> {
    p.rsa.public_spki_from_pkcs8(pkcs8).map_err(f)
}

// ----- chunk layer (Cobblestone-256) -----

/// Derives Cobblestone-256 `key || base_nonce || commitment` (76 bytes).
pub fn cobblestone_okm(
    p: &CryptoProvider,
    key: &[u8],
    salt: &[u8; 24],
    ctx: &[u8],
) -> Result<Vec<u8>, Failed> {
    let mut out = vec![0u8; 76];
    p.hkdf
        .expand_sha512(
            key,
            &[
                b"c2sp.org/chunked-encryption@v1+",
                b"AEAD_AES_256_GCM",
                &[0u8],
                salt,
                ctx,
            ],
            &mut out,
        )
        .map_err(f)?;
    Ok(out)
}

/// Decrypts a raw C2SP chunked-encryption ciphertext (salt || commitment ||
/// chunks) with `key` and `context`, streaming. Returns the plaintext, or
/// the error with the plaintext released before it (the valid prefix).
pub fn chunked_decrypt(
    p: &'static CryptoProvider,
    key: &[u8],
    context: &[u8],
    ct: &[u8],
) -> Result<Vec<u8>, (crate::Error, Vec<u8>)> {
    use std::io::Read;
    let prefix: &[u8; 56] = match ct.get(..56).and_then(|s| s.try_into().ok()) {
        Some(p) => p,
        None => return Err((crate::Error::Truncated, Vec::new())),
    };
    let cipher = match crate::stream::chunk::ChunkCipher::for_decryption(p, key, context, prefix) {
        Ok(c) => c,
        Err(e) => return Err((e, Vec::new())),
    };
    let mut r = crate::stream::DecryptingReader::new(&ct[56..], cipher);
    let mut out = Vec::new();
    let mut buf = [0u8; 7000];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err((crate::Error::from_io(e), out)),
        }
    }
}

/// Encrypts with C2SP chunked encryption under `key`/`context` and a random
/// salt (for round-trip tests of the chunk layer).
pub fn chunked_encrypt(
    p: &'static CryptoProvider,
    key: &[u8; 32],
    context: &[u8],
    msg: &[u8],
) -> Vec<u8> {
    use std::io::Write;
    let mut salt = [0u8; crate::stream::chunk::SALT_LEN];
    p.fill_random(&mut salt).expect("random salt");
    let (cipher, prefix) =
        crate::stream::chunk::ChunkCipher::for_encryption(p, key, &salt, context).expect("derive");
    let mut w =
        crate::stream::EncryptingWriter::start(Vec::new(), cipher, &[], &prefix).expect("start");
    w.write_all(msg).expect("write");
    w.finish().expect("finish")
}

// ----- fuzz entry points -----

/// A fixed local A256KW KEK for fuzzing (`kid` "fuzz").
pub fn fuzz_kek() -> std::sync::Arc<dyn crate::KeyEncryptionKey> {
    std::sync::Arc::new(
        crate::LocalKek::from_aes_key("fuzz", crate::WrapAlgorithm::A256Kw, &[0x42; 32])
            .expect("kek"),
    )
}

/// Drives a future that needs no reactor (local KEKs) to completion.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    pollster::block_on(fut)
}

/// Fuzz: parse a header; if it parses, re-encode and compare.
pub fn fuzz_header(data: &[u8]) {
    if let Ok(h) = crate::Header::parse(data) {
        assert_eq!(h.to_bytes(), data, "header re-encoding differs");
    }
    if let Ok((h, n)) = crate::Header::parse_prefix(data) {
        assert_eq!(h.to_bytes(), &data[..n]);
    }
}

/// Fuzz: open arbitrary bytes as an embedded envelope with the fixed KEK.
pub fn fuzz_open(data: &[u8]) {
    let resolver = crate::StaticResolver::new().with(fuzz_kek());
    let _ = block_on(crate::open(&resolver, crate::Profile::Blob, b"fuzz", data));
}

/// Fuzz: random-access reads at offsets taken from the input, over the rest
/// of the input used as an envelope (first 2 bytes: number of reads).
pub fn fuzz_read_at(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (ctl, env) = data.split_at(2);
    let resolver = crate::StaticResolver::new().with(fuzz_kek());
    let mut cur = std::io::Cursor::new(env);
    let Ok(header) = crate::read_header(&mut cur) else {
        return;
    };
    let Ok(dec) = block_on(crate::Decryptor::new(
        &header,
        &resolver,
        crate::Profile::Blob,
        b"fuzz",
    )) else {
        return;
    };
    let Ok(mut r) = dec.reader(cur) else { return };
    let mut buf = vec![0u8; 40_000];
    let mut seed = u32::from(u16::from_le_bytes([ctl[0], ctl[1]]));
    for _ in 0..8 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let off = u64::from(seed % 200_000);
        let len = (seed >> 8) as usize % buf.len();
        if r.read_at(off, &mut buf[..len]).is_err() {
            return;
        }
    }
}

/// Fuzz: open arbitrary bytes as a raw chunk-layer ciphertext.
pub fn fuzz_chunk_open(data: &[u8]) {
    let _ = chunked_decrypt(
        CryptoProvider::default_provider(),
        &[7u8; 32],
        b"fuzz",
        data,
    );
}

/// Produces a valid envelope under the fuzz KEK (for seed corpora).
pub fn fuzz_seed_envelope(len: usize) -> Vec<u8> {
    let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
    block_on(crate::seal(
        &[fuzz_kek()],
        crate::Profile::Blob,
        b"fuzz",
        &msg,
    ))
    .expect("seal")
}

// ----- benchmark helpers -----

/// AES-256-GCM seal in place into the caller's buffer, empty AAD, no
/// allocation besides the provider's key object; returns the tag. Pays one
/// key schedule per call, as a one-shot seal does.
pub fn aes256_gcm_seal_in_place(
    p: &CryptoProvider,
    key: &[u8; 32],
    nonce: &[u8; 12],
    buf: &mut [u8],
) -> [u8; 16] {
    p.aead
        .aes256_gcm(key)
        .seal_in_place(nonce, &[], buf)
        .expect("seal")
}

/// An expanded AES-256-GCM key of one provider, for raw-AEAD baselines
/// (the same key object the chunk engine holds). Empty AAD throughout.
pub struct RawGcm(Box<dyn crate::provider::Aes256GcmKey>);

impl std::fmt::Debug for RawGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawGcm { .. }")
    }
}

impl RawGcm {
    /// Runs the key schedule once.
    pub fn new(p: &CryptoProvider, key: &[u8; 32]) -> RawGcm {
        RawGcm(p.aead.aes256_gcm(key))
    }

    /// Encrypts `buf` in place and returns the tag.
    pub fn seal_in_place(&self, nonce: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
        self.0.seal_in_place(nonce, &[], buf).expect("seal")
    }

    /// Encrypts `input` into `output` (the same length); returns the tag.
    pub fn seal_to(&self, nonce: &[u8; 12], input: &[u8], output: &mut [u8]) -> [u8; 16] {
        self.0.seal_to(nonce, &[], input, output).expect("seal")
    }

    /// Verifies `tag` over `input` and decrypts it into `output`.
    pub fn open_to(
        &self,
        nonce: &[u8; 12],
        input: &[u8],
        tag: &[u8; 16],
        output: &mut [u8],
    ) -> Result<(), Failed> {
        self.0.open_to(nonce, &[], input, tag, output).map_err(f)
    }

    /// Verifies `tag` and decrypts `buf` in place.
    pub fn open_in_place(
        &self,
        nonce: &[u8; 12],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), Failed> {
        self.0.open_in_place(nonce, &[], buf, tag).map_err(f)
    }
}

/// A seekable chunk-layer reader over `src` (positioned at the salt).
pub fn chunked_reader<R: std::io::Read>(
    p: &'static CryptoProvider,
    key: &[u8],
    context: &[u8],
    mut src: R,
) -> crate::Result<crate::DecryptingReader<R>> {
    let mut prefix = [0u8; 56];
    src.read_exact(&mut prefix)
        .map_err(|_| crate::Error::Truncated)?;
    let cipher = crate::stream::chunk::ChunkCipher::for_decryption(p, key, context, &prefix)?;
    Ok(crate::stream::DecryptingReader::new(src, cipher))
}

// ----- parallel engine -----

/// A copy of `enc` (same data key, header and context) with a fixed salt,
/// so that two encryptions can be compared byte for byte. Tests only: a
/// fixed salt must never protect real data.
pub fn encryptor_with_salt(enc: &crate::Encryptor, salt: [u8; 24]) -> crate::Encryptor {
    enc.duplicate_with_salt(salt).expect("copy the data key")
}
