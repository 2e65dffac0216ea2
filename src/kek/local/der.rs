//! RSA keys between the JWK integer fields and the DER forms the providers
//! load: PKCS#8 `PrivateKeyInfo` (RFC 5208) holding a PKCS#1
//! `RSAPrivateKey` (RFC 8017), and X.509 `SubjectPublicKeyInfo` (RFC 5280)
//! holding a PKCS#1 `RSAPublicKey`.
//!
//! Encoding and decoding are the RustCrypto `pkcs1`/`pkcs8` crates' (the
//! `der` encoder underneath): pure functions, no I/O. Every encoding that
//! holds private key material is a [`SecretDocument`], wiped on drop.

use pkcs1::{RsaPrivateKeyRef, RsaPublicKeyRef};
use pkcs8::der::asn1::{BitStringRef, OctetStringRef, UintRef};
use pkcs8::der::{Decode, Encode, SecretDocument};
use pkcs8::spki::SubjectPublicKeyInfoRef;
use pkcs8::PrivateKeyInfoRef;
use zeroize::Zeroizing;

/// The eight big-endian unsigned integers of an RSA private key, in
/// `RSAPrivateKey` order after the version: n, e, d, p, q, dp, dq, qi.
pub(crate) struct RsaParts {
    pub(crate) ints: [Zeroizing<Vec<u8>>; 8],
}

impl RsaParts {
    pub(crate) fn n(&self) -> &[u8] {
        &self.ints[0]
    }
    pub(crate) fn e(&self) -> &[u8] {
        &self.ints[1]
    }
}

/// PKCS#8 `PrivateKeyInfo` for an RSA key; `None` if an integer cannot be
/// encoded.
pub(crate) fn rsa_pkcs8_from_parts(parts: &RsaParts) -> Option<SecretDocument> {
    let [n, e, d, p, q, dp, dq, qi] = &parts.ints;
    fn int(be: &[u8]) -> Option<UintRef<'_>> {
        UintRef::new(be).ok()
    }
    let key = RsaPrivateKeyRef {
        modulus: int(n)?,
        public_exponent: int(e)?,
        private_exponent: int(d)?,
        prime1: int(p)?,
        prime2: int(q)?,
        exponent1: int(dp)?,
        exponent2: int(dq)?,
        coefficient: int(qi)?,
        other_prime_infos: None,
    };
    let rsa_key = SecretDocument::encode_msg(&key).ok()?;
    let info = PrivateKeyInfoRef::new(
        pkcs1::ALGORITHM_ID,
        OctetStringRef::new(rsa_key.as_bytes()).ok()?,
    );
    SecretDocument::encode_msg(&info).ok()
}

/// X.509 `SubjectPublicKeyInfo` for an RSA public key; `None` if an integer
/// cannot be encoded.
pub(crate) fn rsa_spki_from_parts(n: &[u8], e: &[u8]) -> Option<Vec<u8>> {
    let key = RsaPublicKeyRef {
        modulus: UintRef::new(n).ok()?,
        public_exponent: UintRef::new(e).ok()?,
    };
    let key = key.to_der().ok()?;
    SubjectPublicKeyInfoRef {
        algorithm: pkcs1::ALGORITHM_ID,
        subject_public_key: BitStringRef::from_bytes(&key).ok()?,
    }
    .to_der()
    .ok()
}

/// Splits a PKCS#8 `PrivateKeyInfo` holding a two-prime RSA key into its
/// integers. Returns `None` for anything else (another algorithm, a
/// multi-prime key, trailing data, non-DER input).
pub(crate) fn rsa_parts_from_pkcs8(der: &[u8]) -> Option<RsaParts> {
    let info = PrivateKeyInfoRef::from_der(der).ok()?;
    if info.algorithm.oid != pkcs1::ALGORITHM_OID {
        return None;
    }
    let key = RsaPrivateKeyRef::from_der(info.private_key.as_bytes()).ok()?;
    if key.other_prime_infos.is_some() {
        return None;
    }
    let int = |u: UintRef<'_>| Zeroizing::new(u.as_bytes().to_vec());
    Some(RsaParts {
        ints: [
            int(key.modulus),
            int(key.public_exponent),
            int(key.private_exponent),
            int(key.prime1),
            int(key.prime2),
            int(key.exponent1),
            int(key.exponent2),
            int(key.coefficient),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> RsaParts {
        RsaParts {
            ints: std::array::from_fn(|i| Zeroizing::new(vec![0x80 | i as u8; 3 + i])),
        }
    }

    #[test]
    fn pkcs8_round_trip() {
        let parts = parts();
        let der = rsa_pkcs8_from_parts(&parts).unwrap();
        let back = rsa_parts_from_pkcs8(der.as_bytes()).unwrap();
        for i in 0..8 {
            assert_eq!(&back.ints[i][..], &parts.ints[i][..]);
        }
        let der = der.as_bytes();
        assert!(rsa_parts_from_pkcs8(&der[..der.len() - 1]).is_none());
        let mut extra = der.to_vec();
        extra.push(0);
        assert!(rsa_parts_from_pkcs8(&extra).is_none());
    }

    #[test]
    fn integers_are_minimal_unsigned_der() {
        // n = 0x00 0x00 0x7f (leading zeros dropped), e = 0x80 (a 0x00 pad
        // keeps it positive)
        let spki = rsa_spki_from_parts(&[0, 0, 0x7f], &[0x80]).unwrap();
        let tail = [0x30, 0x07, 0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80];
        assert!(spki.ends_with(&tail), "{spki:02x?}");
        // rsaEncryption with NULL parameters
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        assert!(spki.windows(alg.len()).any(|w| w == alg), "{spki:02x?}");
    }

    #[test]
    fn other_algorithms_are_refused() {
        // an Ed25519 PKCS#8 key (RFC 8410 example)
        let ed = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20, 0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1,
            0xf7, 0x69, 0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97,
            0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
        ];
        assert!(rsa_parts_from_pkcs8(&ed).is_none());
        assert!(rsa_parts_from_pkcs8(&[]).is_none());
    }
}
