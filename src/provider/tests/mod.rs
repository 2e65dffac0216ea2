//! Tests of the provider seam: Wycheproof vectors for every primitive
//! (`wycheproof.rs`) and the two providers against each other
//! (`cross_provider.rs`), through the thin adapters of `hazmat.rs`. They
//! are unit tests so that the raw primitives, which let a caller pick a
//! nonce or a key, never have to be reachable from outside the crate.

mod hazmat;
mod wycheproof;

#[cfg(all(feature = "aws-lc-rs", feature = "rustcrypto"))]
mod cross_provider;
