//! Conformance suites for the crate's two extension points (feature
//! `conformance`): [`kek`] for a [`KeyEncryptionKey`](crate::KeyEncryptionKey)
//! and [`store`] for a [`ScopeStore`](crate::scope::ScopeStore).
//!
//! Every backend of this crate passes them in its own tests — local keys on
//! both crypto providers, Azure Key Vault and Managed HSM keys, PKCS#11 keys
//! on SoftHSM2, the scope KEK of an
//! [`EncryptionScope`](crate::scope::EncryptionScope), and the memory, file
//! and Azure Blob scope stores. A third-party backend runs the same
//! functions to check that it keeps the promises the crate relies on:
//!
//! ```no_run
//! # #[derive(Debug)] struct MyKek;
//! # #[async_trait::async_trait]
//! # impl cmk_envelope::KeyEncryptionKey for MyKek {
//! #     fn key_id(&self) -> &str { "k" }
//! #     fn algorithm(&self) -> cmk_envelope::WrapAlgorithm { cmk_envelope::WrapAlgorithm::A256Kw }
//! #     async fn wrap_key_material(&self, _: &cmk_envelope::KeyMaterial) -> cmk_envelope::Result<cmk_envelope::WrappedKey> { unimplemented!() }
//! #     async fn unwrap_key_material(&self, _: &[u8]) -> cmk_envelope::Result<cmk_envelope::KeyMaterial> { unimplemented!() }
//! # }
//! # impl MyKek { fn connect(_: &str) -> MyKek { MyKek } }
//! use std::sync::Arc;
//! use cmk_envelope::conformance;
//! use cmk_envelope::KeyEncryptionKey;
//!
//! // A test of the backend's own crate, run with
//! // #[tokio::test(flavor = "multi_thread")]:
//! async fn my_kek_conforms() {
//!     let kek: Arc<dyn KeyEncryptionKey> = Arc::new(MyKek::connect("key-a"));
//!     let other: Arc<dyn KeyEncryptionKey> = Arc::new(MyKek::connect("key-b"));
//!     let report = conformance::kek::run(kek, other).await;
//!     println!("{report:?}");
//! }
//! ```
//!
//! The checks are exact: where a trait promises a particular error (for
//! example [`Error::UnwrapFailed`](crate::Error::UnwrapFailed) naming the
//! key, or [`Error::ScopeConflict`](crate::Error::ScopeConflict) naming the
//! scope), any other error fails the check. A failed check panics with a
//! message that names the check and what was returned, as `assert!` does,
//! so the suites run inside a test harness.
//!
//! The suites spawn tokio tasks for their concurrency checks: call them from
//! a multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`).
//! They make real calls to the backend under test (the number is given for
//! each function), and never print or return key material.

pub mod kek;
pub mod store;
