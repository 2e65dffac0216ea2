//! The customer-managed-key rules, with scopes and keys kept in Cosmos DB:
//! modes never switch, keys move only within their vault, and destroying
//! a scope makes its items unreadable within the cache TTL.

use std::time::Instant;

use cmk_envelope::cosmos::CosmosScopeStore;
use cmk_envelope::cosmos_ae::VaultRule;
use cmk_envelope::scope::{Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::Error;
use serde_json::json;

use super::cosmos_sdk::TestKek;
use super::sdk_format::sdk_setup;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_on_cosmos_cannot_switch_mode_nor_leave_its_vault() {
    let s = doc_setup("rules").await;
    let store: Arc<dyn ScopeStore> =
        Arc::new(CosmosScopeStore::new(s.scopes.clone()).await.unwrap());
    let cmk = common::file_kek("cmk-2");
    // Customer-managed (as `doc_setup` made it): opening or creating it as
    // service-managed is refused.
    let open = EncryptionScope::open(
        store.clone(),
        "tenant-scope",
        Cmk::ServiceManaged(cmk.clone()),
        cache(Duration::from_secs(60)),
    )
    .await;
    assert!(matches!(open, Err(Error::KeyPolicy(_))), "{open:?}");
    let create = EncryptionScope::create(
        store.clone(),
        "tenant-scope",
        Cmk::ServiceManaged(cmk.clone()),
        cache(Duration::from_secs(60)),
    )
    .await;
    assert!(
        matches!(create, Err(Error::KeyPolicy(ref m)) if m.contains("modes never switch")),
        "{create:?}"
    );
    // A CMK in another key container (another directory: another vault).
    let rotated = s.scope.rotate_cmk(Cmk::CustomerManaged(cmk)).await;
    assert!(matches!(rotated, Err(Error::KeyPolicy(_))), "{rotated:?}");
    // Items are untouched by the refusals.
    s.enc.create(patient(1, "t")).await.unwrap();
    assert!(s.enc.read("p0001", &json!("t")).await.unwrap().is_some());

    // The SDK format: a client encryption key's KEK moves within its vault
    // only, unless the caller says otherwise.
    let a = sdk_setup("rules-ae").await;
    a.enc
        .create(super::sdk_format::patient_sdk(1, "t"))
        .await
        .unwrap();
    let elsewhere = TestKek::in_dir(
        common::rsa_jwk(1),
        "https://vault-two.vault.azure.net/keys/kek-z/v1".into(),
        &common::tempdir(),
    );
    let e = a
        .enc
        .rewrap_client_encryption_key("cek1", elsewhere.kek.as_ref(), VaultRule::SameVaultOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::KeyPolicy(ref m) if m.contains("within its vault")),
        "{e}"
    );
    let stored = cosmos::cek_keys(&a.db_name)
        .read("cek1")
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(stored.key_wrap_metadata().value(), a.keks[0].url);
    // Opted out explicitly: moved. An instance whose allow-list lacks the
    // new KEK refuses to unwrap with it; one that allows it reads on.
    a.enc
        .rewrap_client_encryption_key("cek1", elsewhere.kek.as_ref(), VaultRule::AllowOtherVault)
        .await
        .unwrap();
    assert!(matches!(
        a.enc.read("p0001", &json!("t")).await,
        Err(Error::UnknownKek { .. })
    ));
    let c = cosmos::client()
        .await
        .database_client(&a.db_name)
        .container_client("items", None)
        .await
        .unwrap();
    let b = EncryptedContainer::with_sdk_format(
        c,
        cosmos::cek_keys(&a.db_name),
        super::sdk_format::keyring_for(&[&elsewhere, &a.keks[1]]),
    )
    .await
    .unwrap();
    assert!(b.read("p0001", &json!("t")).await.unwrap().is_some());
}

/// Another instance destroys the scope's record: this instance's reads
/// and writes fail within the cache TTL (every refresh re-reads the record
/// from Cosmos DB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_the_scope_record_makes_items_unreadable_within_the_ttl() {
    const TTL: Duration = Duration::from_secs(2);
    let client = cosmos::client().await;
    let db = cosmos::database(&client, "shred").await;
    let scopes = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let raw = cosmos::container_with(&db, "items", "/tenant", Value::Null).await;
    let (scope, _) = new_scope(&scopes, "tenant-shred", TTL).await;
    let enc = EncryptedContainer::with_document_format(raw, scope, doc_policy())
        .await
        .unwrap();
    for n in 0..5 {
        enc.create(patient(n, "t")).await.unwrap();
    }
    assert!(enc.read("p0000", &json!("t")).await.unwrap().is_some());
    // Another process, with its own store object, destroys the record.
    let other: Arc<dyn ScopeStore> = Arc::new(CosmosScopeStore::new(scopes.clone()).await.unwrap());
    let destroyed = Instant::now();
    EncryptionScope::destroy_record(other.as_ref(), "tenant-shred", "tenant-shred")
        .await
        .unwrap();
    let refused = loop {
        match enc.read("p0001", &json!("t")).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    destroyed.elapsed() < TTL + Duration::from_secs(3),
                    "still readable {:?} after the record was destroyed (TTL {TTL:?})",
                    destroyed.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    eprintln!(
        "first refusal {:?} after the destroy (TTL {TTL:?}): {refused}",
        destroyed.elapsed()
    );
    for n in 0..5 {
        assert!(enc.read(&format!("p{n:04}"), &json!("t")).await.is_err());
    }
    assert!(enc.create(patient(9, "t")).await.is_err());
}
