//! What the HTTP backends (Azure Key Vault, Azure Blob Storage, Azure
//! Cosmos DB) share: one table from HTTP status to error kind and retry
//! decision ([`StatusKind`]), and the retry policy installed in the Azure
//! SDK pipelines of the blob clients (`SdkRetryPolicy`), which follows the
//! crate's [`RetryConfig`](crate::RetryConfig).

#[cfg(feature = "blob")]
mod sdk_retry;
mod status;

#[cfg(feature = "blob")]
pub(crate) use sdk_retry::SdkRetryPolicy;
pub(crate) use status::StatusKind;
