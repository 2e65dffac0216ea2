//! Downloads: the whole plaintext as a stream, or byte ranges through one
//! ranged GET each.

use std::fmt;
use std::io;
use std::num::NonZero;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use azure_core::http::headers::HeaderName;
use azure_core::http::{AsyncResponseBody, Etag as SdkEtag};
use azure_core::Bytes;
use azure_storage_blob::models::BlobClientDownloadOptions;
use azure_storage_blob::BlobClient;
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use super::client::{header_from_metadata, EncryptedBlobClient};
use super::error::{conflict_or_storage, not_envelope, require_etag, storage};
use crate::envelope::{Decryptor, RangeDecryptor};
use crate::error::Error;
use crate::format::Header;
use crate::scope::Etag;
use crate::stream::{layout, AsyncDecryptingReader, RangePlan};

/// An [`AsyncRead`] over the SDK's response body stream of blob `name`.
struct BodyReader {
    stream: AsyncResponseBody,
    current: Bytes,
    name: String,
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = buf.remaining().min(self.current.len());
                let piece = self.current.split_to(n);
                buf.put_slice(&piece);
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(bytes))) => self.current = bytes,
                // The ranged GETs after the first are conditional on its
                // ETag: a blob replaced meanwhile fails them (412).
                Poll::Ready(Some(Err(e))) => {
                    let name = &self.name;
                    return Poll::Ready(Err(conflict_or_storage(name, "download", e).into_io()));
                }
            }
        }
    }
}

/// The plaintext of a blob, streamed: an [`AsyncRead`] returned by
/// [`EncryptedBlobClient::download`].
///
/// The key commitment was checked before this was returned. Each chunk's
/// plaintext is released only after its tag verified, and the end of the
/// object is authenticated by its final chunk: what was read is the whole,
/// genuine object only once a read returns end-of-file without an error.
/// Errors come as `io::Error`; `?` into a [`crate::Result`] gives back the
/// crate error ([`Error::ChunkAuthentication`], [`Error::Truncated`],
/// [`Error::Storage`], or [`Error::BlobConflict`] when the blob was
/// replaced while it was being read: nothing of the new version is ever
/// mixed in).
pub struct BlobReader {
    inner: AsyncDecryptingReader<BodyReader>,
    etag: Etag,
    plaintext_len: u64,
}

impl fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobReader")
            .field("etag", &self.etag)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The ETag of the version being read (all of it is read from this
    /// version).
    pub fn etag(&self) -> &Etag {
        &self.etag
    }

    /// The plaintext length the blob's size claims; authenticated once the
    /// reader reached its end.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// One opened blob, for random access: its header was unwrapped and its
/// key commitment checked once, by [`EncryptedBlobClient::open`]; each
/// [`read_range`](Self::read_range) is then **one** ranged GET of exactly
/// the chunks the range needs, conditional on the ETag seen at opening.
pub struct EncryptedBlob {
    blob: BlobClient,
    name: String,
    etag: Etag,
    body_len: u64,
    plaintext_len: u64,
    decryptor: RangeDecryptor,
}

impl fmt::Debug for EncryptedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedBlob")
            .field("name", &self.name)
            .field("etag", &self.etag)
            .field("body_len", &self.body_len)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl EncryptedBlob {
    /// The blob's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ETag of the opened version.
    pub fn etag(&self) -> &Etag {
        &self.etag
    }

    /// The plaintext length the blob's size claims (authenticated by any
    /// read that reaches the final chunk).
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// The stored (body) length.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Decrypts plaintext bytes `range` (clipped to the object's end) with
    /// one ranged GET of the [`RangePlan`] chunks. Every fetched chunk's
    /// tag is verified before anything is returned.
    ///
    /// Errors: [`Error::BlobConflict`] if the blob was replaced since it
    /// was opened (open it again), [`Error::ChunkAuthentication`] for a
    /// tampered chunk; for a blob sealed under an encryption scope,
    /// [`Error::ScopeNotFound`] once the scope was destroyed, or
    /// [`Error::Kek`] once its key could not be renewed past the cache TTL
    /// (see [`KeyLease`](crate::KeyLease)).
    pub async fn read_range(&self, range: Range<u64>) -> crate::Result<Vec<u8>> {
        let plan = RangePlan::new(range, self.body_len)?;
        // Blobs sealed under a scope key: renew its lease here, without
        // blocking; once the scope is destroyed or its CMK revoked, reads
        // of an already opened blob fail within the cache TTL.
        self.decryptor.renew_lease().await?;
        // The response's buffer, taken over without a copy when it is the
        // only reference (it is decrypted in place, then wiped).
        let mut fetched = Vec::from(
            fetch(&self.blob, &self.name, plan.ciphertext(), Some(&self.etag))
                .await?
                .1,
        );
        let out = self.decryptor.decrypt_range(&plan, &mut fetched);
        zeroize::Zeroize::zeroize(&mut fetched);
        out
    }
}

/// One GET of body bytes `range` (a single request: the partition size is
/// the range's length), conditional on `etag`. Returns the response's
/// headers' metadata, ETag and total blob size with the bytes.
async fn fetch(
    blob: &BlobClient,
    name: &str,
    range: Range<u64>,
    etag: Option<&Etag>,
) -> crate::Result<(Fetched, Bytes)> {
    let len = usize::try_from(range.end - range.start)
        .map_err(|_| Error::TooLarge("range too large for memory"))?;
    let options = BlobClientDownloadOptions {
        range: Some(range.clone().into()),
        partition_size: NonZero::new(len),
        parallel: NonZero::new(1),
        if_match: etag.map(|e| SdkEtag::from(e.0.clone())),
        ..Default::default()
    };
    let res = blob
        .download(Some(options))
        .await
        .map_err(|e| conflict_or_storage(name, "ranged download", e))?;
    let total = content_range_total(&res.headers)
        .ok_or_else(|| not_envelope("the ranged download has no Content-Range"))?;
    let fetched = Fetched {
        metadata: res.properties.metadata,
        etag: res.properties.etag.map(|e| e.to_string()),
        total,
    };
    let bytes = res
        .body
        .collect()
        .await
        .map_err(|e| storage("ranged download", e))?;
    if bytes.len() as u64 != (range.end.min(total)).saturating_sub(range.start) {
        return Err(Error::Truncated);
    }
    Ok((fetched, bytes))
}

/// The total size in a `Content-Range: bytes a-b/total` header.
pub(crate) fn content_range_total(headers: &azure_core::http::headers::Headers) -> Option<u64> {
    headers
        .get_optional_str(&HeaderName::from_static("content-range"))
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, t)| t.trim().parse::<u64>().ok())
}

