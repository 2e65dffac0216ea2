//! Per-object cost of the one-shot path for a 1 KiB object under one local
//! A256KW KEK, and its components.
//!
//! Group `seal_small`:
//!
//! * `seal_1KiB`: `Encryptor::new(&[kek], Profile::Blob, ctx)` (driven by
//!   `futures::executor::block_on`) then `.seal(1 KiB)` — the whole per-object cost,
//!   output allocation and drop included.
//! * `encryptor_new`: the constructor alone (data key from the OS CSPRNG,
//!   A256KW wrap, header, context).
//! * `seal_only_1KiB`: `.seal(1 KiB)` on a ready `Encryptor` (salt, HKDF
//!   chunk-key derivation, key schedule, writer buffer, one chunk).
//! * `datakey_generate`: `DataKey::generate` (one `getrandom`).
//! * `datakey_wrap_a256kw`: `wrap_key` of a local A256KW KEK alone.
//! * `chunk_key_derive`: the Cobblestone HKDF-SHA-512 expansion (76 bytes),
//!   by the default provider's library directly (aws-lc-rs, or RustCrypto
//!   `hmac` without the `aws-lc-rs` feature).
//! * `raw_gcm_seal_1KiB`: AES-256-GCM of 1 KiB in place, key expanded once
//!   (the same library).
//! * `raw_gcm_seal_1KiB_with_key_setup`: the same including the key
//!   schedule, as a one-shot seal pays it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

mod common;

use cmk_envelope::{
    CryptoProvider, DataKey, Encryptor, KeyEncryptionKey, LocalKek, Profile, WrapAlgorithm,
};
use common::{cobblestone_okm, RawGcm};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::executor::block_on;

const CTX: &[u8] = b"bench/container/object";

fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("bench-kek", WrapAlgorithm::A256Kw, &[0x5a; 32]).expect("kek"))
}

fn seal_small(c: &mut Criterion) {
    let provider = CryptoProvider::default_provider();
    let keks = [kek()];
    let msg = vec![0xA5u8; 1024];

    let mut group = c.benchmark_group("seal_small");
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.throughput(Throughput::Bytes(msg.len() as u64));
    group.bench_function("seal_1KiB", |b| {
        b.iter(|| {
            let enc =
                block_on(Encryptor::new(black_box(&keks), Profile::Blob, CTX)).expect("encryptor");
            enc.seal(black_box(&msg)).expect("seal")
        });
    });
    group.bench_function("seal_only_1KiB", |b| {
        b.iter_batched(
            || block_on(Encryptor::new(&keks, Profile::Blob, CTX)).expect("encryptor"),
            |enc| enc.seal(black_box(&msg)).expect("seal"),
            BatchSize::SmallInput,
        );
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("encryptor_new", |b| {
        b.iter(|| {
            block_on(Encryptor::new(black_box(&keks), Profile::Blob, CTX)).expect("encryptor")
        });
    });
    group.bench_function("datakey_generate", |b| {
        b.iter(|| DataKey::generate(provider).expect("generate"));
    });
    let dek = DataKey::generate(provider).expect("generate");
    group.bench_function("datakey_wrap_a256kw", |b| {
        b.iter(|| block_on(keks[0].wrap_key(black_box(&dek))).expect("wrap"));
    });
    let salt = [3u8; 24];
    group.bench_function("chunk_key_derive", |b| {
        b.iter(|| cobblestone_okm(black_box(&[9u8; 32]), &salt, CTX));
    });

    group.throughput(Throughput::Bytes(msg.len() as u64));
    let gcm = RawGcm::new(&[0x11; 32]);
    let nonce = [0x22u8; 12];
    let mut buf = msg.clone();
    group.bench_function("raw_gcm_seal_1KiB", |b| {
        b.iter(|| gcm.seal_in_place(&nonce, black_box(&mut buf)));
    });
    group.bench_function("raw_gcm_seal_1KiB_with_key_setup", |b| {
        b.iter(|| RawGcm::new(black_box(&[0x11; 32])).seal_in_place(&nonce, black_box(&mut buf)));
    });
    group.finish();
}

criterion_group!(benches, seal_small);
criterion_main!(benches);
