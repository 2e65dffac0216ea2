//! Envelopes: the header plus the streaming body, in the embedded or the
//! detached form.
//!
//! One way to do each job:
//!
//! * a small object in memory, embedded form, one thread: [`seal`] and
//!   [`open`];
//! * anything else: [`Encryptor`] and [`Decryptor`], whose options
//!   (detached form, threads, provider) are set once and whose terminal
//!   operations cover slices, `Write`/`Read` adapters (sync and tokio),
//!   stream-to-stream copies, files and ranged reads ([`RangeDecryptor`]);
//! * a new set of KEKs for existing objects, bodies untouched: [`rewrap`]
//!   and [`rewrap_batch`].
//!
//! There is no other way in. The entry points of the fuzz targets exist
//! only in builds with `--cfg fuzzing`, which no normal build (and so no
//! dependent crate) has; no function anywhere lets a caller choose a
//! nonce, a salt or a derived key:
//!
//! ```compile_fail,E0433
//! cmk_envelope::fuzzing::open(b"any bytes");
//! ```
//!
//! ```compile_fail,E0433
//! let kek = cmk_envelope::__private::fuzz_kek();
//! ```

mod decryptor;
mod encryptor;
mod ranges;
mod rewrap;

use std::sync::Arc;

pub use decryptor::Decryptor;
pub use encryptor::Encryptor;
pub use ranges::RangeDecryptor;
pub use rewrap::{rewrap, rewrap_batch};

use crate::format::{Header, Profile};
use crate::kek::{KeyEncryptionKey, KeyResolver};

/// Encrypts a small object in memory into an embedded envelope (header,
/// then body), on the calling thread: [`Encryptor::new`] then
/// [`Encryptor::seal`].
///
/// Cost: one `wrap_key` per KEK, then one allocation of the exact output
/// size and a single pass over the data.
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

/// Decrypts an embedded envelope held in memory, on the calling thread:
/// [`Header::parse_prefix`], [`Decryptor::new`], then [`Decryptor::open`].
/// Nothing is returned unless every chunk verified.
///
/// Cost: one `unwrap_key`, then one allocation of the plaintext size and a
/// single pass over the data.
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

#[cfg(test)]
mod same_bytes;
