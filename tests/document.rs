//! Field-level encryption of JSON documents: round trips of every JSON
//! type, paths, the policy's refusals, binding to path and document,
//! tampering, deterministic equality, error reporting, and nonce
//! uniqueness.

#![cfg(feature = "document")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cmk_envelope::document::{DocumentCipher, DocumentPolicy, FieldMode, CMK_PROPERTY};
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{Error, Header, KeyEncryptionKey, LocalKek, Profile, WrapAlgorithm};
use proptest::prelude::*;
use serde_json::{json, Value};

fn file_kek(dir: &std::path::Path) -> Arc<dyn KeyEncryptionKey> {
    let path = dir.join("cmk.jwk");
    LocalKek::generate(WrapAlgorithm::A256Kw, Some("cmk".into()), None)
        .unwrap()
        .save_jwk(&path, false)
        .unwrap();
    Arc::new(LocalKek::from_jwk_file(&path).unwrap())
}

async fn scope() -> EncryptionScope {
    let dir = common::tempdir();
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    EncryptionScope::create(
        store,
        "docs",
        Cmk::CustomerManaged(file_kek(&dir)),
        CachePolicy::default(),
    )
    .await
    .unwrap()
}

fn policy(fields: &[(&str, FieldMode)]) -> DocumentPolicy {
    fields
        .iter()
        .fold(DocumentPolicy::new("/tenant").unwrap(), |p, (path, m)| {
            p.field(path, *m).unwrap()
        })
}

fn field<'a>(doc: &'a Value, path: &str) -> &'a str {
    doc.pointer(path).unwrap().as_str().unwrap()
}

fn set(doc: &mut Value, path: &str, v: Value) {
    *doc.pointer_mut(path).unwrap() = v;
}

fn is_field_auth(e: &Error, want: &str) -> bool {
    matches!(e, Error::FieldAuthentication { path } if path == want)
}

fn is_doc_field(e: &Error, want: &str) -> bool {
    matches!(e, Error::DocumentField { path, .. } if path == want)
}

fn typed_doc(id: &str) -> Value {
    json!({
        "id": id,
        "tenant": "t-1",
        "s": "078-05-1120",
        "empty": "",
        "uni": "Grüße, 世界 \u{1F510} \"quoted\" \\ \n",
        "i": -42,
        "u": u64::MAX,
        "imin": i64::MIN,
        "f": 0.1,
        "negzero": -0.0,
        "big": 1e300,
        "tiny": 5e-324,
        // Printed shortest as 1.3111111111111109e103, a text the parser
        // without correct rounding reads as its neighbour.
        "hard": "1.3111111111111109e103".parse::<f64>().unwrap(),
        "float_int": 1.0,
        "t": true,
        "n": null,
        "obj": {"a": [1, {"b": null}], "z": "x"},
        "arr": [1, "two", 3.5, false, null, [], {}],
        "clear": "stays"
    })
}

const TYPED_PATHS: [&str; 16] = [
    "/s",
    "/empty",
    "/uni",
    "/i",
    "/u",
    "/imin",
    "/f",
    "/negzero",
    "/big",
    "/tiny",
    "/hard",
    "/float_int",
    "/t",
    "/n",
    "/obj",
    "/arr",
];

fn typed_paths() -> impl Iterator<Item = &'static str> {
    TYPED_PATHS.iter().copied()
}

