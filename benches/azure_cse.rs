//! Decrypt throughput of an Azure Storage client-side encryption v2.0 blob
//! (4 MiB AES-256-GCM regions) against this crate's own envelope format,
//! for the same 16 MiB plaintext, in the same run (group `azure_cse`):
//!
//! * `cse_decrypt`: `CseDecryptor::reader` over the blob, read to the end
//!   into a reused buffer (the content key's A256KW unwrap is outside the
//!   timed region).
//! * `cse_decrypt_range_64k`: a 64 KiB plaintext range in the middle
//!   (one 4 MiB region opened).
//! * `envelope_decrypt`: `Decryptor::decrypt` over an embedded envelope of
//!   the same plaintext (16 KiB chunks, key commitment), unwrap outside the
//!   timed region.
//!
//! Run: `cargo bench --features azure-cse --bench azure_cse -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;

use cmk_envelope::azure_cse::{self, CseDecryptor, CseEncryptOptions};
use cmk_envelope::{
    Decryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver, WrapAlgorithm,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::executor::block_on;

const MIB: usize = 1024 * 1024;
const SIZE: usize = 16 * MIB;
const CTX: &[u8] = b"bench/container/object";

fn bench(c: &mut Criterion) {
    let kek: Arc<dyn KeyEncryptionKey> =
        Arc::new(LocalKek::from_aes_key("bench", WrapAlgorithm::A256Kw, &[0x5a; 32]).unwrap());
    let resolver = StaticResolver::new().with(Arc::clone(&kek));
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 131) as u8).collect();

    let (metadata, blob) = block_on(azure_cse::encrypt(
        kek.as_ref(),
        &CseEncryptOptions::v2_0(),
        &plain,
    ))
    .unwrap();
    let cse = block_on(CseDecryptor::new(&metadata, &resolver)).unwrap();

    let envelope = block_on(cmk_envelope::seal(
        &[Arc::clone(&kek)],
        Profile::Blob,
        CTX,
        &plain,
    ))
    .unwrap();
    let mut r = &envelope[..];
    let header = Header::read_from(&mut r).unwrap();
    let body = r;

    let mut out = vec![0u8; SIZE + 1];
    let mut g = c.benchmark_group("azure_cse");
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("cse_decrypt", |b| {
        b.iter(|| {
            let mut rd = cse.reader(black_box(&blob[..]));
            let n = read_all(&mut rd, &mut out);
            assert_eq!(n, SIZE);
        })
    });
    g.bench_function("envelope_decrypt", |b| {
        b.iter_batched(
            || block_on(Decryptor::new(&header, &resolver, Profile::Blob, CTX)).unwrap(),
            |env| {
                let mut rd = env.decrypt(black_box(body)).unwrap();
                let n = read_all(&mut rd, &mut out);
                assert_eq!(n, SIZE);
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Bytes(64 * 1024));
    g.bench_function("cse_decrypt_range_64k", |b| {
        b.iter(|| {
            let plan = cse
                .plan_range(6 * MIB as u64..6 * MIB as u64 + 65536, blob.len() as u64)
                .unwrap();
            let ct = plan.ciphertext();
            let fetched = &blob[ct.start as usize..ct.end as usize];
            black_box(cse.decrypt_range(&plan, fetched).unwrap());
        })
    });
    g.finish();
}

fn read_all(r: &mut impl Read, out: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        match r.read(&mut out[n..]).unwrap() {
            0 => return n,
            k => n += k,
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
