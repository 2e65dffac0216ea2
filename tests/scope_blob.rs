//! Scopes shared through Azure Blob Storage (Azurite): two independent
//! instances, each with its own `BlobScopeStore` on one container, see a
//! destroy, a key rotation and a CMK rotation within the TTL; an
//! `EncryptedBlob` opened before a destroy fails once the TTL passes.
//! `scripts/azurite.sh` starts Azurite (these tests fail without it).

#![cfg(feature = "blob")]

#[path = "common/azurite.rs"]
mod azurite;
mod common;
#[path = "common/scope_suite.rs"]
mod scope_suite;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::blob::{BlobScopeStore, EncryptedBlobClient, WriteCondition};
use cmk_envelope::scope::{Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::{Error, WrapAlgorithm};
use scope_suite::{data, file_kek, policy, CHUNK, SLACK};

/// A fresh container, and a function making store objects on it.
async fn container(prefix: &str) -> (String, impl Fn() -> Arc<dyn ScopeStore>) {
    let url = azurite::container_url(&azurite::unique_container(prefix));
    azurite::create_container(&url).await;
    let u = url.clone();
    (url, move || {
        Arc::new(BlobScopeStore::new(&u, None, "scopes/", None).unwrap()) as Arc<dyn ScopeStore>
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_destroy_is_seen_by_the_other_instance_within_the_ttl() {
    let (_, store) = container("destroy").await;
    let ttl = Duration::from_millis(500);
    let t = scope_suite::destroy_is_seen_within_the_ttl(store(), store(), "bl-destroy", ttl).await;
    println!("blob store: destroy → B's first refusal {t:?} (TTL {ttl:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_key_rotation_is_followed_within_the_ttl() {
    let (_, store) = container("rotate").await;
    let ttl = Duration::from_millis(500);
    scope_suite::key_rotation_is_followed(store(), store(), "bl-rotate", ttl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_cmk_rotation_is_followed_by_who_can_reach_the_new_key() {
    let (_, store) = container("cmk").await;
    let ttl = Duration::from_millis(500);
    scope_suite::cmk_rotation_is_followed(store(), store(), store(), "bl-cmk", ttl).await;
}

/// A blob opened for ranged reads on instance B before A destroys the
/// scope: its reads work until B learns of the destroy, within the TTL,
/// and fail from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_encrypted_blob_fails_once_the_ttl_passes() {
    let (url, store) = container("handle").await;
    let ttl = Duration::from_millis(500);
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(
        store(),
        "bl-h",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let b = EncryptionScope::open(store(), "bl-h", Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let client = |s: &EncryptionScope| {
        EncryptedBlobClient::builder(&url, None)
            .unwrap()
            .scope(s)
            .build()
            .unwrap()
    };
    let body = data(20 * CHUNK, 7);
    client(&a)
        .upload("model.bin", &body[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    let blob = client(&b).open("model.bin").await.unwrap();
    assert_eq!(blob.read_range(0..100).await.unwrap(), body[..100]);

    a.destroy("bl-h").await.unwrap();
    let destroyed = Instant::now();
    let mut offset = 0u64;
    let e = loop {
        match blob.read_range(offset..offset + 4096).await {
            Ok(got) => {
                assert_eq!(got, body[offset as usize..offset as usize + 4096]);
                assert!(
                    destroyed.elapsed() < ttl + SLACK,
                    "still reading past the TTL"
                );
            }
            Err(e) => break e,
        }
        offset = (offset + CHUNK as u64) % (19 * CHUNK as u64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "blob store: an open EncryptedBlob failed {:?} after the destroy (TTL {ttl:?}): {e}",
        destroyed.elapsed()
    );
    // B learned of the destroy through its refresh (or the lease renewal):
    // the scope is gone for good.
    assert!(matches!(e, Error::ScopeNotFound { .. }), "{e}");
    assert!(matches!(
        blob.read_range(0..10).await,
        Err(Error::ScopeNotFound { .. })
    ));
    assert!(client(&b).open("model.bin").await.is_err());
}
