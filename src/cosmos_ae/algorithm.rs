//! `AEAD_AES_256_CBC_HMAC_SHA256`, version 1: the value cipher of Cosmos
//! DB Always Encrypted (and of SQL Server Always Encrypted, where it comes
//! from), with its key derivation.
//!
//! # Keys
//!
//! A client encryption key (CEK) holds a 32-byte **root key**. Three keys
//! are derived from it, each `HMAC-SHA-256(key = root key, message = label)`
//! where the label is the UTF-16LE encoding (no terminator) of:
//!
//! ```text
//! encryption key: "Microsoft SQL Server cell encryption key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
//! MAC key:        "Microsoft SQL Server cell MAC key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
//! IV key:         "Microsoft SQL Server cell IV key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256"
//! ```
//!
//! # A ciphertext
//!
//! ```text
//! version (0x01) ‖ tag (32) ‖ IV (16) ‖ AES-256-CBC(encryption key, IV, PKCS#7(plaintext))
//! tag = HMAC-SHA-256(MAC key, version ‖ IV ‖ CBC ciphertext ‖ 0x01)
//! IV  = 16 random bytes                                     (Randomized)
//!     = first 16 bytes of HMAC-SHA-256(IV key, plaintext)   (Deterministic)
//! ```
//!
//! The trailing `0x01` of the MAC input is the length of the version
//! field. The shortest ciphertext is 65 bytes (an empty plaintext pads to
//! one block). Decryption checks the length (65 bytes or more, the CBC
//! part a whole number of blocks), the version, then the tag in constant
//! time, and only then decrypts and removes the padding; every failure is
//! the same opaque refusal, so nothing distinguishes a bad tag from bad
//! padding.
//!
//! Nothing else is authenticated: not the CEK id, the property path, the
//! item, nor the type marker stored in front of the ciphertext (see the
//! [module docs](super) for what that allows).
//!
//! Checked against `@azure/cosmos` 4.10.1
//! (`encryption/AeadAes256CbcHmacSha256Algorithm`, `EncryptionKey/DataEncryptionKey`)
//! and the .NET SDK's `Microsoft.Azure.Cosmos.Encryption`.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::Error;
use crate::pkcs7;
use crate::provider::{Aes256CbcKey, CryptoProvider, HmacSha256Key, AES_BLOCK_LEN, SHA256_LEN};
use crate::util::ct_eq;

use super::policy::EncryptionType;

/// The algorithm's version byte.
const VERSION: u8 = 1;
/// The length of the version field, the last byte the tag covers.
const VERSION_LEN_BYTE: u8 = 1;
const TAG_LEN: usize = SHA256_LEN;
const IV_LEN: usize = AES_BLOCK_LEN;
/// Where the CBC ciphertext starts.
const BODY_AT: usize = 1 + TAG_LEN + IV_LEN;
/// The shortest ciphertext: one block of CBC.
pub(crate) const MIN_CIPHERTEXT_LEN: usize = BODY_AT + AES_BLOCK_LEN;

/// The UTF-16LE encoding of an ASCII label, computed at compile time.
const fn utf16le<const N: usize>(ascii: &[u8]) -> [u8; N] {
    assert!(N == 2 * ascii.len());
    let mut out = [0u8; N];
    let mut i = 0;
    while i < ascii.len() {
        assert!(ascii[i].is_ascii());
        out[2 * i] = ascii[i];
        i += 1;
    }
    out
}

const ENC_ASCII: &[u8] = b"Microsoft SQL Server cell encryption key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256";
const MAC_ASCII: &[u8] = b"Microsoft SQL Server cell MAC key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256";
const IV_ASCII: &[u8] = b"Microsoft SQL Server cell IV key with encryption algorithm:AEAD_AES_256_CBC_HMAC_SHA256 and key length:256";
const ENC_LABEL: [u8; 2 * ENC_ASCII.len()] = utf16le(ENC_ASCII);
const MAC_LABEL: [u8; 2 * MAC_ASCII.len()] = utf16le(MAC_ASCII);
const IV_LABEL: [u8; 2 * IV_ASCII.len()] = utf16le(IV_ASCII);

/// How many randomized IVs one draw from the OS CSPRNG provides.
const IVS_PER_DRAW: usize = 16;

/// The random IVs of one call (one item, one value): drawn from the OS
/// CSPRNG sixteen at a time, so an item with many randomized leaves makes
/// one system call instead of one per leaf. Each IV is handed out once;
/// what is left is wiped when the call ends. Only [`CekCipher::encrypt`]
/// takes IVs from it.
pub(crate) struct RandomIvs {
    buf: Zeroizing<[u8; IV_LEN * IVS_PER_DRAW]>,
    next: usize,
}

impl RandomIvs {
    /// An empty pool: nothing is drawn until a randomized value needs it.
    pub(crate) fn new() -> RandomIvs {
        RandomIvs {
            buf: Zeroizing::new([0u8; IV_LEN * IVS_PER_DRAW]),
            next: IVS_PER_DRAW,
        }
    }