struct Fetched {
    metadata: std::collections::HashMap<String, String>,
    etag: Option<String>,
    total: u64,
}

impl EncryptedBlobClient {
    /// Opens blob `name` as a stream of plaintext.
    ///
    /// One download, split by the SDK into ranged GETs of the client's
    /// block size, [`concurrency`](super::EncryptedBlobClientBuilder::concurrency)
    /// at a time, pinned to the first response's ETag, so header and body
    /// come from one version. The header is read from the first response's
    /// metadata, the data key unwrapped, and the key commitment checked
    /// before this returns.
    ///
    /// Errors: [`Error::Storage`] (not found, permission), the unwrap
    /// errors of [`Decryptor::new`], [`Error::CommitmentMismatch`] when the
    /// header belongs to another blob (or the blob was renamed); while
    /// reading, [`Error::BlobConflict`] when the blob is replaced.
    pub async fn download(&self, name: &str) -> crate::Result<BlobReader> {
        let blob = self.blob(name)?;
        let options = BlobClientDownloadOptions {
            partition_size: NonZero::new(self.block_size),
            parallel: NonZero::new(self.concurrency),
            ..Default::default()
        };
        let res = blob
            .download(Some(options))
            .await
            .map_err(|e| storage("download", e))?;
        let header = header_from_metadata(&res.properties.metadata)?;
        let etag = require_etag(res.properties.etag.as_ref())?;
        // The first response may be a partition: its Content-Range holds
        // the blob's size.
        let body_len = content_range_total(&res.headers)
            .or(res.properties.content_length)
            .ok_or_else(|| not_envelope("the service returned no length"))?;
        let plaintext_len = layout::plaintext_len(body_len)?;
        let decryptor = self.decryptor(name, &header).await?;
        let body = BodyReader {
            stream: res.body,
            current: Bytes::new(),
            name: name.to_owned(),
        };
        let inner = decryptor.decrypt_async(body).await?;
        Ok(BlobReader {
            inner,
            etag,
            plaintext_len,
        })
    }

    /// Opens blob `name` for ranged reads: one ranged GET of the 56-byte
    /// body prefix, whose response also carries the header metadata, the
    /// ETag and the blob's size. The data key is unwrapped and the key
    /// commitment checked here, once.
    pub async fn open(&self, name: &str) -> crate::Result<EncryptedBlob> {
        let blob = self.blob(name)?;
        let (fetched, prefix) = fetch(&blob, name, RangePlan::PREFIX, None).await?;
        let header = header_from_metadata(&fetched.metadata)?;
        let etag = require_etag(fetched.etag)?;
        let plaintext_len = layout::plaintext_len(fetched.total)?;
        let decryptor = self.decryptor(name, &header).await?.ranges(&prefix)?;
        Ok(EncryptedBlob {
            blob,
            name: name.to_owned(),
            etag,
            body_len: fetched.total,
            plaintext_len,
            decryptor,
        })
    }

    /// Unwraps the data key of blob `name` from its `header`: the only key
    /// call of a read, made once the header and the length checked out.
    async fn decryptor(&self, name: &str, header: &Header) -> crate::Result<Decryptor> {
        let resolver = self.keys.resolver();
        Decryptor::new(header, resolver.as_ref(), self.profile, &self.context(name)).await
    }

    /// [`open`](Self::open) then [`EncryptedBlob::read_range`]: two GETs.
    /// Open once and keep the [`EncryptedBlob`] to read many ranges.
    pub async fn download_range(&self, name: &str, range: Range<u64>) -> crate::Result<Vec<u8>> {
        self.open(name).await?.read_range(range).await
    }
}
