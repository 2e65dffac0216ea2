//! The envelope wire format, v1: header codec, suites and profiles. Pure
//! data and parsing; the only I/O is [`Header::read_from`] (and its async
//! twin), a thin driver of the same parser.
//!
//! The format's normative text is the project's `FORMAT.md`, which is
//! fixed: other implementations, written from it alone, interoperate with
//! this one, and any change needs a new version byte. It is restated here.
//! All integers are unsigned big-endian.
//!
//! # Envelope
//!
//! An envelope is `header ‖ body`. The header can also be stored on its own
//! (blob metadata, a document property, an index manifest): the *detached*
//! form. The bytes are the same in both forms.
//!
//! ```text
//! magic       4   "CMKE" (43 4D 4B 45)
//! version     1   0x01
//! suite       1   0x01 = Cobblestone-256
//! profile     1   0x01 blob, 0x02 document, 0x03 index segment
//! header_len  4   total header length, magic .. last wrapped key;
//!                 19 <= header_len <= 65,536
//! key_count   1   1 <= n <= 16
//! key_count × wrapped key:
//!   alg         1   0x01 A256KW (RFC 3394), 0x02 A256KWP (RFC 5649),
//!                   0x03 RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label),
//!                   0x04 RSA-OAEP (SHA-1, MGF1-SHA-1, empty label);
//!                   anything else is rejected
//!   kek_id_len  2   1 <= len <= 2,048
//!   kek_id      kek_id_len   UTF-8 id of the KEK that wrapped this copy
//!   wrapped_len 2   1 <= len <= 1,024
//!   wrapped     wrapped_len  the data key wrapped by that KEK with alg
//! ```
//!
//! Every entry wraps the **same** 32-byte data key (several entries let one
//! envelope be opened with different KEKs, such as a primary key and a
//! disaster-recovery key in another region). A reader rejects, before it
//! calls any KEK, a length out of its range, fields that do not add up to
//! exactly `header_len`, an unknown `alg`, `suite`, `profile` or
//! `version`, and a `kek_id` that is not UTF-8 ([`Header::parse`]).
//!
//! The body is exactly the ciphertext of C2SP chunked encryption v1
//! (<https://c2sp.org/chunked-encryption>) instantiated as Cobblestone-256
//! (HKDF-Expand-SHA-512, `AEAD_AES_256_GCM`, 16 KiB chunks):
//!
//! ```text
//! body    = salt(24) ‖ commitment(32) ‖ chunk ciphertexts
//! input key = the data key (uniformly random, used for one envelope only)
//! context = "cmk-envelope/v1" ‖ 0x00 ‖ suite ‖ profile ‖ app_context
//! ```
//!
//! `app_context` is the object's identity (a container and blob name, a
//! document id, an index and file name), given by the caller on both sides
//! and **never stored**. The public Wycheproof vectors for Cobblestone-256
//! (`c2sp_chunked_encryption_aes_256_gcm_test.json`) test the body layer.
//!
//! # What is authenticated
//!
//! The header is not MACed; its integrity follows from the body. Changing
//! an entry's `alg`, `kek_id` or `wrapped` makes the unwrap fail or yields
//! another key, which fails the key commitment; changing `suite` or
//! `profile` changes the context, which fails it too. So a KEK is rotated
//! by rewriting **only the header** ([`rewrap`](crate::rewrap)): a new
//! wrapped copy of the same data key, the body untouched. A reader
//! releases no plaintext before the commitment and that chunk's tag
//! verified, and resolves a `kek_id` only through the caller's allow-list
//! ([`KeyResolver`](crate::KeyResolver)), never contacting a key because a
//! header names it. The crate's `docs/format-notes.md` lists what this
//! leaves open.
//!
//! # Key identifiers
//!
//! | backend | `kek_id` |
//! |---|---|
//! | Azure Key Vault / Managed HSM | the full **versioned** key URL the service returns as `kid` |
//! | PKCS#11 | an RFC 7512 URI, e.g. `pkcs11:token=kek-test;object=cmk;type=secret-key` |
//! | local key | the `kid` of its JWK (RFC 7517) file |
//! | scope key | `scope:<scope-id>/<version>`; the scope key is itself kept wrapped by the CMK in a scope record |
//!
//! # Limits
//!
//! A header is at most 64 KiB with at most 16 wrapped keys, and a message
//! has fewer than 2^38 chunks, as C2SP requires. A reader may accept lower
//! limits from its caller. Documents keep their header as one property,
//! base64; their field ciphertexts are specified next to the code that
//! writes them (`cmk_envelope::document`, feature `document`).

mod header;
mod read;

pub use header::{
    Header, FIXED_LEN, MAGIC, MAX_HEADER_LEN, MAX_KEK_ID_LEN, MAX_KEYS, MAX_WRAPPED_LEN,
    MIN_HEADER_LEN, VERSION,
};

/// The body's cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// C2SP chunked encryption v1 with HKDF-Expand-SHA-512,
    /// AEAD_AES_256_GCM and 16 KiB chunks (`0x01`).
    Cobblestone256,
}

impl Suite {
    /// The FORMAT.md `suite` byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Suite::Cobblestone256 => 0x01,
        }
    }

    /// Parses the `suite` byte.
    pub fn from_byte(b: u8) -> Option<Suite> {
        match b {
            0x01 => Some(Suite::Cobblestone256),
            _ => None,
        }
    }
}

/// What kind of object an envelope holds. It is part of the key derivation
/// context, so an envelope opened under another profile fails its key
/// commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// A blob: artifacts, fine-tuned models (`0x01`).
    Blob,
    /// A document of a document store (`0x02`).
    Document,
    /// A search-index segment file (`0x03`).
    Index,
}

impl Profile {
    /// The FORMAT.md `profile` byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Profile::Blob => 0x01,
            Profile::Document => 0x02,
            Profile::Index => 0x03,
        }
    }

    /// Parses the `profile` byte.
    pub fn from_byte(b: u8) -> Option<Profile> {
        match b {
            0x01 => Some(Profile::Blob),
            0x02 => Some(Profile::Document),
            0x03 => Some(Profile::Index),
            _ => None,
        }
    }

    /// `"blob"`, `"document"` or `"index"`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Blob => "blob",
            Profile::Document => "document",
            Profile::Index => "index",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blob" => Ok(Profile::Blob),
            "document" => Ok(Profile::Document),
            "index" => Ok(Profile::Index),
            _ => Err(Error::ApiMisuse("profile must be blob, document or index")),
        }
    }
}

use crate::error::Error;
