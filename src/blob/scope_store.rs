//! [`BlobScopeStore`]: scope key records as blobs, with ETag
//! compare-and-swap.

use std::fmt;
use std::num::NonZero;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::Etag as SdkEtag;
use azure_core::Bytes;
use azure_storage_blob::models::{BlobClientDeleteOptions, BlobClientUploadOptions};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};

use super::client::{container_client, parse_container_url, redacted_url};
use super::error::{is_conflict, is_not_found, require_etag, storage};
use crate::error::Error;
use crate::scope::{Etag, ScopeStore};
use crate::RetryConfig;

/// A [`ScopeStore`] on Azure Blob Storage: the record of scope `id` is the
/// blob `<prefix><id>.json` of one container, shared by every service
/// instance on every machine.
///
/// Compare-and-swap is the service's: a create is a *Put Blob* with
/// `If-None-Match: *`, an update one with `If-Match: <ETag read>`, a delete
/// is conditional on the ETag too. When two machines rotate one scope at the
/// same moment, the service accepts exactly one write; the other gets
/// [`Error::ScopeConflict`], re-reads and retries. A *Put Blob* replaces the
/// record atomically: a reader sees the old record or the new one.
///
/// Records hold only wrapped keys; still, grant the container to the
/// service's identity only.
#[derive(Clone)]
pub struct BlobScopeStore {
    container: Arc<BlobContainerClient>,
    prefix: String,
}

impl fmt::Debug for BlobScopeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobScopeStore")
            .field("endpoint", &redacted_url(self.container.url()))
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl BlobScopeStore {
    /// A store in the container at `container_url`, authenticated with
    /// `credential` (an Entra ID credential over HTTPS, such as
    /// [`CredentialChain`](crate::kek::azure::CredentialChain)), or with a
    /// SAS in the URL when `None`. Record blobs are named
    /// `<prefix><scope-id>.json` (`prefix` may be empty, or a folder such
    /// as `"scopes/"`). `options` sets the SDK's transport and extra
    /// pipeline policies; requests are retried under
    /// [`RetryConfig::default`] (see [`with_retry`](Self::with_retry)).
    ///
    /// No request is made here.
    pub fn new(
        container_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
        prefix: &str,
        options: Option<BlobContainerClientOptions>,
    ) -> crate::Result<Self> {
        Self::with_retry(
            container_url,
            credential,
            prefix,
            options,
            RetryConfig::default(),
        )
    }

    /// [`new`](Self::new) with requests retried under `retry` (the crate's
    /// one retry policy, the same as the Key Vault backend's) in place of
    /// the SDK's own policy; `options`' `retry` field is not used.
    pub fn with_retry(
        container_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
        prefix: &str,
        options: Option<BlobContainerClientOptions>,
        retry: RetryConfig,
    ) -> crate::Result<Self> {
        let (url, _) = parse_container_url(container_url)?;
        Ok(BlobScopeStore {
            container: Arc::new(container_client(url, credential, options, retry)?),
            prefix: prefix.to_owned(),
        })
    }

    fn blob(&self, scope_id: &str) -> crate::Result<BlobClient> {
        crate::scope::validate_scope_id(scope_id)?;
        Ok(self
            .container
            .blob_client(&format!("{}{scope_id}.json", self.prefix)))
    }
}

#[async_trait]
impl ScopeStore for BlobScopeStore {
    async fn get(&self, scope_id: &str) -> crate::Result<Option<(Vec<u8>, Etag)>> {
        let blob = self.blob(scope_id)?;
        let res = match blob.download(None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(storage("read scope record", e)),
        };
        let etag = require_etag(res.properties.etag.as_ref())?;
        let bytes = res
            .body
            .collect()
            .await
            .map_err(|e| storage("read scope record", e))?;
        Ok(Some((bytes.to_vec(), etag)))
    }

    async fn put(
        &self,
        scope_id: &str,
        record: &[u8],
        expected: Option<&Etag>,
    ) -> crate::Result<Etag> {
        let blob = self.blob(scope_id)?;
        let (if_match, if_none_match) = match expected {
            None => (None, Some(SdkEtag::from("*"))),
            Some(e) => (Some(SdkEtag::from(e.0.clone())), None),
        };
        let options = BlobClientUploadOptions {
            if_match,
            if_none_match,
            blob_content_type: Some("application/json".to_owned()),
            // One Put Blob, never staged blocks: the write is atomic.
            partition_size: NonZero::new((record.len() as u64).max(1)),
            ..Default::default()
        };
        let r = blob
            .upload(Bytes::copy_from_slice(record).into(), Some(options))
            .await
            .map_err(|e| {
                if is_conflict(&e) {
                    Error::scope_conflict(scope_id)
                } else {
                    storage("write scope record", e)
                }
            })?;
        require_etag(r.etag)
    }

    async fn delete(&self, scope_id: &str, expected: &Etag) -> crate::Result<()> {
        let blob = self.blob(scope_id)?;
        let options = BlobClientDeleteOptions {
            if_match: Some(SdkEtag::from(expected.0.clone())),
            ..Default::default()
        };
        match blob.delete(Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::ScopeNotFound {
                scope_id: scope_id.to_owned(),
            }),
            // `If-Match` on a missing blob may fail the precondition
            // rather than report 404 (Azurite does): tell them apart.
            Err(e) if is_conflict(&e) => match blob.exists().await {
                Ok(false) => Err(Error::ScopeNotFound {
                    scope_id: scope_id.to_owned(),
                }),
                Ok(true) => Err(Error::scope_conflict(scope_id)),
                Err(e) => Err(storage("delete scope record", e)),
            },
            Err(e) => Err(storage("delete scope record", e)),
        }
    }
}
