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
//! The examples below use a local KEK to stay short; in a service the KEK
//! is an [`EncryptionScope`](crate::scope::EncryptionScope)'s
//! [`kek`](crate::scope::EncryptionScope::kek) and the resolver its
//! [`resolver`](crate::scope::EncryptionScope::resolver) (see the crate's
//! front page).
//!
//! # Streaming
//!
//! [`Encryptor::wrap_output`] is a `Write` whose [`finish`](crate::EncryptingWriter::finish)
//! is mandatory: a writer dropped without it leaves a body that fails to
//! decrypt as truncated. [`Decryptor::decrypt`] is a `Read` that releases
//! each chunk only after its tag verified, and the end of the object only
//! after the final chunk did; `?` on its reads gives back the crate's
//! error, so tampering is [`Error::ChunkAuthentication`](crate::Error::ChunkAuthentication),
//! never an [`Error::Io`](crate::Error::Io).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//! use cmk_envelope::{Decryptor, Encryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver, WrapAlgorithm};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cmk_envelope::Result<()> {
//! let kek: Arc<dyn KeyEncryptionKey> =
//!     Arc::new(LocalKek::generate(WrapAlgorithm::A256Kw, Some("cmk-1".into()), None)?);
//! let context = b"models/ft-0042.bin";
//!
//! // One KEK call, then stream.
//! let enc = Encryptor::new(&[kek.clone()], Profile::Blob, context).await?;
//! let mut w = enc.wrap_output(Vec::new())?;
//! w.write_all(b"model weights ...")?;
//! let envelope = w.finish()?;
//!
//! // The resolver is the allow-list of KEKs a header may name.
//! let resolver = StaticResolver::new().with(kek);
//! let mut src = &envelope[..];
//! let header = Header::read_from(&mut src)?;
//! let mut r = Decryptor::new(&header, &resolver, Profile::Blob, context).await?.decrypt(src)?;
//! let mut plaintext = Vec::new();
//! r.read_to_end(&mut plaintext)?;
//! assert_eq!(plaintext, b"model weights ...");
//! # Ok(())
//! # }
//! ```
//!
//! # Random access
//!
//! Over anything `Read + Seek` (a file, a cached blob), the reader of
//! [`Decryptor::decrypt`] seeks and [`read_at`](crate::DecryptingReader::read_at)s,
//! opening only the 16 KiB chunks a read covers:
//!
//! ```
//! # use std::io::Cursor;
//! # use std::sync::Arc;
//! # use cmk_envelope::*;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cmk_envelope::Result<()> {
//! # let kek: Arc<dyn KeyEncryptionKey> = Arc::new(LocalKek::generate(WrapAlgorithm::A256Kw, None, None)?);
//! # let resolver = StaticResolver::new().with(kek.clone());
//! let data = vec![7u8; 1 << 20];
//! let envelope = seal(&[kek], Profile::Index, b"idx/seg_3.pos", &data).await?;
//!
//! let mut src = Cursor::new(&envelope);
//! let header = Header::read_from(&mut src)?;
//! let mut r = Decryptor::new(&header, &resolver, Profile::Index, b"idx/seg_3.pos").await?.decrypt(src)?;
//! let mut buf = [0u8; 4096];
//! assert_eq!(r.read_at(700_000, &mut buf)?, 4096); // opens one chunk
//! # Ok(())
//! # }
//! ```
//!
//! # Ranged reads from object storage
//!
//! A [`RangePlan`](crate::RangePlan) maps a plaintext range to the exact
//! body bytes to fetch; [`Decryptor::ranges`] checks the key commitment
//! against the body's first 56 bytes (fetched once per object), and the
//! [`RangeDecryptor`] it returns decrypts what each ranged GET brought back.
//! In the **detached form** ([`Encryptor::detached`]) the header is stored
//! apart from the body (blob metadata, a document property) and read back
//! with [`Header::parse`](crate::Header::parse):
//!
//! ```
//! # use std::sync::Arc;
//! # use cmk_envelope::*;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cmk_envelope::Result<()> {
//! # let kek: Arc<dyn KeyEncryptionKey> = Arc::new(LocalKek::generate(WrapAlgorithm::A256Kw, None, None)?);
//! # let resolver = StaticResolver::new().with(kek.clone());
//! let data = vec![7u8; 100_000];
//! let enc = Encryptor::new(&[kek], Profile::Blob, b"container/blob").await?.detached();
//! let metadata = enc.header().to_bytes(); // stored as the blob's metadata
//! let body = enc.seal(&data)?; // stored as the blob
//!
//! let header = Header::parse(&metadata)?;
//! let dec = Decryptor::new(&header, &resolver, Profile::Blob, b"container/blob").await?;
//! let p = RangePlan::PREFIX;
//! let ranges = dec.ranges(&body[p.start as usize..p.end as usize])?;
//!
//! let plan = RangePlan::new(20_000..30_000, body.len() as u64)?;
//! let c = plan.ciphertext();
//! let mut fetched = body[c.start as usize..c.end as usize].to_vec(); // one ranged GET
//! assert_eq!(ranges.decrypt_range(&plan, &mut fetched)?, &data[20_000..30_000]);
//! # Ok(())
//! # }
//! ```
//!
//! # No escape hatch
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
