//! Decryption: the content key's unwrap and checks, and a streaming
//! region reader with constant memory.

use std::io::{self, Read};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::util::SecretBuf;

use super::metadata::{EncryptionData, Protocol, NONCE_LEN, TAG_LEN};
use super::nonce::NonceValidator;
use super::range::{self, CseRangePlan, REGION_OVERHEAD};
use crate::error::Error;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::key::KeyMaterial;
use crate::provider::{Aes256GcmKey, CryptoProvider, AES256_KEY_LEN};

/// The first size of a reader's region buffer, before it grows (up to one
/// region) with what the source holds.
const FIRST_READ: usize = 64 * 1024;

/// Length of the wrapped material of v2: 8-byte protocol prefix + 32-byte
/// content key.
pub(crate) const WRAPPED_MATERIAL_LEN: usize = 8 + AES256_KEY_LEN;

fn meta(msg: impl Into<String>) -> Error {
    Error::CseMetadata(msg.into())
}

/// Checks that `kek` is the one `WrappedContentKey.KeyId` names and uses
/// the metadata's `Algorithm`.
pub(crate) fn check_kek(
    metadata: &EncryptionData,
    kek: &dyn KeyEncryptionKey,
) -> crate::Result<()> {
    if kek.key_id() != metadata.key_id() {
        return Err(meta(format!(
            "`WrappedContentKey.KeyId` is `{}`, but the key-encryption key is `{}`",
            crate::untrusted::escape(metadata.key_id()),
            kek.key_id()
        )));
    }
    if kek.algorithm() != metadata.algorithm() {
        return Err(meta(format!(
            "`WrappedContentKey.Algorithm` is {}, but key `{}` uses {}",
            metadata.algorithm(),
            kek.key_id(),
            kek.algorithm()
        )));
    }
    Ok(())
}

/// Unwraps the 40-byte material of `metadata` with `kek` and checks it:
/// the KEK must be the one `KeyId` names, use the metadata's `Algorithm`,
/// and the material must start with the metadata's padded `Protocol`.
/// Protocol 1.0 is refused (its opt-in read is in `v1.rs`).
pub(crate) async fn unwrap_material(
    metadata: &EncryptionData,
    kek: &dyn KeyEncryptionKey,
) -> crate::Result<KeyMaterial> {
    match metadata.protocol() {
        Protocol::V2_0 | Protocol::V2_1 => {}
        Protocol::V1_0 => {
            return Err(meta(
                "protocol 1.0 (AES-CBC without authentication, CVE-2022-30187) is refused; \
                 to migrate such a blob, read it once with the insecure opt-in \
                 `InsecureCseV1Decryptor` (`InsecureV1::AcceptUnauthenticatedCbc`; CLI: \
                 `--insecure-allow-v1`) and re-encrypt it with protocol 2.x",
            ))
        }
    }
    check_kek(metadata, kek)?;
    let material = kek.unwrap_key_material(metadata.encrypted_key()).await?;
    let bytes = material.expose_secret_bytes();
    if bytes.len() != WRAPPED_MATERIAL_LEN
        || !crate::util::ct_eq(&bytes[..8], &metadata.protocol().wrapped_prefix())
    {
        return Err(meta(
            "encryption metadata has been tampered: the protocol version inside the wrapped key \
             differs from `EncryptionAgent.Protocol`",
        ));
    }
    Ok(material)
}

/// The unwrapped content key of one blob, ready to decrypt it whole, by
/// streaming, or by ranges.
pub struct CseDecryptor {
    /// Boxed inside the `Arc` so the key object is dropped (and wiped by
    /// its provider) where it lives: `Arc::from(Box<dyn _>)` would move its
    /// bytes into the `Arc` and free the box without running its drop.
    key: Arc<Box<dyn Aes256GcmKey>>,
    region_data_len: u64,
    key_id: String,
}

impl std::fmt::Debug for CseDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseDecryptor")
            .field("key_id", &self.key_id)
            .field("region_data_len", &self.region_data_len)
            .finish_non_exhaustive()
    }
}

