//! [`EncryptedBlobClient`]: construction, keys, metadata and header-only
//! re-wrapping.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::Url;
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientSetMetadataOptions,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use base64::Engine as _;

use super::context::blob_app_context;
use super::error::{is_conflict, not_envelope, storage};
use crate::error::Error;
use crate::format::{Header, Profile};
use crate::http::SdkRetryPolicy;
use crate::kek::{KeyEncryptionKey, KeyResolver};
use crate::scope::{EncryptionScope, Etag};
use crate::RetryConfig;

/// The metadata key holding the envelope header (standard base64).
pub const HEADER_METADATA_KEY: &str = "cmkenvelope";

/// Smallest and largest block sizes accepted by
/// [`EncryptedBlobClientBuilder::block_size`].
const MIN_BLOCK: usize = 64 * 1024;
const MAX_BLOCK: usize = 256 * 1024 * 1024;

/// The keys new blobs are sealed with and old ones opened with.
#[derive(Clone)]
pub(super) enum Keys {
    /// Fixed KEKs, and an allow-list for opening.
    Fixed {
        keks: Vec<Arc<dyn KeyEncryptionKey>>,
        resolver: Arc<dyn KeyResolver>,
    },
    /// An encryption scope: each upload uses its current scope key
    /// version, so a rotation takes effect without a new client.
    Scope(EncryptionScope),
}

impl Keys {
    pub(super) fn sealing_keks(&self) -> Vec<Arc<dyn KeyEncryptionKey>> {
        match self {
            Keys::Fixed { keks, .. } => keks.clone(),
            Keys::Scope(s) => vec![s.kek()],
        }
    }

    pub(super) fn resolver(&self) -> Arc<dyn KeyResolver> {
        match self {
            Keys::Fixed { resolver, .. } => resolver.clone(),
            Keys::Scope(s) => Arc::new(s.resolver()),
        }
    }
}

/// Stores objects in one Azure Blob Storage container as envelopes in the
/// detached form: the body is the blob, the header is the blob's metadata
/// entry [`HEADER_METADATA_KEY`] (base64). Every envelope's `app_context`
/// is [`blob_app_context`]`(container, blob name)`, so a header or body
/// moved to another name fails to open.
///
/// * [`upload`](Self::upload) streams: chunks are sealed into blocks that
///   are staged while reading goes on, then one *Put Block List* commits
///   the blocks **and** the header metadata. Until that request succeeds
///   nothing is visible; a crash leaves the previous version (or no blob).
/// * [`download`](Self::download) streams the plaintext, released chunk by
///   chunk only after each chunk's tag (and first the key commitment)
///   verified.
/// * [`open`](Self::open) then [`EncryptedBlob::read_range`](super::EncryptedBlob::read_range):
///   one ranged GET of exactly the chunks a plaintext range needs.
/// * [`rewrap`](Self::rewrap) replaces only the metadata, conditional on
///   the ETag: a concurrent writer is never overwritten.
///
/// Authentication: an Entra ID [`TokenCredential`] — for instance the
/// Key Vault backend's [`CredentialChain`](crate::kek::azure::CredentialChain),
/// with the *Storage Blob Data Contributor* role — over HTTPS. With no
/// credential the container URL must carry a SAS (the emulator, or
/// delegated access). The SDK supports neither shared keys nor connection
/// strings. A SAS is a secret: this type never prints the URL's query.
#[derive(Clone)]
pub struct EncryptedBlobClient {
    pub(super) container: Arc<BlobContainerClient>,
    pub(super) container_name: String,
    pub(super) keys: Keys,
    pub(super) profile: Profile,
    pub(super) block_size: usize,
    pub(super) concurrency: usize,
}

impl fmt::Debug for EncryptedBlobClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedBlobClient")
            .field("endpoint", &redacted_url(self.container.url()))
            .field("container", &self.container_name)
            .field("profile", &self.profile)
            .field("block_size", &self.block_size)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// `scheme://host[:port]/path` without the query (which may be a SAS).
pub(super) fn redacted_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Builds an [`EncryptedBlobClient`]; see [`EncryptedBlobClient::builder`].
pub struct EncryptedBlobClientBuilder {
    url: Url,
    credential: Option<Arc<dyn TokenCredential>>,
    keys: Option<Keys>,
    profile: Profile,
    block_size: usize,
    concurrency: usize,
    options: Option<BlobContainerClientOptions>,
    retry: RetryConfig,
}

impl fmt::Debug for EncryptedBlobClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedBlobClientBuilder")
            .field("endpoint", &redacted_url(&self.url))
            .field("credential", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

/// Parses a container URL without ever echoing it (it may hold a SAS).
pub(super) fn parse_container_url(url: &str) -> crate::Result<(Url, String)> {
    let url = Url::parse(url).map_err(|_| Error::ApiMisuse("the container URL does not parse"))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "https" | "http") {
        return Err(Error::ApiMisuse("the container URL must be an http(s) URL"));
    }
    let name = url
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_owned))
        .filter(|n| !n.is_empty())
        .ok_or(Error::ApiMisuse(
            "the container URL must end with the container name",
        ))?;
    Ok((url, name))
}

