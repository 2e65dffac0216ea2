//! The pure-Rust provider, built from RustCrypto crates: `aes-gcm`,
//! `aes-kw`, `cbc`, `rsa`, `hkdf`/`hmac`, `sha1`/`sha2`, with `getrandom` as
//! the only source of randomness.
//!
//! Nothing here panics on bad input: every length the underlying crates
//! would reject (or silently mishandle) is checked first and reported as
//! [`CryptoError`]. Buffers that hold secrets are zeroized.

use aes_gcm::aead::AeadInOut as _;
use aes_gcm::{Aes256Gcm, KeyInit as _};
use aes_kw::{KwAes256, KwpAes256};
use getrandom::SysRng;
use hkdf::HmacImpl;
use hmac::Hmac;
use rsa::pkcs8::{EncodePrivateKey as _, PrivateKeyInfoRef, SubjectPublicKeyInfoRef};
use rsa::traits::PublicKeyParts as _;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

use super::{
    AeadProvider, Aes256CbcKey, Aes256GcmKey, CryptoProvider, HkdfProvider, HmacProvider,
    HmacSha256Key, KeyWrapProvider, OaepHash, RsaPrivateKey, RsaProvider, RsaPublicKey,
    AES256_KEY_LEN, AES_BLOCK_LEN, GCM_NONCE_LEN, GCM_TAG_LEN, SHA256_LEN, SHA512_LEN,
};
use crate::error::CryptoError;

pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
    name: "rustcrypto",
    aead: &Aead,
    hkdf: &Hkdf,
    hmac: &HmacSha256Provider,
    key_wrap: &KeyWrap,
    rsa: &Rsa,
    random: &super::os_random::OsRandom,
};

fn ce<E>(_: E) -> CryptoError {
    CryptoError
}

// ---------------------------------------------------------------- AES-GCM

#[derive(Debug)]
struct Aead;

/// An expanded AES-256-GCM key. `aes-gcm` (feature `zeroize`) wipes the
/// round keys and the GHASH key when this is dropped.
struct GcmKey(Aes256Gcm);

impl AeadProvider for Aead {
    fn aes256_gcm(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256GcmKey> {
        // Borrowed as a fixed-size array: no unzeroized copy of the key.
        Box::new(GcmKey(Aes256Gcm::new(key.into())))
    }

    fn aes256_cbc(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256CbcKey> {
        use cbc::cipher::KeyInit as _;
        // Borrowed as a fixed-size array: no unzeroized copy of the key.
        Box::new(CbcKey(aes_gcm::aes::Aes256::new(key.into())))
    }
}

/// An expanded AES-256 key; `aes` (feature `zeroize`) wipes the round keys
/// on drop, and `cbc` wipes each mode's copy and chaining value.
struct CbcKey(aes_gcm::aes::Aes256);

impl Aes256CbcKey for CbcKey {
    fn encrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        use cbc::cipher::{Array, BlockModeEncrypt as _, InnerIvInit as _};
        let (blocks, rest) = Array::slice_as_chunks_mut(in_out);
        if !rest.is_empty() {
            return Err(CryptoError);
        }
        cbc::Encryptor::inner_iv_init(self.0.clone(), iv.into()).encrypt_blocks(blocks);
        Ok(())
    }

    fn decrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        use cbc::cipher::{Array, BlockModeDecrypt as _, InnerIvInit as _};
        let (blocks, rest) = Array::slice_as_chunks_mut(in_out);
        if !rest.is_empty() {
            return Err(CryptoError);
        }
        cbc::Decryptor::inner_iv_init(self.0.clone(), iv.into()).decrypt_blocks(blocks);
        Ok(())
    }
}

impl Aes256GcmKey for GcmKey {
    fn seal_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError> {
        let tag = self
            .0
            .encrypt_inout_detached(nonce.into(), aad, in_out.into())
            .map_err(ce)?;
        Ok(tag.into())
    }

    fn open_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError> {
        // aes-gcm computes and compares the tag (in constant time) before it
        // applies the keystream, so on failure `in_out` still holds the
        // ciphertext. The trait promises zeros; give it zeros.
        match self
            .0
            .decrypt_inout_detached(nonce.into(), aad, in_out.into(), tag.into())
        {
            Ok(()) => Ok(()),
            Err(_) => {
                in_out.zeroize();
                Err(CryptoError)
            }
        }
    }
}

// ------------------------------------------------------------------- HKDF

#[derive(Debug)]
struct Hkdf;

type HmacSha512 = Hmac<Sha512>;

