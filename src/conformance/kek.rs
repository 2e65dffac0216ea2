//! The [`KeyEncryptionKey`] suite: [`run`] for all of it, or each check on
//! its own.
//!
//! What the backend must provide: a KEK that can both wrap and unwrap (for
//! Key Vault, a *versioned* key; for RSA, the private key), and for
//! [`wrong_key`] a second KEK of the same algorithm holding another key.
//! Every check draws fresh random data keys from the default
//! [`CryptoProvider`].

use std::sync::Arc;

use crate::kek::{KeyEncryptionKey, WrapAlgorithm};
use crate::key::{DataKey, KeyMaterial, DATA_KEY_LEN};
use crate::provider::CryptoProvider;
use crate::Error;

/// What [`run`] checked, as counts of backend calls that behaved, for a
/// test to print or compare with what it expects of the backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Data keys wrapped and unwrapped back ([`round_trip`]).
    pub round_trips: usize,
    /// Keys the other KEK refused, both ways ([`wrong_key`]).
    pub wrong_key_rejections: usize,
    /// Bit flips of a wrapped key refused ([`modified_anywhere`]).
    pub modifications_rejected: usize,
    /// Truncated and extended wrapped keys refused
    /// ([`truncated_or_extended`]).
    pub truncations_rejected: usize,
    /// Wrap/unwrap pairs made from concurrent tasks ([`concurrent`]).
    pub concurrent_round_trips: usize,
    /// Key material of other lengths round-tripped
    /// ([`material_round_trip`]).
    pub material_round_trips: usize,
    /// Material lengths the algorithm cannot wrap, refused
    /// ([`material_lengths`]).
    pub lengths_refused: usize,
}

fn data_key() -> DataKey {
    DataKey::generate(CryptoProvider::default_provider()).expect("the OS random generator failed")
}

/// Asserts that `result` is [`Error::UnwrapFailed`] naming `kek`.
fn expect_unwrap_failed<T>(kek: &dyn KeyEncryptionKey, result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::UnwrapFailed { kek_id }) => assert_eq!(
            kek_id,
            kek.key_id(),
            "{what}: UnwrapFailed must name the key that refused"
        ),
        Err(other) => panic!("{what}: expected Error::UnwrapFailed, got {other:?}"),
        Ok(_) => panic!("{what}: unwrapped, expected Error::UnwrapFailed"),
    }
}

/// Runs every check of this module and returns what they counted.
///
/// `other` must use the same algorithm as `kek` and hold another key.
/// Cost: about `3 · n + 250` backend calls for a wrapped key of `n` bytes
/// (about 2,600 for RSA-3072, 500 for AES key wrap), 128 of them from 16
/// concurrent tasks.
pub async fn run(kek: Arc<dyn KeyEncryptionKey>, other: Arc<dyn KeyEncryptionKey>) -> Report {
    assert_eq!(
        kek.algorithm(),
        other.algorithm(),
        "the second KEK must use the same algorithm"
    );
    assert_ne!(
        kek.key_id(),
        other.key_id(),
        "the second KEK must be another key"
    );
    assert!(!format!("{kek:?}").is_empty(), "Debug must print something");
    Report {
        round_trips: round_trip(kek.as_ref()).await,
        wrong_key_rejections: wrong_key(kek.as_ref(), other.as_ref()).await,
        modifications_rejected: modified_anywhere(kek.as_ref()).await,
        truncations_rejected: truncated_or_extended(kek.as_ref()).await,
        concurrent_round_trips: concurrent(&kek, 16, 8).await,
        material_round_trips: material_round_trip(kek.as_ref()).await,
        lengths_refused: material_lengths(kek.as_ref()).await,
    }
}

