//! Domain separation of scope keys: what a CMK wrapped for a scope is never
//! accepted as any other kind of key, and nothing wrapped for another
//! purpose is ever sealed under as a scope key. Includes the review's Azure
//! CSE v1 oracle (a scope record's wrapped key in v1 metadata naming the
//! CMK), and records written before labelling (readable, migrated on the
//! first seal).

mod common;
#[path = "common/scope_suite.rs"]
mod scope_suite;

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::scope::{Cmk, EncryptionScope, FsScopeStore, ScopeRecord, ScopeStore};
use cmk_envelope::{
    open, seal, CryptoProvider, Error, Header, KeyEncryptionKey, KeyMaterial, KeyResolver,
    LocalKek, Profile, StaticResolver, Suite, WrapAlgorithm, WrappedKey,
};
use scope_suite::{file_kek, kid_of, policy};

fn store() -> Arc<dyn ScopeStore> {
    Arc::new(FsScopeStore::new(common::tempdir()).unwrap())
}

fn ttl() -> Duration {
    Duration::from_secs(60)
}

async fn create(
    store: &Arc<dyn ScopeStore>,
    id: &str,
    cmk: &Arc<dyn KeyEncryptionKey>,
) -> EncryptionScope {
    EncryptionScope::create(
        store.clone(),
        id,
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl()),
    )
    .await
    .unwrap()
}

async fn reopen(
    store: &Arc<dyn ScopeStore>,
    id: &str,
    cmk: &Arc<dyn KeyEncryptionKey>,
) -> EncryptionScope {
    EncryptionScope::open(
        store.clone(),
        id,
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl()),
    )
    .await
    .unwrap()
}

/// Replaces the stored record of `id` (as someone who can write the store
/// would).
async fn write_record(store: &Arc<dyn ScopeStore>, id: &str, record: &ScopeRecord) {
    let (_, tag) = store.get(id).await.unwrap().unwrap();
    store.put(id, &record.to_json(), Some(&tag)).await.unwrap();
}

fn resolver(k: &Arc<dyn KeyEncryptionKey>) -> StaticResolver {
    [k.clone()].into_iter().collect()
}

/// The bytes the CMK wrapped for a scope, put in an object's header under
/// the CMK's id, are refused as the object's data key (before any chunk).
#[tokio::test]
async fn scope_key_material_is_refused_as_an_object_data_key() {
    for alg in [WrapAlgorithm::A256Kw, WrapAlgorithm::RsaOaep256] {
        let cmk = file_kek(&common::tempdir(), "cmk", alg);
        let store = store();
        let scope = create(&store, "s", &cmk).await;
        let wrapped = scope.record().versions[0].wrapped.clone();
        assert_eq!(wrapped.kek_id, cmk.key_id());
        let real = seal(std::slice::from_ref(&cmk), Profile::Blob, b"o", b"x")
            .await
            .unwrap();
        let (h, n) = Header::parse_prefix(&real).unwrap();
        let mut forged = Header::new(Suite::Cobblestone256, Profile::Blob, vec![wrapped])
            .unwrap()
            .to_bytes();
        forged.extend_from_slice(&real[n..]);
        assert_eq!(h.keys()[0].kek_id, cmk.key_id());
        let e = open(&resolver(&cmk), Profile::Blob, b"o", &forged)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::UnwrapFailed { kek_id } if kek_id == cmk.key_id()),
            "{alg}: {e}"
        );
    }
}

