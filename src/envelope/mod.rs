//! Envelopes: the header plus the streaming body, in the embedded or the
//! detached form, with one-shot helpers for small objects.

mod decryptor;
mod encryptor;
mod rewrap;

use std::io::Read;
use std::sync::Arc;

pub use decryptor::{BodyDecryptor, Decryptor};
pub use encryptor::Encryptor;
pub use rewrap::{rewrap, rewrap_batch};

use crate::error::Error;
use crate::format::{Header, Profile};
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::stream::DecryptingReader;

/// Reads one header from the start of `r` (the embedded form), leaving `r`
/// at the start of the body. Reads exactly `header_len` bytes; the header
/// is validated before any KEK could be called.
pub fn read_header<R: Read>(r: &mut R) -> crate::Result<Header> {
    let mut prefix = [0u8; 11];
    r.read_exact(&mut prefix).map_err(eof_is_malformed)?;
    let len = Header::peek_len(&prefix)?;
    let mut bytes = vec![0u8; len];
    bytes[..11].copy_from_slice(&prefix);
    r.read_exact(&mut bytes[11..]).map_err(eof_is_malformed)?;
    Header::parse(&bytes)
}

fn eof_is_malformed(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::MalformedHeader("input ends inside the header")
    } else {
        Error::Io(e)
    }
}

/// Opens an embedded envelope from a stream: reads the header, unwraps the
/// data key through `resolver`, checks the commitment, and returns the
/// plaintext reader.
pub async fn open_reader<R: Read>(
    mut r: R,
    resolver: &dyn KeyResolver,
    profile: Profile,
    app_context: &[u8],
) -> crate::Result<DecryptingReader<R>> {
    let header = read_header(&mut r)?;
    Decryptor::new(&header, resolver, profile, app_context)
        .await?
        .reader(r)
}

/// Encrypts a small object in memory into an embedded envelope.
///
/// Cost: one `wrap_key` per KEK, then a single pass over the data.
pub async fn seal(
    keks: &[Arc<dyn KeyEncryptionKey>],
    profile: Profile,
    app_context: &[u8],
    plaintext: &[u8],
) -> crate::Result<Vec<u8>> {
    Encryptor::new(keks, profile, app_context)
        .await?
        .seal(plaintext)
}

/// Decrypts an embedded envelope held in memory.
///
/// Cost: one `unwrap_key`, then a single pass over the data.
pub async fn open(
    resolver: &dyn KeyResolver,
    profile: Profile,
    app_context: &[u8],
    envelope: &[u8],
) -> crate::Result<Vec<u8>> {
    let (header, used) = Header::parse_prefix(envelope)?;
    Decryptor::new(&header, resolver, profile, app_context)
        .await?
        .open(&envelope[used..])
}
