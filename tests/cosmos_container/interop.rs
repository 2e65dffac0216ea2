//! Interoperability with the official JavaScript SDK (`@azure/cosmos`
//! 4.10.1): its `CosmosClient` with encryption on, talking to the same test
//! server, reads what this crate wrote and the other way round, including
//! queries on encrypted parameters and client encryption keys created or
//! rotated on either side.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use cmk_envelope::cosmos::{EncryptedContainer, EncryptedQuery};
use cmk_envelope::cosmos_ae::VaultRule;
use serde_json::{json, Value};

use super::cosmos_sdk::{js_view, keys_json, TestKek};
use super::sdk_format::{keyring_for, patient_sdk, sdk_edge_items, sdk_setup};
use super::*;

/// Runs the fixture's live jobs in a working directory.
struct Js {
    dir: PathBuf,
    keys: String,
    n: AtomicUsize,
}

impl Js {
    fn new(keks: &[&TestKek]) -> Js {
        Js {
            dir: common::tempdir(),
            keys: keys_json(keks).to_string(),
            n: AtomicUsize::new(0),
        }
    }

    fn file(&self, stem: &str) -> String {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{stem}-{n}.json"))
            .display()
            .to_string()
    }

    fn put(&self, v: &Value) -> String {
        let f = self.file("in");
        std::fs::write(&f, v.to_string()).unwrap();
        f
    }

    fn run(&self, jobs: Value) {
        let f = self.file("jobs");
        std::fs::write(&f, jobs.to_string()).unwrap();
        super::cosmos_sdk::run_live(std::path::Path::new(&f), &self.keys);
    }

    fn read(&self, f: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_sdk_and_this_crate_share_a_container() {
    let s = sdk_setup("interop").await;
    let js = Js::new(&[&s.keks[0], &s.keks[1]]);
    let db = &s.db_name;

    // This crate writes; the SDK reads and queries.
    let ours: Vec<Value> = sdk_edge_items()
        .into_iter()
        .chain((0..6).map(|n| patient_sdk(n, "t")))
        .collect();
    for item in &ours {
        s.enc.create(item.clone()).await.unwrap();
    }
    let read = js.file("read");
    let query = js.file("query");
    let refs: Vec<Value> = ours.iter().map(|i| json!([i["id"], "t"])).collect();
    js.run(json!([
        {"op": "live-read", "database": db, "container": "items", "refs": refs, "out": read},
        {"op": "live-query", "database": db, "container": "items",
         "query": "SELECT * FROM c WHERE c.email = @e", "out": query,
         "params": [{"name": "@e", "value": "user3@example.com", "path": "/email"}]},
    ]));
    for (item, got) in ours.iter().zip(js.read(&read).as_array().unwrap()) {
        let got = got
            .get("ok")
            .unwrap_or_else(|| panic!("the SDK failed: {got}"));
        assert_eq!(without_system(got.clone()), js_view(item), "{}", item["id"]);
    }
    assert_eq!(ids(js.read(&query).as_array().unwrap()), ["p0003"]);

    // The SDK writes; this crate reads and queries.
    let theirs: Vec<Value> = (10..16).map(|n| patient_sdk(n, "js")).collect();
    let input = js.put(&Value::Array(theirs.clone()));
    js.run(json!([{"op": "live-create", "database": db, "container": "items", "in": input}]));
    for item in &theirs {
        let (got, _) = s
            .enc
            .read(item["id"].as_str().unwrap(), &json!("js"))
            .await
            .unwrap()
            .unwrap();
        // The JavaScript SDK writes integral doubles (4.0) as integers.
        assert_eq!(without_system(got), js_view(item));
    }
    let found = enc_query(
        &s.enc,
        EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e").with_encrypted_parameter(
            "@e",
            "/email",
            json!("user3@example.com"),
        ),
    )
    .await;
    // user3: p0003 (ours) and p0010 (theirs).
    assert_eq!(ids(&found), ["p0003", "p0010"]);
    let in_partition = enc_query(
        &s.enc,
        EncryptedQuery::new("SELECT * FROM c").in_partition(json!("js")),
    )
    .await;
    assert_eq!(in_partition.len(), theirs.len());

    // A key the SDK creates, used by a container of this crate, and a
    // rotation on each side: every item stays readable on both.
    let kek_c = TestKek::in_dir(
        common::rsa_jwk(0),
        "https://vault-one.vault.azure.net/keys/kek-c/v9".into(),
        &common::tempdir(),
    );
    // Each key keeps a KEK of its own: the JavaScript SDK caches root keys
    // by KEK URL (see the cosmos_ae module docs).
    let kek_a2 = TestKek::in_dir(
        common::rsa_jwk(1),
        "https://vault-one.vault.azure.net/keys/kek-a2/v5".into(),
        &s.vault,
    );
    let js = Js::new(&[&s.keks[0], &s.keks[1], &kek_c, &kek_a2]);
    js.run(json!([{"op": "live-create-cek", "database": db, "id": "cek-js", "kek": kek_c.url}]));
    let client = cosmos::client().await;
    let policy = json!({"policyFormatVersion": 2, "includedPaths": [
        {"path": "/ssn", "clientEncryptionKeyId": "cek-js", "encryptionType": "Deterministic",
         "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256"}]});
    let raw2 = cosmos::container_with(
        &client.database_client(db),
        "items2",
        "/tenant",
        json!({"clientEncryptionPolicy": policy}),
    )
    .await;
    let enc2 = EncryptedContainer::with_sdk_format(
        raw2,
        cosmos::cek_keys(db),
        keyring_for(&[&s.keks[0], &s.keks[1], &kek_c]),
    )
    .await
    .unwrap();
    enc2.create(patient_sdk(20, "t")).await.unwrap();

    // This crate rotates cek1 (same vault); the SDK rotates cek-js.
    s.enc
        .rewrap_client_encryption_key("cek1", kek_a2.kek.as_ref(), VaultRule::SameVaultOnly)
        .await
        .unwrap();
    js.run(
        json!([{"op": "live-rewrap-cek", "database": db, "id": "cek-js", "kek": s.keks[0].url}]),
    );
    let read = js.file("read");
    let read2 = js.file("read");
    js.run(json!([
        {"op": "live-read", "database": db, "container": "items", "refs": [["p0003", "t"], ["p0010", "js"]], "out": read},
        {"op": "live-read", "database": db, "container": "items2", "refs": [["p0020", "t"]], "out": read2},
    ]));
    for got in js
        .read(&read)
        .as_array()
        .unwrap()
        .iter()
        .chain(js.read(&read2).as_array().unwrap())
    {
        assert!(
            got.get("ok").is_some(),
            "the SDK failed after the rotations: {got}"
        );
    }
    // Fresh instances of this crate read the rotated keys.
    for (name, id, pk) in [
        ("items", "p0003", "t"),
        ("items", "p0010", "js"),
        ("items2", "p0020", "t"),
    ] {
        let c = client
            .database_client(db)
            .container_client(name, None)
            .await
            .unwrap();
        let enc = EncryptedContainer::with_sdk_format(
            c,
            cosmos::cek_keys(db),
            keyring_for(&[&s.keks[0], &s.keks[1], &kek_a2]),
        )
        .await
        .unwrap();
        assert!(
            enc.read(id, &json!(pk)).await.unwrap().is_some(),
            "{name}/{id}"
        );
    }
}
