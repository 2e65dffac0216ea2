//! Cosmos DB Always Encrypted: interoperability with the official
//! JavaScript SDK's own encryption code (`@azure/cosmos`, pinned, run from
//! Node through tests/fixtures/cosmos_ae_sdk.js), in both directions, for
//! every value type; deterministic ciphertexts byte for byte; CEKs created
//! and rewrapped on either side; the tamper matrix; the key cache.
//!
//! The SDK tests need the SDK installed (`scripts/cosmos-sdk.sh`, which
//! `scripts/test.sh` sources, sets `CMK_COSMOS_SDK_DIR`); without it they
//! fail with a message saying so. They never skip.
#![cfg(feature = "cosmos-ae")]

mod common;
#[path = "common/cosmos_sdk.rs"]
mod cosmos_sdk;

use cosmos_sdk::{js_view, TestKek};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cmk_envelope::cosmos_ae::{
    CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, EncryptionType, IncludedPath,
    ItemCipher, VaultRule,
};
use cmk_envelope::scope::CachePolicy;
use cmk_envelope::{
    Error, KeyEncryptionKey, KeyMaterial, LocalKek, StaticResolver, WrapAlgorithm, WrappedKey,
};
use futures::executor::block_on;
use serde_json::{json, Value};

// ---------------------------------------------------------------- harness

fn test_kek(slot: usize, name: &str) -> TestKek {
    TestKek::new(
        common::rsa_jwk(slot),
        format!("https://myvault.vault.azure.net/keys/{name}/0123456789abcdef{slot}"),
    )
}

struct Sdk {
    dir: PathBuf,
    keys: Value,
    n: AtomicUsize,
}

impl Sdk {
    fn new(keks: &[&TestKek]) -> Sdk {
        Sdk {
            dir: common::tempdir(),
            keys: cosmos_sdk::keys_json(keks),
            n: AtomicUsize::new(0),
        }
    }