impl CseDecryptor {
    /// Resolves `WrappedContentKey.KeyId` through `resolver` (an
    /// allow-list), unwraps and checks the content key.
    ///
    /// Cost: one `unwrap_key_material` call. Errors:
    /// [`Error::UnknownKek`] (the resolver does not know the id),
    /// [`Error::CseMetadata`] (wrong `KeyId` or `Algorithm`, protocol
    /// prefix mismatch, protocol 1.0), [`Error::UnwrapFailed`].
    ///
    /// Protocol 1.0 is always refused here; its insecure, opt-in read is
    /// [`InsecureCseV1Decryptor`](super::InsecureCseV1Decryptor).
    pub async fn new(
        metadata: &EncryptionData,
        resolver: &dyn KeyResolver,
    ) -> crate::Result<CseDecryptor> {
        Self::with_provider(metadata, resolver, CryptoProvider::default_provider()).await
    }

    /// [`CseDecryptor::new`] with a chosen crypto provider.
    pub async fn with_provider(
        metadata: &EncryptionData,
        resolver: &dyn KeyResolver,
        provider: &'static CryptoProvider,
    ) -> crate::Result<CseDecryptor> {
        let kek = resolver
            .resolve(metadata.key_id())
            .ok_or_else(|| Error::unknown_kek([metadata.key_id()]))?;
        Self::with_kek(metadata, kek.as_ref(), provider).await
    }

    /// Unwraps with a given KEK, which must be the one `KeyId` names.
    pub async fn with_kek(
        metadata: &EncryptionData,
        kek: &dyn KeyEncryptionKey,
        provider: &'static CryptoProvider,
    ) -> crate::Result<CseDecryptor> {
        let material = unwrap_material(metadata, kek).await?;
        let mut cek = Zeroizing::new([0u8; AES256_KEY_LEN]);
        cek.copy_from_slice(&material.expose_secret_bytes()[8..]);
        Ok(CseDecryptor {
            key: Arc::new(provider.aead.aes256_gcm(&cek)),
            region_data_len: metadata.region_data_len(),
            key_id: metadata.key_id().to_owned(),
        })
    }

    /// `DataLength` of the blob's regions.
    pub fn region_data_len(&self) -> u64 {
        self.region_data_len
    }

    /// A streaming reader of the whole blob's plaintext. Memory: one region
    /// (`DataLength` + 28 bytes), whatever the blob's size.
    pub fn reader<R: Read>(&self, inner: R) -> CseDecryptingReader<R> {
        CseDecryptingReader::new(self, inner, 0, None, 0, None)
    }

    /// Decrypts a whole blob held in memory. Its length is checked first
    /// (see [`plaintext_len`](super::plaintext_len)).
    pub fn decrypt(&self, ciphertext: &[u8]) -> crate::Result<Vec<u8>> {
        let len = range::plaintext_len(ciphertext.len() as u64, self.region_data_len)?;
        read_all(self.reader(ciphertext), len)
    }

    /// Plans a ranged read: see [`CseRangePlan::new`].
    pub fn plan_range(
        &self,
        range: std::ops::Range<u64>,
        ciphertext_len: u64,
    ) -> crate::Result<CseRangePlan> {
        CseRangePlan::new(range, ciphertext_len, self.region_data_len)
    }

    /// A streaming reader of `plan.plaintext()`, given a reader of exactly
    /// the ciphertext bytes `plan.ciphertext()`.
    pub fn range_reader<R: Read>(&self, plan: &CseRangePlan, inner: R) -> CseDecryptingReader<R> {
        CseDecryptingReader::new(
            self,
            inner,
            plan.first_region(),
            Some(plan.ciphertext().end - plan.ciphertext().start),
            plan.skip(),
            Some(plan.len()),
        )
    }

