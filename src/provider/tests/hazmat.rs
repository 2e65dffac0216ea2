//! Byte-in, byte-out adapters over the provider seam for the vector and
//! cross-provider tests: explicit keys and nonces, results as plain
//! vectors, failures as one opaque [`Failed`]. Test builds only.

use zeroize::Zeroizing;

use crate::provider::{CryptoProvider, OaepHash};

/// Opaque primitive failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failed;

fn f<E>(_: E) -> Failed {
    Failed
}

fn oaep(sha256: bool) -> OaepHash {
    if sha256 {
        OaepHash::Sha256
    } else {
        OaepHash::Sha1
    }
}

/// AES-256-GCM seal with a 12-byte nonce; returns ciphertext || tag.
pub(super) fn aes256_gcm_seal(
    p: &CryptoProvider,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    msg: &[u8],
) -> Vec<u8> {
    let mut buf = msg.to_vec();
    let tag = p
        .aead
        .aes256_gcm(key)
        .seal_in_place(nonce, aad, &mut buf)
        .expect("seal");
    buf.extend_from_slice(&tag);
    buf
}

/// AES-256-GCM open in place. On failure `buf` must hold no plaintext.
pub(super) fn aes256_gcm_open_in_place(
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
pub(super) fn hkdf_sha512(
    p: &CryptoProvider,
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Vec<u8>, Failed> {
    let prk = p.hkdf.extract_sha512(salt, ikm);
    hkdf_expand_sha512(p, &prk[..], &[info], len)
}

/// HKDF-Expand-SHA-512 with an arbitrary-length PRK.
pub(super) fn hkdf_expand_sha512(
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
pub(super) fn aes_kw_wrap(
    p: &CryptoProvider,
    kek: &[u8; 32],
    padded: bool,
    key: &[u8],
) -> Result<Vec<u8>, Failed> {
    p.key_wrap.wrap(kek, padded, key).map_err(f)
}

/// AES key unwrap (RFC 3394, or RFC 5649 when `padded`).
pub(super) fn aes_kw_unwrap(
    p: &CryptoProvider,
    kek: &[u8; 32],
    padded: bool,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Failed> {
    p.key_wrap.unwrap(kek, padded, wrapped).map_err(f)
}

/// RSA-OAEP decrypt with a PKCS#8 key; `sha256` picks SHA-256 (else SHA-1)
/// for both the label hash and MGF1. Label is empty.
pub(super) fn rsa_oaep_decrypt(
    p: &CryptoProvider,
    pkcs8: &[u8],
    sha256: bool,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Failed> {
    let k = p.rsa.private_key_from_pkcs8(pkcs8).map_err(f)?;
    k.decrypt_oaep(oaep(sha256), ct).map_err(f)
}

/// RSA-OAEP encrypt with an SPKI public key.
pub(super) fn rsa_oaep_encrypt(
    p: &CryptoProvider,
    spki: &[u8],
    sha256: bool,
    msg: &[u8],
) -> Result<Vec<u8>, Failed> {
    let k = p.rsa.public_key_from_spki(spki).map_err(f)?;
    k.encrypt_oaep(oaep(sha256), msg).map_err(f)
}

/// Generates an RSA key (e = 65537) of `bits` bits; returns PKCS#8 DER.
pub(super) fn rsa_generate_pkcs8(
    p: &CryptoProvider,
    bits: usize,
) -> Result<Zeroizing<Vec<u8>>, Failed> {
    p.rsa.generate_pkcs8(bits).map_err(f)
}

/// The SPKI DER of the public half of a PKCS#8 RSA private key.
pub(super) fn rsa_public_spki_from_pkcs8(
    p: &CryptoProvider,
    pkcs8: &[u8],
) -> Result<Vec<u8>, Failed> {
    p.rsa.public_spki_from_pkcs8(pkcs8).map_err(f)
}
