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
//! * `seal_1MiB_scope_key` / `seal_1MiB_local_a256kw` and
//!   `open_1MiB_scope_key` / `open_1MiB_local_a256kw`: 64 chunks sealed or
//!   opened under a scope key, whose lease is checked before every chunk,
//!   and under a local key, which has no lease. Their ratio is the cost of
//!   the per-chunk lease check.
//!
//! Before the criterion run it seals 1,000,000 objects under one scope
//! within one TTL and prints how many CMK calls and store reads that took
//! (target: 1 each, the store read being the one that opened the scope).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{
    rewrap, Decryptor, Encryptor, Header, KeyEncryptionKey, KeyMaterial, KeyResolver, LocalKek,
    Profile, StaticResolver, WrapAlgorithm, WrappedKey,
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

    // KMS calls per 1M objects sealed within one TTL (another count with
    // CMK_BENCH_SCOPE_OBJECTS, e.g. for instruction counts under callgrind).
    let objects: u64 = std::env::var("CMK_BENCH_SCOPE_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let before = cmk.calls.load(Ordering::Relaxed);
    let t = Instant::now();
    for _ in 0..objects {
        let enc = block_on(Encryptor::new(&scope_kek, Profile::Document, CTX)).unwrap();
        black_box(enc.seal(&msg).unwrap());
    }
    let calls = cmk.calls.load(Ordering::Relaxed) - before;
    let reads = scope.cache_stats().store_reads;
    println!(
        "scope: {objects} objects sealed under one scope within one TTL: {calls} CMK call(s), {reads} store read(s), {:.2} µs/object",
        t.elapsed().as_secs_f64() * 1e6 / objects as f64
    );
    assert_eq!(calls, 1);
    assert_eq!(reads, 1);

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

    // The per-chunk lease check: 64 chunks under a scope key and under a
    // local key (no lease), sealed and opened.
    let big = vec![0xA5u8; 1 << 20];
    g.throughput(Throughput::Bytes(big.len() as u64));
    let scope_resolver = scope.resolver();
    for (name, keks, resolver) in [
        (
            "scope_key",
            &scope_kek[..],
            &scope_resolver as &dyn KeyResolver,
        ),
        ("local_a256kw", &local[..], &resolver as &dyn KeyResolver),
    ] {
        g.bench_function(format!("seal_1MiB_{name}"), |b| {
            b.iter(|| {
                let enc = block_on(Encryptor::new(keks, Profile::Blob, CTX)).unwrap();
                enc.seal(black_box(&big)).unwrap()
            })
        });
        let env = block_on(cmk_envelope::seal(keks, Profile::Blob, CTX, &big)).unwrap();
        let (h, n) = Header::parse_prefix(&env).unwrap();
        g.bench_function(format!("open_1MiB_{name}"), |b| {
            b.iter(|| {
                let dec = block_on(Decryptor::new(&h, resolver, Profile::Blob, CTX)).unwrap();
                dec.open(black_box(&env[n..])).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, scope_bench);
criterion_main!(benches);
