//! The parallel engine and the async adapters against their baselines.
//!
//! * group `parallel` (256 MiB in memory): `Encryptor::seal_into` and
//!   `Decryptor::open_into` (output buffer reused) with 1 and 2 threads.
//!   Target: 2 threads ≥ 1.8× the 1-thread throughput.
//! * group `streaming` (64 MiB): the single-thread streaming writer and
//!   reader (`Encryptor::wrap_output`, `Decryptor::decrypt`) against raw
//!   AES-256-GCM over the same 16 KiB chunks (`raw_seal`, `raw_open`: the
//!   default provider's library, key expanded once). Target: ≥ 85 %.
//! * group `async_reader` (64 MiB body in a file under /dev/shm, or the
//!   temp dir): `AsyncDecryptingReader` over a `tokio::fs::File` against
//!   `DecryptingReader` over a `std::fs::File`, both read into a 256 KiB
//!   buffer to the authenticated end. Target: ≥ 90 %.
//!
//! Building the `Encryptor`/`Decryptor` (one A256KW call) is outside the
//! timed region. Run with `cargo bench --features tokio --bench parallel`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod common;

use std::num::NonZeroUsize;

use cmk_envelope::stream::{layout, CHUNK_SIZE};
use cmk_envelope::{
    Decryptor, Encryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver, Threads,
    WrapAlgorithm,
};
use common::RawGcm;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;
use tokio::io::AsyncReadExt;

const CTX: &[u8] = b"bench/container/parallel";
const MIB: usize = 1024 * 1024;

fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("bench-kek", WrapAlgorithm::A256Kw, &[0x5a; 32]).expect("kek"))
}

fn encryptor(keks: &[Arc<dyn KeyEncryptionKey>]) -> Encryptor {
    block_on(Encryptor::new(keks, Profile::Blob, CTX)).expect("encryptor")
}

fn decryptor(h: &Header, r: &StaticResolver) -> Decryptor {
    block_on(Decryptor::new(h, r, Profile::Blob, CTX)).expect("decryptor")
}

/// A detached body of `msg` and its header.
fn sealed_detached(keks: &[Arc<dyn KeyEncryptionKey>], msg: &[u8]) -> (Header, Vec<u8>) {
    let enc = encryptor(keks).detached();
    let header = enc.header().clone();
    (header, enc.seal(msg).expect("seal"))
}

fn threads(n: usize) -> Threads {
    Threads::Fixed(NonZeroUsize::new(n).expect("threads"))
}

fn data(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

fn parallel(c: &mut Criterion) {
    let keks = [kek()];
    let resolver = StaticResolver::new().with(keks[0].clone());
    let size = 256 * MIB;
    let msg = data(size);
    let mut g = c.benchmark_group("parallel");
    g.throughput(Throughput::Bytes(size as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    // The output buffer is reused across iterations (`seal_into`,
    // `open_into`): a fresh 256 MiB allocation costs 65,536 page
    // faults per iteration, which on this VM take longer than the
    // encryption itself and do not scale with threads.
    let mut out = Vec::new();
    for threads in [1usize, 2] {
        g.bench_function(BenchmarkId::new("seal", threads), |b| {
            b.iter_batched(
                || encryptor(&keks).threads(self::threads(threads)),
                |enc| enc.seal_into(black_box(&msg), &mut out).expect("seal"),
                BatchSize::PerIteration,
            );
        });
    }
    let (header, body) = sealed_detached(&keks, &msg);
    for threads in [1usize, 2] {
        g.bench_function(BenchmarkId::new("open", threads), |b| {
            b.iter_batched(
                || decryptor(&header, &resolver).threads(self::threads(threads)),
                |dec| dec.open_into(black_box(&body), &mut out).expect("open"),
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn nonce(base: &[u8; 12], index: u64) -> [u8; 12] {
    let mut n = *base;
    for (b, c) in n[4..].iter_mut().zip(index.to_be_bytes()) {
        *b ^= c;
    }
    n
}

fn streaming(c: &mut Criterion) {
    let keks = [kek()];
    let resolver = StaticResolver::new().with(keks[0].clone());
    let size = 64 * MIB;
    let msg = data(size);
    let mut g = c.benchmark_group("streaming");
    g.throughput(Throughput::Bytes(size as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let gcm = RawGcm::new(&[0x11; 32]);
    let base = [0x22u8; 12];
    let mut tags = vec![[0u8; 16]; size.div_ceil(CHUNK_SIZE)];
    let mut work = msg.clone();
    g.bench_function("raw_seal", |b| {
        b.iter(|| {
            for (i, (chunk, tag)) in work.chunks_mut(CHUNK_SIZE).zip(tags.iter_mut()).enumerate() {
                *tag = gcm.seal_in_place(&nonce(&base, i as u64), chunk);
            }
        });
    });
    let ct = work.clone();
    g.bench_function("raw_open", |b| {
        b.iter_batched_ref(
            || ct.clone(),
            |buf| {
                for (i, (chunk, tag)) in buf.chunks_mut(CHUNK_SIZE).zip(&tags).enumerate() {
                    gcm.open_in_place(&nonce(&base, i as u64), chunk, tag)
                        .expect("open");
                }
            },
            BatchSize::PerIteration,
        );
    });
    drop((work, ct));

    let mut out: Vec<u8> = Vec::with_capacity(4096 + layout::body_len(size as u64) as usize);
    g.bench_function("writer", |b| {
        b.iter_batched(
            || encryptor(&keks),
            |enc| {
                out.clear();
                let mut w = enc.detached().wrap_output(&mut out).expect("writer");
                w.write_all(black_box(&msg)).expect("write");
                w.finish().expect("finish");
            },
            BatchSize::SmallInput,
        );
    });
    let (header, body) = sealed_detached(&keks, &msg);
    let mut plain = vec![0u8; 256 * 1024];
    g.bench_function("reader", |b| {
        b.iter_batched(
            || decryptor(&header, &resolver),
            |dec| {
                let mut r = dec.decrypt(black_box(&body[..])).expect("reader");
                while r.read(&mut plain).expect("read") > 0 {}
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn bench_dir() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn async_reader(c: &mut Criterion) {
    let keks = [kek()];
    let resolver = StaticResolver::new().with(keks[0].clone());
    let size = 64 * MIB;
    let msg = data(size);
    let (header, body) = sealed_detached(&keks, &msg);
    drop(msg);
    let path = bench_dir().join(format!("cmk-bench-async-{}.body", std::process::id()));
    std::fs::write(&path, &body).expect("write body");
    drop(body);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut g = c.benchmark_group("async_reader");
    g.throughput(Throughput::Bytes(size as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut buf = vec![0u8; 256 * 1024];
    g.bench_function("sync_file", |b| {
        b.iter_batched(
            || decryptor(&header, &resolver),
            |dec| {
                let f = std::fs::File::open(&path).expect("open");
                let mut r = dec.decrypt(f).expect("reader");
                let mut n = 0;
                loop {
                    let k = r.read(&mut buf).expect("read");
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                assert_eq!(n, size);
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("tokio_file", |b| {
        b.iter_batched(
            || decryptor(&header, &resolver),
            |dec| {
                rt.block_on(async {
                    let f = tokio::fs::File::open(&path).await.expect("open");
                    let mut r = dec.decrypt_async(f).await.expect("reader");
                    let mut n = 0;
                    loop {
                        let k = r.read(&mut buf).await.expect("read");
                        if k == 0 {
                            break;
                        }
                        n += k;
                    }
                    assert_eq!(n, size);
                });
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, parallel, streaming, async_reader);
criterion_main!(benches);
