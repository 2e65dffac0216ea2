#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms, unreachable_pub)]

mod atomic_file;
mod error;
pub mod kek;
mod key;
mod provider;
mod util;

#[doc(hidden)]
pub mod __private;

pub use error::{Error, KekError, KekErrorKind, Result};
pub use kek::{KeyEncryptionKey, KeyResolver, LocalKek, StaticResolver, WrapAlgorithm, WrappedKey};
pub use key::{DataKey, DATA_KEY_LEN};
pub use provider::CryptoProvider;
pub use atomic_file::AtomicFile;
