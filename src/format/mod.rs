//! The envelope wire format, v1 (`FORMAT.md`): header codec, suites and
//! profiles. Pure data and parsing; the only I/O is
//! [`Header::read_from`] (and its async twin), a thin driver of the same
//! parser.

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
