//! Cosmos DB Always Encrypted: its JSON resources (`cosmos_ae_metadata`)
//! and items (`cosmos_ae_item`).

use std::sync::{Arc, OnceLock};

use pollster::block_on;
use serde_json::Value;

use super::assert_input_error;
use crate::cosmos_ae::{
    CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, EncryptionType, IncludedPath,
    ItemCipher, KeyWrapMetadata,
};
use crate::kek::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm};
use crate::key::DataKey;
use crate::scope::CachePolicy;

/// `cosmos_ae_metadata`: the input (UTF-8) as a client encryption key, a
/// client encryption policy and a container resource. What parses must
/// encode to JSON that parses back to the same value, and encode the same
/// way again; a policy rebuilt from its paths is the same policy.
pub fn metadata(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientEncryptionKey::parse(text) {
        Ok(cek) => {
            let json = cek.to_json();
            let back = ClientEncryptionKey::parse(&json).expect("encoded key parses");
            assert_eq!(back, cek, "client encryption key changed in a round trip");
            assert_eq!(back.to_json(), json, "encoding is not a fixed point");
        }
        Err(e) => assert_input_error(&e, "ClientEncryptionKey::parse"),
    }
    match ClientEncryptionPolicy::parse(text) {
        Ok(p) => {
            let json = p.to_json();
            let back = ClientEncryptionPolicy::parse(&json).expect("encoded policy parses");
            assert_eq!(back, p, "policy changed in a round trip");
            assert_eq!(back.to_json(), json, "encoding is not a fixed point");
            let rebuilt = ClientEncryptionPolicy::new(p.version(), p.paths().to_vec())
                .expect("a parsed policy's paths are valid");
            assert_eq!(rebuilt.paths(), p.paths());
        }
        Err(e) => assert_input_error(&e, "ClientEncryptionPolicy::parse"),
    }
    if let Err(e) = ClientEncryptionPolicy::from_container(text) {
        assert_input_error(&e, "ClientEncryptionPolicy::from_container");
    }
}

/// The KEK of the fixture's client encryption keys.
fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(
        LocalKek::from_aes_key("fuzz-cosmos", WrapAlgorithm::A256Kw, &[0x45; 32]).expect("kek"),
    )
}

/// The fixture's client encryption keys, `c1` and `c2`, whose root keys are
/// fixed (32 bytes of 0x61 and 0x62) so that items encrypted by the seed
/// generator decrypt in the fuzzing process.
fn keys() -> Vec<ClientEncryptionKey> {
    let kek = kek();
    [("c1", 0x61), ("c2", 0x62)]
        .into_iter()
        .map(|(id, byte)| {
            let root = DataKey::from_unwrapped(&[byte; 32]).expect("root key");
            let w = block_on(kek.wrap_key(&root)).expect("wrap");
            ClientEncryptionKey::new(id, KeyWrapMetadata::for_kek(&w.kek_id, w.alg), w.wrapped)
        })
        .collect()
}

/// The policy of the fixture (format 2): `/id` deterministic under `c1`,
/// `/a` randomized under `c1`, `/b` deterministic and `/c` randomized
/// under `c2`.
fn policy() -> ClientEncryptionPolicy {
    let path = |p, k, t| IncludedPath::new(p, k, t).expect("path");
    ClientEncryptionPolicy::new(
        2,
        [
            path("/id", "c1", EncryptionType::Deterministic),
            path("/a", "c1", EncryptionType::Randomized),
            path("/b", "c2", EncryptionType::Deterministic),
            path("/c", "c2", EncryptionType::Randomized),
        ],
    )
    .expect("policy")
}

fn items() -> &'static ItemCipher {
    static C: OnceLock<ItemCipher> = OnceLock::new();
    C.get_or_init(|| {
        let ring = CekKeyring::new(
            Arc::new(StaticResolver::new().with(kek())),
            CachePolicy::default(),
        );
        for k in keys() {
            ring.insert(k);
        }
        ItemCipher::new(policy(), Arc::new(ring))
    })
}

/// `cosmos_ae_item`: the input (JSON) decrypted as a stored item, and
/// encrypted then decrypted. A decryption either succeeds or fails with
/// the item untouched; an encryption that succeeds decrypts back to the
/// item it started from (numbers keep their kind and bits).
pub fn item(data: &[u8]) {
    let Ok(item) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let c = items();
    let mut d = item.clone();
    if let Err(e) = block_on(c.decrypt_item(&mut d)) {
        assert_input_error(&e, "decrypt_item");
        assert!(d == item, "a failed decryption changed the item");
    }
    let mut e = item.clone();
    match block_on(c.encrypt_item(&mut e)) {
        Ok(()) => {
            let mut back = e.clone();
            block_on(c.decrypt_item(&mut back)).expect("an encrypted item decrypts");
            assert!(back == item, "encrypt then decrypt changed the item");
        }
        Err(err) => {
            assert_input_error(&err, "encrypt_item");
            assert!(e == item, "a failed encryption changed the item");
        }
    }
}

/// Real objects for the seed corpus: the fixture's keys, its policy, a
/// container resource holding it, and items clear and encrypted.
pub fn seed_objects() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = keys()
        .iter()
        .map(|k| (format!("cek-{}", k.id()), k.to_json().into_bytes()))
        .collect();
    let policy = policy().to_json();
    out.push(("policy".into(), policy.clone().into_bytes()));
    let container = format!(
        r#"{{"id":"items","partitionKey":{{"paths":["/id"],"kind":"Hash","version":2}},"clientEncryptionPolicy":{policy},"_rid":"x","_etag":"\"0\""}}"#
    );
    out.push(("container".into(), container.into_bytes()));
    let items_clear = [
        serde_json::json!({"id": "i-1", "a": "078-05-1120", "b": 41, "c": [1.5, null, {"k": true}], "clear": 1}),
        serde_json::json!({"id": "x/y+z", "a": {"n": -7}, "b": "s", "c": false}),
    ];
    for (i, mut it) in items_clear.into_iter().enumerate() {
        out.push((
            format!("item-clear-{i}"),
            serde_json::to_vec(&it).expect("json"),
        ));
        block_on(items().encrypt_item(&mut it)).expect("encrypt");
        out.push((
            format!("item-encrypted-{i}"),
            serde_json::to_vec(&it).expect("json"),
        ));
    }
    out
}