/// The SDK client of a container, retrying under `retry` instead of the
/// SDK's own policy (whatever `options.client_options.retry` says).
pub(super) fn container_client(
    url: Url,
    credential: Option<Arc<dyn TokenCredential>>,
    options: Option<BlobContainerClientOptions>,
    retry: RetryConfig,
) -> crate::Result<BlobContainerClient> {
    if credential.is_some() && url.scheme() != "https" {
        return Err(Error::ApiMisuse(
            "a token credential is only sent over https",
        ));
    }
    let mut options = options.unwrap_or_default();
    SdkRetryPolicy::install(&mut options.client_options, retry);
    BlobContainerClient::new(url, credential, Some(options))
        .map_err(|e| storage("create the container client", e))
}

impl EncryptedBlobClientBuilder {
    /// Seal new blobs with each of `keks` (1 to 16) and open blobs whose
    /// header names a key `resolver` allows.
    pub fn keks(
        mut self,
        keks: Vec<Arc<dyn KeyEncryptionKey>>,
        resolver: Arc<dyn KeyResolver>,
    ) -> Self {
        self.keys = Some(Keys::Fixed { keks, resolver });
        self
    }

    /// Seal new blobs under `scope`'s current scope key (read at each
    /// upload, so rotations apply at once) and open blobs of any of its
    /// versions.
    pub fn scope(mut self, scope: &EncryptionScope) -> Self {
        self.keys = Some(Keys::Scope(scope.clone()));
        self
    }

    /// The envelope profile (default [`Profile::Blob`]).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Size of the staged blocks of an upload and of the ranged GETs of a
    /// download (default 4 MiB; 64 KiB to 256 MiB). An object whose body
    /// fits one block is written with a single *Put Blob*. A blob has at
    /// most 50,000 blocks, so this also bounds the largest upload
    /// (50,000 × `bytes` of body). Each block is one request under the
    /// [`RetryConfig`]'s `per_request_timeout`: raise that with the block
    /// size on slow links.
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }

    /// How many blocks an upload stages, and how many ranged GETs a
    /// download runs, at once (default 4, at least 1). Memory per upload is
    /// about `(concurrency + 1) × block_size`, per download about
    /// `2 × concurrency × block_size`.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How requests are retried (default [`RetryConfig::default`]): the
    /// crate's one retry policy, the same as the Key Vault backend's, in
    /// place of the SDK's.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// SDK client options: transport, extra pipeline policies. Their
    /// `retry` field is not used: retries follow [`retry`](Self::retry).
    pub fn client_options(mut self, options: BlobContainerClientOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The client. Fails if no keys were given or the block size is out of
    /// range.
    pub fn build(self) -> crate::Result<EncryptedBlobClient> {
        let keys = self.keys.ok_or(Error::ApiMisuse(
            "EncryptedBlobClient needs keys: call .keks(..) or .scope(..)",
        ))?;
        if !(MIN_BLOCK..=MAX_BLOCK).contains(&self.block_size) {
            return Err(Error::ApiMisuse("the block size must be 64 KiB to 256 MiB"));
        }
        let (url, container_name) = (self.url.clone(), container_name_of(&self.url)?);
        let container = Arc::new(container_client(
            url,
            self.credential,
            self.options,
            self.retry,
        )?);
        Ok(EncryptedBlobClient {
            container,
            container_name,
            keys,
            profile: self.profile,
            block_size: self.block_size,
            concurrency: self.concurrency,
        })
    }
}

fn container_name_of(url: &Url) -> crate::Result<String> {
    parse_container_url(url.as_str()).map(|(_, n)| n)
}

