//! Cosmos DB Always Encrypted items, next to this crate's own document
//! format and the official JavaScript SDK, on the same item, in one run.
//!
//! The item is the 1 KiB document of `benches/document.rs`
//! (benches/common/item.rs); five top-level
//! paths are encrypted (`/patient`, `/notes` and `/items` randomized,
//! `/email` and `/country` deterministic). Cosmos DB encrypts every leaf
//! under them (12 leaves); the document format encrypts each path's value
//! as one field. Keys are cached (no KEK call).
//!
//! * `cosmos_ae/encrypt_1KiB_5_paths`, `cosmos_ae/decrypt_1KiB_5_paths`:
//!   `ItemCipher::encrypt_item` / `decrypt_item`.
//! * `document/encrypt_1KiB_5_paths`, `document/decrypt_1KiB_5_paths`:
//!   `DocumentCipher::encrypt` / `decrypt` with the same paths.
//! * Then the SDK's `EncryptionProcessor.encrypt` / `decrypt` on the same
//!   item with the same CEK and policy, timed in Node by
//!   tests/fixtures/cosmos_ae_sdk.js (`bench`), printed as `sdk: …`.
//!
//! Needs the SDK: `scripts/cosmos-sdk.sh cargo bench --features
//! cosmos-ae,document --bench cosmos_ae`. The item is cloned outside the
//! timed section, here and in Node.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use cmk_envelope::cosmos_ae::{
    CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, EncryptionType, IncludedPath,
    ItemCipher,
};
use cmk_envelope::document::{DocumentCipher, DocumentPolicy};
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;
use serde_json::{json, Value};

#[path = "../tests/common/cosmos_sdk.rs"]
mod cosmos_sdk;
#[path = "common/item.rs"]
mod item;

const KEK_URL: &str = "https://myvault.vault.azure.net/keys/bench/0123456789abcdef";

const RANDOMIZED: [&str; 3] = ["/patient", "/notes", "/items"];
const DETERMINISTIC: [&str; 2] = ["/email", "/country"];

/// The SDK's microseconds per encrypt and per decrypt of `item`.
fn sdk_times(
    dir: &Path,
    jwk: &str,
    cek: &ClientEncryptionKey,
    policy: &ClientEncryptionPolicy,
    item: &Value,
) -> Value {
    let put = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let out = dir.join("sdk-times.json");
    let jobs = json!([{
        "op": "bench", "ceks": [put("cek.json", &cek.to_json())],
        "policy": put("policy.json", &policy.to_json()), "partitionKeyPaths": ["/tenant"],
        "item": put("item.json", &item.to_string()), "iterations": 20000,
        "out": out.to_str().unwrap(),
    }]);
    let jobs = put("jobs.json", &jobs.to_string());
    cosmos_sdk::run(Path::new(&jobs), &format!(r#"{{"{KEK_URL}": {jwk}}}"#));
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    cosmos_sdk::sdk_dir(); // fail before measuring anything when the SDK is missing
    let dir = std::env::temp_dir().join(format!("cmk-bench-cosmos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwk_path = dir.join("kek.jwk");
    LocalKek::generate(WrapAlgorithm::RsaOaep, Some(KEK_URL.into()), Some(3072))
        .unwrap()
        .save_jwk(&jwk_path, false)
        .unwrap();
    let jwk = std::fs::read_to_string(&jwk_path).unwrap();
    let kek: Arc<dyn KeyEncryptionKey> = Arc::new(LocalKek::from_jwk_file(&jwk_path).unwrap());

    // Cosmos DB Always Encrypted.
    let cek = block_on(ClientEncryptionKey::create("cek1", kek.as_ref())).unwrap();
    let keys = Arc::new(CekKeyring::new(
        Arc::new(StaticResolver::new().with(kek.clone())),
        CachePolicy::default(),
    ));
    keys.insert(cek.clone());
    let paths = RANDOMIZED
        .iter()
        .map(|p| IncludedPath::new(p, "cek1", EncryptionType::Randomized).unwrap())
        .chain(
            DETERMINISTIC
                .iter()
                .map(|p| IncludedPath::new(p, "cek1", EncryptionType::Deterministic).unwrap()),
        );
    let policy = ClientEncryptionPolicy::new(2, paths).unwrap();
    let cosmos = ItemCipher::new(policy.clone(), keys);

    // The crate's document format, same item and paths.
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = block_on(EncryptionScope::create(
        store,
        "bench",
        Cmk::CustomerManaged(kek),
        CachePolicy::default(),
    ))
    .unwrap();
    let mut dpolicy = DocumentPolicy::new("/tenant").unwrap();
    for p in RANDOMIZED {
        dpolicy = dpolicy.randomized(p).unwrap();
    }
    for p in DETERMINISTIC {
        dpolicy = dpolicy.deterministic(p).unwrap();
    }
    let document = DocumentCipher::new(scope, dpolicy);

    let item = item::item_1kib();
    let mut cosmos_enc = item.clone();
    block_on(cosmos.encrypt_item(&mut cosmos_enc)).unwrap(); // warms the CEK
    let mut doc_enc = item.clone();
    block_on(document.encrypt(&mut doc_enc)).unwrap(); // warms the scope key
    println!(
        "item: {} bytes, 5 encrypted paths; cosmos-ae stores {} bytes, document {} bytes",
        serde_json::to_vec(&item).unwrap().len(),
        serde_json::to_vec(&cosmos_enc).unwrap().len(),
        serde_json::to_vec(&doc_enc).unwrap().len()
    );

    let mut g = c.benchmark_group("cosmos_ae");
    g.bench_function("encrypt_1KiB_5_paths", |b| {
        b.iter_batched_ref(
            || item.clone(),
            |d| block_on(cosmos.encrypt_item(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decrypt_1KiB_5_paths", |b| {
        b.iter_batched_ref(
            || cosmos_enc.clone(),
            |d| block_on(cosmos.decrypt_item(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let mut g = c.benchmark_group("document");
    g.bench_function("encrypt_1KiB_5_paths", |b| {
        b.iter_batched_ref(
            || item.clone(),
            |d| block_on(document.encrypt(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decrypt_1KiB_5_paths", |b| {
        b.iter_batched_ref(
            || doc_enc.clone(),
            |d| block_on(document.decrypt(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let t = sdk_times(&dir, &jwk, &cek, &policy, &item);
    println!(
        "sdk: {} ({}), same item, CEK and policy: encrypt {:.2} µs, decrypt {:.2} µs (mean of 20000, keys cached)",
        t["sdk"].as_str().unwrap(),
        t["node"].as_str().unwrap(),
        t["encrypt_us"].as_f64().unwrap(),
        t["decrypt_us"].as_f64().unwrap()
    );
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
