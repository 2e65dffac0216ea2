//! The aws-lc-rs provider (default).

use aws_lc_rs::{aead, hkdf, key_wrap, rand, rsa};
use zeroize::Zeroizing;

use super::{
    AeadProvider, Aes256GcmKey, CryptoProvider, HkdfProvider, KeyWrapProvider, OaepHash, RandomProvider, RsaPrivateKey,
    RsaProvider, RsaPublicKey, AES256_KEY_LEN, GCM_NONCE_LEN, GCM_TAG_LEN, SHA512_LEN,
};
use crate::error::CryptoError;

pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
    name: "aws-lc-rs",
    aead: &Aead,
    hkdf: &Hkdf,
    key_wrap: &KeyWrap,
    rsa: &Rsa,
    random: &Random,
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
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("32-byte AES-256-GCM key");
        Box::new(GcmKey(aead::LessSafeKey::new(unbound)))
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
            .seal_in_place_separate_tag(aead::Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), in_out)
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
}

#[derive(Debug)]
struct Hkdf;

struct OutLen(usize);
impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

impl HkdfProvider for Hkdf {
    fn expand_sha512(&self, prk: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), CryptoError> {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA512, prk);
        let okm = prk.expand(info, OutLen(out.len())).map_err(ce)?;
        okm.fill(out).map_err(ce)
    }

    fn extract_sha512(&self, salt: &[u8], ikm: &[u8]) -> Zeroizing<[u8; SHA512_LEN]> {
        // HKDF-Extract(salt, ikm) = HMAC-SHA-512(key = salt, ikm)
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, salt);
        let tag = aws_lc_rs::hmac::sign(&key, ikm);
        let mut out = Zeroizing::new([0u8; SHA512_LEN]);
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[derive(Debug)]
struct KeyWrap;

impl KeyWrapProvider for KeyWrap {
    fn wrap(&self, kek: &[u8; AES256_KEY_LEN], padded: bool, key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use key_wrap::{KeyWrap as _, KeyWrapPadded as _};
        let k = key_wrap::KeyEncryptionKey::new(&key_wrap::AES_256, kek).map_err(ce)?;
        let mut out = vec![0u8; key.len() + 16];
        let n = if padded {
            k.wrap_with_padding(key, &mut out).map_err(ce)?.len()
        } else {
            if key.len() % 8 != 0 || key.len() < 16 {
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
        if wrapped.len() < 16 || wrapped.len() % 8 != 0 {
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

struct PublicKey(rsa::OaepPublicEncryptingKey);
struct PrivateKey(rsa::OaepPrivateDecryptingKey);

impl RsaProvider for Rsa {
    fn private_key_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivateKey>, CryptoError> {
        let k = rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(ce)?;
        Ok(Box::new(PrivateKey(rsa::OaepPrivateDecryptingKey::new(k).map_err(ce)?)))
    }

    fn public_key_from_spki(&self, der: &[u8]) -> Result<Box<dyn RsaPublicKey>, CryptoError> {
        let k = rsa::PublicEncryptingKey::from_der(der).map_err(ce)?;
        Ok(Box::new(PublicKey(rsa::OaepPublicEncryptingKey::new(k).map_err(ce)?)))
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
}

impl RsaPublicKey for PublicKey {
    fn encrypt_oaep(&self, hash: OaepHash, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = vec![0u8; self.0.ciphertext_size()];
        let n = self.0.encrypt(oaep_alg(hash), msg, &mut out, None).map_err(ce)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn modulus_bits(&self) -> usize {
        self.0.key_size_bits()
    }
}

impl RsaPrivateKey for PrivateKey {
    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut out = Zeroizing::new(vec![0u8; self.0.min_output_size()]);
        let n = self.0.decrypt(oaep_alg(hash), ciphertext, &mut out, None).map_err(ce)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn modulus_bits(&self) -> usize {
        self.0.key_size_bits()
    }
}

#[derive(Debug)]
struct Random;

impl RandomProvider for Random {
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        rand::fill(out).map_err(ce)
    }
}