impl EncryptedBlobClient {
    /// Starts a client for the container at `container_url`
    /// (`https://<account>.blob.core.windows.net/<container>`, or
    /// path-style `http://127.0.0.1:10000/<account>/<container>` for the
    /// emulator), authenticated with `credential`, or with a SAS in the
    /// URL when `None`. Then give the keys ([`keks`](EncryptedBlobClientBuilder::keks)
    /// or [`scope`](EncryptedBlobClientBuilder::scope)) and
    /// [`build`](EncryptedBlobClientBuilder::build).
    pub fn builder(
        container_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> crate::Result<EncryptedBlobClientBuilder> {
        let (url, _) = parse_container_url(container_url)?;
        Ok(EncryptedBlobClientBuilder {
            url,
            credential,
            keys: None,
            profile: Profile::Blob,
            block_size: 4 * 1024 * 1024,
            concurrency: 4,
            options: None,
            retry: RetryConfig::default(),
        })
    }

    /// The container's name (bound into every blob's context).
    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// The SDK client of the container, for plain (unencrypted) calls such
    /// as creating the container or listing blobs.
    pub fn container_client(&self) -> &BlobContainerClient {
        &self.container
    }

    pub(super) fn blob(&self, name: &str) -> crate::Result<BlobClient> {
        if name.is_empty() {
            return Err(Error::ApiMisuse("a blob name must not be empty"));
        }
        Ok(self.container.blob_client(name))
    }

    pub(super) fn context(&self, name: &str) -> Vec<u8> {
        blob_app_context(&self.container_name, name)
    }

    /// Re-wraps the data key of blob `name` for `new_keks` (1 to 16) and
    /// replaces its header metadata, leaving the body untouched. Other
    /// metadata entries are kept. Returns the blob's new ETag.
    ///
    /// The metadata is written with `If-Match` on the ETag read at the
    /// start: if another writer changed the blob in between, nothing is
    /// written and the result is [`Error::BlobConflict`] — re-run it.
    ///
    /// Cost: one HEAD, one unwrap, one wrap per KEK, one metadata write.
    pub async fn rewrap(
        &self,
        name: &str,
        new_keks: &[Arc<dyn KeyEncryptionKey>],
    ) -> crate::Result<Etag> {
        let blob = self.blob(name)?;
        let props = blob
            .get_properties(None)
            .await
            .map_err(|e| storage("get blob properties", e))?;
        let etag = props
            .etag()
            .map_err(|e| storage("read the ETag", e))?
            .ok_or_else(|| not_envelope("the service returned no ETag"))?;
        let mut metadata = props
            .metadata()
            .map_err(|e| storage("read blob metadata", e))?;
        let header = header_from_metadata(&metadata)?;
        let resolver = self.keys.resolver();
        let new_header = crate::envelope::rewrap(&header, resolver.as_ref(), new_keks).await?;
        // Metadata keys are case-insensitive: drop every spelling first.
        metadata.retain(|k, _| !k.eq_ignore_ascii_case(HEADER_METADATA_KEY));
        metadata.insert(HEADER_METADATA_KEY.to_owned(), encode_header(&new_header)?);
        let options = BlobClientSetMetadataOptions {
            if_match: Some(etag),
            ..Default::default()
        };
        let rsp = blob
            .set_metadata(&metadata, Some(options))
            .await
            .map_err(|e| {
                if is_conflict(&e) {
                    Error::BlobConflict {
                        blob: name.to_owned(),
                    }
                } else {
                    storage("set blob metadata", e)
                }
            })?;
        let new = rsp
            .headers()
            .get_optional_str(&azure_core::http::headers::ETAG)
            .ok_or_else(|| not_envelope("the service returned no ETag"))?;
        Ok(Etag(new.to_owned()))
    }
}

/// Azure's limit on a blob's metadata (names and values), in bytes.
const METADATA_LIMIT: usize = 8 * 1024;

/// `base64(header bytes)`, refused before any request when it cannot fit
/// in blob metadata (many RSA KEKs in one header).
pub(super) fn encode_header(header: &Header) -> crate::Result<String> {
    let value = base64::engine::general_purpose::STANDARD.encode(header.to_bytes());
    if value.len() + HEADER_METADATA_KEY.len() > METADATA_LIMIT {
        return Err(Error::TooLarge(
            "the envelope header does not fit in blob metadata (8 KiB): use fewer or smaller KEKs",
        ));
    }
    Ok(value)
}

/// The envelope header held in a blob's metadata; validated before any
/// KEK could be called.
pub(super) fn header_from_metadata(metadata: &HashMap<String, String>) -> crate::Result<Header> {
    let value = metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(HEADER_METADATA_KEY))
        .map(|(_, v)| v)
        .ok_or_else(|| not_envelope("the blob has no `cmkenvelope` metadata"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| Error::MalformedHeader("the `cmkenvelope` metadata is not base64"))?;
    Header::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Suite;
    use crate::kek::{WrapAlgorithm, WrappedKey};

    fn header(keys: usize, wrapped_len: usize) -> Header {
        let keys = (0..keys)
            .map(|i| WrappedKey {
                alg: WrapAlgorithm::RsaOaep256,
                kek_id: format!("https://vault.example/keys/k{i}/0123456789abcdef"),
                wrapped: vec![7; wrapped_len],
            })
            .collect();
        Header::new(Suite::Cobblestone256, Profile::Blob, keys).unwrap()
    }

    #[test]
    fn header_round_trips_through_metadata() {
        let h = header(2, 384);
        let mut m = HashMap::new();
        m.insert("CmkEnvelope".to_owned(), encode_header(&h).unwrap());
        assert_eq!(header_from_metadata(&m).unwrap().to_bytes(), h.to_bytes());
        m.insert("cmkenvelope".to_owned(), "%%%".to_owned());
        m.remove("CmkEnvelope");
        assert!(matches!(
            header_from_metadata(&m),
            Err(Error::MalformedHeader(_))
        ));
        assert!(header_from_metadata(&HashMap::new()).is_err());
    }

    #[test]
    fn oversized_headers_are_refused_before_any_request() {
        // 16 RSA-4096 KEKs: 16 × 512-byte wrapped keys, > 8 KiB in base64
        assert!(matches!(
            encode_header(&header(16, 512)),
            Err(Error::TooLarge(_))
        ));
    }
}
