//! The streaming AEAD layer: the chunk engine and its `Read`/`Write`
//! adapters (and, with the `tokio` feature, `AsyncRead`/`AsyncWrite`
//! ones), the parallel engine, plus body geometry for random access.

#[cfg(feature = "tokio")]
mod async_io;
pub(crate) mod chunk;
pub(crate) mod codec;
pub mod layout;
pub(crate) mod parallel;
#[cfg(any(unix, windows))]
pub(crate) mod positional;
#[cfg(any(test, fuzzing))]
pub(crate) mod raw;
mod reader;
mod threads;
mod writer;

#[cfg(feature = "tokio")]
pub use async_io::{AsyncDecryptingReader, AsyncEncryptingWriter};
pub use reader::PARALLEL_READ_MIN;
pub use threads::Threads;

pub use chunk::{
    BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE, COMMITMENT_LEN, MAX_CHUNKS, SALT_LEN, TAG_LEN,
};
pub use layout::RangePlan;
pub use reader::DecryptingReader;
pub use writer::EncryptingWriter;

#[cfg(test)]
mod wycheproof_chunked;
