//! The official SDKs' Always Encrypted format on Cosmos DB: the container's
//! client encryption policy and the database's client encryption keys.

use std::path::Path;

use azure_data_cosmos::CosmosCredential;
use cmk_envelope::cosmos::{ClientEncryptionKeys, EncryptedContainer, EncryptedQuery};
use cmk_envelope::cosmos_ae::{CekKeyring, ClientEncryptionKey, VaultRule};
use cmk_envelope::scope::CachePolicy;
use cmk_envelope::{Error, StaticResolver, StorageErrorKind};
use serde_json::{json, Value};

use super::cosmos::TestTokenCredential;
use super::cosmos_sdk::TestKek;
use super::*;

/// `/id` and the partition key `/tenant` deterministic under `cek1`,
/// `/email` deterministic and `/ssn`, `/history` randomized under `cek2`,
/// `/profile` randomized under `cek1` (policy format 2).
pub(crate) fn sdk_policy() -> Value {
    let p = |path: &str, cek: &str, ty: &str| {
        json!({"path": path, "clientEncryptionKeyId": cek, "encryptionType": ty,
               "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256"})
    };
    json!({"policyFormatVersion": 2, "includedPaths": [
        p("/id", "cek1", "Deterministic"),
        p("/tenant", "cek1", "Deterministic"),
        p("/email", "cek2", "Deterministic"),
        p("/ssn", "cek2", "Randomized"),
        p("/profile", "cek1", "Randomized"),
        p("/history", "cek2", "Randomized"),
    ]})
}

/// An SDK-format container in a fresh database: two CEKs, each under its
/// own KEK (the JavaScript SDK caches root keys by KEK URL), created
/// through `ClientEncryptionKeys`; and a plain container of the same shape.
pub(crate) struct SdkSetup {
    pub(crate) db_name: String,
    pub(crate) raw: ContainerClient,
    pub(crate) plain: ContainerClient,
    pub(crate) enc: EncryptedContainer,
    pub(crate) keks: Vec<TestKek>,
    /// The directory the KEKs are in: their "vault".
    pub(crate) vault: std::path::PathBuf,
}

/// Two test KEKs in one directory (one "vault").
pub(crate) fn test_keks(vault: &Path) -> Vec<TestKek> {
    (0..2)
        .map(|i| {
            let name = ["kek-a", "kek-b"][i];
            TestKek::in_dir(
                common::rsa_jwk(i),
                format!("https://vault-one.vault.azure.net/keys/{name}/v{i}"),
                vault,
            )
        })
        .collect()
}

pub(crate) fn keyring_for(keks: &[&TestKek]) -> Arc<CekKeyring> {
    let resolver = keks
        .iter()
        .fold(StaticResolver::new(), |r, k| r.with(k.kek.clone()));
    Arc::new(CekKeyring::new(Arc::new(resolver), CachePolicy::default()))
}

pub(crate) async fn sdk_setup(prefix: &str) -> SdkSetup {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, prefix).await;
    let db_name = db.name().unwrap().to_owned();
    let vault = common::tempdir();
    let keks = test_keks(&vault);
    let keys = cosmos::cek_keys(&db_name);
    for (id, k) in [("cek1", &keks[0]), ("cek2", &keks[1])] {
        let cek = ClientEncryptionKey::create(id, k.kek.as_ref())
            .await
            .unwrap();
        keys.create(&cek).await.unwrap();
    }
    let raw = cosmos::container_with(
        &db,
        "items",
        "/tenant",
        json!({"clientEncryptionPolicy": sdk_policy()}),
    )
    .await;
    let plain = cosmos::container_with(&db, "plain", "/tenant", Value::Null).await;
    let enc =
        EncryptedContainer::with_sdk_format(raw.clone(), keys, keyring_for(&[&keks[0], &keks[1]]))
            .await
            .unwrap();
    SdkSetup {
        db_name,
        raw,
        plain,
        enc,
        keks,
        vault,
    }
}

