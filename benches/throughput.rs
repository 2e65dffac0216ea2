//! Streaming throughput against the raw AEAD it is built on.
//!
//! For each object size (4 KiB, 64 KiB, 1 MiB, 64 MiB), in group
//! `throughput`, parameter = the size:
//!
//! * `raw_seal`: AES-256-GCM of the default provider's library (aws-lc-rs,
//!   or `aes-gcm` without the `aws-lc-rs` feature), in place over the
//!   object, in 16 KiB chunks with per-chunk nonces, key expanded once —
//!   the ceiling for `encrypt`.
//! * `raw_open`: the same, opening (a fresh copy of the ciphertext is made
//!   outside the timed region for every iteration) — the ceiling for
//!   `decrypt`.
//! * `raw_seal_to` / `raw_open_to`: the same, out of place, from one
//!   buffer into another laid out like the body (`data || tag` per chunk):
//!   the memory traffic any non-in-place encryptor has. At 64 MiB (beyond
//!   the caches) writing a second buffer costs a read-for-ownership of
//!   every output line, so this is the fair ceiling for a `Write`/`Read`
//!   adapter.
//! * `encrypt`: `Encryptor::wrap_output` into a reused, pre-allocated `Vec`
//!   (header, chunk-key derivation, every chunk, `finish`). The
//!   `Encryptor` is built outside the timed region (`iter_batched`): the
//!   A256KW wrap of the data key (~1 µs) is not counted.
//! * `decrypt`: `Decryptor::decrypt` over the body, read into a reused
//!   buffer, then one more read to authenticate the end. The `Decryptor`
//!   (the A256KW unwrap) is built outside the timed region; the chunk-key
//!   derivation and commitment check are timed.
//!
//! `scripts/bench-ratios.py` turns the results into ratios.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

mod common;

use cmk_envelope::stream::{layout, CHUNK_SIZE};
use cmk_envelope::{
    Decryptor, Encryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver,
    WrapAlgorithm,
};
use common::RawGcm;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use futures::executor::block_on;

const CTX: &[u8] = b"bench/container/object";
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn kek() -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("bench-kek", WrapAlgorithm::A256Kw, &[0x5a; 32]).expect("kek"))
}

/// The chunk engine's nonce schedule: base XOR be96(index).
fn nonce(base: &[u8; 12], index: u64) -> [u8; 12] {
    let mut n = *base;
    for (b, c) in n[4..].iter_mut().zip(index.to_be_bytes()) {
        *b ^= c;
    }
    n
}

fn raw_seal_chunks(gcm: &RawGcm, base: &[u8; 12], obj: &mut [u8], tags: &mut [[u8; 16]]) {
    for (i, (chunk, tag)) in obj.chunks_mut(CHUNK_SIZE).zip(tags.iter_mut()).enumerate() {
        *tag = gcm.seal_in_place(&nonce(base, i as u64), chunk);
    }
}

fn raw_open_chunks(gcm: &RawGcm, base: &[u8; 12], obj: &mut [u8], tags: &[[u8; 16]]) {
    for (i, (chunk, tag)) in obj.chunks_mut(CHUNK_SIZE).zip(tags).enumerate() {
        gcm.open_in_place(&nonce(base, i as u64), chunk, tag)
            .expect("open");
    }
}

/// Out of place: chunk *i* of `src` sealed into slot *i* of `dst`
/// (`data || tag`, the body's layout) — the memory traffic of any
/// encryptor that reads one buffer and writes another.
fn raw_seal_chunks_to(gcm: &RawGcm, base: &[u8; 12], src: &[u8], dst: &mut [u8]) {
    for (i, (chunk, slot)) in src
        .chunks(CHUNK_SIZE)
        .zip(dst.chunks_mut(CHUNK_SIZE + 16))
        .enumerate()
    {
        let (ct, tag) = slot.split_at_mut(chunk.len());
        tag[..16].copy_from_slice(&gcm.seal_to(&nonce(base, i as u64), chunk, ct));
    }
}

fn raw_open_chunks_to(gcm: &RawGcm, base: &[u8; 12], src: &[u8], dst: &mut [u8]) {
    for (i, (slot, out)) in src
        .chunks(CHUNK_SIZE + 16)
        .zip(dst.chunks_mut(CHUNK_SIZE))
        .enumerate()
    {
        let (ct, tag) = slot.split_at(slot.len() - 16);
        let tag: &[u8; 16] = tag.try_into().expect("tag");
        gcm.open_to(&nonce(base, i as u64), ct, tag, &mut out[..ct.len()])
            .expect("open");
    }
}

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}MiB", size / MIB)
    } else {
        format!("{}KiB", size / KIB)
    }
}

