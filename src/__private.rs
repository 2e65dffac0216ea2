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
pub fn aes256_gcm_seal(p: &CryptoProvider, key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Vec<u8> {
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
    p.aead.aes256_gcm(key).open_in_place(nonce, aad, buf, tag).map_err(f)
}

/// HKDF-SHA-512 (extract then expand).
pub fn hkdf_sha512(p: &CryptoProvider, salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Result<Vec<u8>, Failed> {
    let prk = p.hkdf.extract_sha512(salt, ikm);
    let mut out = vec![0u8; len];
    p.hkdf.expand_sha512(&prk[..], &[info], &mut out).map_err(f)?;
    Ok(out)
}

/// HKDF-Expand-SHA-512 with an arbitrary-length PRK.
pub fn hkdf_expand_sha512(p: &CryptoProvider, prk: &[u8], info: &[&[u8]], len: usize) -> Result<Vec<u8>, Failed> {
    let mut out = vec![0u8; len];
    p.hkdf.expand_sha512(prk, info, &mut out).map_err(f)?;
    Ok(out)
}

/// AES key wrap (RFC 3394, or RFC 5649 when `padded`) under a 256-bit KEK.
pub fn aes_kw_wrap(p: &CryptoProvider, kek: &[u8; 32], padded: bool, key: &[u8]) -> Result<Vec<u8>, Failed> {
    p.key_wrap.wrap(kek, padded, key).map_err(f)
}

/// AES key unwrap (RFC 3394, or RFC 5649 when `padded`).
pub fn aes_kw_unwrap(p: &CryptoProvider, kek: &[u8; 32], padded: bool, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failed> {
    p.key_wrap.unwrap(kek, padded, wrapped).map_err(f)
}

/// RSA-OAEP decrypt with a PKCS#8 key; `sha256` picks SHA-256 (else SHA-1)
/// for both the label hash and MGF1. Label is empty.
pub fn rsa_oaep_decrypt(p: &CryptoProvider, pkcs8: &[u8], sha256: bool, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failed> {
    let k = p.rsa.private_key_from_pkcs8(pkcs8).map_err(f)?;
    k.decrypt_oaep(if sha256 { OaepHash::Sha256 } else { OaepHash::Sha1 }, ct).map_err(f)
}

/// RSA-OAEP encrypt with an SPKI public key.
pub fn rsa_oaep_encrypt(p: &CryptoProvider, spki: &[u8], sha256: bool, msg: &[u8]) -> Result<Vec<u8>, Failed> {
    let k = p.rsa.public_key_from_spki(spki).map_err(f)?;
    k.encrypt_oaep(if sha256 { OaepHash::Sha256 } else { OaepHash::Sha1 }, msg).map_err(f)
}
