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
//! are never printed by `Debug`, and never appear in errors.
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
