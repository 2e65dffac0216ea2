//! Azure Cosmos DB (feature `cosmos`), on the official Rust SDK
//! [`azure_data_cosmos`]: encrypted containers and a shared scope store.
//!
//! * [`EncryptedContainer`] encrypts items before they are sent and
//!   decrypts them after they are read, in one of two formats chosen when
//!   it is made: the crate's document format ([`crate::document`], under an
//!   [`EncryptionScope`](crate::scope::EncryptionScope)), or the official
//!   SDKs' client-side encryption ("Always Encrypted", [`crate::cosmos_ae`],
//!   with the container's client encryption policy and the database's
//!   client encryption keys, [`ClientEncryptionKeys`]), so Rust services
//!   share containers with .NET, Java and JavaScript ones. Queries go
//!   through [`EncryptedQuery`]: equality on deterministic paths with
//!   parameters bound to them; anything that would filter, order or group
//!   on an encrypted path is refused before it is sent.
//! * Rotation at container scale: after
//!   [`rotate_scope_key`](crate::scope::EncryptionScope::rotate_scope_key),
//!   [`rewrap_container`] moves every document-format item's data key to
//!   the new version (paged, resumable, `If-Match` on every write, safe
//!   against concurrent writers). In the SDK format, one write rotates a
//!   container: [`EncryptedContainer::rewrap_client_encryption_key`].
//!   Rotating a scope's CMK ([`EncryptionScope::rotate_cmk`](crate::scope::EncryptionScope::rotate_cmk))
//!   touches no item at all.
//! * [`CosmosScopeStore`] keeps [`EncryptionScope`](crate::scope::EncryptionScope)
//!   key records as items of a container, with ETag compare-and-swap, so
//!   instances on many machines share scopes and CMK rotations.
//!
//! The types here take an SDK [`ContainerClient`](azure_data_cosmos::clients::ContainerClient)
//! built by the caller, so every SDK setting (regions, connection pool,
//! retries) stays the caller's. In production, authenticate it with an
//! Entra ID credential: the `azure` feature's
//! [`CredentialChain`](crate::kek::azure::CredentialChain) (this feature
//! implies `azure` to share it), and give [`ClientEncryptionKeys`] the same
//! one. Account keys are for the emulator and tests: the SDK takes them
//! behind its `key_auth` feature, and [`ClientEncryptionKeys`] sends one
//! only to a loopback endpoint. Errors keep only the operation, the HTTP
//! status and the service's error code: no key, token, plaintext or
//! request detail reaches them.
//!
//! ```no_run
//! # async fn example(cmk: std::sync::Arc<dyn cmk_envelope::KeyEncryptionKey>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use azure_data_cosmos::options::Region;
//! use azure_data_cosmos::{AccountReference, CosmosClient, RoutingStrategy};
//! use cmk_envelope::cosmos::{CosmosScopeStore, EncryptedContainer, EncryptedQuery};
//! use cmk_envelope::document::DocumentPolicy;
//! use cmk_envelope::kek::azure::CredentialChain;
//! use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope};
//! use serde_json::json;
//!
//! let account = AccountReference::with_credential(
//!     "https://acct.documents.azure.com/".parse()?,
//!     CredentialChain::from_env(),
//! );
//! let client = CosmosClient::builder()
//!     .build(account, RoutingStrategy::ProximityTo(Region::WEST_EUROPE))
//!     .await?;
//! let db = client.database_client("metadata");
//! // Scope records: a container partitioned on /id.
//! let store = CosmosScopeStore::new(db.container_client("scopes", None).await?).await?;
//! let scope = EncryptionScope::open(
//!     Arc::new(store),
//!     "tenant-a",
//!     Cmk::CustomerManaged(cmk),
//!     CachePolicy::default(),
//! )
//! .await?;
//! // Patients, partitioned on /tenant.
//! let policy = DocumentPolicy::new("/tenant")?
//!     .randomized("/diagnosis")?
//!     .deterministic("/email")?;
//! let patients = EncryptedContainer::with_document_format(
//!     db.container_client("patients", None).await?,
//!     scope,
//!     policy,
//! )
//! .await?;
//! patients
//!     .create(json!({"id": "p1", "tenant": "a", "email": "x@example.com", "diagnosis": "…"}))
//!     .await?;
//! let found = patients
//!     .query(
//!         EncryptedQuery::new("SELECT * FROM c WHERE c.email = @email")
//!             .with_encrypted_parameter("@email", "/email", json!("x@example.com")),
//!     )
//!     .await?
//!     .all()
//!     .await?;
//! # Ok(())
//! # }
//! ```

//! # Limits
//!
//! * One partition key path, of plain property names (`/tenant`,
//!   `/a/b`); hierarchical partition keys are refused. Item ids follow the
//!   service's rule (no `/`, `\`, `?`, `#`), checked before encryption as
//!   the SDKs check them.
//! * Query results must be whole items (every row is decrypted as an item);
//!   no aggregates or `SELECT VALUE` of an encrypted path.
//! * Document format: [`rewrap_container`] moves data keys, not
//!   deterministic field ciphertexts, which stay under the scope key
//!   version that wrote them (queries match every version; an item written
//!   again moves to the current one). Keep older versions in the scope.
//! * SDK format: the official SDKs send the container's resource id with
//!   each write (`x-ms-cosmos-intended-collection-rid`), so the service
//!   refuses a write encrypted under the policy of a container since
//!   deleted and created again; the Rust SDK has no setting for that
//!   header. An [`EncryptedContainer`] reads the policy when it is made:
//!   make it again after a container is recreated.
//! * Patch and transactional batch are not offered (they would write
//!   values this type has not encrypted).
//!
mod container;
mod error;
mod format;
mod keys;
mod query;
mod rewrap;
mod scope_store;
mod sdk;
mod sql;

pub use container::EncryptedContainer;
pub use keys::{ClientEncryptionKeys, COSMOS_TOKEN_SCOPE};
pub use query::{EncryptedQuery, ItemPages};
pub use rewrap::{
    rewrap_container, ItemOutcome, ItemResult, RewrapOptions, RewrapProgress, RewrapReport,
    RewrapTotals,
};
pub use scope_store::CosmosScopeStore;