    fn take(&mut self, provider: &CryptoProvider) -> crate::Result<[u8; IV_LEN]> {
        if self.next == IVS_PER_DRAW {
            provider.fill_random(&mut self.buf[..])?;
            self.next = 0;
        }
        let at = self.next * IV_LEN;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&self.buf[at..at + IV_LEN]);
        self.buf[at..at + IV_LEN].fill(0);
        self.next += 1;
        Ok(iv)
    }
}

/// A ciphertext was refused: wrong length, wrong version, wrong tag, or
/// bad padding under a valid tag. Deliberately carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused;

/// The three keys derived from one CEK root key, ready for use: the
/// encryption key expanded for AES-256-CBC, the MAC and IV keys keyed into
/// HMAC-SHA-256. The derived key bytes themselves are wiped once these are
/// built; the expanded forms are wiped on drop. No `Clone`, and `Debug`
/// shows nothing.
pub(crate) struct CekCipher {
    provider: &'static CryptoProvider,
    cbc: Box<dyn Aes256CbcKey>,
    mac: Box<dyn HmacSha256Key>,
    iv: Box<dyn HmacSha256Key>,
}

impl fmt::Debug for CekCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CekCipher { .. }")
    }
}

impl CekCipher {
    /// Derives the keys of `root`. Costs three HMAC-SHA-256, an AES key
    /// schedule and two HMAC key setups, once per root key.
    pub(crate) fn derive(provider: &'static CryptoProvider, root: &[u8; 32]) -> CekCipher {
        let h = |label: &[u8]| provider.hmac.hmac_sha256(root, &[label]);
        CekCipher {
            provider,
            cbc: provider.aead.aes256_cbc(&h(&ENC_LABEL)),
            mac: provider.hmac.hmac_sha256_key(&h(&MAC_LABEL)[..]),
            iv: provider.hmac.hmac_sha256_key(&h(&IV_LABEL)[..]),
        }
    }

    fn tag(&self, iv: &[u8], body: &[u8]) -> Zeroizing<[u8; TAG_LEN]> {
        self.mac.sign(&[&[VERSION], iv, body, &[VERSION_LEN_BYTE]])
    }

    /// Encrypts `plaintext` and appends the ciphertext to `out`. The IV is
    /// the next one of `ivs` (randomized) or derived from the plaintext
    /// (deterministic): never chosen by a caller.
    ///
    /// Cost: `out` grows by `plaintext.len() + 65..=80` bytes; one CBC
    /// pass, two HMACs (deterministic) or one HMAC and 16 random bytes.
    pub(crate) fn encrypt(
        &self,
        ty: EncryptionType,
        plaintext: &[u8],
        ivs: &mut RandomIvs,
        out: &mut Vec<u8>,
    ) -> crate::Result<()> {
        let iv = match ty {
            EncryptionType::Randomized => ivs.take(self.provider)?,
            EncryptionType::Deterministic => {
                let h = self.iv.sign(&[plaintext]);
                let mut iv = [0u8; IV_LEN];
                iv.copy_from_slice(&h[..IV_LEN]);
                iv
            }
        };
        let start = out.len();
        out.resize(start + BODY_AT + pkcs7::padded_len(plaintext.len()), 0);
        let ct = &mut out[start..];
        ct[0] = VERSION;
        ct[1 + TAG_LEN..BODY_AT].copy_from_slice(&iv);
        let body = &mut ct[BODY_AT..];
        body[..plaintext.len()].copy_from_slice(plaintext);
        pkcs7::pad(body, plaintext.len());
        if self.cbc.encrypt_blocks(&iv, body).is_err() {
            // The buffer may still hold plaintext.
            zeroize::Zeroize::zeroize(&mut out[start..]);
            out.truncate(start);
            return Err(provider_failure("AES-256-CBC encryption"));
        }
        let tag = self.tag(&iv, &ct[BODY_AT..]);
        ct[1..1 + TAG_LEN].copy_from_slice(&tag[..]);
        Ok(())
    }

    /// Verifies and decrypts `ciphertext`. The tag is checked, in constant
    /// time, before anything is decrypted; on any failure no plaintext
    /// exists outside zeroized memory.
    ///
    /// Cost: one HMAC, one allocation of the ciphertext's size, one CBC
    /// pass.
    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, Refused> {
        if ciphertext.len() < MIN_CIPHERTEXT_LEN
            || !(ciphertext.len() - BODY_AT).is_multiple_of(AES_BLOCK_LEN)
            || ciphertext[0] != VERSION
        {
            return Err(Refused);
        }
        let tag = &ciphertext[1..1 + TAG_LEN];
        let iv: &[u8; IV_LEN] = ciphertext[1 + TAG_LEN..BODY_AT]
            .try_into()
            .expect("16 bytes");
        let body = &ciphertext[BODY_AT..];
        if !ct_eq(&self.tag(iv, body)[..], tag) {
            return Err(Refused);
        }
        let mut clear = Zeroizing::new(body.to_vec());
        self.cbc
            .decrypt_blocks(iv, &mut clear)
            .map_err(|_| Refused)?;
        let n = clear.len();
        let last: &[u8; AES_BLOCK_LEN] = clear[n - AES_BLOCK_LEN..].try_into().expect("one block");
        let keep = pkcs7::unpadded_len(last).ok_or(Refused)?;
        clear.truncate(n - AES_BLOCK_LEN + keep);
        Ok(clear)
    }
}

