//! The conformance suite every `KeyEncryptionKey` backend runs: local keys
//! here, and the Key Vault and PKCS#11 backends in their own tests, through
//! `Arc<dyn KeyEncryptionKey>` only.
//!
//! Call [`run`] from a multi-threaded tokio runtime with the KEK under test
//! and a *different* KEK of the same algorithm.

use std::sync::Arc;

use cmk_envelope::{CryptoProvider, DataKey, Error, KeyEncryptionKey, KeyMaterial};

/// What the suite checked, for the test to print.
#[derive(Debug, Default)]
pub struct Report {
    pub round_trips: usize,
    pub wrong_key_rejections: usize,
    pub modifications_rejected: usize,
    pub truncations_rejected: usize,
    pub concurrent_round_trips: usize,
    pub material_round_trips: usize,
}

fn dek() -> DataKey {
    DataKey::generate(CryptoProvider::default_provider()).unwrap()
}

/// Wrap then unwrap returns the same key; the wrapped key names this KEK
/// and its algorithm and fits the header's limits.
pub async fn round_trip(kek: &Arc<dyn KeyEncryptionKey>) -> usize {
    for _ in 0..4 {
        let k = dek();
        let w = kek.wrap_key(&k).await.expect("wrap");
        assert_eq!(w.alg, kek.algorithm());
        assert!(!w.kek_id.is_empty() && w.kek_id.len() <= 2048);
        assert!(!w.wrapped.is_empty() && w.wrapped.len() <= 1024);
        assert!(
            !w.wrapped
                .windows(32)
                .any(|win| win == k.expose_secret_bytes()),
            "wrapped key contains the key in clear"
        );
        let back = kek.unwrap_key(&w.wrapped).await.expect("unwrap");
        assert!(back == k, "unwrap returned a different key");
    }
    4
}

/// A key wrapped by `kek` does not unwrap under `other`.
pub async fn wrong_key(
    kek: &Arc<dyn KeyEncryptionKey>,
    other: &Arc<dyn KeyEncryptionKey>,
) -> usize {
    let w = kek.wrap_key(&dek()).await.unwrap();
    let e = other
        .unwrap_key(&w.wrapped)
        .await
        .expect_err("wrong key unwrapped");
    assert!(
        matches!(e, Error::UnwrapFailed { .. } | Error::Kek(_)),
        "unexpected error {e:?}"
    );
    let w2 = other.wrap_key(&dek()).await.unwrap();
    assert!(kek.unwrap_key(&w2.wrapped).await.is_err());
    2
}

/// Flipping a bit at any byte of the wrapped key makes unwrap fail.
pub async fn modified_anywhere(kek: &Arc<dyn KeyEncryptionKey>) -> usize {
    let w = kek.wrap_key(&dek()).await.unwrap();
    let mut n = 0;
    for i in 0..w.wrapped.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = w.wrapped.clone();
            m[i] ^= bit;
            assert!(
                kek.unwrap_key(&m).await.is_err(),
                "modified byte {i} (xor {bit:#x}) unwrapped"
            );
            n += 1;
        }
    }
    n
}

/// Empty, truncated and extended inputs are rejected, never a panic.
pub async fn truncated_or_empty(kek: &Arc<dyn KeyEncryptionKey>) -> usize {
    let w = kek.wrap_key(&dek()).await.unwrap();
    let mut n = 0;
    for cut in 0..w.wrapped.len() {
        assert!(
            kek.unwrap_key(&w.wrapped[..cut]).await.is_err(),
            "truncated to {cut} unwrapped"
        );
        n += 1;
    }
    let mut longer = w.wrapped.clone();
    longer.push(0);
    assert!(kek.unwrap_key(&longer).await.is_err());
    longer.extend_from_slice(&[0u8; 7]);
    assert!(kek.unwrap_key(&longer).await.is_err());
    n + 2
}

/// Key material of other lengths round-trips through the byte-level
/// methods: 40 bytes (the protocol-prefixed content key of Azure Storage
/// client-side encryption v2), 16, 24 and 64 bytes. 40-byte material does
/// not unwrap as a data key.
pub async fn material_round_trip(kek: &Arc<dyn KeyEncryptionKey>) -> usize {
    let mut n = 0;
    for len in [40usize, 16, 24, 64] {
        let mut bytes = vec![0u8; len];
        bytes[..3].copy_from_slice(b"2.0");
        for (i, b) in bytes[8..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(len as u8);
        }
        let m = KeyMaterial::from_bytes(&bytes).unwrap();
        let w = kek.wrap_key_material(&m).await.expect("wrap material");
        assert_eq!(w.alg, kek.algorithm());
        assert!(!w.wrapped.windows(len).any(|win| win == &bytes[..]));
        let back = kek
            .unwrap_key_material(&w.wrapped)
            .await
            .expect("unwrap material");
        assert!(
            back == m,
            "unwrap returned different material ({len} bytes)"
        );
        assert_eq!(back.len(), len);
        if len != 32 {
            assert!(
                matches!(
                    kek.unwrap_key(&w.wrapped).await,
                    Err(Error::UnwrapFailed { .. })
                ),
                "{len}-byte material must not unwrap as a data key"
            );
        }
        n += 1;
    }
    n
}

/// Many tasks wrap and unwrap through the same `Arc` at once.
pub async fn concurrent(kek: &Arc<dyn KeyEncryptionKey>, tasks: usize, rounds: usize) -> usize {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let kek = Arc::clone(kek);
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let k = dek();
                let w = kek.wrap_key(&k).await.unwrap();
                assert!(kek.unwrap_key(&w.wrapped).await.unwrap() == k);
            }
        }));
    }
    for h in handles {
        h.await.expect("task panicked");
    }
    tasks * rounds
}

/// The whole suite.
pub async fn run(kek: Arc<dyn KeyEncryptionKey>, other: Arc<dyn KeyEncryptionKey>) -> Report {
    assert_eq!(
        kek.algorithm(),
        other.algorithm(),
        "the second KEK must use the same algorithm"
    );
    assert_ne!(format!("{kek:?}"), "", "Debug must print something");
    Report {
        round_trips: round_trip(&kek).await,
        wrong_key_rejections: wrong_key(&kek, &other).await,
        modifications_rejected: modified_anywhere(&kek).await,
        truncations_rejected: truncated_or_empty(&kek).await,
        concurrent_round_trips: concurrent(&kek, 16, 8).await,
        material_round_trips: material_round_trip(&kek).await,
    }
}