#[tokio::test]
async fn every_json_type_round_trips_bit_for_bit_in_both_modes() {
    let scope = scope().await;
    for mode in [FieldMode::Randomized, FieldMode::Deterministic] {
        let fields: Vec<_> = typed_paths().map(|p| (p, mode)).collect();
        let cipher = DocumentCipher::new(scope.clone(), policy(&fields));
        let original = typed_doc("doc-1");
        let mut doc = original.clone();
        cipher.encrypt(&mut doc).await.unwrap();

        let prefix = match mode {
            FieldMode::Randomized => "cmke1:r:",
            FieldMode::Deterministic => "cmke1:d:1:",
        };
        for p in typed_paths() {
            assert!(field(&doc, p).starts_with(prefix), "{p}: {}", doc[&p[1..]]);
        }
        assert_eq!(doc["id"], "doc-1");
        assert_eq!(doc["tenant"], "t-1");
        assert_eq!(doc["clear"], "stays");
        let header = STANDARD.decode(field(&doc, "/_cmk")).unwrap();
        let header = Header::parse(&header).unwrap();
        assert_eq!(header.profile(), Profile::Document);
        assert_eq!(header.keys()[0].kek_id, "scope:docs/1");
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("078-05-1120") && !text.contains("Grüße"));

        cipher.decrypt(&mut doc).await.unwrap();
        assert_eq!(doc, original);
        assert!(doc.get(CMK_PROPERTY).is_none());
        // Value equality treats -0.0 == 0.0; check the bits.
        for p in ["/f", "/negzero", "/big", "/tiny", "/hard", "/float_int"] {
            let (a, b) = (doc.pointer(p).unwrap(), original.pointer(p).unwrap());
            assert!(a.is_f64(), "{p} stays a float");
            assert_eq!(a.as_f64().unwrap().to_bits(), b.as_f64().unwrap().to_bits());
        }
        assert!(doc["u"].is_u64() && doc["imin"].is_i64() && doc["i"].is_i64());
        assert_eq!(doc["u"].as_u64(), Some(u64::MAX));
        assert_eq!(doc["imin"].as_i64(), Some(i64::MIN));
    }
}

#[tokio::test]
async fn nested_array_and_escaped_paths() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope,
        policy(&[
            ("/patient/ssn", FieldMode::Randomized),
            ("/items/0/price", FieldMode::Randomized),
            ("/items/1", FieldMode::Deterministic),
            ("/a~1b", FieldMode::Randomized),
            ("/m~0n/0/0", FieldMode::Deterministic),
        ]),
    );
    let original = json!({
        "id": "n-1", "tenant": "t",
        "patient": {"ssn": "123-45-6789", "name": "clear"},
        "items": [{"price": 12.5, "sku": "A"}, {"price": 3, "sku": "B"}],
        "a/b": [1, 2],
        "m~n": [["deep", 1]]
    });
    let mut doc = original.clone();
    cipher.encrypt(&mut doc).await.unwrap();
    assert!(field(&doc, "/patient/ssn").starts_with("cmke1:r:"));
    assert_eq!(doc["patient"]["name"], "clear");
    assert!(field(&doc, "/items/0/price").starts_with("cmke1:r:"));
    assert_eq!(doc["items"][0]["sku"], "A");
    assert!(field(&doc, "/items/1").starts_with("cmke1:d:"));
    assert!(field(&doc, "/a~1b").starts_with("cmke1:r:"));
    assert!(field(&doc, "/m~0n/0/0").starts_with("cmke1:d:"));
    assert_eq!(doc["m~n"][0][1], 1);
    cipher.decrypt(&mut doc).await.unwrap();
    assert_eq!(doc, original);
}

#[test]
fn policy_refuses_id_partition_key_and_bad_paths() {
    let p = || DocumentPolicy::new("/customer/region").unwrap();
    for bad in [
        "/id",
        "/customer/region",
        "/customer",
        "/customer/region/x",
        "",
        "/_cmk",
        "/items/-",
        "/items/-/price",
        "no-slash",
        "/a~2",
        "/a~",
    ] {
        for mode in [FieldMode::Randomized, FieldMode::Deterministic] {
            let e = p().field(bad, mode).unwrap_err();
            assert!(is_doc_field(&e, bad), "{bad}: {e}");
        }
    }
    // overlapping paths
    let e = p()
        .randomized("/a")
        .unwrap()
        .randomized("/a/b")
        .unwrap_err();
    assert!(is_doc_field(&e, "/a/b"), "{e}");
    let e = p()
        .randomized("/a/b")
        .unwrap()
        .deterministic("/a")
        .unwrap_err();
    assert!(is_doc_field(&e, "/a"), "{e}");
    let e = p().randomized("/a").unwrap().randomized("/a").unwrap_err();
    assert!(is_doc_field(&e, "/a"), "{e}");
    // neighbours are fine
    p().randomized("/identity")
        .unwrap()
        .randomized("/customer/name")
        .unwrap()
        .randomized("/ids/0")
        .unwrap();
    assert!(DocumentPolicy::new("").is_err());
    assert!(DocumentPolicy::new("x").is_err());
    // no partition key: only /id is kept
    let np = DocumentPolicy::without_partition_key();
    assert!(np.clone().randomized("/tenant").is_ok());
    assert!(np.randomized("/id").is_err());
    // the mode defaults to randomized
    assert_eq!(FieldMode::default(), FieldMode::Randomized);
}

