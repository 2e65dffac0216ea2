//! Streaming upload: chunks sealed into blocks, staged while reading goes
//! on, then committed together with the header metadata in one request.

use std::collections::HashMap;
use std::io::Write as _;
use std::num::NonZero;
use std::sync::{Arc, Mutex};

use azure_core::http::{Etag as SdkEtag, RequestContent};
use azure_core::Bytes;
use azure_storage_blob::models::{
    BlobClientUploadOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockLookupList,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use super::client::{encode_header, EncryptedBlobClient, HEADER_METADATA_KEY};
use super::error::{conflict_or_storage, require_etag, storage};
use crate::envelope::Encryptor;
use crate::error::Error;
use crate::provider::CryptoProvider;
use crate::scope::Etag;
use crate::stream::{layout, CHUNK_SIZE, MAX_CHUNKS};

/// When an upload may replace what is stored under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Replace any existing blob.
    Overwrite,
    /// Only create: fail with [`Error::BlobConflict`] if the blob exists
    /// (`If-None-Match: *`).
    IfNotExists,
    /// Only replace the version with this ETag: fail with
    /// [`Error::BlobConflict`] if the blob changed (`If-Match`).
    IfMatch(Etag),
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The ETag of the new blob.
    pub etag: Etag,
    /// Plaintext bytes read and encrypted.
    pub plaintext_len: u64,
    /// Bytes stored (the envelope body).
    pub body_len: u64,
}

/// The plaintext read buffer.
const READ_BUF: usize = 64 * 1024;

/// The most blocks a block blob can commit (Azure Blob Storage's limit).
const MAX_BLOCKS: u64 = 50_000;

/// The blocks of `block_size` bytes an upload of a `body_len`-byte body
/// stages: none when the body fits one *Put Blob*, else one per started
/// block (the last one short).
fn blocks_for(body_len: u64, block_size: usize) -> u64 {
    let size = block_size as u64;
    if body_len <= size {
        0
    } else {
        body_len.div_ceil(size)
    }
}

/// The error of a reader that did not yield the `expected` length (`read`
/// bytes read when it was noticed).
fn length_mismatch(expected: u64, read: u64) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the upload's reader did not yield the {expected} bytes announced ({read} read)"),
    ))
}

/// The error of an upload that would need more than [`MAX_BLOCKS`] blocks.
fn too_many_blocks() -> Error {
    Error::TooLarge(
        "the blob would need more than 50,000 blocks: use a larger block size (EncryptedBlobClientBuilder::block_size)",
    )
}

/// The ciphertext the encrypting writer emits, taken out block by block.
/// (The writer owns its sink, so the sink shares its buffer; the lock is
/// never contended.)
#[derive(Clone)]
struct BlockSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BlockSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("block sink").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Room for a block plus what one `write_all` of a read buffer can add past
/// it before the block is taken (its chunks with their tags).
fn block_capacity(size: usize) -> usize {
    size + 2 * READ_BUF
}

impl BlockSink {
    fn new(block_size: usize) -> Self {
        BlockSink(Arc::new(Mutex::new(Vec::with_capacity(block_capacity(
            block_size,
        )))))
    }

    /// A full block, if more than `size` bytes are buffered (at least one
    /// byte stays, so an object that fits one block is never staged).
    fn take_block(&self, size: usize) -> Option<Bytes> {
        let mut buf = self.0.lock().expect("block sink");
        if buf.len() <= size {
            return None;
        }
        // The next block's buffer gets its full size up front and takes
        // only the small tail: the block itself leaves without a copy, and
        // no buffer regrows (doubling) past its block.
        let mut next = Vec::with_capacity(block_capacity(size));
        next.extend_from_slice(&buf[size..]);
        buf.truncate(size);
        Some(Bytes::from(std::mem::replace(&mut *buf, next)))
    }

    fn take_all(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.lock().expect("block sink")))
    }
}

