//! Field-level encryption of JSON documents: the untrusted text of a
//! stored document (`document_fields`) and the cipher end to end
//! (`document_cipher`).

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pollster::block_on;
use serde_json::Value;

use super::{assert_input_error, ContainedKek};
use crate::document::{DocumentCipher, DocumentPolicy, FieldMode};
use crate::kek::KeyEncryptionKey;
use crate::scope::{
    fuzz_encode_material, CachePolicy, Cmk, EncryptionScope, FuzzUsage, MemoryScopeStore,
    ScopeKeyVersion, ScopeMode, ScopeRecord, ScopeStore,
};
use crate::Error;

/// `document_fields`: the input (UTF-8) as a document's `_cmk` and as a
/// field value of each mode. What parses must encode back to exactly the
/// input (base64 is decoded strictly, and a header parses only from its one
/// encoding), and every refusal is an input error.
pub fn fields(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let doc = serde_json::json!({"id": "d", "_cmk": text});
    match crate::document::fuzz_header(&doc) {
        Ok(h) => assert_eq!(STANDARD.encode(h.to_bytes()), text, "`_cmk` round trip"),
        Err(e) => assert_input_error(&e, "`_cmk`"),
    }
    for mode in [FieldMode::Randomized, FieldMode::Deterministic] {
        match crate::document::fuzz_reencode_field("/f", mode, text) {
            Ok(again) => assert_eq!(again, text, "field round trip ({mode:?})"),
            Err(e) => {
                assert_input_error(&e, "field");
                assert!(
                    matches!(
                        e,
                        Error::DocumentField { .. } | Error::FieldAuthentication { .. }
                    ),
                    "field: {e:?}"
                );
            }
        }
    }
}

/// The scope id of the fixture.
const SCOPE: &str = "fuzz-docs";

/// A document cipher under a scope whose key is fixed (version 1: 32 bytes
/// of 0x55, as labelled scope key material wrapped by a fixed AES key), so that documents encrypted by the
/// seed generator decrypt in the fuzzing process. Policy: `/a` and
/// `/c/d` randomized, `/b` deterministic, partition key `/pk`.
fn cipher() -> &'static DocumentCipher {
    static C: OnceLock<DocumentCipher> = OnceLock::new();
    C.get_or_init(|| {
        block_on(async {
            let kek: Arc<dyn KeyEncryptionKey> = Arc::new(ContainedKek::new("fuzz-doc", 0x44));
            let material = fuzz_encode_material(
                crate::CryptoProvider::default_provider(),
                SCOPE,
                &[0x55; 32],
                FuzzUsage::SealAndOpen,
            )
            .expect("scope key material");
            let record = ScopeRecord {
                scope_id: SCOPE.to_owned(),
                mode: ScopeMode::CustomerManaged,
                cmk_container: kek.key_container().expect("container"),
                current: 1,
                versions: vec![ScopeKeyVersion {
                    version: 1,
                    wrapped: kek.wrap_key_material(&material).await.expect("wrap"),
                }],
                labelled: true,
            };
            let store = Arc::new(MemoryScopeStore::new());
            store
                .put(SCOPE, &record.to_json(), None)
                .await
                .expect("store");
            let scope = EncryptionScope::open(
                store,
                SCOPE,
                Cmk::CustomerManaged(kek),
                CachePolicy::default(),
            )
            .await
            .expect("scope");
            let policy = DocumentPolicy::new("/pk")
                .and_then(|p| p.randomized("/a"))
                .and_then(|p| p.deterministic("/b"))
                .and_then(|p| p.randomized("/c/d"))
                .expect("policy");
            DocumentCipher::new(scope, policy)
        })
    })
}

/// `document_cipher`: the input (JSON) decrypted as a stored document, and
/// encrypted then decrypted. A decryption either succeeds — and then the
/// fields hold JSON and `_cmk` is gone — or fails with the document
/// untouched; an encryption that succeeds decrypts back to the document it
/// started from.
pub fn cipher_end_to_end(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let c = cipher();
    let mut d = doc.clone();
    match block_on(c.decrypt(&mut d)) {
        Ok(()) => assert!(d.get("_cmk").is_none(), "`_cmk` left after decryption"),
        Err(e) => {
            assert_input_error(&e, "decrypt");
            assert!(d == doc, "a failed decryption changed the document");
        }
    }
    let mut e = doc.clone();
    match block_on(c.encrypt(&mut e)) {
        Ok(()) => {
            let mut back = e.clone();
            block_on(c.decrypt(&mut back)).expect("an encrypted document decrypts");
            assert!(back == doc, "encrypt then decrypt changed the document");
        }
        Err(err) => {
            assert_input_error(&err, "encrypt");
            assert!(e == doc, "a failed encryption changed the document");
        }
    }
}

/// Real objects for the seed corpus: documents encrypted by the fixture's
/// cipher (one with every field kind of value), as JSON.
pub fn seed_documents() -> Vec<(String, Vec<u8>)> {
    let docs = [
        serde_json::json!({"id": "p-1", "pk": "t", "a": "078-05-1120", "b": "a@b.example", "c": {"d": [1, 2.5, null, true]}}),
        serde_json::json!({"id": "p-2", "pk": 7, "a": {"nested": {"x": -1}}, "b": 1e300, "c": {"d": ""}, "clear": "kept"}),
    ];
    let mut out = Vec::new();
    for (i, mut d) in docs.into_iter().enumerate() {
        out.push((format!("clear-{i}"), serde_json::to_vec(&d).expect("json")));
        block_on(cipher().encrypt(&mut d)).expect("encrypt");
        out.push((
            format!("encrypted-{i}"),
            serde_json::to_vec(&d).expect("json"),
        ));
    }
    out
}
