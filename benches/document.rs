//! Field-level document encryption under a cached scope key.
//!
//! Group `document`:
//!
//! * `encrypt_1KiB_5_fields`: `DocumentCipher::encrypt` of a 1 KiB JSON
//!   document with 5 encrypted paths (3 randomized, 2 deterministic), the
//!   scope key cached (no KMS call). Target ≤ 10 µs.
//! * `decrypt_1KiB_5_fields`: the inverse.
//!
//! The document is cloned outside the timed section (`iter_batched`).

use std::hint::black_box;
use std::sync::Arc;

use cmk_envelope::document::{DocumentCipher, DocumentPolicy};
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{KeyEncryptionKey, LocalKek, WrapAlgorithm};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;

#[path = "common/item.rs"]
mod item;

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("cmk-bench-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cmk.jwk");
    LocalKek::generate(WrapAlgorithm::A256Kw, Some("cmk".into()), None)
        .unwrap()
        .save_jwk(&path, false)
        .unwrap();
    let cmk: Arc<dyn KeyEncryptionKey> = Arc::new(LocalKek::from_jwk_file(&path).unwrap());
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = block_on(EncryptionScope::create(
        store,
        "bench",
        Cmk::CustomerManaged(cmk),
        CachePolicy::default(),
    ))
    .unwrap();
    let policy = DocumentPolicy::new("/tenant")
        .unwrap()
        .randomized("/patient/ssn")
        .unwrap()
        .randomized("/notes")
        .unwrap()
        .randomized("/items/0/price")
        .unwrap()
        .deterministic("/email")
        .unwrap()
        .deterministic("/country")
        .unwrap();
    let cipher = DocumentCipher::new(scope, policy);
    let doc = item::item_1kib();
    println!(
        "document: {} bytes, 5 encrypted paths",
        serde_json::to_vec(&doc).unwrap().len()
    );
    let mut encrypted = doc.clone();
    block_on(cipher.encrypt(&mut encrypted)).unwrap(); // warms the scope key

    let mut g = c.benchmark_group("document");
    g.bench_function("encrypt_1KiB_5_fields", |b| {
        b.iter_batched_ref(
            || doc.clone(),
            |d| block_on(cipher.encrypt(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decrypt_1KiB_5_fields", |b| {
        b.iter_batched_ref(
            || encrypted.clone(),
            |d| block_on(cipher.decrypt(black_box(d))).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