    /// A fresh file name in the working directory.
    fn file(&self, stem: &str) -> String {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{stem}-{n}.json"))
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn put(&self, stem: &str, v: &Value) -> String {
        let f = self.file(stem);
        fs::write(&f, v.to_string()).unwrap();
        f
    }

    fn put_text(&self, stem: &str, text: &str) -> String {
        let f = self.file(stem);
        fs::write(&f, text).unwrap();
        f
    }

    /// Runs the fixture on `jobs`.
    fn run(&self, jobs: &Value) {
        let jobs_path = self.put("jobs", jobs);
        println!(
            "{}",
            cosmos_sdk::run(Path::new(&jobs_path), &self.keys.to_string())
        );
    }

    fn read(&self, f: &str) -> Value {
        serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap()
    }

    /// The SDK encrypts or decrypts `items`: one `Ok(item)` or
    /// `Err(message)` per item.
    fn items(
        &self,
        op: &str,
        ceks: &[&ClientEncryptionKey],
        policy: &ClientEncryptionPolicy,
        pk: &[&str],
        items: &[Value],
    ) -> Vec<Result<Value, String>> {
        let out = self.file("out");
        let ceks: Vec<String> = ceks
            .iter()
            .map(|c| self.put_text("cek", &c.to_json()))
            .collect();
        self.run(&json!([{
            "op": op, "ceks": ceks, "policy": self.put_text("policy", &policy.to_json()),
            "partitionKeyPaths": pk, "in": self.put("in", &json!(items)), "out": out,
        }]));
        self.read(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| match r.get("ok") {
                Some(v) => Ok(v.clone()),
                None => Err(r["error"].as_str().unwrap().to_owned()),
            })
            .collect()
    }
}

fn keyring(keks: &[&TestKek], ceks: &[&ClientEncryptionKey]) -> Arc<CekKeyring> {
    let resolver: StaticResolver = keks.iter().map(|k| k.kek.clone()).collect();
    let keys = Arc::new(CekKeyring::new(Arc::new(resolver), CachePolicy::default()));
    for c in ceks {
        keys.insert((*c).clone());
    }
    keys
}

fn path(p: &str, cek: &str, ty: EncryptionType) -> IncludedPath {
    IncludedPath::new(p, cek, ty).unwrap()
}

/// The policy of the interop tests: two CEKs, both types, `/id` and the
/// partition key `/pk` (version 2).
fn policy() -> ClientEncryptionPolicy {
    use EncryptionType::{Deterministic as D, Randomized as R};
    ClientEncryptionPolicy::new(
        2,
        [
            path("/id", "cek1", D),
            path("/pk", "cek2", D),
            path("/s", "cek1", R),
            path("/sd", "cek2", D),
            path("/n", "cek1", D),
            path("/f", "cek2", R),
            path("/fd", "cek1", D),
            path("/b", "cek2", D),
            path("/nested", "cek1", R),
            path("/arr", "cek2", D),
            path("/nul", "cek1", R),
        ],
    )
    .unwrap()
}

const TWO_53: i64 = 1 << 53;

/// Items every SDK value type can carry (what JavaScript can hold).
fn sdk_items() -> Vec<Value> {
    vec![
        json!({"id": "item/1+x", "pk": "tenant-ü", "s": "héllo wörld — 你好 🎉", "sd": "",
               "n": TWO_53, "f": 0.1, "fd": -2.5, "b": true,
               "nested": {"a": {"deep": [1, "two", null, false, {"x": 5e-324}]}, "e": {}, "z": []},
               "arr": [TWO_53, -TWO_53, 1_i64 << 60, i64::MIN, 0, -1], "nul": null, "clear": 7}),
        json!({"id": "item-2", "pk": "t", "s": "x", "n": -TWO_53, "f": 5e-324, "fd": 123.456,
               "b": false, "arr": [], "clear": {"k": 1}}),
        json!({"id": "item-3", "pk": "t", "n": 1_i64 << 60, "f": -2.2250738585072014e-308, "fd": 3.25,
               "b": true, "nested": [[], [null], [[1.5]]]}),
    ]
}

// ------------------------------------------------------------------ tests

/// Items the SDK encrypts decrypt with this crate, and the reverse, for
/// every type, both encryption types, `/id` and the partition key, and two
/// CEKs (one created here, one by the SDK) in one policy.
#[test]
fn items_cross_both_ways_for_every_type() {
    let (a, b) = (test_kek(0, "kek-a"), test_kek(1, "kek-b"));
    let sdk = Sdk::new(&[&a, &b]);
    // cek1 created here, cek2 created by the SDK's own createClientEncryptionKey.
    let cek1 = block_on(ClientEncryptionKey::create("cek1", a.kek.as_ref())).unwrap();
    let f = sdk.file("cek2");
    sdk.run(&json!([{"op": "create-cek", "id": "cek2", "kek": b.url, "out": f}]));
    let cek2 = ClientEncryptionKey::parse(&fs::read_to_string(&f).unwrap()).unwrap();
    let policy = policy();
    let ours = ItemCipher::new(policy.clone(), keyring(&[&a, &b], &[&cek1, &cek2]));

    // SDK → ours.
    let items = sdk_items();
    let encrypted = sdk.items("encrypt", &[&cek1, &cek2], &policy, &["/pk"], &items);
    for (item, enc) in items.iter().zip(&encrypted) {
        let mut enc = enc.clone().expect("the SDK encrypts every item");
        assert_eq!(enc["clear"], item["clear"]);
        block_on(ours.decrypt_item(&mut enc)).unwrap();
        // What the SDK wrote is what it held: integral numbers as Longs.
        assert_eq!(enc, js_view(item));
    }
    assert_eq!(
        items[0]["nested"]["a"]["deep"][4]["x"].as_f64(),
        Some(5e-324),
        "a subnormal double crosses bit for bit"
    );

    // Ours → SDK, with what JavaScript cannot hold as well.
    let mut ours_items = sdk_items();
    ours_items.push(json!({"id": "item-4", "pk": "t",
        "n": TWO_53 + 1, "arr": [i64::MAX, -TWO_53 - 1, 1.0, -0.0], "f": 1e300, "fd": -0.0,
        "nested": {"big": u64::try_from(i64::MAX).unwrap()}}));
    let mut enc_ours = Vec::new();
    for item in &ours_items {
        let mut e = item.clone();
        block_on(ours.encrypt_item(&mut e)).unwrap();
        let mut back = e.clone();
        block_on(ours.decrypt_item(&mut back)).unwrap();
        assert_eq!(
            &back, item,
            "exact round trip here, -0.0 and 2^63-1 included"
        );
        if let Some(z) = back["fd"].as_f64() {
            assert_eq!(z.to_bits(), item["fd"].as_f64().unwrap().to_bits());
        }
        enc_ours.push(e);
    }
    let dec = sdk.items("decrypt", &[&cek1, &cek2], &policy, &["/pk"], &enc_ours);
    for (item, d) in ours_items.iter().zip(dec) {
        // The SDK reads Longs beyond 2^53 as the nearest double, and has no
        // integral doubles: its view of the value.
        assert_eq!(d.expect("the SDK decrypts every item"), js_view(item));
    }
    // 2^53 + 1 reaches JavaScript as 2^53.
    assert_eq!(js_view(&json!(TWO_53 + 1)), json!(TWO_53));

    // What the SDK cannot encrypt: an integral double beyond i64.
    let r = sdk.items(
        "encrypt",
        &[&cek1, &cek2],
        &policy,
        &["/pk"],
        &[json!({"id": "x", "n": 1e300})],
    );
    assert!(r[0].as_ref().unwrap_err().contains("out of range"), "{r:?}");
}

/// Deterministic ciphertexts are byte-identical to the SDK's (what
/// equality queries rely on), for items, query parameters, partition key
/// values and ids.
#[test]
fn deterministic_ciphertexts_are_identical() {
    let (a, b) = (test_kek(0, "kek-a"), test_kek(1, "kek-b"));
    let sdk = Sdk::new(&[&a, &b]);
    let cek1 = block_on(ClientEncryptionKey::create("cek1", a.kek.as_ref())).unwrap();
    let cek2 = block_on(ClientEncryptionKey::create("cek2", b.kek.as_ref())).unwrap();
    let policy = policy();
    let ours = ItemCipher::new(policy.clone(), keyring(&[&a, &b], &[&cek1, &cek2]));
    // Values typed alike in both (no integral doubles).
    let items = sdk_items();
    let theirs = sdk.items("encrypt", &[&cek1, &cek2], &policy, &["/pk"], &items);
    let det: Vec<&str> = policy
        .paths()
        .iter()
        .filter(|p| p.encryption_type() == EncryptionType::Deterministic)
        .map(|p| p.property())
        .collect();
    let mut compared = 0;
    for (item, t) in items.iter().zip(theirs) {
        let t = t.unwrap();
        let mut e = js_view(item);
        block_on(ours.encrypt_item(&mut e)).unwrap();
        for k in &det {
            if let Some(v) = item.get(*k) {
                assert_eq!(e[*k], t[*k], "deterministic `/{k}` of {v}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 15, "{compared}");

    // Query parameters, partition key values and ids.
    let run = |op: &str, path: &str, values: Value| -> Vec<Value> {
        let out = sdk.file("out");
        sdk.run(&json!([{
            "op": op, "ceks": [sdk.put_text("cek", &cek1.to_json()), sdk.put_text("cek", &cek2.to_json())],
            "policy": sdk.put_text("policy", &policy.to_json()), "partitionKeyPaths": ["/pk"],
            "path": path, "values": values, "out": out,
        }]));
        sdk.read(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["ok"].clone())
            .collect()
    };
    let params = [json!(TWO_53), json!(-3), json!(0.5), json!("é")];
    for (v, t) in params.iter().zip(run("query-param", "/n", json!(params))) {
        assert_eq!(block_on(ours.encrypt_value("/n", v)).unwrap(), t, "{v}");
    }
    let ids = [json!("a/b+c?"), json!("plain")];
    for (v, t) in ids.iter().zip(run("query-param", "/id", json!(ids))) {
        let mine = block_on(ours.encrypt_value("/id", v)).unwrap();
        assert_eq!(mine, t, "{v}");
        assert!(!mine.as_str().unwrap().contains(['/', '+']));
    }
    let pks = [json!(["tenant-ü"]), json!([42])];
    for (v, t) in pks.iter().zip(run("partition-key", "", json!(pks))) {
        assert_eq!(
            json!([block_on(ours.encrypt_value("/pk", &v[0])).unwrap()]),
            t,
            "{v}"
        );
    }
}

/// A CEK created here is usable by the SDK and one created by the SDK is
/// usable here (both above); rewrapped on either side, old items still
/// decrypt on both, and the resource keeps its other members. At every
/// step the two CEKs are under different KEKs (see
/// `js_sdk_mixes_up_two_ceks_under_one_kek`).
#[test]
fn ceks_rewrapped_on_either_side_keep_old_items_readable() {
    let (a, b) = (test_kek(0, "kek-a"), test_kek(1, "kek-b"));
    let sdk = Sdk::new(&[&a, &b]);
    let f = sdk.file("cek");
    sdk.run(&json!([{"op": "create-cek", "id": "cek1", "kek": a.url, "out": f}]));
    let sdk_cek = ClientEncryptionKey::parse(&fs::read_to_string(&f).unwrap()).unwrap();
    assert_eq!(sdk_cek.key_wrap_metadata().value(), a.url);
    assert_eq!(
        sdk_cek.key_wrap_metadata().algorithm(),
        WrapAlgorithm::RsaOaep
    );
    let our_cek = block_on(ClientEncryptionKey::create("cek2", b.kek.as_ref())).unwrap();
    let policy = ClientEncryptionPolicy::new(
        1,
        [
            path("/x", "cek1", EncryptionType::Randomized),
            path("/y", "cek2", EncryptionType::Deterministic),
        ],
    )
    .unwrap();
    let item = json!({"id": "i", "x": {"v": [1, "two"]}, "y": "why"});
    let mut old = item.clone();
    block_on(
        ItemCipher::new(policy.clone(), keyring(&[&a, &b], &[&sdk_cek, &our_cek]))
            .encrypt_item(&mut old),
    )
    .unwrap();

    // Here: cek1 a → b, cek2 b → a (in-memory keys have no known vault, so
    // the same-vault rule needs the explicit opt-out).
    let both = StaticResolver::new()
        .with(a.kek.clone())
        .with(b.kek.clone());
    let refused = block_on(our_cek.rewrap(&both, a.kek.as_ref(), VaultRule::SameVaultOnly));
    assert!(matches!(refused, Err(Error::KeyPolicy(_))), "{refused:?}");
    let ours1 =
        block_on(sdk_cek.rewrap(&both, b.kek.as_ref(), VaultRule::AllowOtherVault)).unwrap();
    let ours2 =
        block_on(our_cek.rewrap(&both, a.kek.as_ref(), VaultRule::AllowOtherVault)).unwrap();
    assert_eq!(ours1.key_wrap_metadata().value(), b.url);
    assert_ne!(ours1.wrapped_key(), sdk_cek.wrapped_key());
    // The service's members survive, in place.
    let j: Value = serde_json::from_str(&ours1.to_json()).unwrap();
    let orig: Value = serde_json::from_str(&sdk_cek.to_json()).unwrap();
    for k in ["_rid", "_self", "_etag", "_ts"] {
        assert_eq!(j[k], orig[k], "{k}");
    }
    // The SDK's own rewrapClientEncryptionKey, back again.
    let f1 = sdk.file("rw");
    let f2 = sdk.file("rw");
    sdk.run(&json!([
        {"op": "rewrap-cek", "cek": sdk.put_text("cek", &ours1.to_json()), "kek": a.url, "out": f1},
        {"op": "rewrap-cek", "cek": sdk.put_text("cek", &ours2.to_json()), "kek": b.url, "out": f2},
    ]));
    let sdk1 = ClientEncryptionKey::parse(&fs::read_to_string(&f1).unwrap()).unwrap();
    let sdk2 = ClientEncryptionKey::parse(&fs::read_to_string(&f2).unwrap()).unwrap();
    assert_eq!(sdk2.key_wrap_metadata().value(), b.url);

    // Old items decrypt with every generation of the keys, on both sides.
    for (c1, c2) in [(&ours1, &ours2), (&sdk1, &sdk2)] {
        let mut d = old.clone();
        block_on(
            ItemCipher::new(policy.clone(), keyring(&[&a, &b], &[c1, c2])).decrypt_item(&mut d),
        )
        .unwrap();
        assert_eq!(d, item);
        let from_sdk = sdk.items("decrypt", &[c1, c2], &policy, &["/id"], &[old.clone()]);
        assert_eq!(from_sdk[0].clone().unwrap(), item);
    }
}

/// Evidence for the module docs: with `@azure/cosmos` 4.10.1, a fresh
/// client reading two CEKs wrapped by the **same** KEK unwraps the first
/// and serves its root key for both (its unwrap cache is keyed by the KEK
/// URL), so it cannot read the second CEK's values; this crate can.
#[test]
fn js_sdk_mixes_up_two_ceks_under_one_kek() {
    let a = test_kek(0, "kek-a");
    let sdk = Sdk::new(&[&a]);
    let c1 = block_on(ClientEncryptionKey::create("cek1", a.kek.as_ref())).unwrap();
    let c2 = block_on(ClientEncryptionKey::create("cek2", a.kek.as_ref())).unwrap();
    let policy = ClientEncryptionPolicy::new(
        1,
        [
            path("/x", "cek1", EncryptionType::Deterministic),
            path("/y", "cek2", EncryptionType::Deterministic),
        ],
    )
    .unwrap();
    let ours = ItemCipher::new(policy.clone(), keyring(&[&a], &[&c1, &c2]));
    let item = json!({"x": "same", "y": "same"});
    let mut enc = item.clone();
    block_on(ours.encrypt_item(&mut enc)).unwrap();
    assert_ne!(enc["x"], enc["y"]);
    let mut back = enc.clone();
    block_on(ours.decrypt_item(&mut back)).unwrap();
    assert_eq!(back, item);
    let r = sdk.items("decrypt", &[&c1, &c2], &policy, &["/pk"], &[enc]);
    assert_eq!(r[0].clone().unwrap_err(), "Invalid authentication tag");
}

// ---------------------------------------------------------------- tampering

fn aes_setup() -> (ItemCipher, Arc<dyn KeyEncryptionKey>) {
    let kek: Arc<dyn KeyEncryptionKey> = common::aes_kek("aes-kek", WrapAlgorithm::A256Kw);
    let c1 = block_on(ClientEncryptionKey::create("c1", kek.as_ref())).unwrap();
    let c2 = block_on(ClientEncryptionKey::create("c2", kek.as_ref())).unwrap();
    let keys = Arc::new(CekKeyring::new(
        Arc::new(StaticResolver::new().with(kek.clone())),
        CachePolicy::default(),
    ));
    keys.insert(c1);
    keys.insert(c2);
    let policy = ClientEncryptionPolicy::new(
        2,
        [
            path("/id", "c1", EncryptionType::Deterministic),
            path("/a", "c1", EncryptionType::Randomized),
            path("/same", "c1", EncryptionType::Deterministic),
            path("/other", "c2", EncryptionType::Randomized),
        ],
    )
    .unwrap();
    (ItemCipher::new(policy, keys), kek)
}

fn raw(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

/// Decryption fails and leaves the item exactly as it was.
fn refused(c: &ItemCipher, item: &Value) -> Error {
    let mut x = item.clone();
    let e = block_on(c.decrypt_item(&mut x)).unwrap_err();
    assert_eq!(&x, item, "no partial output");
    e
}

#[test]
fn every_bit_flip_truncation_and_marker_is_refused() {
    let (c, _) = aes_setup();
    let mut enc = json!({"id": "i", "a": ["hello", 1, true, 0.5], "same": "s", "other": "o"});
    block_on(c.encrypt_item(&mut enc)).unwrap();
    let leaf = raw(&enc["a"][0]);
    // marker(1) ‖ version(1) ‖ tag(32) ‖ IV(16) ‖ ciphertext(16): every bit
    // after the marker.
    assert_eq!(leaf.len(), 1 + 1 + 32 + 16 + 16);
    let mut flips = 0;
    for bit in 8..leaf.len() * 8 {
        let mut bad = leaf.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut item = enc.clone();
        item["a"][0] = json!(STANDARD.encode(&bad));
        let e = refused(&c, &item);
        assert!(
            matches!(&e, Error::FieldAuthentication { path } if path == "/a/0"),
            "{e}"
        );
        flips += 1;
    }
    for n in 0..leaf.len() {
        let mut item = enc.clone();
        item["a"][0] = json!(STANDARD.encode(&leaf[..n]));
        refused(&c, &item);
    }
    println!(
        "tamper: {flips} bit flips and {} truncations refused",
        leaf.len()
    );

    // Markers: unknown ones, and those that do not fit the bytes, refused.
    let string_leaf = raw(&enc["a"][0]); // "hello": 5 bytes
    for m in [0u8, 1, 2, 3, 4, 6, 0xff] {
        let mut bad = string_leaf.clone();
        bad[0] = m;
        let mut item = enc.clone();
        item["a"][0] = json!(STANDARD.encode(&bad));
        let e = refused(&c, &item);
        assert!(
            matches!(&e, Error::DocumentField { path, .. } if path == "/a/0"),
            "{m}: {e}"
        );
    }
    // Not bound (documented): an 8-byte Long relabelled.
    let long_leaf = raw(&enc["a"][1]); // 1
    let relabel = |m: u8| {
        let mut bad = long_leaf.clone();
        bad[0] = m;
        let mut item = enc.clone();
        item["a"][1] = json!(STANDARD.encode(&bad));
        block_on(c.decrypt_item(&mut item)).map(|()| item["a"][1].clone())
    };
    assert_eq!(relabel(3).unwrap(), json!(5e-324));
    assert_eq!(relabel(2).unwrap(), json!(true));
    assert_eq!(relabel(5).unwrap(), json!("\u{1}\0\0\0\0\0\0\0"));
    // A Double relabelled Boolean does not fit (not 0 or 1).
    let mut bad = raw(&enc["a"][3]);
    bad[0] = 2;
    let mut item = enc.clone();
    item["a"][3] = json!(STANDARD.encode(&bad));
    assert!(matches!(refused(&c, &item), Error::DocumentField { .. }));

    // Not ciphertext at all.
    for junk in [json!("not base64!"), json!(""), json!(17), json!(false)] {
        let mut item = enc.clone();
        item["same"] = junk;
        assert!(matches!(refused(&c, &item), Error::DocumentField { .. }));
    }
    // `/id` takes only the escaped alphabet, other paths only the standard one.
    for (k, text) in [
        ("id", "BAAA/AAA"),
        ("id", "BAAA+AAA"),
        ("same", "BAAA_AAA"),
        ("same", "BAAA-AAA"),
    ] {
        let mut item = enc.clone();
        item[k] = json!(text);
        let e = refused(&c, &item);
        assert!(
            matches!(&e, Error::DocumentField { path, .. } if path == &format!("/{k}")),
            "{e}"
        );
    }
}

#[test]
fn moves_between_keys_items_and_paths() {
    let (c, kek) = aes_setup();
    let mut x = json!({"id": "x", "a": "secret-a", "same": "secret-s", "other": "secret-o"});
    let mut y = json!({"id": "y", "a": "y-a", "same": "y-s", "other": "y-o"});
    block_on(c.encrypt_item(&mut x)).unwrap();
    block_on(c.encrypt_item(&mut y)).unwrap();

    // Refused: a value moved to a path under another CEK, either way.
    let mut moved = x.clone();
    moved["other"] = x["a"].clone();
    let e = refused(&c, &moved);
    assert!(
        matches!(&e, Error::FieldAuthentication { path } if path == "/other"),
        "{e}"
    );
    let mut moved = y.clone();
    moved["a"] = x["other"].clone();
    assert!(matches!(
        refused(&c, &moved),
        Error::FieldAuthentication { .. }
    ));

    // Refused: a wrong CEK (same id, another root key).
    let other_c1 = block_on(ClientEncryptionKey::create("c1", kek.as_ref())).unwrap();
    let keys = Arc::new(CekKeyring::new(
        Arc::new(StaticResolver::new().with(kek.clone())),
        CachePolicy::default(),
    ));
    keys.insert(other_c1);
    let wrong = ItemCipher::new(c.policy().clone(), keys);
    let e = refused(&wrong, &json!({"a": x["a"].clone()}));
    assert!(matches!(e, Error::FieldAuthentication { .. }), "{e}");

    // Not bound (documented): another path under the same CEK, another
    // item, and the encryption type.
    let mut moved = x.clone();
    moved["same"] = x["a"].clone();
    block_on(c.decrypt_item(&mut moved)).unwrap();
    assert_eq!(moved["same"], "secret-a");
    let mut moved = y.clone();
    moved["a"] = x["a"].clone();
    block_on(c.decrypt_item(&mut moved)).unwrap();
    assert_eq!(moved["a"], "secret-a");
}

// ---------------------------------------------------------------- the cache

/// A KEK that counts unwraps and can be revoked.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn KeyEncryptionKey>,
    unwraps: AtomicUsize,
    revoked: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl KeyEncryptionKey for Counting {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    fn algorithm(&self) -> WrapAlgorithm {
        self.inner.algorithm()
    }
    async fn wrap_key_material(&self, m: &KeyMaterial) -> cmk_envelope::Result<WrappedKey> {
        self.inner.wrap_key_material(m).await
    }
    async fn unwrap_key_material(&self, w: &[u8]) -> cmk_envelope::Result<KeyMaterial> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        if self.revoked.load(Ordering::SeqCst) {
            return Err(Error::UnwrapFailed {
                kek_id: self.key_id().to_owned(),
            });
        }
        self.inner.unwrap_key_material(w).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_single_flight_ttl_revocation_and_two_ceks_under_one_kek() {
    let kek = Arc::new(Counting {
        inner: common::aes_kek("counted", WrapAlgorithm::A256Kw),
        unwraps: AtomicUsize::new(0),
        revoked: Default::default(),
    });
    let as_dyn: Arc<dyn KeyEncryptionKey> = kek.clone();
    let keys = Arc::new(CekKeyring::new(
        Arc::new(StaticResolver::new().with(as_dyn.clone())),
        CachePolicy {
            ttl: Duration::from_millis(300),
            refresh_fraction: 1.0,
            failure_backoff: Duration::from_millis(50),
            ..Default::default()
        },
    ));
    // Two CEKs under one KEK (what the JavaScript SDK mixes up).
    for id in ["c1", "c2"] {
        keys.insert(
            ClientEncryptionKey::create(id, as_dyn.as_ref())
                .await
                .unwrap(),
        );
    }
    let policy = ClientEncryptionPolicy::new(
        1,
        [
            path("/a", "c1", EncryptionType::Deterministic),
            path("/b", "c2", EncryptionType::Deterministic),
        ],
    )
    .unwrap();
    let c = Arc::new(ItemCipher::new(policy, keys.clone()));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut item = json!({"a": "v", "b": "v"});
                c.encrypt_item(&mut item).await.unwrap();
                item
            })
        })
        .collect();
    let mut first = None;
    for t in tasks {
        let item = t.await.unwrap();
        assert_ne!(item["a"], item["b"], "each CEK its own root key");
        assert_eq!(first.get_or_insert_with(|| item.clone()), &item);
    }
    assert_eq!(
        kek.unwraps.load(Ordering::SeqCst),
        2,
        "single flight: one unwrap per CEK"
    );
    assert_eq!(keys.cache_stats().kms_calls, 2);

    // Within the TTL: no call; revoked: refused once the TTL passed.
    kek.revoked.store(true, Ordering::SeqCst);
    let mut item = first.clone().unwrap();
    c.decrypt_item(&mut item).await.unwrap();
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let mut item = first.clone().unwrap();
    assert!(matches!(
        c.decrypt_item(&mut item).await,
        Err(Error::UnwrapFailed { .. })
    ));
    assert_eq!(item, first.clone().unwrap());
    // During the back-off, no call, and the error names the CEK.
    let calls = kek.unwraps.load(Ordering::SeqCst);
    let e = c.decrypt_item(&mut item).await.unwrap_err();
    assert!(e.to_string().contains("client encryption key `c1`"), "{e}");
    assert_eq!(kek.unwraps.load(Ordering::SeqCst), calls);
    // Restored: readable again after the back-off.
    kek.revoked.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(60)).await;
    c.decrypt_item(&mut item).await.unwrap();
    assert_eq!(item, json!({"a": "v", "b": "v"}));
}

/// The allow-list: a CEK whose KEK the resolver does not know is refused
/// without contacting anything; a KEK of another algorithm than the
/// metadata's is refused; a missing CEK is named.
#[test]
fn allow_list_and_missing_keys() {
    let (a, b) = (test_kek(0, "kek-a"), test_kek(1, "kek-b"));
    let cek = block_on(ClientEncryptionKey::create("cek1", a.kek.as_ref())).unwrap();
    let policy =
        ClientEncryptionPolicy::new(1, [path("/x", "cek1", EncryptionType::Randomized)]).unwrap();
    let c = ItemCipher::new(policy.clone(), keyring(&[&b], &[&cek]));
    let e = block_on(c.encrypt_item(&mut json!({"x": 1}))).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownKek { kek_ids } if kek_ids == &vec![a.url.clone()]),
        "{e}"
    );
    let c = ItemCipher::new(policy.clone(), keyring(&[&a], &[]));
    let e = block_on(c.encrypt_item(&mut json!({"x": 1}))).unwrap_err();
    assert!(e.to_string().contains("`cek1`"), "{e}");
    // An item without the property needs no key at all.
    let mut untouched = json!({"y": 1});
    block_on(c.encrypt_item(&mut untouched)).unwrap();
    // The metadata says RSA-OAEP; an RSA-OAEP-256 KEK of the same id is refused.
    let mut jwk = a.jwk.clone();
    jwk["alg"] = json!("RSA-OAEP-256");
    let k256: Arc<dyn KeyEncryptionKey> =
        Arc::new(LocalKek::from_jwk_bytes(jwk.to_string().as_bytes()).unwrap());
    let keys = Arc::new(CekKeyring::new(
        Arc::new(StaticResolver::new().with(k256)),
        CachePolicy::default(),
    ));
    keys.insert(cek);
    let e = block_on(ItemCipher::new(policy, keys).encrypt_item(&mut json!({"x": 1}))).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidKey(m) if m.contains("#RSA-OAEP")),
        "{e}"
    );
}

