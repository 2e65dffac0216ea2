//! Azure Blob Storage (feature `blob`): encrypted blobs and a shared
//! scope store.
//!
//! * [`EncryptedBlobClient`] stores each object as an envelope in the
//!   detached form — the body is the blob, the header is the metadata entry
//!   `cmkenvelope` (base64) — bound to its container and blob name
//!   ([`blob_app_context`]). Uploads stream and commit atomically;
//!   downloads stream; ranged reads fetch only the chunks they need;
//!   re-wrapping touches only the metadata, under `If-Match`.
//! * [`BlobScopeStore`] keeps [`EncryptionScope`](crate::scope::EncryptionScope)
//!   key records in blobs with ETag compare-and-swap, so instances on many
//!   machines share scopes and CMK rotations.
//!
//! Both authenticate with an Entra ID
//! [`TokenCredential`](azure_core::credentials::TokenCredential) (the
//! `azure` feature's [`CredentialChain`](crate::kek::azure::CredentialChain):
//! this feature implies `azure` to share it), or with a SAS carried in the
//! container URL when the credential is `None`. SAS URLs are secrets: they
//! are never printed by `Debug`, and never appear in errors. A credential
//! is sent over `https` only; a SAS URL may be `http` (the emulator), where
//! the SAS crosses the network in clear.
//!
//! # How each operation works
//!
//! * [`EncryptedBlobClient::upload`] streams: chunks are sealed into 4 MiB
//!   blocks (configurable), staged 4 at a time while the next ones are
//!   sealed, and one *Put Block List* commits the blocks **with** the
//!   header metadata, so the blob appears whole or not at all (an object of
//!   one block is a single *Put Blob*). [`WriteCondition`] chooses
//!   overwrite, create-only (`If-None-Match: *`) or `If-Match`.
//! * [`EncryptedBlobClient::download`] is an `AsyncRead` of the plaintext:
//!   the key commitment is checked first, then each chunk is released only
//!   after its tag verified; the SDK's ranged sub-requests are pinned to
//!   one ETag.
//! * [`EncryptedBlobClient::open`] makes one 56-byte ranged GET, which also
//!   returns the metadata, the ETag and the size; then
//!   [`EncryptedBlob::read_range`] makes **one** ranged GET of exactly the
//!   chunks a [`RangePlan`](crate::RangePlan) names, `If-Match` the opened
//!   version.
//! * [`EncryptedBlobClient::rewrap`] replaces only the metadata, `If-Match`
//!   the ETag it read: a concurrent writer makes it fail with
//!   [`Error::BlobConflict`](crate::Error::BlobConflict), never overwritten.
//! * [`BlobScopeStore`] keeps one blob per scope, `<prefix><scope-id>.json`:
//!   created with `If-None-Match: *`, updated and deleted with `If-Match`,
//!   so of two instances rotating one scope exactly one wins and the other
//!   gets [`Error::ScopeConflict`](crate::Error::ScopeConflict).
//!
//! Errors keep only the operation, the HTTP status and the service's error
//! code; requests are retried under the crate's
//! [`RetryConfig`](crate::RetryConfig) and one status table shared with
//! the Key Vault backend.
//!
//! ```no_run
//! # async fn example(cmk: std::sync::Arc<dyn cmk_envelope::KeyEncryptionKey>) -> cmk_envelope::Result<()> {
//! use std::sync::Arc;
//! use cmk_envelope::blob::{BlobScopeStore, EncryptedBlobClient, WriteCondition};
//! use cmk_envelope::kek::azure::CredentialChain;
//! use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope};
//! use tokio::io::AsyncReadExt;
//!
//! let credential = CredentialChain::from_env();
//! let store = BlobScopeStore::new(
//!     "https://acct.blob.core.windows.net/scopes",
//!     Some(credential.clone()),
//!     "",
//!     None,
//! )?;
//! let scope = EncryptionScope::open(
//!     Arc::new(store),
//!     "tenant-a",
//!     Cmk::CustomerManaged(cmk),
//!     CachePolicy::default(),
//! )
//! .await?;
//! let blobs = EncryptedBlobClient::builder(
//!     "https://acct.blob.core.windows.net/artifacts",
//!     Some(credential),
//! )?
//! .scope(&scope)
//! .build()?;
//! blobs
//!     .upload("model.bin", &b"weights"[..], WriteCondition::Overwrite)
//!     .await?;
//! let mut plaintext = Vec::new();
//! blobs
//!     .download("model.bin")
//!     .await?
//!     .read_to_end(&mut plaintext)
//!     .await?;
//! let head = blobs.open("model.bin").await?.read_range(0..4).await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod context;
mod download;
mod error;
mod scope_store;
mod upload;

pub use client::{EncryptedBlobClient, EncryptedBlobClientBuilder, HEADER_METADATA_KEY};
pub use context::blob_app_context;
pub use download::{BlobReader, EncryptedBlob};
pub use scope_store::BlobScopeStore;
pub use upload::{UploadOutcome, WriteCondition};

/// The parsers of untrusted response data, for the `blob_metadata` fuzz
/// target.
#[cfg(fuzzing)]
pub(crate) use self::{client::header_from_metadata, download::content_range_total};