#[tokio::test]
async fn moving_a_ciphertext_to_another_path_fails() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope,
        policy(&[
            ("/a", FieldMode::Randomized),
            ("/b", FieldMode::Randomized),
            ("/c", FieldMode::Deterministic),
            ("/d", FieldMode::Deterministic),
        ]),
    );
    let mut doc = json!({"id": "m", "tenant": "t", "a": "x", "b": "x", "c": "y", "d": "y"});
    cipher.encrypt(&mut doc).await.unwrap();
    // equal values under different deterministic paths differ
    assert_ne!(field(&doc, "/c"), field(&doc, "/d"));

    let mut swapped = doc.clone();
    let a = doc["a"].clone();
    set(&mut swapped, "/b", a);
    let e = cipher.decrypt(&mut swapped).await.unwrap_err();
    assert!(is_field_auth(&e, "/b"), "{e}");

    let mut swapped = doc.clone();
    let c = doc["c"].clone();
    set(&mut swapped, "/d", c);
    let e = cipher.decrypt(&mut swapped).await.unwrap_err();
    assert!(is_field_auth(&e, "/d"), "{e}");
}

#[tokio::test]
async fn moving_a_ciphertext_to_another_document_fails() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope,
        policy(&[
            ("/ssn", FieldMode::Randomized),
            ("/email", FieldMode::Deterministic),
        ]),
    );
    let mut a = json!({"id": "A", "tenant": "t", "ssn": "111", "email": "a@x"});
    let mut b = json!({"id": "B", "tenant": "t", "ssn": "222", "email": "b@x"});
    cipher.encrypt(&mut a).await.unwrap();
    cipher.encrypt(&mut b).await.unwrap();

    // a randomized value moved into another document
    let mut moved = b.clone();
    set(&mut moved, "/ssn", a["ssn"].clone());
    let e = cipher.decrypt(&mut moved).await.unwrap_err();
    assert!(is_field_auth(&e, "/ssn"), "{e}");

    // the whole document re-labelled with another id
    let mut renamed = a.clone();
    set(&mut renamed, "/id", json!("B"));
    let e = cipher.decrypt(&mut renamed).await.unwrap_err();
    assert!(is_field_auth(&e, "/ssn"), "{e}");

    // the same document id, but the header of another write of it
    let mut a2 = json!({"id": "A", "tenant": "t", "ssn": "111", "email": "a@x"});
    cipher.encrypt(&mut a2).await.unwrap();
    let mut mixed = a2.clone();
    set(&mut mixed, "/ssn", a["ssn"].clone());
    let e = cipher.decrypt(&mut mixed).await.unwrap_err();
    assert!(is_field_auth(&e, "/ssn"), "{e}");

    // Documented limit: a deterministic value is bound to its path and the
    // scope, not to the document (or equality queries could not work).
    let mut det_moved = b.clone();
    set(&mut det_moved, "/email", a["email"].clone());
    cipher.decrypt(&mut det_moved).await.unwrap();
    assert_eq!(det_moved["email"], "a@x");
}

