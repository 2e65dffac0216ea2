//! A bare C2SP chunked-encryption ciphertext (salt ‖ commitment ‖ chunks,
//! no envelope header) opened under a given input key and context: what
//! the published Cobblestone vectors hold, and what the `chunk_open` fuzz
//! target feeds. Decryption only — nothing here seals or picks a nonce —
//! and compiled only into test builds and under `cfg(fuzzing)`.

use std::io::Read;

use super::chunk::{ChunkCipher, BODY_PREFIX_LEN};
use super::{DecryptingReader, Threads};
use crate::error::Error;
use crate::provider::CryptoProvider;

/// A reader of the plaintext of `src` (positioned at the salt) under
/// `key` and `context`, after the commitment check.
pub(crate) fn chunked_reader<R: Read>(
    p: &'static CryptoProvider,
    key: &[u8],
    context: &[u8],
    mut src: R,
) -> crate::Result<DecryptingReader<R>> {
    let mut prefix = [0u8; BODY_PREFIX_LEN];
    src.read_exact(&mut prefix).map_err(|_| Error::Truncated)?;
    let cipher = ChunkCipher::for_decryption(p, key, context, &prefix)?;
    Ok(DecryptingReader::new(src, cipher, Threads::ONE))
}

/// Decrypts `ct` with [`chunked_reader`] in 7,000-byte reads. Returns the
/// plaintext, or the error with the plaintext released before it (the
/// verified prefix).
pub(crate) fn chunked_decrypt(
    p: &'static CryptoProvider,
    key: &[u8],
    context: &[u8],
    ct: &[u8],
) -> Result<Vec<u8>, (Error, Vec<u8>)> {
    let mut r = chunked_reader(p, key, context, ct).map_err(|e| (e, Vec::new()))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 7000];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err((Error::from(e), out)),
        }
    }
}
