// The README is the front page both on GitHub and here. On GitHub its
// links to API items go to source files; the definitions below come first,
// and the first definition of a link wins, so here the same names link to
// the items (those of a feature only when it is enabled).
#![doc = "
[`Encryptor`]: crate::Encryptor
[`Decryptor`]: crate::Decryptor
[`EncryptionScope::open`]: crate::scope::EncryptionScope::open
[`EncryptionScope::open_with_resolver`]: crate::scope::EncryptionScope::open_with_resolver
[`scope`]: crate::scope
[`envelope`]: crate::envelope
[`format`]: crate::format
[`kek`]: crate::kek
[`stream`]: crate::stream
"]
#![cfg_attr(
    feature = "azure",
    doc = "
[`AzureKeyVaultKek`]: crate::AzureKeyVaultKek
[`AzureKeyVaultResolver`]: crate::AzureKeyVaultResolver
[`CredentialChain`]: crate::kek::azure::CredentialChain
[`kek::azure`]: crate::kek::azure
"
)]
#![cfg_attr(
    feature = "pkcs11",
    doc = "
[`Pkcs11Kek`]: crate::Pkcs11Kek
[`kek::pkcs11`]: crate::kek::pkcs11
"
)]
#![cfg_attr(
    feature = "blob",
    doc = "
[`BlobScopeStore`]: crate::blob::BlobScopeStore
[`blob`]: crate::blob
"
)]
#![cfg_attr(
    feature = "cosmos",
    doc = "
[`CosmosScopeStore`]: crate::cosmos::CosmosScopeStore
[`cosmos`]: crate::cosmos
"
)]
#![cfg_attr(feature = "document", doc = "[`document`]: crate::document")]
#![cfg_attr(feature = "index", doc = "[`index`]: crate::index")]
#![cfg_attr(feature = "azure-cse", doc = "[`azure_cse`]: crate::azure_cse")]
#![cfg_attr(feature = "cosmos-ae", doc = "[`cosmos_ae`]: crate::cosmos_ae")]
#![cfg_attr(feature = "conformance", doc = "[`conformance`]: crate::conformance")]
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
