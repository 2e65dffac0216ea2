//! Raw primitive baselines for the benchmarks, taken straight from the
//! library the default provider is built on — aws-lc-rs, or the RustCrypto
//! crates when the crate is built without the `aws-lc-rs` feature — and
//! never through the crate (which has no public raw-AEAD API). Empty AAD
//! throughout; each `RawGcm` expands its key once.

#![allow(dead_code)] // each bench uses its own subset

#[cfg(feature = "aws-lc-rs")]
mod imp {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

    pub struct RawGcm(LessSafeKey);

    impl RawGcm {
        pub fn new(key: &[u8; 32]) -> RawGcm {
            RawGcm(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key).expect("key"),
            ))
        }

        pub fn seal_in_place(&self, nonce: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
            let n = Nonce::assume_unique_for_key(*nonce);
            let tag = self
                .0
                .seal_in_place_separate_tag(n, Aad::empty(), buf)
                .expect("seal");
            tag.as_ref().try_into().expect("tag")
        }

        pub fn seal_to(&self, nonce: &[u8; 12], input: &[u8], output: &mut [u8]) -> [u8; 16] {
            let n = Nonce::assume_unique_for_key(*nonce);
            let mut tag = [0u8; 16];
            self.0
                .seal_out_of_place_scatter(n, Aad::empty(), input, output, &[], &mut tag)
                .expect("seal");
            tag
        }

        pub fn open_in_place(
            &self,
            nonce: &[u8; 12],
            buf: &mut [u8],
            tag: &[u8; 16],
        ) -> Result<(), ()> {
            let n = Nonce::assume_unique_for_key(*nonce);
            self.0
                .open_in_place_separate_tag(n, Aad::empty(), tag, buf)
                .map(|_| ())
                .map_err(|_| ())
        }

        pub fn open_to(
            &self,
            nonce: &[u8; 12],
            input: &[u8],
            tag: &[u8; 16],
            output: &mut [u8],
        ) -> Result<(), ()> {
            let n = Nonce::assume_unique_for_key(*nonce);
            self.0
                .open_separate_gather(n, Aad::empty(), input, tag, output)
                .map_err(|_| ())
        }
    }

    /// HKDF-Expand-SHA-512 of `info` (the concatenation of its parts) under
    /// the pseudorandom key `prk`, into `out`.
    pub fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
        struct Len(usize);
        impl aws_lc_rs::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = aws_lc_rs::hkdf::Prk::new_less_safe(aws_lc_rs::hkdf::HKDF_SHA512, prk);
        prk.expand(info, Len(out.len()))
            .expect("length")
            .fill(out)
            .expect("fill");
    }
}

#[cfg(not(feature = "aws-lc-rs"))]
mod imp {
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::{Aes256Gcm, KeyInit};

    pub struct RawGcm(Aes256Gcm);

    impl RawGcm {
        pub fn new(key: &[u8; 32]) -> RawGcm {
            RawGcm(Aes256Gcm::new(key.into()))
        }

        pub fn seal_in_place(&self, nonce: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
            self.0
                .encrypt_inout_detached(nonce.into(), &[], buf.into())
                .expect("seal")
                .into()
        }

        pub fn seal_to(&self, nonce: &[u8; 12], input: &[u8], output: &mut [u8]) -> [u8; 16] {
            output.copy_from_slice(input);
            self.seal_in_place(nonce, output)
        }

        pub fn open_in_place(
            &self,
            nonce: &[u8; 12],
            buf: &mut [u8],
            tag: &[u8; 16],
        ) -> Result<(), ()> {
            self.0
                .decrypt_inout_detached(nonce.into(), &[], buf.into(), tag.into())
                .map_err(|_| ())
        }

        pub fn open_to(
            &self,
            nonce: &[u8; 12],
            input: &[u8],
            tag: &[u8; 16],
            output: &mut [u8],
        ) -> Result<(), ()> {
            output.copy_from_slice(input);
            self.open_in_place(nonce, output, tag)
        }
    }

    /// HKDF-Expand-SHA-512 of `info` (the concatenation of its parts) under
    /// the pseudorandom key `prk`, into `out`.
    /// (RFC 5869 §2.3 over `hmac`: `hkdf::Hkdf::from_prk` refuses a
    /// 32-byte PRK.)
    pub fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]], out: &mut [u8]) {
        use hmac::{KeyInit as _, Mac};
        let mut t: Vec<u8> = Vec::new();
        for (i, block) in out.chunks_mut(64).enumerate() {
            let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(prk).expect("key");
            mac.update(&t);
            for part in info {
                mac.update(part);
            }
            mac.update(&[i as u8 + 1]);
            t = mac.finalize().into_bytes().to_vec();
            block.copy_from_slice(&t[..block.len()]);
        }
    }
}

pub use imp::{hkdf_expand_sha512, RawGcm};

/// The Cobblestone-256 chunk-key derivation (76 bytes of HKDF-SHA-512
/// output), as every seal and open pays it once.
pub fn cobblestone_okm(key: &[u8; 32], salt: &[u8; 24], ctx: &[u8]) -> [u8; 76] {
    let mut out = [0u8; 76];
    hkdf_expand_sha512(
        key,
        &[
            b"c2sp.org/chunked-encryption@v1+",
            b"AEAD_AES_256_GCM",
            &[0u8],
            salt,
            ctx,
        ],
        &mut out,
    );
    out
}