/// Key material wrapped by the CMK for other purposes — an object's data
/// key (32 bytes), an Azure CSE v2 content key (40) — planted in a scope
/// record is never used to seal: refused in a current record, open-only in
/// a record written before labelling (the scope moves to a fresh key
/// first).
#[tokio::test]
async fn object_data_keys_and_cse_keys_are_refused_as_scope_keys() {
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let store = store();
    let scope = create(&store, "s", &cmk).await;
    let object = seal(std::slice::from_ref(&cmk), Profile::Blob, b"e", b"victim")
        .await
        .unwrap();
    let dek_wrapped = Header::parse_prefix(&object).unwrap().0.keys()[0].clone();
    let cse_wrapped = cmk
        .wrap_key_material(&KeyMaterial::from_bytes(&[0x32; 40]).unwrap())
        .await
        .unwrap();

    let planted = |w: &WrappedKey, labelled: bool| {
        let mut r = scope.record();
        r.versions[0].wrapped = w.clone();
        r.labelled = labelled;
        r
    };
    // In a current (labelled) record: both refused.
    for (what, w) in [("data key", &dek_wrapped), ("CSE v2 key", &cse_wrapped)] {
        write_record(&store, "s", &planted(w, true)).await;
        let e = seal(
            &[reopen(&store, "s", &cmk).await.kek()],
            Profile::Blob,
            b"n",
            b"x",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::KeyPolicy(m) if m.contains("version 1")),
            "{what}: {e}"
        );
    }
    // A CSE key in a record written before labelling: refused too.
    write_record(&store, "s", &planted(&cse_wrapped, false)).await;
    let e = seal(
        &[reopen(&store, "s", &cmk).await.kek()],
        Profile::Blob,
        b"n",
        b"x",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("another purpose"), "{e}");
    // A data key there looks like a bare scope key: open only. Sealing
    // moves the scope to a fresh key (version 2), never seals under it.
    write_record(&store, "s", &planted(&dek_wrapped, false)).await;
    let s = reopen(&store, "s", &cmk).await;
    let env = seal(&[s.kek()], Profile::Blob, b"n", b"new").await.unwrap();
    assert_eq!(kid_of(&env), "scope:s/2");
    let rec = s.record();
    assert!(rec.labelled && rec.current == 2);
    let v1 = s.resolver().resolve("scope:s/1").unwrap();
    let dek = cmk_envelope::DataKey::generate(CryptoProvider::default_provider()).unwrap();
    let e = v1.wrap_key(&dek).await.unwrap_err();
    assert!(e.to_string().contains("may only open"), "{e}");
    // and the migrated record stays that way for every later instance
    let later = reopen(&store, "s", &cmk).await;
    assert!(later
        .resolver()
        .resolve("scope:s/1")
        .unwrap()
        .wrap_key(&dek)
        .await
        .is_err());
    assert_eq!(
        open(&later.resolver(), Profile::Blob, b"n", &env)
            .await
            .unwrap(),
        b"new"
    );
}

/// One scope's wrapped key copied into another scope's record (same CMK)
/// is refused: the material is bound to its scope.
#[tokio::test]
async fn a_scope_key_copied_to_another_scope_is_refused() {
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let store = store();
    let victim = create(&store, "victim", &cmk).await;
    let attacker = create(&store, "attacker", &cmk).await;
    let mut rec = victim.record();
    rec.versions[0].wrapped = attacker.record().versions[0].wrapped.clone();
    write_record(&store, "victim", &rec).await;
    let e = seal(
        &[reopen(&store, "victim", &cmk).await.kek()],
        Profile::Blob,
        b"o",
        b"x",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("belongs to another scope"), "{e}");
}

/// A record as written before labelling: format v1, the scope key wrapped
/// bare, objects sealed under it. It stays readable; the first seal moves
/// the scope to a fresh labelled key and migrates the old one (open only)
/// in the same compare-and-swap write; every object stays readable.
#[tokio::test]
async fn records_written_before_labelling_stay_readable_and_migrate() {
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let store = store();
    let (record, old) = legacy_scope(&store, "legacy", &cmk).await;
    assert!(!record.labelled);
    assert!(
        std::str::from_utf8(&store.get("legacy").await.unwrap().unwrap().0)
            .unwrap()
            .contains("scope-record/v1")
    );

    let s = reopen(&store, "legacy", &cmk).await;
    assert_eq!(
        open(&s.resolver(), Profile::Blob, b"old", &old)
            .await
            .unwrap(),
        b"sealed before"
    );
    let new = seal(&[s.kek()], Profile::Blob, b"new", b"sealed after")
        .await
        .unwrap();
    assert_eq!(kid_of(&new), "scope:legacy/2");
    let text = String::from_utf8(store.get("legacy").await.unwrap().unwrap().0).unwrap();
    assert!(text.contains("scope-record/v2"), "{text}");
    let fresh = reopen(&store, "legacy", &cmk).await;
    assert_eq!(
        open(&fresh.resolver(), Profile::Blob, b"old", &old)
            .await
            .unwrap(),
        b"sealed before"
    );
    assert_eq!(
        open(&fresh.resolver(), Profile::Blob, b"new", &new)
            .await
            .unwrap(),
        b"sealed after"
    );
}