/// Wrap then unwrap returns the same data key, four times: the wrapped key
/// carries the KEK's algorithm, a key id of 1 to 2048 bytes and 1 to 1024
/// wrapped bytes (the header's limits, FORMAT.md), and does not contain
/// the data key in clear. Returns 4.
///
/// Cost: 4 wraps and 4 unwraps.
pub async fn round_trip(kek: &dyn KeyEncryptionKey) -> usize {
    for _ in 0..4 {
        let k = data_key();
        let w = kek.wrap_key(&k).await.expect("wrap_key");
        assert_eq!(w.alg, kek.algorithm(), "the wrapped key's algorithm");
        assert!(
            !w.kek_id.is_empty() && w.kek_id.len() <= 2048,
            "the wrapped key's id is 1 to 2048 bytes"
        );
        assert!(
            !w.wrapped.is_empty() && w.wrapped.len() <= 1024,
            "a wrapped key is 1 to 1024 bytes, not {}",
            w.wrapped.len()
        );
        assert!(
            !w.wrapped
                .windows(DATA_KEY_LEN)
                .any(|win| win == k.expose_secret_bytes()),
            "the wrapped key contains the data key in clear"
        );
        let back = kek.unwrap_key(&w.wrapped).await.expect("unwrap_key");
        assert!(back == k, "unwrap_key returned another key");
    }
    4
}

/// A key wrapped by `kek` is refused by `other` with
/// [`Error::UnwrapFailed`] naming `other`, and the other way round.
/// Returns 2.
///
/// Cost: 2 wraps and 2 unwraps.
pub async fn wrong_key(kek: &dyn KeyEncryptionKey, other: &dyn KeyEncryptionKey) -> usize {
    let w = kek.wrap_key(&data_key()).await.expect("wrap_key");
    expect_unwrap_failed(
        other,
        other.unwrap_key(&w.wrapped).await,
        "a key wrapped by another KEK",
    );
    let w = other.wrap_key(&data_key()).await.expect("wrap_key");
    expect_unwrap_failed(
        kek,
        kek.unwrap_key(&w.wrapped).await,
        "a key wrapped by another KEK",
    );
    2
}

/// Flipping the lowest or the highest bit of any byte of a wrapped key
/// makes unwrap fail with [`Error::UnwrapFailed`] naming `kek`. Returns
/// the number of modified keys refused (twice the wrapped length).
///
/// Cost: 1 wrap, and 2 unwraps per wrapped byte.
pub async fn modified_anywhere(kek: &dyn KeyEncryptionKey) -> usize {
    let w = kek.wrap_key(&data_key()).await.expect("wrap_key");
    let mut n = 0;
    for i in 0..w.wrapped.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = w.wrapped.clone();
            m[i] ^= bit;
            let what = format!("byte {i} of the wrapped key xor {bit:#04x}");
            expect_unwrap_failed(kek, kek.unwrap_key(&m).await, &what);
            n += 1;
        }
    }
    n
}

/// Every truncation of a wrapped key (down to empty) and two extensions
/// (one and eight zero bytes) make unwrap fail with
/// [`Error::UnwrapFailed`] naming `kek`, never a panic. Returns the number
/// refused (wrapped length plus 2).
///
/// Cost: 1 wrap, and one unwrap per wrapped byte plus 2 (a backend may
/// refuse an impossible length without calling its service).
pub async fn truncated_or_extended(kek: &dyn KeyEncryptionKey) -> usize {
    let w = kek.wrap_key(&data_key()).await.expect("wrap_key");
    let mut n = 0;
    for cut in 0..w.wrapped.len() {
        let what = format!("the wrapped key truncated to {cut} bytes");
        expect_unwrap_failed(kek, kek.unwrap_key(&w.wrapped[..cut]).await, &what);
        n += 1;
    }
    for extra in [1usize, 8] {
        let mut longer = w.wrapped.clone();
        longer.resize(w.wrapped.len() + extra, 0);
        let what = format!("the wrapped key extended by {extra} bytes");
        expect_unwrap_failed(kek, kek.unwrap_key(&longer).await, &what);
        n += 1;
    }
    n
}