/// Block ids: a random per-upload prefix (so two concurrent uploads to one
/// name never mix their uncommitted blocks) and the block index; all of one
/// length, as the service requires.
fn block_id(upload_id: &str, index: usize) -> Vec<u8> {
    format!("{upload_id}-{index:08}").into_bytes()
}

/// Waits for one staging task.
async fn join_one(set: &mut JoinSet<crate::Result<()>>) -> crate::Result<()> {
    match set.join_next().await {
        None => Ok(()),
        Some(Ok(r)) => r,
        Some(Err(_)) => Err(Error::Storage(crate::error::StorageError::new(
            crate::error::StorageErrorKind::Other,
            None,
            "stage block: the staging task panicked or was cancelled",
        ))),
    }
}

impl EncryptedBlobClient {
    /// Encrypts everything `reader` yields into blob `name`, subject to
    /// `condition`.
    ///
    /// The body is sealed chunk by chunk into blocks of the configured size,
    /// staged (a few at once) while reading continues; then one *Put Block
    /// List* commits them with the header as metadata. A body that fits one
    /// block is sent with a single *Put Blob* instead. Either way the blob
    /// appears — header and body together — only when that last request
    /// succeeds: an interrupted upload leaves the previous version intact
    /// (its staged blocks are discarded by the service), never a half
    /// object.
    ///
    /// Errors: [`Error::BlobConflict`] when `condition` fails (nothing was
    /// written), [`Error::Storage`] for service failures, [`Error::Io`]
    /// from `reader`.
    ///
    /// A blob commits at most 50,000 blocks: a body that needs more (more
    /// than 50,000 × the block size) fails with [`Error::TooLarge`] before
    /// the block past the limit is staged, and nothing is committed. When
    /// the length is known, [`upload_with_len`](Self::upload_with_len)
    /// refuses it before the first request.
    ///
    /// Cost: one wrap per KEK (none with a cached scope key), one request
    /// per block plus one. Blocks are staged on spawned Tokio tasks: call
    /// this inside a Tokio runtime.
    pub async fn upload<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        reader: R,
        condition: WriteCondition,
    ) -> crate::Result<UploadOutcome> {
        self.upload_inner(name, reader, None, condition).await
    }

    /// [`upload`](Self::upload) of exactly `len` plaintext bytes.
    ///
    /// The length is checked first: an object whose body would need more
    /// than 50,000 blocks (or more than the format's 2^38 chunks) fails
    /// with [`Error::TooLarge`] before any request and before `reader` is
    /// read. A reader that yields another number of bytes fails with an
    /// [`Error::Io`] of kind `InvalidData` before the commit: nothing is
    /// written.
    pub async fn upload_with_len<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        reader: R,
        len: u64,
        condition: WriteCondition,
    ) -> crate::Result<UploadOutcome> {
        if len / CHUNK_SIZE as u64 >= MAX_CHUNKS {
            return Err(Error::TooLarge("more than 2^38 chunks"));
        }
        if blocks_for(layout::body_len(len), self.block_size) > MAX_BLOCKS {
            return Err(too_many_blocks());
        }
        self.upload_inner(name, reader, Some(len), condition).await
    }

    /// The upload; with `expected`, a reader yielding another length fails
    /// before the commit.
    async fn upload_inner<R: AsyncRead + Unpin + Send>(
        &self,
        name: &str,
        mut reader: R,
        expected: Option<u64>,
        condition: WriteCondition,
    ) -> crate::Result<UploadOutcome> {
        let blob = self.blob(name)?;
        let context = self.context(name);
        let keks = self.keys.sealing_keks();
        let encryptor = Encryptor::new(&keks, self.profile, &context).await?;
        let mut metadata = HashMap::new();
        metadata.insert(
            HEADER_METADATA_KEY.to_owned(),
            encode_header(encryptor.header())?,
        );
        let sink = BlockSink::new(self.block_size);
        let mut writer = encryptor.detached().wrap_output(sink.clone())?;

        let block_blob = Arc::new(blob.block_blob_client());
        let mut nonce = [0u8; 12];
        CryptoProvider::default_provider().fill_random(&mut nonce)?;
        let upload_id: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let mut body_len = 0u64;
        // Staging runs on spawned tasks, so blocks upload while the next
        // ones are sealed; dropping the set (on an error) aborts them.
        let mut in_flight = JoinSet::new();
        let stage = |id: Vec<u8>, block: Bytes| {
            let block_blob = block_blob.clone();
            async move {
                let len = block.len() as u64;
                block_blob
                    .stage_block(&id, len, block.into(), None)
                    .await
                    .map(|_| ())
                    .map_err(|e| storage("stage block", e))
            }
        };

        let mut buf = Zeroizing::new(vec![0u8; READ_BUF]);
        loop {
            let n = match reader.read(&mut buf[..]).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            writer.write_all(&buf[..n])?;
            if let Some(len) = expected.filter(|len| writer.plaintext_len() > *len) {
                return Err(length_mismatch(len, writer.plaintext_len()));
            }
            while let Some(block) = sink.take_block(self.block_size) {
                // The block left in the sink always follows this one.
                if ids.len() as u64 + 2 > MAX_BLOCKS {
                    return Err(too_many_blocks());
                }
                body_len += block.len() as u64;
                let id = block_id(&upload_id, ids.len());
                ids.push(id.clone());
                in_flight.spawn(stage(id, block));
                if in_flight.len() >= self.concurrency {
                    join_one(&mut in_flight).await?;
                }
            }
        }
        let plaintext_len = writer.plaintext_len();
        if let Some(len) = expected.filter(|len| plaintext_len != *len) {
            return Err(length_mismatch(len, plaintext_len));
        }
        writer.finish()?;
        let rest = sink.take_all();
        body_len += rest.len() as u64;

        let (if_match, if_none_match) = match condition {
            WriteCondition::Overwrite => (None, None),
            WriteCondition::IfNotExists => (None, Some(SdkEtag::from("*"))),
            WriteCondition::IfMatch(e) => (Some(SdkEtag::from(e.0)), None),
        };
        let conflict = |e, op| conflict_or_storage(name, op, e);

        let etag = if ids.is_empty() {
            let len = rest.len() as u64;
            let options = BlobClientUploadOptions {
                metadata: Some(metadata),
                if_match,
                if_none_match,
                partition_size: NonZero::new(len.max(1)),
                ..Default::default()
            };
            let r = blob
                .upload(rest.into(), Some(options))
                .await
                .map_err(|e| conflict(e, "put blob"))?;
            r.etag.map(|e| e.to_string())
        } else {
            let id = block_id(&upload_id, ids.len());
            ids.push(id.clone());
            in_flight.spawn(stage(id, rest));
            while !in_flight.is_empty() {
                join_one(&mut in_flight).await?;
            }
            let list = BlockLookupList {
                latest: Some(ids),
                ..Default::default()
            };
            let options = BlockBlobClientCommitBlockListOptions {
                metadata: Some(metadata),
                if_match,
                if_none_match,
                ..Default::default()
            };
            let content =
                RequestContent::try_from(list).map_err(|e| storage("encode the block list", e))?;
            let r = block_blob
                .commit_block_list(content, Some(options))
                .await
                .map_err(|e| conflict(e, "put block list"))?;
            r.etag()
                .map_err(|e| storage("read the ETag", e))?
                .map(|e| e.to_string())
        };
        Ok(UploadOutcome {
            etag: require_etag(etag)?,
            plaintext_len,
            body_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_counts_and_the_limit() {
        const B: usize = 64 * 1024;
        assert_eq!(blocks_for(0, B), 0);
        assert_eq!(blocks_for(B as u64, B), 0, "one Put Blob");
        assert_eq!(blocks_for(B as u64 + 1, B), 2);
        assert_eq!(blocks_for(2 * B as u64, B), 2);
        assert_eq!(blocks_for(MAX_BLOCKS * B as u64, B), MAX_BLOCKS);
        assert_eq!(blocks_for(MAX_BLOCKS * B as u64 + 1, B), MAX_BLOCKS + 1);
    }
}
