//! Tests of the provider seam: Wycheproof vectors for every primitive
//! (`wycheproof.rs`), known-answer vectors for AES-256-CBC and
//! HMAC-SHA-256 (`cbc_hmac.rs`), and the two providers against each other
//! (`cross_provider.rs`), the first and last through the thin adapters of
//! `hazmat.rs`. They are unit tests so that the raw primitives, which let
//! a caller pick a nonce or a key, never have to be reachable from outside
//! the crate.

mod cbc_hmac;
mod hazmat;
mod wycheproof;

#[cfg(all(feature = "aws-lc-rs", feature = "rustcrypto"))]
mod cross_provider;