/// HMAC-SHA-512 keyed with `key` (any length). `HmacImpl` is the `hkdf`
/// crate's infallible constructor: HMAC accepts keys of every length.
fn hmac_sha512(key: &[u8]) -> HmacSha512 {
    <HmacSha512 as HmacImpl>::new_from_slice(key)
}

impl HkdfProvider for Hkdf {
    fn expand_sha512(&self, prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
        // RFC 5869 §2.3, written out because `hkdf::Hkdf::from_prk` refuses
        // PRKs shorter than HashLen and C2SP chunked encryption uses a
        // 32-byte PRK with SHA-512:
        //   T(0) = empty, T(i) = HMAC(PRK, T(i-1) || info || i), i = 1..=N
        //   OKM  = first L bytes of T(1) || T(2) || ...,  N = ceil(L/64) <= 255
        if out.len() > 255 * SHA512_LEN {
            return Err(CryptoError);
        }
        let keyed = hmac_sha512(prk);
        let mut t = Zeroizing::new([0u8; SHA512_LEN]);
        for (i, block) in out.chunks_mut(SHA512_LEN).enumerate() {
            // i < 255 by the length check above, so the counter fits.
            let counter = u8::try_from(i + 1).map_err(ce)?;
            let mut mac = keyed.clone();
            if i > 0 {
                HmacImpl::update(&mut mac, &t[..]);
            }
            for part in info {
                HmacImpl::update(&mut mac, part);
            }
            HmacImpl::update(&mut mac, &[counter]);
            let mut tag = HmacImpl::finalize(mac);
            t.copy_from_slice(&tag);
            tag.as_mut_slice().zeroize();
            block.copy_from_slice(&t[..block.len()]);
        }
        Ok(())
    }

    #[cfg(test)] // only the vector and cross-provider tests call it
    fn extract_sha512(&self, salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; SHA512_LEN]> {
        // HKDF-Extract(salt, IKM) = HMAC-SHA-512(key = salt, IKM). An empty
        // salt is HMAC's all-zero key, exactly as RFC 5869 specifies.
        let mut mac = hmac_sha512(salt);
        HmacImpl::update(&mut mac, ikm);
        let mut tag = HmacImpl::finalize(mac);
        let mut prk = Zeroizing::new([0u8; SHA512_LEN]);
        prk.copy_from_slice(&tag);
        tag.as_mut_slice().zeroize();
        prk
    }
}

// ------------------------------------------------------------ HMAC-SHA-256

#[derive(Debug)]
struct HmacSha256Provider;

impl HmacProvider for HmacSha256Provider {
    fn hmac_sha256_key(&self, key: &[u8]) -> Box<dyn HmacSha256Key> {
        // `HmacImpl` is the `hkdf` crate's infallible constructor (HMAC takes
        // keys of every length).
        Box::new(HmacKey(<Hmac<Sha256> as HmacImpl>::new_from_slice(key)))
    }
}

/// A keyed HMAC-SHA-256; `hmac` (feature `zeroize`) wipes its state on
/// drop, and each `sign` works on a copy.
struct HmacKey(Hmac<Sha256>);

impl HmacSha256Key for HmacKey {
    fn sign(&self, message: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]> {
        let mut mac = self.0.clone();
        for part in message {
            HmacImpl::update(&mut mac, part);
        }
        let mut tag = HmacImpl::finalize(mac);
        let mut out = Zeroizing::new([0u8; SHA256_LEN]);
        out.copy_from_slice(&tag);
        tag.as_mut_slice().zeroize();
        out
    }
}

// --------------------------------------------------------------- key wrap

#[derive(Debug)]
struct KeyWrap;

/// AES key wrap semiblock size.
const SEMIBLOCK: usize = 8;