#[tokio::test]
async fn tampering_fails_and_leaves_the_document_unchanged() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope,
        policy(&[
            ("/r", FieldMode::Randomized),
            ("/d", FieldMode::Deterministic),
        ]),
    );
    let mut doc = json!({"id": "t", "tenant": "t", "r": {"k": [1, 2, 3]}, "d": "same"});
    cipher.encrypt(&mut doc).await.unwrap();

    for path in ["/r", "/d"] {
        let text = field(&doc, path).to_owned();
        let (prefix, b64) = text.rsplit_once(':').unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let mut t = doc.clone();
            set(
                &mut t,
                path,
                json!(format!("{prefix}:{}", STANDARD.encode(&bad))),
            );
            let before = t.clone();
            let e = cipher.decrypt(&mut t).await.unwrap_err();
            assert!(is_field_auth(&e, path), "{path} byte {i}: {e}");
            assert_eq!(t, before, "a failed decrypt changes nothing");
        }
        // truncated, extended, not base64
        for bad in [
            format!("{prefix}:{}", STANDARD.encode(&raw[..raw.len() - 1])),
            format!("{prefix}:{}", STANDARD.encode([&raw[..], b"x"].concat())),
            format!("{prefix}:"),
            format!("{prefix}:!!!"),
        ] {
            let mut t = doc.clone();
            set(&mut t, path, json!(bad));
            let e = cipher.decrypt(&mut t).await.unwrap_err();
            assert!(is_field_auth(&e, path), "{path}: {e}");
        }
    }
    // a deterministic value relabelled with another scope key version
    let mut t = doc.clone();
    let d = field(&doc, "/d").replacen("cmke1:d:1:", "cmke1:d:01:", 1);
    set(&mut t, "/d", json!(d));
    assert!(is_field_auth(
        &cipher.decrypt(&mut t).await.unwrap_err(),
        "/d"
    ));
    let mut t = doc.clone();
    let d = field(&doc, "/d").replacen("cmke1:d:1:", "cmke1:d:2:", 1);
    set(&mut t, "/d", json!(d));
    assert!(matches!(
        cipher.decrypt(&mut t).await.unwrap_err(),
        Error::UnknownKek { .. }
    ));

    // a field replaced by a clear value, or switched to the other mode
    let mut t = doc.clone();
    set(&mut t, "/r", json!({"k": [1, 2, 3]}));
    assert!(is_doc_field(
        &cipher.decrypt(&mut t).await.unwrap_err(),
        "/r"
    ));
    let mut t = doc.clone();
    set(&mut t, "/r", json!("plain text"));
    assert!(is_doc_field(
        &cipher.decrypt(&mut t).await.unwrap_err(),
        "/r"
    ));
    let mut t = doc.clone();
    let r = field(&doc, "/r").replacen("cmke1:r:", "cmke1:d:1:", 1);
    set(&mut t, "/r", json!(r));
    assert!(is_doc_field(
        &cipher.decrypt(&mut t).await.unwrap_err(),
        "/r"
    ));

    // the untouched document still decrypts
    cipher.decrypt(&mut doc).await.unwrap();
    assert_eq!(doc["r"], json!({"k": [1, 2, 3]}));
}

