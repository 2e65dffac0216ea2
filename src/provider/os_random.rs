//! Randomness for data keys, salts and key generation: the operating
//! system's CSPRNG (`getrandom(2)` on Linux, `BCryptGenRandom` on Windows,
//! through the `getrandom` crate), in every provider.
//!
//! The aws-lc-rs provider deliberately does not draw from aws-lc's own
//! DRBG. Since AWS-LC 1.60 that DRBG seeds a process-wide CPU-jitter
//! entropy pool on its first use, which costs tens of milliseconds of CPU
//! per process (measured here: 30-65 ms, about 96 % of an `encrypt` of an
//! empty file with the CLI; aws/aws-lc-rs#1140). A short-lived process —
//! the CLI, a batch job, a serverless function — would pay that for every
//! object. The kernel CSPRNG is what `ring`, the RustCrypto crates and
//! age use; a call costs about 0.5-0.7 µs here, against 0.56 µs for
//! aws-lc's per-thread DRBG once seeded. RSA-OAEP padding inside aws-lc
//! still uses aws-lc's DRBG.

use super::RandomProvider;
use crate::error::CryptoError;

#[derive(Debug)]
pub(super) struct OsRandom;

impl RandomProvider for OsRandom {
    fn fill(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        getrandom::fill(out).map_err(|_| CryptoError)
    }
}