    /// Decrypts `plan.plaintext()` from the fetched bytes
    /// `plan.ciphertext()`.
    ///
    /// Errors: [`Error::CseRegion`] for a region that fails, and for
    /// fetched bytes of another length than the plan's range (storage
    /// returned less, or more, than was asked: the blob is not the length
    /// the plan was made for), as the envelope's
    /// [`RangeDecryptor`](crate::RangeDecryptor) reports it.
    pub fn decrypt_range(&self, plan: &CseRangePlan, fetched: &[u8]) -> crate::Result<Vec<u8>> {
        let ct = plan.ciphertext();
        let got = fetched.len() as u64;
        if got != ct.end - ct.start {
            // The region where the fetched bytes stop short of, or run
            // past, the plan.
            let region_len = self.region_data_len + REGION_OVERHEAD;
            return Err(Error::CseRegion {
                region: plan.first_region() + got.min(ct.end - ct.start) / region_len,
                problem: "the fetched ciphertext is not as long as the planned range: the blob is truncated or has another length",
            });
        }
        read_all(self.range_reader(plan, fetched), plan.len())
    }
}

/// Reads `r` to its end into one allocation of `len` bytes. On failure the
/// regions already verified are wiped before the buffer is dropped: no
/// plaintext of a failed decryption stays in freed memory.
fn read_all<R: Read>(mut r: CseDecryptingReader<R>, len: u64) -> crate::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    if let Err(e) = r.read_to_end(&mut out) {
        out.fill(0);
        std::hint::black_box(&mut out);
        return Err(Error::from(e));
    }
    Ok(out)
}

/// Decrypts regions as they are read, verifying each region's tag and
/// nonce before releasing any of its plaintext. Memory: one region at
/// most (`DataLength` + 28 bytes), and no more than the blob holds.
///
/// Errors surface as `io::Error`s wrapping the crate's [`Error`] (`?` into
/// a [`crate::Result`] gives it back). After an error every later read fails
/// ([`Error::ApiMisuse`], "read after a decryption error") and the region
/// buffer has been wiped.
pub struct CseDecryptingReader<R> {
    inner: R,
    key: Arc<Box<dyn Aes256GcmKey>>,
    region_len: usize,
    /// One region; it holds plaintext, so it is wiped on drop.
    buf: SecretBuf,
    pos: usize,
    end: usize,
    index: u64,
    validator: NonceValidator,
    expected_ct: Option<u64>,
    read_ct: u64,
    skip: u64,
    remaining: Option<u64>,
    done: bool,
    failed: bool,
}

impl<R> std::fmt::Debug for CseDecryptingReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CseDecryptingReader")
            .field("region", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R: Read> CseDecryptingReader<R> {
    fn new(
        d: &CseDecryptor,
        inner: R,
        first_region: u64,
        expected_ct: Option<u64>,
        skip: u64,
        remaining: Option<u64>,
    ) -> Self {
        let region_len = (d.region_data_len + REGION_OVERHEAD) as usize;
        CseDecryptingReader {
            inner,
            key: Arc::clone(&d.key),
            region_len,
            buf: SecretBuf::with_capacity(0),
            pos: 0,
            end: 0,
            index: first_region,
            validator: NonceValidator::new(),
            expected_ct,
            read_ct: 0,
            skip,
            remaining,
            done: remaining == Some(0),
            failed: false,
        }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn truncated(&self) -> Error {
        Error::CseRegion {
            region: self.index,
            problem: "the blob's length is not one a writer produces: it is truncated or has trailing bytes",
        }
    }

    /// Reads and opens the next region into `buf[pos..end]`.
    ///
    /// The buffer grows with the ciphertext actually read, up to one
    /// region: `DataLength` is untrusted metadata, and a short blob whose
    /// metadata claims 64 MiB regions costs what the blob holds, not
    /// 64 MiB. (It grows only when full of the new region's ciphertext, so
    /// the memory it leaves holds no plaintext.)
    fn next_region(&mut self) -> crate::Result<()> {
        let mut n = 0;
        while n < self.region_len {
            if n == self.buf.len() {
                let grown = (2 * n).max(FIRST_READ).min(self.region_len);
                self.buf.resize(grown, 0);
            }
            match self.inner.read(&mut self.buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e)),
            }
        }
        self.read_ct += n as u64;
        let overhead = REGION_OVERHEAD as usize;
        if n == 0 {
            // End of input: after a full region, or an empty blob.
            if let Some(exp) = self.expected_ct {
                if self.read_ct != exp {
                    return Err(self.truncated());
                }
            }
            self.done = true;
            return Ok(());
        }
        // A region without data is accepted only as the whole blob (an
        // empty blob written as one region); no writer puts one after
        // others.
        if n < overhead || (n == overhead && !(self.index == 0 && self.read_ct == n as u64)) {
            return Err(self.truncated());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&self.buf[..NONCE_LEN]);
        self.validator.check(self.index, &nonce)?;
        let (body, tag) = self.buf[..n].split_at_mut(n - TAG_LEN);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("tag length");
        self.key
            .open_in_place(&nonce, &[], &mut body[NONCE_LEN..], tag)
            .map_err(|_| Error::CseRegion {
                region: self.index,
                problem:
                    "authentication failed: the region was modified, or the content key is wrong",
            })?;
        self.pos = NONCE_LEN;
        self.end = n - TAG_LEN;
        self.index += 1;
        if n < self.region_len {
            // A short region is the last one: nothing may follow it.
            let mut probe = [0u8; 1];
            loop {
                match self.inner.read(&mut probe) {
                    Ok(0) => break,
                    Ok(_) => return Err(self.truncated()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::from(e)),
                }
            }
            if let Some(exp) = self.expected_ct {
                if self.read_ct != exp {
                    return Err(self.truncated());
                }
            }
            self.done = true;
        }
        if self.skip > 0 {
            let s = (self.skip as usize).min(self.end - self.pos);
            self.pos += s;
            self.skip -= s as u64;
        }
        Ok(())
    }
}

