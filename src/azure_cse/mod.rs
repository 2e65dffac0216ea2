//! Azure Storage client-side encryption (CSE) v2.0 / v2.1 blobs
//! (feature `azure-cse`): read blobs written by the official .NET, Java
//! and Python SDKs, and write blobs they read.
//!
//! * **Read** a blob whole ([`decrypt`]), streamed with one region of
//!   memory ([`CseDecryptor::reader`]), or by plaintext range
//!   ([`CseDecryptor::plan_range`] gives the region-aligned ciphertext
//!   range to fetch, [`CseDecryptor::decrypt_range`] opens it). The KEK is
//!   found through a [`KeyResolver`] allow-list by the metadata's `KeyId`.
//! * **Write** protocol 2.0 ([`CseEncryptOptions::v2_0`], 4 MiB regions)
//!   or 2.1 with a chosen region size ([`CseEncryptOptions::v2_1`]), with
//!   the Python SDK's nonces, which every SDK reads ([`encrypt`],
//!   [`CseEncryptor::writer`]).
//! * **Rotate** the KEK by rewriting the metadata only
//!   ([`rewrap_metadata`]).
//!
//! Any of this crate's KEKs wraps the content key — a local key, a Key
//! Vault or Managed HSM key, a PKCS#11 key, a scope key — with `A256KW`,
//! `RSA-OAEP` or `RSA-OAEP-256`. With feature `cli`, `cmk-envelope
//! azure-cse encrypt | decrypt` does the same from the command line.
//!
//! # The format
//!
//! **Metadata.** The blob metadata key `encryptiondata` holds a JSON object
//! (see [`EncryptionData`] for the parsing rules):
//!
//! ```json
//! {"WrappedContentKey": {"KeyId": "…", "EncryptedKey": "<base64>", "Algorithm": "A256KW"},
//!  "EncryptionAgent": {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"},
//!  "EncryptedRegionInfo": {"DataLength": 4194304, "NonceLength": 12},
//!  "KeyWrappingMetadata": {"EncryptionLibrary": "…"},
//!  "EncryptionMode": "FullBlob"}
//! ```
//!
//! **The wrapped key.** The KEK wraps 40 bytes: `UTF-8(Protocol)`
//! zero-padded to 8 bytes, then the 32-byte content key (CEK). After the
//! unwrap the first 8 bytes must equal the metadata's padded `Protocol`,
//! which binds the protocol version to the key (a downgrade of the
//! metadata to 1.0 cannot reuse the key). `Algorithm` is `A256KW`,
//! `RSA-OAEP` or `RSA-OAEP-256`; this crate's KEKs wrap the 40 bytes
//! through [`crate::KeyEncryptionKey::wrap_key_material`].
//!
//! **The body.** Regions `nonce(12) ‖ AES-256-GCM(CEK, nonce, data, no
//! AAD) ‖ tag(16)`, each holding `DataLength` bytes of data (4 MiB in 2.0,
//! chosen by the writer in 2.1) except the last, which is shorter. An
//! empty blob has an empty body.
//!
//! **Nonces.** The SDKs number regions differently: Python writes the
//! region index as a 12-byte big-endian integer, Java as 8 big-endian bytes
//! followed by 4 zero bytes, .NET as 4 zero bytes followed by `index + 1`
//! as a little-endian 64-bit integer ([`NonceEncoding`]). A blob is read
//! only if **all** its regions follow **one** of these encodings at their
//! index (like the Python SDK 12.31): this is what stops regions from being
//! reordered, duplicated or dropped from the middle. This crate writes the
//! Python encoding, which every SDK reads.
//!
//! # Security notes
//!
//! * **Regions are not bound to the blob or to its length.** There is no
//!   AAD and no final-region flag. Within one blob the nonce rule pins
//!   every region to its index, but a blob **truncated at a region
//!   boundary** still decrypts, to a prefix of the plaintext, and nothing in
//!   the metadata records the plaintext length to notice it. This crate
//!   checks what can be checked (every region full but the last; the last
//!   non-empty; no trailing bytes; the fetched length of a range), and
//!   cannot do more. This crate's own envelope format authenticates the end
//!   of the object (a final-chunk flag) and commits to its key and
//!   context; prefer it for new data.
//! * Metadata is not authenticated either, except for the protocol prefix
//!   inside the wrapped key. A changed `DataLength` or swapped wrapped key
//!   makes region authentication fail; nothing is released.
//! * Each region's tag is verified before any of its plaintext is
//!   released; a failed reader zeroes its buffer and refuses further reads.
//! * **Protocol 1.0** (AES-256-CBC with PKCS#7 padding over the whole
//!   blob, **no authentication**, CVE-2022-30187) is **never written**:
//!   there is no API for it. [`CseDecryptor`] and [`decrypt`] refuse it
//!   with [`Error::CseMetadata`](crate::Error::CseMetadata) naming the CVE
//!   and the opt-in. Reading it is possible only through
//!   [`InsecureCseV1Decryptor`] / [`decrypt_insecure_v1`], which require the
//!   value [`InsecureV1::AcceptUnauthenticatedCbc`]: plaintext is released
//!   without any integrity check (bit-flipping, block splicing), and
//!   success or failure is a padding oracle to whoever can submit blobs.
//!   Use it only to migrate (read each blob once, re-encrypt with 2.x or
//!   this crate's envelope format). 1.0 format: the KEK wraps the bare
//!   32-byte CEK (no protocol prefix; a 40-byte 2.x key is refused, so 2.x
//!   metadata cannot be downgraded to reach CBC), `ContentEncryptionIV`
//!   holds the IV, `EncryptionAlgorithm` is `AES_CBC_256`. Whole blobs and
//!   a streaming reader only; no ranges; block blobs only (page blobs are
//!   not padded).
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(kek: std::sync::Arc<dyn cmk_envelope::KeyEncryptionKey>) -> cmk_envelope::Result<()> {
//! use cmk_envelope::azure_cse::{self, CseEncryptOptions, EncryptionData};
//! use cmk_envelope::StaticResolver;
//!
//! let (metadata, body) = azure_cse::encrypt(kek.as_ref(), &CseEncryptOptions::v2_0(), b"hello").await?;
//! let json = metadata.to_json(); // store as the blob's `encryptiondata`
//!
//! let resolver = StaticResolver::new().with(kek);
//! let back = azure_cse::decrypt(&EncryptionData::parse(&json)?, &resolver, &body).await?;
//! assert_eq!(back, b"hello");
//! # Ok(()) }
//! ```

mod decrypt;
mod encrypt;
mod metadata;
mod nonce;
mod range;
mod rotate;
mod v1;

pub use decrypt::{CseDecryptingReader, CseDecryptor};
pub use encrypt::{CseEncryptOptions, CseEncryptingWriter, CseEncryptor};
pub use metadata::{
    EncryptionData, Protocol, DEFAULT_REGION_DATA_LEN, MAX_METADATA_LEN, MAX_REGION_DATA_LEN,
    MIN_REGION_DATA_LEN,
};
pub use nonce::NonceEncoding;
pub use range::{ciphertext_len, plaintext_len, CseRangePlan, REGION_OVERHEAD};
pub use rotate::rewrap_metadata;
pub use v1::{decrypt_insecure_v1, InsecureCseV1Decryptor, InsecureCseV1Reader, InsecureV1};

use crate::kek::{KeyEncryptionKey, KeyResolver};

/// The blob metadata key that holds the [`EncryptionData`] JSON.
pub const METADATA_KEY: &str = "encryptiondata";

/// Encrypts a blob held in memory; returns the metadata and the body.
///
/// Cost: one wrap, then one pass over the data.
pub async fn encrypt(
    kek: &dyn KeyEncryptionKey,
    options: &CseEncryptOptions,
    plaintext: &[u8],
) -> crate::Result<(EncryptionData, Vec<u8>)> {
    let enc = CseEncryptor::new(kek, options).await?;
    let metadata = enc.metadata().clone();
    Ok((metadata, enc.encrypt(plaintext)?))
}

/// Decrypts a blob held in memory.
///
/// Cost: one unwrap, then one pass over the data.
pub async fn decrypt(
    metadata: &EncryptionData,
    resolver: &dyn KeyResolver,
    ciphertext: &[u8],
) -> crate::Result<Vec<u8>> {
    CseDecryptor::new(metadata, resolver)
        .await?
        .decrypt(ciphertext)
}
