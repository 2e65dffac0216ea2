//! What the HTTP backends (Azure Key Vault, Azure Blob Storage) share: one
//! table from HTTP status to error kind and retry decision
//! ([`StatusKind`]), and the retry policy installed in the Azure SDK
//! pipelines of the storage clients ([`SdkRetryPolicy`]), both following
//! the crate's [`RetryConfig`](crate::RetryConfig).

#[cfg(feature = "blob")]
mod sdk_retry;
mod status;

#[cfg(feature = "blob")]
pub(crate) use sdk_retry::SdkRetryPolicy;
pub(crate) use status::StatusKind;