/// Key material of 16, 24, 40 (the protocol-prefixed content key of Azure
/// Storage client-side encryption v2) and 64 bytes round-trips through
/// [`wrap_key_material`](KeyEncryptionKey::wrap_key_material) and
/// [`unwrap_key_material`](KeyEncryptionKey::unwrap_key_material) with its
/// length, is not in clear in the wrapped bytes, and does not unwrap as a
/// data key through [`unwrap_key`](KeyEncryptionKey::unwrap_key)
/// ([`Error::UnwrapFailed`] naming `kek`). Returns 4.
///
/// Cost: 4 wraps and 8 unwraps.
pub async fn material_round_trip(kek: &dyn KeyEncryptionKey) -> usize {
    let mut n = 0;
    for len in [40usize, 16, 24, 64] {
        let mut bytes = vec![0u8; len];
        CryptoProvider::default_provider()
            .fill_random(&mut bytes)
            .expect("the OS random generator failed");
        bytes[..3].copy_from_slice(b"2.0");
        let m = KeyMaterial::from_bytes(&bytes).expect("16 to 64 bytes of material");
        let w = kek.wrap_key_material(&m).await.expect("wrap_key_material");
        assert_eq!(w.alg, kek.algorithm(), "the wrapped key's algorithm");
        assert!(
            !w.wrapped.windows(len).any(|win| win == &bytes[..]),
            "the wrapped key contains the {len}-byte material in clear"
        );
        let back = kek
            .unwrap_key_material(&w.wrapped)
            .await
            .expect("unwrap_key_material");
        assert_eq!(back.len(), len, "the unwrapped material's length");
        assert!(back == m, "unwrap_key_material returned other material");
        let what = format!("{len}-byte material unwrapped as a data key");
        expect_unwrap_failed(kek, kek.unwrap_key(&w.wrapped).await, &what);
        n += 1;
    }
    n
}

/// Material lengths that are not a multiple of 8 (20 and 33 bytes), as
/// [`wrap_key_material`](KeyEncryptionKey::wrap_key_material) documents
/// them:
///
/// * A256KW (RFC 3394) refuses them with [`Error::InvalidKey`];
/// * A256KWP either refuses them with [`Error::InvalidKey`] (a device that
///   cannot wrap them exactly) or round-trips them exactly;
/// * RSA-OAEP round-trips them.
///
/// A wrap that unwraps to other material (a device that pads the value)
/// fails the check. Returns the number of lengths refused.
///
/// Cost: up to 2 wraps and 2 unwraps; a refusal makes no backend call.
pub async fn material_lengths(kek: &dyn KeyEncryptionKey) -> usize {
    let alg = kek.algorithm();
    let mut refused = 0;
    for len in [20usize, 33] {
        let m = KeyMaterial::from_bytes(&vec![0x5a; len]).expect("16 to 64 bytes of material");
        match kek.wrap_key_material(&m).await {
            Err(Error::InvalidKey(_)) if !alg.is_rsa() => refused += 1,
            Ok(_) if alg == WrapAlgorithm::A256Kw => {
                panic!("A256KW must refuse {len} bytes with Error::InvalidKey")
            }
            Ok(w) => {
                let back = kek
                    .unwrap_key_material(&w.wrapped)
                    .await
                    .expect("unwrap_key_material");
                assert_eq!(
                    back.len(),
                    len,
                    "{len}-byte material unwrapped to another length"
                );
                assert!(back == m, "{len}-byte material did not round-trip");
            }
            Err(e) => panic!("{alg}: wrapping {len} bytes: unexpected {e:?}"),
        }
    }
    refused
}

/// `tasks` tokio tasks wrap and unwrap `rounds` data keys each through one
/// shared `Arc`, all at once; every pair round-trips. Returns
/// `tasks · rounds`. Needs a tokio runtime (multi-threaded, for real
/// parallelism).
///
/// Cost: `tasks · rounds` wraps and as many unwraps.
pub async fn concurrent(kek: &Arc<dyn KeyEncryptionKey>, tasks: usize, rounds: usize) -> usize {
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let kek = Arc::clone(kek);
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let k = data_key();
                let w = kek.wrap_key(&k).await.expect("concurrent wrap_key");
                let back = kek
                    .unwrap_key(&w.wrapped)
                    .await
                    .expect("concurrent unwrap_key");
                assert!(back == k, "a concurrent unwrap returned another key");
            }
        }));
    }
    for h in handles {
        match h.await {
            Ok(()) => {}
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a concurrent task did not finish: {e}"),
        }
    }
    tasks * rounds
}
