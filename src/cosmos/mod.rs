//! Azure Cosmos DB (feature `cosmos`), on the official Rust SDK
//! [`azure_data_cosmos`]: a shared scope store.
//!
//! * [`CosmosScopeStore`] keeps [`EncryptionScope`](crate::scope::EncryptionScope)
//!   key records as items of a container, with ETag compare-and-swap, so
//!   instances on many machines share scopes and CMK rotations.
//!
//! The types here take an SDK [`ContainerClient`](azure_data_cosmos::clients::ContainerClient)
//! built by the caller, so every SDK setting (regions, connection pool,
//! retries) stays the caller's. In production, authenticate it with an
//! Entra ID credential: the `azure` feature's
//! [`CredentialChain`](crate::kek::azure::CredentialChain) (this feature
//! implies `azure` to share it). Account keys are for the emulator and
//! tests; the crate's API never takes one. Errors keep only the
//! operation, the HTTP status and the service's error code: no key, token
//! or request detail reaches them.
//!
//! ```no_run
//! # async fn example(cmk: std::sync::Arc<dyn cmk_envelope::KeyEncryptionKey>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use azure_data_cosmos::options::Region;
//! use azure_data_cosmos::{AccountReference, CosmosClient, RoutingStrategy};
//! use cmk_envelope::cosmos::CosmosScopeStore;
//! use cmk_envelope::kek::azure::CredentialChain;
//! use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope};
//!
//! let account = AccountReference::with_credential(
//!     "https://acct.documents.azure.com/".parse()?,
//!     CredentialChain::from_env(),
//! );
//! let client = CosmosClient::builder()
//!     .build(account, RoutingStrategy::ProximityTo(Region::WEST_EUROPE))
//!     .await?;
//! // a container partitioned on /id
//! let container = client
//!     .database_client("metadata")
//!     .container_client("scopes", None)
//!     .await?;
//! let store = CosmosScopeStore::new(container).await?;
//! let scope = EncryptionScope::open(
//!     Arc::new(store),
//!     "tenant-a",
//!     Cmk::CustomerManaged(cmk),
//!     CachePolicy::default(),
//! )
//! .await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod keys;
mod scope_store;
mod sql;

pub use keys::{ClientEncryptionKeys, COSMOS_TOKEN_SCOPE};
pub use scope_store::CosmosScopeStore;
