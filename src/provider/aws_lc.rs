//! The aws-lc-rs provider (default).

use aws_lc_rs::{aead, cipher, key_wrap, rsa};
use zeroize::Zeroizing;

use super::{
    AeadProvider, Aes256CbcKey, Aes256GcmKey, CryptoProvider, HkdfProvider, HmacProvider,
    HmacSha256Key, KeyWrapProvider, OaepHash, RsaPrivateKey, RsaProvider, RsaPublicKey,
    AES256_KEY_LEN, AES_BLOCK_LEN, GCM_NONCE_LEN, GCM_TAG_LEN, SHA256_LEN, SHA512_LEN,
};
use crate::error::CryptoError;

pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
    name: "aws-lc-rs",
    aead: &Aead,
    hkdf: &Hkdf,
    hmac: &Hmac,
    key_wrap: &KeyWrap,
    rsa: &Rsa,
    random: &super::os_random::OsRandom,
};

fn ce<E>(_: E) -> CryptoError {
    CryptoError
}

#[derive(Debug)]
struct Aead;

struct GcmKey(aead::LessSafeKey);

impl AeadProvider for Aead {
    fn aes256_gcm(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256GcmKey> {
        // A 32-byte key is always valid for AES-256-GCM.
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("32-byte AES-256-GCM key");
        Box::new(GcmKey(aead::LessSafeKey::new(unbound)))
    }

    fn aes256_cbc(&self, key: &[u8; AES256_KEY_LEN]) -> Box<dyn Aes256CbcKey> {
        // A 32-byte key is always valid for AES-256.
        let unbound = || cipher::UnboundCipherKey::new(&cipher::AES_256, key).expect("AES-256 key");
        Box::new(CbcKey {
            enc: cipher::EncryptingKey::cbc(unbound()).expect("AES-256-CBC key"),
            dec: cipher::DecryptingKey::cbc(unbound()).expect("AES-256-CBC key"),
        })
    }
}

struct CbcKey {
    #[cfg_attr(not(feature = "cosmos-ae"), allow(dead_code))]
    enc: cipher::EncryptingKey,
    dec: cipher::DecryptingKey,
}

/// Whether `in_out` holds blocks to process: `false` when empty, an
/// error when it is not a whole number of blocks.
fn whole_blocks(in_out: &[u8]) -> Result<bool, CryptoError> {
    if in_out.len().is_multiple_of(AES_BLOCK_LEN) {
        Ok(!in_out.is_empty())
    } else {
        Err(CryptoError)
    }
}

impl Aes256CbcKey for CbcKey {
    fn encrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if !whole_blocks(in_out)? {
            return Ok(());
        }
        let ctx = cipher::EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(*iv));
        self.enc.less_safe_encrypt(in_out, ctx).map_err(ce)?;
        Ok(())
    }

    fn decrypt_blocks(
        &self,
        iv: &[u8; AES_BLOCK_LEN],
        in_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if !whole_blocks(in_out)? {
            return Ok(());
        }
        let ctx = cipher::DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(*iv));
        let n = self.dec.decrypt(in_out, ctx).map_err(ce)?.len();
        if n == in_out.len() {
            Ok(())
        } else {
            Err(CryptoError)
        }
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
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(*nonce),
                aead::Aad::from(aad),
                in_out,
            )
            .map_err(ce)?;
        tag.as_ref().try_into().map_err(ce)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError> {
        let r = self.0.open_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            tag,
            in_out,
        );
        match r {
            Ok(_) => Ok(()),
            Err(_) => {
                // aws-lc may have written unverified plaintext: wipe it.
                zeroize::Zeroize::zeroize(in_out);
                Err(CryptoError)
            }
        }
    }

    fn seal_to(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError> {
        if input.len() != output.len() {
            return Err(CryptoError);
        }
        let mut tag = [0u8; GCM_TAG_LEN];
        self.0
            .seal_out_of_place_scatter(
                aead::Nonce::assume_unique_for_key(*nonce),
                aead::Aad::from(aad),
                input,
                output,
                &[],
                &mut tag,
            )
            .map_err(ce)?;
        Ok(tag)
    }

    fn open_to(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        tag: &[u8; GCM_TAG_LEN],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        if input.len() != output.len() {
            return Err(CryptoError);
        }
        let r = self.0.open_separate_gather(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            input,
            tag,
            output,
        );
        if r.is_err() {
            // The output may hold unverified plaintext: wipe it.
            zeroize::Zeroize::zeroize(output);
            return Err(CryptoError);
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Hkdf;

impl HkdfProvider for Hkdf {
    fn expand_sha512(&self, prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
        // RFC 5869 Expand written over `hmac` rather than `hkdf::Prk`:
        // `Prk::new_less_safe` panics on PRKs longer than the hash output,
        // and its per-call setup made a 76-byte expansion cost ~4 µs here,
        // two thirds of sealing a 1 KiB object.
        expand_sha512_hmac(prk, info, out)
    }

    #[cfg(test)] // only the vector and cross-provider tests call it
    fn extract_sha512(&self, salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; SHA512_LEN]> {
        // HKDF-Extract(salt, ikm) = HMAC-SHA-512(key = salt, ikm)
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, salt);
        let tag = aws_lc_rs::hmac::sign(&key, ikm);
        let mut out = Zeroizing::new([0u8; SHA512_LEN]);
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// HKDF-Expand (RFC 5869 §2.3) over HMAC-SHA-512:
/// T(i) = HMAC(PRK, T(i-1) || info || i).
fn expand_sha512_hmac(prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
    use aws_lc_rs::hmac;
    if out.len() > 255 * SHA512_LEN {
        return Err(CryptoError);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA512, prk);
    let mut t = Zeroizing::new([0u8; SHA512_LEN]);
    for (i, block) in out.chunks_mut(SHA512_LEN).enumerate() {
        let mut ctx = hmac::Context::with_key(&key);
        if i > 0 {
            ctx.update(&t[..]);
        }
        for part in info {
            ctx.update(part);
        }
        ctx.update(&[u8::try_from(i + 1).map_err(ce)?]);
        t.copy_from_slice(ctx.sign().as_ref());
        block.copy_from_slice(&t[..block.len()]);
    }
    Ok(())
}

#[derive(Debug)]
struct Hmac;

impl HmacProvider for Hmac {
    fn hmac_sha256_key(&self, key: &[u8]) -> Box<dyn HmacSha256Key> {
        Box::new(HmacKey(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            key,
        )))
    }
}

/// aws-lc cleans its HMAC contexts (`HMAC_CTX_cleanup`) when they drop.
struct HmacKey(aws_lc_rs::hmac::Key);

impl HmacSha256Key for HmacKey {
    fn sign(&self, message: &[&[u8]]) -> Zeroizing<[u8; SHA256_LEN]> {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        for part in message {
            ctx.update(part);
        }
        let mut out = Zeroizing::new([0u8; SHA256_LEN]);
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

#[derive(Debug)]
struct KeyWrap;

impl KeyWrapProvider for KeyWrap {
    fn wrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        key: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        use key_wrap::{KeyWrap as _, KeyWrapPadded as _};
        let k = key_wrap::KeyEncryptionKey::new(&key_wrap::AES_256, kek).map_err(ce)?;
        let mut out = vec![0u8; key.len() + 16];
        let n = if padded {
            k.wrap_with_padding(key, &mut out).map_err(ce)?.len()
        } else {
            if !key.len().is_multiple_of(8) || key.len() < 16 {
                return Err(CryptoError);
            }
            k.wrap(key, &mut out).map_err(ce)?.len()
        };
        out.truncate(n);
        Ok(out)
    }

    fn unwrap(
        &self,
        kek: &[u8; AES256_KEY_LEN],
        padded: bool,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        use key_wrap::{KeyWrap as _, KeyWrapPadded as _};
        if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
            return Err(CryptoError);
        }
        let k = key_wrap::KeyEncryptionKey::new(&key_wrap::AES_256, kek).map_err(ce)?;
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let n = if padded {
            k.unwrap_with_padding(wrapped, &mut out).map_err(ce)?.len()
        } else {
            if wrapped.len() < 24 {
                return Err(CryptoError);
            }
            k.unwrap(wrapped, &mut out).map_err(ce)?.len()
        };
        out.truncate(n);
        Ok(out)
    }
}

#[derive(Debug)]
struct Rsa;

fn oaep_alg(hash: OaepHash) -> &'static rsa::OaepAlgorithm {
    match hash {
        OaepHash::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
    }
}

/// aws-lc parses the first DER element of its input and ignores whatever
/// follows; insist that `der` is exactly one element (tag, length, value),
/// as the RustCrypto provider does.
fn exactly_one_der_element(der: &[u8]) -> Result<(), CryptoError> {
    let (&first, rest) = der
        .get(1..)
        .and_then(<[u8]>::split_first)
        .ok_or(CryptoError)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() || rest.len() < n {
            return Err(CryptoError);
        }
        (
            2 + n,
            rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
        )
    };
    if header.checked_add(len) == Some(der.len()) {
        Ok(())
    } else {
        Err(CryptoError)
    }
}

struct PublicKey(rsa::OaepPublicEncryptingKey);
struct PrivateKey(rsa::OaepPrivateDecryptingKey);

impl RsaProvider for Rsa {
    fn private_key_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivateKey>, CryptoError> {
        exactly_one_der_element(der)?;
        let k = rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(ce)?;
        Ok(Box::new(PrivateKey(
            rsa::OaepPrivateDecryptingKey::new(k).map_err(ce)?,
        )))
    }

    fn public_key_from_spki(&self, der: &[u8]) -> Result<Box<dyn RsaPublicKey>, CryptoError> {
        exactly_one_der_element(der)?;
        let k = rsa::PublicEncryptingKey::from_der(der).map_err(ce)?;
        Ok(Box::new(PublicKey(
            rsa::OaepPublicEncryptingKey::new(k).map_err(ce)?,
        )))
    }

    fn generate_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        use aws_lc_rs::encoding::AsDer;
        let size = match bits {
            2048 => rsa::KeySize::Rsa2048,
            3072 => rsa::KeySize::Rsa3072,
            4096 => rsa::KeySize::Rsa4096,
            _ => return Err(CryptoError),
        };
        let k = rsa::PrivateDecryptingKey::generate(size).map_err(ce)?;
        let der = k.as_der().map_err(ce)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    #[cfg(test)] // only the vector and cross-provider tests call it
    fn public_spki_from_pkcs8(&self, der: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use aws_lc_rs::encoding::AsDer;
        exactly_one_der_element(der)?;
        let k = rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(ce)?;
        let spki = k.public_key().as_der().map_err(ce)?;
        Ok(spki.as_ref().to_vec())
    }
}

impl RsaPublicKey for PublicKey {
    fn encrypt_oaep(&self, hash: OaepHash, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = vec![0u8; self.0.ciphertext_size()];
        let n = self
            .0
            .encrypt(oaep_alg(hash), msg, &mut out, None)
            .map_err(ce)?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

impl RsaPrivateKey for PrivateKey {
    fn decrypt_oaep(
        &self,
        hash: OaepHash,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut out = Zeroizing::new(vec![0u8; self.0.min_output_size()]);
        let n = self
            .0
            .decrypt(oaep_alg(hash), ciphertext, &mut out, None)
            .map_err(ce)?
            .len();
        out.truncate(n);
        Ok(out)
    }
}
