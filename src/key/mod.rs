//! Secret key types.

mod data_key;

pub use data_key::{DataKey, DATA_KEY_LEN};
