//! The streaming AEAD layer: the chunk engine and its `Read`/`Write`
//! adapters, plus body geometry for random access.

pub(crate) mod chunk;
pub mod layout;
mod reader;
mod writer;

pub use chunk::{
    BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE, COMMITMENT_LEN, MAX_CHUNKS, SALT_LEN, TAG_LEN,
};
pub use layout::RangePlan;
pub use reader::DecryptingReader;
pub use writer::EncryptingWriter;