#[tokio::test]
async fn deterministic_values_are_equal_across_documents_only_under_one_path() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope.clone(),
        policy(&[
            ("/email", FieldMode::Deterministic),
            ("/backup_email", FieldMode::Deterministic),
            ("/note", FieldMode::Randomized),
        ]),
    );
    let mut docs = Vec::new();
    for (i, email) in ["a@x", "b@x", "a@x"].iter().enumerate() {
        let mut d = json!({"id": format!("d{i}"), "tenant": "t", "email": email,
                           "backup_email": email, "note": "same note"});
        cipher.encrypt(&mut d).await.unwrap();
        docs.push(d);
    }
    assert_eq!(field(&docs[0], "/email"), field(&docs[2], "/email"));
    assert_ne!(field(&docs[0], "/email"), field(&docs[1], "/email"));
    assert_ne!(field(&docs[0], "/email"), field(&docs[0], "/backup_email"));
    // randomized values never repeat
    assert_ne!(field(&docs[0], "/note"), field(&docs[2], "/note"));

    // equality tokens match what was stored (a query would find d0 and d2)
    let token = cipher
        .equality_token("/email", &json!("a@x"))
        .await
        .unwrap();
    assert_eq!(token.as_str().unwrap(), field(&docs[0], "/email"));
    assert!(is_doc_field(
        &cipher
            .equality_token("/note", &json!("x"))
            .await
            .unwrap_err(),
        "/note"
    ));
    assert!(is_doc_field(
        &cipher
            .equality_token("/nope", &json!("x"))
            .await
            .unwrap_err(),
        "/nope"
    ));

    // another cipher over the same scope and policy agrees
    let other = DocumentCipher::new(scope.clone(), cipher.policy().clone());
    let mut d = json!({"id": "d9", "tenant": "t", "email": "a@x", "backup_email": "", "note": 1});
    other.encrypt(&mut d).await.unwrap();
    assert_eq!(field(&d, "/email"), field(&docs[0], "/email"));

    // after a scope key rotation, new documents use version 2; old ones
    // still decrypt and are found with a version-1 token
    assert_eq!(scope.rotate_scope_key().await.unwrap(), 2);
    let mut d = json!({"id": "d10", "tenant": "t", "email": "a@x", "backup_email": "", "note": 1});
    cipher.encrypt(&mut d).await.unwrap();
    assert!(field(&d, "/email").starts_with("cmke1:d:2:"));
    let t2 = cipher
        .equality_token("/email", &json!("a@x"))
        .await
        .unwrap();
    assert_eq!(t2.as_str().unwrap(), field(&d, "/email"));
    let t1 = cipher
        .equality_token_for_version("/email", &json!("a@x"), 1)
        .await
        .unwrap();
    assert_eq!(t1, token);
    for mut d in docs {
        cipher.decrypt(&mut d).await.unwrap();
    }
}