fn throughput(c: &mut Criterion) {
    let keks = [kek()];
    let resolver = StaticResolver::new().with(keks[0].clone());
    let mut group = c.benchmark_group("throughput");

    for size in [4 * KIB, 64 * KIB, MIB, 64 * MIB] {
        let id = label(size);
        let msg: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        let chunks = size.div_ceil(CHUNK_SIZE);
        group.throughput(Throughput::Bytes(size as u64));
        match size {
            s if s >= 64 * MIB => {
                group
                    .sample_size(10)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(5));
            }
            s if s >= MIB => {
                group
                    .sample_size(30)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(3));
            }
            _ => {
                group
                    .sample_size(50)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(2));
            }
        }
        let large = if size >= 64 * MIB {
            BatchSize::PerIteration
        } else {
            BatchSize::LargeInput
        };

        // (a) raw AES-256-GCM, in place, 16 KiB chunks.
        let gcm = RawGcm::new(&[0x11; 32]);
        let base = [0x22u8; 12];
        let mut tags = vec![[0u8; 16]; chunks];
        let mut work = msg.clone();
        group.bench_function(BenchmarkId::new("raw_seal", &id), |b| {
            b.iter(|| raw_seal_chunks(&gcm, &base, black_box(&mut work), &mut tags));
        });
        let mut ct = msg.clone();
        raw_seal_chunks(&gcm, &base, &mut ct, &mut tags);
        group.bench_function(BenchmarkId::new("raw_open", &id), |b| {
            b.iter_batched_ref(
                || ct.clone(),
                |buf| raw_open_chunks(&gcm, &base, buf, &tags),
                large,
            );
        });
        drop((work, ct));

        // (a') raw AES-256-GCM out of place, chunk by chunk, between two
        // buffers laid out like the plaintext and the body.
        let body_chunks = size + chunks * 16;
        let mut sealed = vec![0u8; body_chunks];
        group.bench_function(BenchmarkId::new("raw_seal_to", &id), |b| {
            b.iter(|| raw_seal_chunks_to(&gcm, &base, black_box(&msg), &mut sealed));
        });
        raw_seal_chunks_to(&gcm, &base, &msg, &mut sealed);
        let mut opened = vec![0u8; size];
        group.bench_function(BenchmarkId::new("raw_open_to", &id), |b| {
            b.iter(|| raw_open_chunks_to(&gcm, &base, black_box(&sealed), &mut opened));
        });
        raw_open_chunks_to(&gcm, &base, &sealed, &mut opened);
        assert!(opened == msg, "raw out-of-place round trip");
        drop((sealed, opened));

        // (b) streaming encrypt into a reused, pre-allocated Vec.
        let header_len = block_on(Encryptor::new(&keks, Profile::Blob, CTX))
            .expect("encryptor")
            .header()
            .encoded_len();
        let mut out: Vec<u8> =
            Vec::with_capacity(header_len + layout::body_len(size as u64) as usize);
        group.bench_function(BenchmarkId::new("encrypt", &id), |b| {
            b.iter_batched(
                || block_on(Encryptor::new(&keks, Profile::Blob, CTX)).expect("encryptor"),
                |enc| {
                    out.clear();
                    let mut w = enc.wrap_output(&mut out).expect("writer");
                    w.write_all(black_box(&msg)).expect("write");
                    w.finish().expect("finish");
                },
                BatchSize::SmallInput,
            );
        });
        if out.is_empty() {
            // `encrypt` was filtered out: make the envelope for `decrypt`.
            let enc = block_on(Encryptor::new(&keks, Profile::Blob, CTX)).expect("encryptor");
            let mut w = enc.wrap_output(&mut out).expect("writer");
            w.write_all(&msg).expect("write");
            w.finish().expect("finish");
        }
        assert_eq!(
            out.len(),
            header_len + layout::body_len(size as u64) as usize
        );

        // (c) streaming decrypt into a reused buffer.
        let envelope = out;
        let (header, used) = Header::parse_prefix(&envelope).expect("header");
        let body = &envelope[used..];
        let mut plain = vec![0u8; size];
        {
            // Check the round trip once, whichever benchmarks the filter runs.
            let dec = block_on(Decryptor::new(&header, &resolver, Profile::Blob, CTX))
                .expect("decryptor");
            let mut r = dec.decrypt(body).expect("reader");
            let mut check = Vec::with_capacity(size);
            r.read_to_end(&mut check).expect("read");
            assert!(check == msg, "round trip");
        }
        group.bench_function(BenchmarkId::new("decrypt", &id), |b| {
            b.iter_batched(
                || {
                    block_on(Decryptor::new(&header, &resolver, Profile::Blob, CTX))
                        .expect("decryptor")
                },
                |dec| {
                    let mut r = dec.decrypt(black_box(body)).expect("reader");
                    let mut filled = 0;
                    while filled < size {
                        let n = r.read(&mut plain[filled..]).expect("read");
                        assert!(n > 0, "early end");
                        filled += n;
                    }
                    // Authenticates the end (opens the final chunk if not yet).
                    assert_eq!(r.read(&mut [0u8; 1]).expect("read end"), 0);
                },
                BatchSize::SmallInput,
            );
        });
        assert!(plain == msg || plain.iter().all(|&b| b == 0), "round trip");
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
