//! The key hierarchy's hot paths.
//!
//! Group `scope`:
//!
//! * `seal_1KiB_cached_scope_key`: `Encryptor::new(&[scope.kek()])` + `seal`
//!   of 1 KiB once the scope key is cached (no KMS call).
//! * `seal_1KiB_local_a256kw`: the same with a local A256KW KEK, for scale.
//! * `rewrap_header_local_a256kw`: `rewrap(header, resolver, [new local
//!   A256KW KEK])` — a header-only rotation (unwrap + wrap + encode). The
//!   rate in headers/s is 1 / time.
//!
//! Before the criterion run it seals 1,000,000 objects under one scope
//! within one TTL and prints how many CMK calls that took (target: 1).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{
    rewrap, Encryptor, Header, KeyEncryptionKey, KeyMaterial, LocalKek, Profile, StaticResolver,
    WrapAlgorithm, WrappedKey,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::executor::block_on;

const CTX: &[u8] = b"bench/tenant/doc";

/// Counts CMK calls.
#[derive(Debug)]
struct Counting {
    inner: LocalKek,
    calls: AtomicU64,
}

#[async_trait]
impl KeyEncryptionKey for Counting {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }
    fn algorithm(&self) -> WrapAlgorithm {
        self.inner.algorithm()
    }
    fn key_container(&self) -> Option<String> {
        Some("bench-vault".into())
    }
    async fn wrap_key_material(&self, m: &KeyMaterial) -> cmk_envelope::Result<WrappedKey> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.wrap_key_material(m).await
    }
    async fn unwrap_key_material(&self, w: &[u8]) -> cmk_envelope::Result<KeyMaterial> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.unwrap_key_material(w).await
    }
}

fn scope_bench(c: &mut Criterion) {
    let cmk = Arc::new(Counting {
        inner: LocalKek::from_aes_key("cmk", WrapAlgorithm::A256Kw, &[0x11; 32]).unwrap(),
        calls: AtomicU64::new(0),
    });
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let policy = CachePolicy {
        ttl: Duration::from_secs(3600),
        ..CachePolicy::default()
    };
    let created = block_on(EncryptionScope::create(
        store.clone(),
        "bench",
        Cmk::CustomerManaged(cmk.clone()),
        policy.clone(),
    ))
    .unwrap();
    drop(created);
    let scope = block_on(EncryptionScope::open(
        store,
        "bench",
        Cmk::CustomerManaged(cmk.clone()),
        policy,
    ))
    .unwrap();
    let scope_kek = [scope.kek()];
    let msg = vec![0x5Au8; 1024];

    // KMS calls per 1M objects sealed within one TTL.
    let before = cmk.calls.load(Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..1_000_000 {
        let enc = block_on(Encryptor::new(&scope_kek, Profile::Document, CTX)).unwrap();
        black_box(enc.seal(&msg).unwrap());
    }
    let calls = cmk.calls.load(Ordering::Relaxed) - before;
    println!(
        "scope: 1,000,000 objects sealed under one scope within one TTL: {calls} CMK call(s), {:.2} µs/object",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(calls, 1);

    let local =
        [
            Arc::new(LocalKek::from_aes_key("local", WrapAlgorithm::A256Kw, &[0x22; 32]).unwrap())
                as Arc<dyn KeyEncryptionKey>,
        ];
    let mut g = c.benchmark_group("scope");
    g.sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("seal_1KiB_cached_scope_key", |b| {
        b.iter(|| {
            let enc = block_on(Encryptor::new(
                black_box(&scope_kek),
                Profile::Document,
                CTX,
            ))
            .unwrap();
            enc.seal(black_box(&msg)).unwrap()
        })
    });
    g.bench_function("seal_1KiB_local_a256kw", |b| {
        b.iter(|| {
            let enc = block_on(Encryptor::new(black_box(&local), Profile::Document, CTX)).unwrap();
            enc.seal(black_box(&msg)).unwrap()
        })
    });

    let header = Header::parse_prefix(
        &block_on(cmk_envelope::seal(&local, Profile::Blob, CTX, b"x")).unwrap(),
    )
    .unwrap()
    .0;
    let resolver: StaticResolver = local.iter().cloned().collect();
    let new = [
        Arc::new(LocalKek::from_aes_key("new", WrapAlgorithm::A256Kw, &[0x33; 32]).unwrap())
            as Arc<dyn KeyEncryptionKey>,
    ];
    g.throughput(Throughput::Elements(1));
    g.bench_function("rewrap_header_local_a256kw", |b| {
        b.iter(|| block_on(rewrap(black_box(&header), &resolver, &new)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, scope_bench);
criterion_main!(benches);