#[tokio::test]
async fn missing_paths_and_bad_documents_are_reported() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(
        scope,
        policy(&[
            ("/a", FieldMode::Randomized),
            ("/deep/b", FieldMode::Deterministic),
        ]),
    );
    let original = json!({"id": "x", "tenant": "t", "a": 1, "deep": {"c": 2}});
    let mut doc = original.clone();
    let e = cipher.encrypt(&mut doc).await.unwrap_err();
    assert!(is_doc_field(&e, "/deep/b"), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(doc, original, "nothing was encrypted");

    for (bad, path) in [
        (json!({"tenant": "t", "a": 1, "deep": {"b": 2}}), "/id"),
        (
            json!({"id": 7, "tenant": "t", "a": 1, "deep": {"b": 2}}),
            "/id",
        ),
        (json!([1, 2]), ""),
        (
            json!({"id": "x", "tenant": "t", "a": 1, "deep": {"b": 2}, "_cmk": "AAAA"}),
            "/_cmk",
        ),
    ] {
        let mut d = bad.clone();
        let e = cipher.encrypt(&mut d).await.unwrap_err();
        assert!(is_doc_field(&e, path), "{e}");
        assert_eq!(d, bad);
    }

    // a path removed after encryption
    let mut doc = json!({"id": "x", "tenant": "t", "a": 1, "deep": {"b": 2}});
    cipher.encrypt(&mut doc).await.unwrap();
    let mut t = doc.clone();
    t["deep"].as_object_mut().unwrap().remove("b");
    let e = cipher.decrypt(&mut t).await.unwrap_err();
    assert!(is_doc_field(&e, "/deep/b"), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
}

#[tokio::test]
async fn malformed_cmk_property_is_refused() {
    let scope = scope().await;
    let cipher = DocumentCipher::new(scope.clone(), policy(&[("/a", FieldMode::Randomized)]));
    let mut doc = json!({"id": "x", "tenant": "t", "a": "secret"});
    cipher.encrypt(&mut doc).await.unwrap();
    let good = STANDARD.decode(field(&doc, "/_cmk")).unwrap();

    // a blob header from the same scope
    let blob = cmk_envelope::Encryptor::new(&[scope.kek()], Profile::Blob, b"x")
        .await
        .unwrap()
        .header()
        .to_bytes();
    let mut wrong_magic = good.clone();
    wrong_magic[0] ^= 0xFF;

    for bad in [
        Value::Null,
        json!(17),
        json!("not base64!"),
        json!(STANDARD.encode(b"CMKE")),
        json!(STANDARD.encode(&good[..good.len() - 1])),
        json!(STANDARD.encode([&good[..], b"x"].concat())),
        json!(STANDARD.encode(&wrong_magic)),
        json!(STANDARD.encode(&blob)),
    ] {
        let mut t = doc.clone();
        t["_cmk"] = bad.clone();
        let e = cipher.decrypt(&mut t).await.unwrap_err();
        assert!(matches!(e, Error::MalformedHeader(_)), "{bad}: {e}");
    }
    let mut t = doc.clone();
    t.as_object_mut().unwrap().remove("_cmk");
    let e = cipher.decrypt(&mut t).await.unwrap_err();
    assert!(matches!(e, Error::MalformedHeader(_)), "{e}");

    // a modified wrapped key fails to unwrap
    let mut t = doc.clone();
    let mut h = good.clone();
    let last = h.len() - 1;
    h[last] ^= 1;
    t["_cmk"] = json!(STANDARD.encode(&h));
    let e = cipher.decrypt(&mut t).await.unwrap_err();
    assert!(matches!(e, Error::UnwrapFailed { .. }), "{e}");
}

/// Every randomized ciphertext's (key, nonce) is (DEK of its write, its
/// counter). Over any sequence of writes the pairs never repeat: the
/// wrapped DEKs differ between writes (A256KW is deterministic, so equal
/// DEKs would give equal wrapped keys), and the counters within a write
/// differ.
fn key_nonce_pairs(doc: &Value, paths: &[String]) -> Vec<(Vec<u8>, [u8; 4])> {
    let header = Header::parse(&STANDARD.decode(field(doc, "/_cmk")).unwrap()).unwrap();
    let dek_id = header.keys()[0].wrapped.clone();
    paths
        .iter()
        .map(|p| {
            let raw = STANDARD
                .decode(field(doc, p).strip_prefix("cmke1:r:").unwrap())
                .unwrap();
            (dek_id.clone(), raw[..4].try_into().unwrap())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn no_key_nonce_pair_repeats(
        writes in prop::collection::vec(
            (0usize..3, prop::collection::vec(any::<u8>(), 0..6)), 1..12),
        n_fields in 1usize..6,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let scope = scope().await;
            let paths: Vec<String> = (0..n_fields).map(|i| format!("/f{i}")).collect();
            let fields: Vec<(&str, FieldMode)> =
                paths.iter().map(|p| (p.as_str(), FieldMode::Randomized)).collect();
            let cipher = DocumentCipher::new(scope, policy(&fields));
            let mut seen = HashSet::new();
            let mut texts = HashSet::new();
            for (id, bytes) in &writes {
                // the same id and the same values, written again and again
                let mut doc = json!({"id": format!("doc-{id}"), "tenant": "t"});
                for p in &paths {
                    doc[&p[1..]] = json!(bytes);
                }
                let original = doc.clone();
                cipher.encrypt(&mut doc).await.unwrap();
                for pair in key_nonce_pairs(&doc, &paths) {
                    prop_assert!(seen.insert(pair), "a (key, nonce) pair repeated");
                }
                for p in &paths {
                    prop_assert!(texts.insert(field(&doc, p).to_owned()));
                }
                cipher.decrypt(&mut doc).await.unwrap();
                prop_assert_eq!(doc, original);
            }
            Ok(())
        })?;
    }
}
