//! Entry points for the cargo-fuzz targets in `fuzz/` and their seed
//! generator. This module exists only when the crate is compiled with
//! `--cfg fuzzing` (which `cargo fuzz` sets; `fuzz/examples/gen_seeds.rs`
//! is run with `RUSTFLAGS="--cfg fuzzing"`): no normal build, and so no
//! dependent crate, can name it.
//!
//! Each entry point takes untrusted bytes (or a structured input built from
//! them with `arbitrary`), parses or decrypts them, and asserts what it can:
//! parse → encode → parse round trips, agreement between the decryption
//! paths, no plaintext that no tag authenticated, errors that hold no raw
//! untrusted text. A failed assertion is a crash for libFuzzer. Nothing here
//! seals under a key or nonce of the caller's choosing: the fixtures are
//! sealed by the crate's normal API under fixed key-encryption keys, with
//! fresh data keys and salts, so the fuzzer starts past the key checks.
//!
//! | module | targets |
//! |---|---|
//! | [`envelope`] | `header_parse`, `open_envelope`, `read_at`, `chunk_open` |
//! | [`differential`] | `envelope_differential` (every decryption path of an envelope) |
//! | [`azure_cse`] | `cse_metadata`, `cse_differential`, `cse_decrypt` |
//! | [`document`] | `document_fields`, `document_cipher` |
//! | [`cosmos_ae`] | `cosmos_ae_metadata`, `cosmos_ae_item` |
//! | [`keys`] | `jwk`, `scope_record`, `pkcs11_uri`, `key_vault_url`, `key_vault_response`, `blob_metadata` |
//!
//! The `seed_*` functions make the real objects the seed corpus starts
//! from (`scripts/fuzz-corpus.sh`).

#[cfg(feature = "azure-cse")]
pub mod azure_cse;
#[cfg(feature = "cosmos-ae")]
pub mod cosmos_ae;
#[cfg(feature = "tokio")]
pub mod differential;
#[cfg(feature = "document")]
pub mod document;
pub mod envelope;
pub mod keys;

use std::sync::Arc;

use async_trait::async_trait;

use crate::kek::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm, WrappedKey};
use crate::key::KeyMaterial;
use crate::Error;

/// The application context every envelope fixture is sealed under.
const CONTEXT: &[u8] = b"fuzz";

/// The fixed A256KW KEK (key id `fuzz`) every envelope target opens with.
fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("fuzz", WrapAlgorithm::A256Kw, &[0x42; 32]).expect("kek"))
}

/// A fixed local AES key that reports a key container (a scope needs one
/// for its same-vault rule; a key from memory has none).
#[derive(Debug)]
struct ContainedKek(LocalKek);

impl ContainedKek {
    /// The A256KW key `id` of 32 bytes of `byte`.
    #[cfg_attr(
        not(any(feature = "document", feature = "cosmos-ae")),
        allow(dead_code)
    )]
    fn new(id: &str, byte: u8) -> ContainedKek {
        ContainedKek(LocalKek::from_aes_key(id, WrapAlgorithm::A256Kw, &[byte; 32]).expect("kek"))
    }
}

#[async_trait]
impl KeyEncryptionKey for ContainedKek {
    fn key_id(&self) -> &str {
        self.0.key_id()
    }
    fn algorithm(&self) -> WrapAlgorithm {
        self.0.algorithm()
    }
    fn key_container(&self) -> Option<String> {
        Some("fuzz".to_owned())
    }
    async fn wrap_key_material(&self, m: &KeyMaterial) -> crate::Result<WrappedKey> {
        self.0.wrap_key_material(m).await
    }
    async fn unwrap_key_material(&self, wrapped: &[u8]) -> crate::Result<KeyMaterial> {
        self.0.unwrap_key_material(wrapped).await
    }
}

/// An allow-list holding [`kek`].
fn resolver() -> StaticResolver {
    StaticResolver::new().with(kek())
}

/// Pseudo-random plaintext of `len` bytes (no two chunks alike, so that a
/// chunk released in the wrong place cannot pass for the right one).
fn plaintext(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Panics unless `e` is an error untrusted input may cause: never a caller
/// bug ([`Error::ApiMisuse`]) or a broken invariant ([`Error::Internal`]),
/// and never a message holding raw control characters or a screenful of
/// untrusted text.
#[track_caller]
fn assert_input_error(e: &Error, what: &str) {
    assert!(
        !matches!(e, Error::ApiMisuse(_) | Error::Internal(_)),
        "{what}: untrusted input caused {e:?}"
    );
    crate::untrusted::assert_tame(&e.to_string());
}

/// What the paths of a differential target must agree on: the variant, and
/// where a region or chunk failure is.
fn error_kind(e: &Error) -> String {
    match e {
        Error::ChunkAuthentication { chunk } => format!("ChunkAuthentication({chunk})"),
        Error::CseRegion { region, problem } => format!("CseRegion({region}, {problem})"),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}
