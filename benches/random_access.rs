//! Random 4 KiB reads (`DecryptingReader::read_at`) in a 64 MiB envelope
//! held in memory (`Cursor<Vec<u8>>`), at pseudo-random offsets from a
//! fixed-seed LCG, against the raw AES-256-GCM open they are built on.
//!
//! Group `random_access`:
//!
//! * `read_at_4KiB_in_64MiB`: one `read_at` of 4096 bytes. It opens the
//!   16 KiB chunk holding the range — two chunks for the ~25 % of offsets
//!   that straddle a chunk boundary — and copies the 4 KiB out.
//! * `raw_open_4KiB`: AES-256-GCM open of 4 KiB in place (key expanded
//!   once; the ciphertext copy is made outside the timed region).
//! * `raw_open_16KiB`: the same for one whole chunk, what `read_at` must
//!   actually authenticate.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

mod common;

use cmk_envelope::{
    Decryptor, Encryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver,
    WrapAlgorithm,
};
use common::RawGcm;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::executor::block_on;

const CTX: &[u8] = b"bench/container/object";
const OBJECT: usize = 64 * 1024 * 1024;
const READ: usize = 4096;

fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("bench-kek", WrapAlgorithm::A256Kw, &[0x5a; 32]).expect("kek"))
}

/// 64-bit LCG (Knuth's MMIX constants); the high bits are the output.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 24
    }
}

fn random_access(c: &mut Criterion) {
    let keks = [kek()];
    let resolver = StaticResolver::new().with(keks[0].clone());
    let msg: Vec<u8> = (0..OBJECT).map(|i| (i * 31 + 7) as u8).collect();
    let envelope = block_on(Encryptor::new(&keks, Profile::Blob, CTX))
        .expect("encryptor")
        .seal(&msg)
        .expect("seal");

    let mut cur = Cursor::new(envelope);
    let header = Header::read_from(&mut cur).expect("header");
    let dec = block_on(Decryptor::new(&header, &resolver, Profile::Blob, CTX)).expect("decryptor");
    let mut reader = dec.decrypt(cur).expect("reader");

    let mut group = c.benchmark_group("random_access");
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(READ as u64));

    let mut buf = vec![0u8; READ];
    let mut lcg = Lcg(0x00C0_FFEE_D15E_A5E5);
    let span = (OBJECT - READ + 1) as u64;
    group.bench_function("read_at_4KiB_in_64MiB", |b| {
        b.iter(|| {
            let off = lcg.next() % span;
            let n = reader.read_at(off, &mut buf).expect("read_at");
            debug_assert_eq!(n, READ);
            n
        });
    });
    // Spot check the reads were real.
    let off = 5 * 16384 - 100;
    reader.read_at(off as u64, &mut buf).expect("read_at");
    assert_eq!(&buf[..], &msg[off..off + READ]);

    let gcm = RawGcm::new(&[0x11; 32]);
    let nonce = [0x22u8; 12];
    for (name, len) in [("raw_open_4KiB", READ), ("raw_open_16KiB", 16 * 1024)] {
        let mut ct = msg[..len].to_vec();
        let tag = gcm.seal_in_place(&nonce, &mut ct);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || ct.clone(),
                |buf| gcm.open_in_place(&nonce, buf, &tag).expect("open"),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, random_access);
criterion_main!(benches);