impl KeyWrapProvider for KeyWrap {
    fn wrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if padded {
            // RFC 5649: 1 ..= 2^32 - 1 bytes. (aes-kw would "wrap" an empty
            // input into the bare, unencrypted AIV: refuse it here.)
            if key.is_empty() || u32::try_from(key.len()).is_err() {
                return Err(CryptoError);
            }
            let mut out = vec![0u8; key.len().div_ceil(SEMIBLOCK) * SEMIBLOCK + SEMIBLOCK];
            let n = KwpAes256::new(kek.into())
                .wrap_key(key, &mut out)
                .map_err(ce)?
                .len();
            out.truncate(n);
            Ok(out)
        } else {
            // RFC 3394: n >= 2 semiblocks.
            if !key.len().is_multiple_of(SEMIBLOCK) || key.len() < 2 * SEMIBLOCK {
                return Err(CryptoError);
            }
            let mut out = vec![0u8; key.len() + SEMIBLOCK];
            let n = KwAes256::new(kek.into())
                .wrap_key(key, &mut out)
                .map_err(ce)?
                .len();
            out.truncate(n);
            Ok(out)
        }
    }

    fn unwrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        // KW needs at least 3 semiblocks (IV + 2), KWP at least 2 (one AES
        // block). A single semiblock would skip every AES call inside
        // aes-kw, so the short lengths are refused before it sees them.
        let min = if padded { 2 * SEMIBLOCK } else { 3 * SEMIBLOCK };
        if !wrapped.len().is_multiple_of(SEMIBLOCK) || wrapped.len() < min {
            return Err(CryptoError);
        }
        let mut out = Zeroizing::new(vec![0u8; wrapped.len() - SEMIBLOCK]);
        // aes-kw zeroes its output buffer itself when the integrity check
        // fails; `out` is zeroized on drop either way.
        let n = if padded {
            KwpAes256::new(kek.into())
                .unwrap_key(wrapped, &mut out)
                .map_err(ce)?
                .len()
        } else {
            KwAes256::new(kek.into())
                .unwrap_key(wrapped, &mut out)
                .map_err(ce)?
                .len()
        };
        out.truncate(n);
        Ok(out)
    }
}

// ---------------------------------------------------------------- RSA-OAEP

#[derive(Debug)]
struct Rsa;

/// Modulus sizes accepted on import, as aws-lc-rs does.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Sizes `generate_pkcs8` produces, the same set as the aws-lc-rs provider.
const RSA_GENERATE_BITS: [usize; 3] = [2048, 3072, 4096];

fn modulus_bits(k: &impl rsa::traits::PublicKeyParts) -> usize {
    k.n().as_ref().bit_width_vartime() as usize
}

fn check_size(bits: usize) -> Result<(), CryptoError> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(CryptoError)
    }
}

/// Parses a PKCS#8 RSA private key. Only `rsaEncryption` keys are taken:
/// the `rsa` crate would also accept `id-RSASSA-PSS` keys, which are
/// restricted to signing.
fn parse_pkcs8(der: &[u8]) -> Result<rsa::PrivateKey, CryptoError> {
    let info = PrivateKeyInfoRef::try_from(der).map_err(ce)?;
    if info.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err(CryptoError);
    }
    let key = rsa::PrivateKey::try_from(info).map_err(ce)?;
    check_size(modulus_bits(&key))?;
    Ok(key)
}

struct PublicKey(rsa::PublicKey);
/// `rsa::PrivateKey` zeroizes its private components on drop.
struct PrivateKey(rsa::PrivateKey);

impl RsaProvider for Rsa {
    fn private_key_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivateKey>, CryptoError> {
        Ok(Box::new(PrivateKey(parse_pkcs8(der)?)))
    }

    fn public_key_from_spki(&self, der: &[u8]) -> Result<Box<dyn RsaPublicKey>, CryptoError> {
        let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(ce)?;
        if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
            return Err(CryptoError);
        }
        let key = rsa::PublicKey::try_from(spki).map_err(ce)?;
        check_size(modulus_bits(&key))?;
        Ok(Box::new(PublicKey(key)))
    }

    fn generate_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if !RSA_GENERATE_BITS.contains(&bits) {
            return Err(CryptoError);
        }
        // `PrivateKey::new` uses e = 65537.
        let key = rsa::PrivateKey::new(&mut SysRng, bits).map_err(ce)?;
        // `SecretDocument` zeroizes its own buffer on drop.
        let doc = key.to_pkcs8_der().map_err(ce)?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    #[cfg(test)] // only the vector and cross-provider tests call it
    fn public_spki_from_pkcs8(&self, der: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use rsa::pkcs8::EncodePublicKey as _;
        let key = parse_pkcs8(der)?;
        let doc = key.as_public_key().to_public_key_der().map_err(ce)?;
        Ok(doc.into_vec())
    }
}

impl RsaPublicKey for PublicKey {
    fn encrypt_oaep(&self, hash: OaepHash, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // Empty label; MGF1 uses the same hash.
        let r = match hash {
            OaepHash::Sha1 => self.0.oaep_encrypt_with_rng::<Sha1, _>(&mut SysRng, msg),
            OaepHash::Sha256 => self
                .0
                .oaep_encrypt_with_rng::<sha2::Sha256, _>(&mut SysRng, msg),
        };
        r.map_err(ce)
    }
}