impl<R: Read> Read for CseDecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(Error::ApiMisuse("read after a decryption error").into_io());
        }
        loop {
            if self.pos < self.end {
                let mut n = out.len().min(self.end - self.pos);
                if let Some(rem) = self.remaining {
                    n = n.min(usize::try_from(rem).unwrap_or(usize::MAX));
                }
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                if let Some(rem) = self.remaining.as_mut() {
                    *rem -= n as u64;
                    if *rem == 0 {
                        self.done = true;
                        self.pos = self.end;
                    }
                }
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_region() {
                self.failed = true;
                self.buf.fill(0);
                self.pos = 0;
                self.end = 0;
                return Err(e.into_io());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;
    use crate::azure_cse::{encrypt, CseEncryptOptions, MAX_REGION_DATA_LEN};
    use crate::kek::{LocalKek, StaticResolver, WrapAlgorithm};

    /// `DataLength` is untrusted metadata: a blob of a few hundred bytes
    /// whose metadata claims the largest region costs a buffer of what the
    /// blob holds, not one of 64 MiB (which every reader of such a blob
    /// allocated and zeroed).
    #[test]
    fn a_huge_claimed_region_costs_what_the_blob_holds() {
        let kek: Arc<dyn KeyEncryptionKey> =
            Arc::new(LocalKek::from_aes_key("k", WrapAlgorithm::A256Kw, &[1; 32]).unwrap());
        let options = CseEncryptOptions::v2_1(16).unwrap();
        let (m, body) = block_on(encrypt(kek.as_ref(), &options, &[7u8; 300])).unwrap();
        let json = m.to_json().replacen(
            "\"DataLength\":16",
            &format!("\"DataLength\":{MAX_REGION_DATA_LEN}"),
            1,
        );
        assert_ne!(json, m.to_json());
        let claimed = EncryptionData::parse(&json).unwrap();
        let d = block_on(CseDecryptor::new(
            &claimed,
            &StaticResolver::new().with(kek),
        ))
        .unwrap();
        let mut r = d.reader(&body[..]);
        let e: Error = r.read(&mut [0u8; 100]).unwrap_err().into();
        assert!(matches!(e, Error::CseRegion { region: 0, .. }), "{e:?}");
        assert!(
            r.buf.len() <= FIRST_READ,
            "a buffer of {} bytes",
            r.buf.len()
        );
    }
}