/// Items of every type the SDKs carry, nested, with numbers at the edges
/// of `i64` and `f64`.
pub(crate) fn sdk_edge_items() -> Vec<Value> {
    vec![
        json!({"id": "s1 with+odd chars ü", "tenant": "t", "email": "a@example.com",
               "ssn": "PLAINTEXT-078-05-1120",
               "profile": {"i64min": i64::MIN, "i64max": i64::MAX, "tiny": 5e-324,
                           "huge": 1.797_693_134_862_315_7e308, "tenth": 0.1, "one": 1.0,
                           "deep": {"a": {"b": [1, [2, [3, {"c": null}]]]}}, "empty": {}, "none": [],
                           "flag": false, "text": "PLAINTEXT-Zürich — 你好 🎉"},
               "history": [null, true, "PLAINTEXT-x", -2.5, {"k": [{}]}],
               "clear": {"stays": [1, 2, 3]}}),
        json!({"id": "s2", "tenant": "t", "email": "", "ssn": 0, "profile": null, "history": []}),
        json!({"id": "s3", "tenant": "t", "email": true, "ssn": -1.5, "n": 7}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_format_round_trips_store_no_plaintext_and_fill_a_100_item_page() {
    let s = sdk_setup("ae-rt").await;
    for item in sdk_edge_items() {
        let id = item["id"].as_str().unwrap();
        s.enc.create(item.clone()).await.unwrap();
        let (back, _) = s.enc.read(id, &json!("t")).await.unwrap().unwrap();
        assert_eq!(without_system(back.clone()), item);
        assert_eq!(
            back["profile"]["one"].as_f64(),
            item["profile"]["one"].as_f64()
        );
        // As stored: id and partition key are ciphertexts, every encrypted
        // leaf is a string, nothing in clear.
        let rows: Vec<Value> = plain_query(&s.raw, "SELECT * FROM c", &[]).await;
        assert_eq!(rows.len(), 1);
        let raw = &rows[0];
        assert_ne!(raw["id"], item["id"]);
        assert!(raw["tenant"].as_str().unwrap() != "t");
        let text = raw.to_string();
        for secret in ["PLAINTEXT", "a@example.com", "i64min\":-", "Zürich"] {
            assert!(!text.contains(secret), "{secret} stored in clear: {text}");
        }
        s.raw
            .delete_item(
                raw["tenant"].as_str().unwrap().to_owned(),
                raw["id"].as_str().unwrap(),
                None,
            )
            .await
            .unwrap();
    }
    // Integers beyond i64 are refused, as by every SDK; nothing is sent.
    let e = s
        .enc
        .create(json!({"id": "big", "tenant": "t", "ssn": u64::MAX}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::DocumentField { ref path, .. } if path == "/ssn"),
        "{e}"
    );

    full_page_of_100(&s.enc, patient_sdk).await;
}

/// The keys of the container's database only: a keys client of another
/// database, holding keys of the same ids, is refused; a container without
/// a policy is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_another_database_or_no_policy_are_refused() {
    let s = sdk_setup("ae-db").await;
    let client = cosmos::client().await;
    let other = cosmos::database(&client, "ae-other").await;
    let other_keys = cosmos::cek_keys(other.name().unwrap());
    for (id, k) in [("cek1", &s.keks[0]), ("cek2", &s.keks[1])] {
        let cek = ClientEncryptionKey::create(id, k.kek.as_ref())
            .await
            .unwrap();
        other_keys.create(&cek).await.unwrap();
    }
    let keyring = keyring_for(&[&s.keks[0], &s.keks[1]]);
    let e = EncryptedContainer::with_sdk_format(s.raw.clone(), other_keys, keyring.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ApiMisuse(m) if m.contains("another database")),
        "{e}"
    );
    let e =
        EncryptedContainer::with_sdk_format(s.plain.clone(), cosmos::cek_keys(&s.db_name), keyring)
            .await
            .unwrap_err();
    assert!(
        matches!(e, Error::CosmosAeMetadata(ref m) if m.contains("no client encryption policy")),
        "{e}"
    );
}

/// A test item for the SDK format (no nested encrypted city: the policy
/// encrypts top-level properties).
pub(crate) fn patient_sdk(n: usize, tenant: &str) -> Value {
    let mut p = patient(n, tenant);
    p["address"] = json!({"zip": format!("{n:05}")});
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_format_equality_queries_match_a_plain_container() {
    let s = sdk_setup("ae-q").await;
    for n in 0..24usize {
        let tenant = if n.is_multiple_of(3) { "t1" } else { "t2" };
        s.enc.create(patient_sdk(n, tenant)).await.unwrap();
        s.plain
            .create_item(tenant, &format!("p{n:04}"), patient_sdk(n, tenant), None)
            .await
            .unwrap();
    }
    for email in [
        "user0@example.com",
        "user5@example.com",
        "nobody@example.com",
    ] {
        let enc = enc_query(
            &s.enc,
            EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e AND c.n < @max")
                .with_encrypted_parameter("@e", "/email", json!(email))
                .with_parameter("@max", json!(20)),
        )
        .await;
        let plain = plain_query(
            &s.plain,
            "SELECT * FROM c WHERE c.email = @e AND c.n < 20",
            &[("@e", json!(email))],
        )
        .await;
        assert_eq!(ids(&enc), ids(&plain), "{email}");
    }
    // The encrypted id and partition key: equality, and a partition scope.
    let enc = enc_query(
        &s.enc,
        EncryptedQuery::new("SELECT * FROM c WHERE c.id IN (@a, @b) OR c.tenant = @t")
            .with_encrypted_parameter("@a", "/id", json!("p0001"))
            .with_encrypted_parameter("@b", "/id", json!("p0002"))
            .with_encrypted_parameter("@t", "/tenant", json!("t1")),
    )
    .await;
    let plain = plain_query(
        &s.plain,
        "SELECT * FROM c WHERE c.id IN ('p0001', 'p0002') OR c.tenant = 't1'",
        &[],
    )
    .await;
    assert_eq!(ids(&enc), ids(&plain));
    let enc = enc_query(
        &s.enc,
        EncryptedQuery::new("SELECT * FROM c").in_partition(json!("t1")),
    )
    .await;
    assert_eq!(enc.len(), 8);
    assert!(enc.iter().all(|i| i["tenant"] == "t1"));
    // Randomized paths are refused.
    for q in [
        EncryptedQuery::new("SELECT * FROM c WHERE c.ssn = @s").with_encrypted_parameter(
            "@s",
            "/ssn",
            json!("x"),
        ),
        EncryptedQuery::new("SELECT * FROM c WHERE c.profile.age > 20"),
        EncryptedQuery::new("SELECT * FROM c ORDER BY c.tenant"),
    ] {
        assert!(matches!(s.enc.query(q).await, Err(Error::QueryRefused(_))));
    }
    // An error about an item with an encrypted id does not name it.
    let (item, etag) = s.enc.read("p0001", &json!("t2")).await.unwrap().unwrap();
    s.enc.replace(item.clone(), Some(&etag)).await.unwrap();
    let e = s.enc.replace(item, Some(&etag)).await.unwrap_err();
    assert!(matches!(e, Error::CosmosConflict { id: None, .. }), "{e}");
}

/// Production authentication: the same container through an Entra ID
/// token credential, for the SDK client and for the client encryption
/// keys (the token asked for the scope the SDKs use); a token the service
/// refuses is an authentication error that names neither key nor token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_id_tokens_for_items_and_client_encryption_keys() {
    let s = sdk_setup("ae-aad").await;
    let credential = TestTokenCredential::new();
    let client = cosmos::client_with_credential(credential.clone()).await;
    let container = client
        .database_client(&s.db_name)
        .container_client("items", None)
        .await
        .unwrap();
    let keys = ClientEncryptionKeys::new(
        &cosmos::endpoint(),
        &s.db_name,
        CosmosCredential::from(
            credential.clone() as Arc<dyn azure_core::credentials::TokenCredential>
        ),
    )
    .unwrap();
    assert!(format!("{keys:?}").contains("Entra ID"));
    let enc = EncryptedContainer::with_sdk_format(
        container,
        keys,
        keyring_for(&[&s.keks[0], &s.keks[1]]),
    )
    .await
    .unwrap();
    enc.create(patient_sdk(1, "t")).await.unwrap();
    for c in [&enc, &s.enc] {
        let (back, _) = c.read("p0001", &json!("t")).await.unwrap().unwrap();
        assert_eq!(without_system(back), patient_sdk(1, "t"));
    }
    assert!(credential.issued.load(std::sync::atomic::Ordering::Relaxed) > 0);

    let wrong = TestTokenCredential::with_token("not-the-token".into());
    let keys = ClientEncryptionKeys::new(
        &cosmos::endpoint(),
        &s.db_name,
        CosmosCredential::from(wrong as Arc<dyn azure_core::credentials::TokenCredential>),
    )
    .unwrap();
    match keys.read("cek1").await {
        Err(Error::Storage(e)) => {
            assert_eq!(
                (e.kind(), e.status()),
                (StorageErrorKind::Unauthenticated, Some(401)),
                "{e}"
            );
            let text = format!("{e} {e:?}");
            assert!(
                !text.contains("not-the-token") && !text.contains(&cosmos::aad_token()),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A wrong account key: refused too, and never printed.
    let bad_key = cosmos::random_key();
    let keys = ClientEncryptionKeys::new(
        &cosmos::endpoint(),
        &s.db_name,
        CosmosCredential::from(azure_core::credentials::Secret::new(bad_key.clone())),
    )
    .unwrap();
    let e = keys.read("cek1").await.unwrap_err();
    let text = format!("{e} {e:?} {keys:?}");
    assert!(text.contains("401") && !text.contains(&bad_key), "{text}");
    assert!(!format!("{:?}", s.enc).contains(&cosmos::account_key()));
}

/// A KEK that can be disabled, as a Key Vault key can.
#[derive(Debug)]
struct Revocable {
    inner: Arc<dyn cmk_envelope::KeyEncryptionKey>,
    disabled: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl cmk_envelope::KeyEncryptionKey for Revocable {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    fn algorithm(&self) -> cmk_envelope::WrapAlgorithm {
        self.inner.algorithm()
    }
    fn key_container(&self) -> Option<String> {
        self.inner.key_container()
    }
    async fn wrap_key_material(
        &self,
        m: &cmk_envelope::KeyMaterial,
    ) -> cmk_envelope::Result<cmk_envelope::WrappedKey> {
        self.inner.wrap_key_material(m).await
    }
    async fn unwrap_key_material(
        &self,
        w: &[u8],
    ) -> cmk_envelope::Result<cmk_envelope::KeyMaterial> {
        if self.disabled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(cmk_envelope::KekError::new(
                "test",
                cmk_envelope::KekErrorKind::KeyUnavailable,
                "the key is disabled",
            )
            .into());
        }
        self.inner.unwrap_key_material(w).await
    }
}

/// One instance rotates a client encryption key's KEK and the old KEK is
/// then disabled: another instance, made before the rotation, follows it
/// (once its cached root key expires, the unwrap with the old KEK fails,
/// it reads the keys again and unwraps with the new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_follow_a_rotation_made_elsewhere() {
    let s = sdk_setup("ae-follow").await;
    s.enc.create(patient_sdk(1, "t")).await.unwrap();
    let old = Arc::new(Revocable {
        inner: s.keks[0].kek.clone(),
        disabled: Default::default(),
    });
    let new = TestKek::in_dir(
        common::rsa_jwk(1),
        "https://vault-one.vault.azure.net/keys/kek-a/v2".into(),
        &s.vault,
    );
    let resolver = StaticResolver::new()
        .with(old.clone())
        .with(s.keks[1].kek.clone())
        .with(new.kek.clone());
    let keyring = Arc::new(CekKeyring::new(
        Arc::new(resolver),
        CachePolicy {
            ttl: Duration::from_millis(300),
            failure_backoff: Duration::from_millis(50),
            ..CachePolicy::default()
        },
    ));
    let c = cosmos::client()
        .await
        .database_client(&s.db_name)
        .container_client("items", None)
        .await
        .unwrap();
    let b = EncryptedContainer::with_sdk_format(c, cosmos::cek_keys(&s.db_name), keyring)
        .await
        .unwrap();
    assert!(b.read("p0001", &json!("t")).await.unwrap().is_some());
    s.enc
        .rewrap_client_encryption_key("cek1", new.kek.as_ref(), VaultRule::SameVaultOnly)
        .await
        .unwrap();
    old.disabled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (item, _) = b.read("p0001", &json!("t")).await.unwrap().unwrap();
    assert_eq!(without_system(item), patient_sdk(1, "t"));
    b.create(patient_sdk(2, "t")).await.unwrap();
    assert!(b.read("p0002", &json!("t")).await.unwrap().is_some());
    // The rotating instance's allow-list lacks the new KEK: it refuses.
    assert!(matches!(
        s.enc.read("p0002", &json!("t")).await,
        Err(Error::UnknownKek { .. })
    ));
}