impl RsaPrivateKey for PrivateKey {
    fn decrypt_oaep(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match hash {
            OaepHash::Sha1 => oaep_decrypt::<Sha1>(&self.0, ciphertext),
            OaepHash::Sha256 => oaep_decrypt::<sha2::Sha256>(&self.0, ciphertext),
        }
    }
}

// RSAES-OAEP-DECRYPT (RFC 8017 §7.1.2) with an empty label and MGF1 over
// the same hash.
//
// Written here rather than taken from `rsa::PrivateKey::oaep_decrypt*`:
// rsa 0.10.0 deliberately ignores the leading octet Y of the encoded message,
// while RFC 8017 step 3g requires "Y is nonzero" to be a decryption error
// (Wycheproof `rsa_oaep_*` tcId 23, "First byte is 1", and aws-lc reject it).
// The private-key operation itself (blinded, with the CRT fault check) still
// comes from the `rsa` crate.

/// `0xFF` if `x == 0`, else `0x00`, computed without a data-dependent branch.
fn ct_is_zero(x: u8) -> u8 {
    // For x in 0..=255, x - 1 wraps (setting bit 31) only when x == 0.
    let bit = (u32::from(x).wrapping_sub(1) >> 31) as u8;
    0u8.wrapping_sub(bit)
}

/// Widens a `0x00`/`0xFF` mask to a `usize` mask.
fn ct_mask_usize(mask: u8) -> usize {
    usize::from(mask & 1).wrapping_neg()
}

/// `out ^= MGF1-D(seed, out.len())`.
fn mgf1_xor<D: Digest>(seed: &[u8], out: &mut [u8]) {
    let mut counter: u32 = 0;
    for chunk in out.chunks_mut(<D as Digest>::output_size()) {
        let mut h = D::new();
        Digest::update(&mut h, seed);
        Digest::update(&mut h, counter.to_be_bytes());
        let mut mask = h.finalize();
        for (o, m) in chunk.iter_mut().zip(mask.iter()) {
            *o ^= m;
        }
        mask.as_mut_slice().zeroize();
        counter = counter.wrapping_add(1);
    }
}

fn oaep_decrypt<D: Digest>(
    key: &rsa::PrivateKey,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let k = key.size();
    let h_len = <D as Digest>::output_size();
    // 1. Length checks (public values only).
    if ciphertext.len() != k || k < 2 * h_len + 2 {
        return Err(CryptoError);
    }
    // 2. c = OS2IP(C); m = RSADP(K, c) (rejects c >= n); EM = I2OSP(m, k).
    let c = rsa::BoxedUint::from_be_slice(ciphertext, key.n_bits_precision()).map_err(ce)?;
    let m =
        Zeroizing::new(rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut SysRng), &c).map_err(ce)?);
    let m_bytes = Zeroizing::new(m.to_be_bytes());
    // The buffer is the modulus' limb-rounded width; m < n < 256^k, so the
    // bytes above the low k are zero and EM is the last k.
    let skip = m_bytes.len().checked_sub(k).ok_or(CryptoError)?;
    let mut em = Zeroizing::new(m_bytes[skip..].to_vec());

    // 3. EME-OAEP decoding: EM = Y || maskedSeed || maskedDB.
    let (y, rest) = em.split_first_mut().ok_or(CryptoError)?;
    let (seed, db) = rest.split_at_mut(h_len);
    mgf1_xor::<D>(db, seed);
    mgf1_xor::<D>(seed, db);
    // DB = lHash' || PS (zero or more 0x00) || 0x01 || M
    let l_hash = D::digest([]);
    let mut diff = 0u8;
    for (a, b) in db[..h_len].iter().zip(l_hash.iter()) {
        diff |= a ^ b;
    }
    let mut good = ct_is_zero(*y) & ct_is_zero(diff);
    let mut looking = 0xFFu8;
    let mut sep = 0usize;
    let mut stray = 0u8;
    for (i, &b) in db[h_len..].iter().enumerate() {
        let is_zero = ct_is_zero(b);
        let is_one = ct_is_zero(b ^ 1);
        let here = ct_mask_usize(looking & is_one);
        sep = (i & here) | (sep & !here);
        stray |= looking & !is_zero & !is_one;
        looking &= !is_one;
    }
    good &= !looking & !stray;
    // One decision, on the combined result only.
    if good != 0xFF {
        return Err(CryptoError);
    }
    Ok(Zeroizing::new(db[h_len + sep + 1..].to_vec()))
}