/// The same-vault rule with local keys: JWK files in one directory are one
/// container, in two directories two.
#[test]
fn rewrap_same_vault_rule_with_key_files() {
    let d1 = common::tempdir();
    let d2 = common::tempdir();
    let save = |dir: &Path, name: &str| -> Arc<dyn KeyEncryptionKey> {
        let p = dir.join(format!("{name}.jwk"));
        LocalKek::generate(WrapAlgorithm::A256Kw, Some(name.into()), None)
            .unwrap()
            .save_jwk(&p, false)
            .unwrap();
        Arc::new(LocalKek::from_jwk_file(&p).unwrap())
    };
    let old = save(&d1, "old");
    let same = save(&d1, "same-dir");
    let far = save(&d2, "other-dir");
    let cek = block_on(ClientEncryptionKey::create("c", old.as_ref())).unwrap();
    assert_eq!(cek.key_wrap_metadata().kind(), "CMK_ENVELOPE");
    let r = StaticResolver::new().with(old.clone());
    let moved = block_on(cek.rewrap(&r, same.as_ref(), VaultRule::SameVaultOnly)).unwrap();
    assert_eq!(moved.key_wrap_metadata().value(), "same-dir");
    let e = block_on(cek.rewrap(&r, far.as_ref(), VaultRule::SameVaultOnly)).unwrap_err();
    assert!(
        matches!(&e, Error::KeyPolicy(m) if m.contains("within its vault")),
        "{e}"
    );
    block_on(cek.rewrap(&r, far.as_ref(), VaultRule::AllowOtherVault)).unwrap();
    // Unknown current key: refused before any unwrap.
    let e = block_on(cek.rewrap(
        &StaticResolver::new(),
        same.as_ref(),
        VaultRule::SameVaultOnly,
    ))
    .unwrap_err();
    assert!(matches!(e, Error::UnknownKek { .. }), "{e}");
}

