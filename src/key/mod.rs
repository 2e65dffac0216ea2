//! Secret key types.

mod data_key;
mod material;

pub use data_key::{DataKey, DATA_KEY_LEN};
pub use material::{KeyMaterial, KEY_MATERIAL_MAX_LEN, KEY_MATERIAL_MIN_LEN};
