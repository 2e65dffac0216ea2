#![doc = include_str!("../README.md")]
// On docs.rs (and in scripts/docs-rs.sh): mark every item gated by a
// feature with that feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod atomic_file;
#[cfg(feature = "azure-cse")]
pub mod azure_cse;
#[cfg(feature = "blob")]
pub mod blob;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "cosmos")]
pub mod cosmos;
#[cfg(feature = "cosmos-ae")]
pub mod cosmos_ae;
#[cfg(feature = "document")]
pub mod document;
pub mod envelope;
mod error;
pub mod format;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "azure")]
mod http;
#[cfg(feature = "index")]
pub mod index;
#[cfg(any(feature = "azure-cse", feature = "cosmos-ae"))]
mod json_tree;
pub mod kek;
mod key;
#[cfg(any(feature = "azure-cse", feature = "cosmos-ae"))]
mod pkcs7;
mod provider;
#[cfg(any(feature = "azure", feature = "pkcs11"))]
mod retry;
pub mod scope;
pub mod stream;
mod untrusted;
mod util;

#[cfg(feature = "blob")]
pub use blob::{BlobScopeStore, EncryptedBlobClient};
pub use envelope::{open, rewrap, rewrap_batch, seal, Decryptor, Encryptor, RangeDecryptor};
pub use error::{Error, KekError, KekErrorKind, Result, StorageError, StorageErrorKind};
pub use format::{Header, Profile, Suite};
#[cfg(feature = "azure")]
pub use kek::azure::{AzureKeyVaultKek, AzureKeyVaultResolver};
#[cfg(feature = "pkcs11")]
pub use kek::pkcs11::Pkcs11Kek;
pub use kek::{
    KeyEncryptionKey, KeyLease, KeyResolver, LocalKek, LocalKeyKind, StaticResolver, WrapAlgorithm,
    WrappedKey,
};
pub use key::{DataKey, KeyMaterial, DATA_KEY_LEN, KEY_MATERIAL_MAX_LEN, KEY_MATERIAL_MIN_LEN};
pub use provider::CryptoProvider;
#[cfg(any(feature = "azure", feature = "pkcs11"))]
pub use retry::RetryConfig;
#[cfg(feature = "tokio")]
pub use stream::{AsyncDecryptingReader, AsyncEncryptingWriter};
pub use stream::{DecryptingReader, EncryptingWriter, RangePlan, Threads};