// ---------------------------------------------------------- property tests

/// Any JSON value: leaves of every type (integers across the whole `i64`
/// range, finite doubles, any string), nested objects and arrays.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Encrypt then decrypt returns the item exactly (types, -0.0 and all
    /// 64 bits of integers included), under both encryption types, and
    /// every encrypted leaf is a ciphertext string.
    #[test]
    fn items_round_trip_exactly(a in any_json(), b in any_json(), id in ".{1,20}") {
        let (c, _) = aes_setup();
        let item = json!({"id": id, "a": a, "same": b, "clear": 1});
        let mut enc = item.clone();
        block_on(c.encrypt_item(&mut enc)).unwrap();
        fn leaves_are_ciphertext(v: &Value) -> bool {
            match v {
                Value::Null | Value::String(_) => true,
                Value::Array(a) => a.iter().all(leaves_are_ciphertext),
                Value::Object(o) => o.values().all(leaves_are_ciphertext),
                _ => false,
            }
        }
        proptest::prop_assert!(leaves_are_ciphertext(&enc["a"]) && leaves_are_ciphertext(&enc["same"]));
        let mut back = enc.clone();
        block_on(c.decrypt_item(&mut back)).unwrap();
        proptest::prop_assert_eq!(&back, &item);
        // Deterministic: the same again; and bit-exact doubles.
        let mut again = item.clone();
        block_on(c.encrypt_item(&mut again)).unwrap();
        proptest::prop_assert_eq!(&again["same"], &enc["same"]);
        proptest::prop_assert_eq!(&again["id"], &enc["id"]);
        proptest::prop_assert_eq!(back.to_string(), item.to_string());
    }
}