/// A scope record in the format written before labelling, with objects
/// sealed under its bare key exactly as that code sealed them (A256KW under
/// the key, kid `scope:<id>/1`). Returns the record and one object.
async fn legacy_scope(
    store: &Arc<dyn ScopeStore>,
    id: &str,
    cmk: &Arc<dyn KeyEncryptionKey>,
) -> (ScopeRecord, Vec<u8>) {
    let template = create(store, id, cmk).await.record();
    let key = [0x5Cu8; 32];
    let wrapped = cmk
        .wrap_key_material(&KeyMaterial::from_bytes(&key).unwrap())
        .await
        .unwrap();
    let mut record = template;
    record.versions[0].wrapped = wrapped;
    record.labelled = false;
    write_record(store, id, &record).await;
    let as_before: Arc<dyn KeyEncryptionKey> = Arc::new(
        LocalKek::from_aes_key(format!("scope:{id}/1"), WrapAlgorithm::A256Kw, &key).unwrap(),
    );
    let old = seal(&[as_before], Profile::Blob, b"old", b"sealed before")
        .await
        .unwrap();
    (record, old)
}

/// The review's attack: Azure CSE v1 metadata naming the CMK, with a scope
/// record's wrapped key as its content key, would make the unauthenticated
/// AES-CBC decryptor an oracle under the scope key. It is refused for
/// labelled records (and for the migrated one), while a bare key written
/// before labelling shows what the attack needed.
#[cfg(feature = "azure-cse")]
#[tokio::test]
async fn the_cse_v1_oracle_metadata_is_refused() {
    use base64::Engine as _;
    use cmk_envelope::azure_cse::{
        self, CseEncryptOptions, EncryptionData, InsecureCseV1Decryptor, InsecureV1,
    };
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let store = store();
    let r = resolver(&cmk);
    let (m2, blob) = azure_cse::encrypt(cmk.as_ref(), &CseEncryptOptions::v2_0(), b"x")
        .await
        .unwrap();
    let with_key = |protocol_1: bool, wrapped: &[u8]| {
        let mut json = m2.to_json();
        if protocol_1 {
            json = json
                .replace("\"Protocol\":\"2.0\"", "\"Protocol\":\"1.0\"")
                .replace("AES_GCM_256", "AES_CBC_256")
                .replace(
                    "\"EncryptionMode\"",
                    "\"ContentEncryptionIV\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"EncryptionMode\"",
                );
        }
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["WrappedContentKey"]["EncryptedKey"] = base64::engine::general_purpose::STANDARD
            .encode(wrapped)
            .into();
        EncryptionData::parse(&v.to_string()).unwrap()
    };
    let oracle = |m: EncryptionData| {
        let r = r.clone();
        async move { InsecureCseV1Decryptor::new(&m, &r, InsecureV1::AcceptUnauthenticatedCbc).await }
    };

    // The bare key of a record written before labelling: the decryptor
    // accepted it as an AES-CBC key — the oracle.
    let (legacy, _) = legacy_scope(&store, "legacy", &cmk).await;
    let bare = with_key(true, &legacy.versions[0].wrapped.wrapped);
    assert!(
        oracle(bare).await.is_ok(),
        "the bare key is what the attack used"
    );

    // A labelled scope key: refused, by v1 and by v2 alike.
    let scope = create(&store, "s", &cmk).await;
    let labelled = scope.record().versions[0].wrapped.wrapped.clone();
    let e = oracle(with_key(true, &labelled)).await.unwrap_err();
    assert!(e.to_string().contains("bare 32-byte"), "{e}");
    let e = azure_cse::decrypt(&with_key(false, &labelled), &r, &blob)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CseMetadata(_)), "{e}");

    // The legacy scope after its first seal (migrated): refused too.
    let migrated = reopen(&store, "legacy", &cmk).await;
    seal(&[migrated.kek()], Profile::Blob, b"n", b"x")
        .await
        .unwrap();
    for v in &migrated.record().versions {
        let e = oracle(with_key(true, &v.wrapped.wrapped))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("bare 32-byte"),
            "version {}: {e}",
            v.version
        );
    }
}