/// A primitive of the crypto provider failed where it cannot fail for the
/// lengths this module passes (not a caller bug, and nothing an input can
/// cause).
pub(crate) fn provider_failure(op: &'static str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "{op} failed in the crypto provider"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: &CekCipher, ty: EncryptionType, pt: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.encrypt(ty, pt, &mut RandomIvs::new(), &mut out).unwrap();
        out
    }

    fn root() -> [u8; 32] {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        k
    }

    #[test]
    fn labels_are_utf16le() {
        assert_eq!(ENC_LABEL.len(), 2 * ENC_ASCII.len());
        assert_eq!(&MAC_LABEL[..8], b"M\0i\0c\0r\0");
        let back: String =
            char::decode_utf16(IV_LABEL.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
                .map(Result::unwrap)
                .collect();
        assert_eq!(back.as_bytes(), IV_ASCII);
    }

    #[test]
    fn random_ivs_are_each_used_once() {
        let p = CryptoProvider::default_provider();
        let mut ivs = RandomIvs::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 * IVS_PER_DRAW + 1 {
            assert!(seen.insert(ivs.take(p).unwrap()));
        }
        assert!(
            ivs.buf[..(ivs.next * IV_LEN)].iter().all(|b| *b == 0),
            "taken IVs are wiped"
        );
    }

    #[test]
    fn appends_to_what_is_there() {
        let c = CekCipher::derive(CryptoProvider::default_provider(), &root());
        let mut out = vec![0xAB];
        c.encrypt(
            EncryptionType::Deterministic,
            b"x",
            &mut RandomIvs::new(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], 0xAB);
        assert_eq!(&out[1..], &enc(&c, EncryptionType::Deterministic, b"x")[..]);
    }

    #[test]
    fn round_trips_and_lengths_on_every_provider() {
        for p in CryptoProvider::all() {
            let c = CekCipher::derive(p, &root());
            for len in [0usize, 1, 15, 16, 17, 100] {
                let pt: Vec<u8> = (0..len as u8).collect();
                for ty in [EncryptionType::Randomized, EncryptionType::Deterministic] {
                    let ct = enc(&c, ty, &pt);
                    assert_eq!(ct.len(), BODY_AT + (len / 16 + 1) * 16);
                    assert_eq!(ct[0], VERSION);
                    assert_eq!(&c.decrypt(&ct).unwrap()[..], &pt[..], "{} {len}", p.name());
                }
                let d1 = enc(&c, EncryptionType::Deterministic, &pt);
                let d2 = enc(&c, EncryptionType::Deterministic, &pt);
                assert_eq!(d1, d2);
                let r1 = enc(&c, EncryptionType::Randomized, &pt);
                let r2 = enc(&c, EncryptionType::Randomized, &pt);
                assert_ne!(r1, r2);
            }
        }
    }

    #[test]
    fn providers_agree() {
        let all = CryptoProvider::all();
        let pt = b"the same bytes everywhere";
        let first = enc(
            &CekCipher::derive(all[0], &root()),
            EncryptionType::Deterministic,
            pt,
        );
        for p in &all {
            let c = CekCipher::derive(p, &root());
            assert_eq!(enc(&c, EncryptionType::Deterministic, pt), first);
            assert_eq!(&c.decrypt(&first).unwrap()[..], pt);
        }
    }

    #[test]
    fn every_bit_flip_and_every_truncation_is_refused() {
        let c = CekCipher::derive(CryptoProvider::default_provider(), &root());
        let ct = enc(&c, EncryptionType::Randomized, b"0123456789abcdefXYZ");
        for i in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(c.decrypt(&bad), Err(Refused), "bit {i}");
        }
        for n in 0..ct.len() {
            assert_eq!(c.decrypt(&ct[..n]), Err(Refused), "length {n}");
        }
        let mut longer = ct.clone();
        longer.extend_from_slice(&[0u8; 16]);
        assert_eq!(c.decrypt(&longer), Err(Refused));
        let other = CekCipher::derive(CryptoProvider::default_provider(), &[9u8; 32]);
        assert_eq!(other.decrypt(&ct), Err(Refused));
    }

    /// A valid tag over bad padding (only a key holder can make one) is
    /// refused too, with the same error.
    #[test]
    fn bad_padding_under_a_valid_tag_is_refused() {
        let c = CekCipher::derive(CryptoProvider::default_provider(), &root());
        let iv = [3u8; 16];
        let mut body = [0x41u8; 16]; // last byte 0x41: not a padding length
        c.cbc.encrypt_blocks(&iv, &mut body).unwrap();
        let mut ct = vec![VERSION];
        ct.extend_from_slice(&c.tag(&iv, &body)[..]);
        ct.extend_from_slice(&iv);
        ct.extend_from_slice(&body);
        assert_eq!(c.decrypt(&ct), Err(Refused));
    }
}
