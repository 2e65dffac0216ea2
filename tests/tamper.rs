//! The tamper matrix: every damage to a multi-chunk envelope is an error,
//! and no plaintext from the damaged chunk onwards is ever released.

mod common;

use std::io::{Cursor, Read};
use std::sync::Arc;

use cmk_envelope::{
    open_reader, seal, Error, Header, KeyEncryptionKey, Profile, StaticResolver, WrapAlgorithm,
};
use common::{aes_kek, data};

const CTX: &[u8] = b"container/model.bin";
const CHUNK: usize = 16384;
const CT_CHUNK: usize = 16400;
/// Five full chunks and a short sixth.
const LEN: usize = 5 * CHUNK + 1000;

struct Fixture {
    kek: Arc<dyn KeyEncryptionKey>,
    msg: Vec<u8>,
    env: Vec<u8>,
    header_len: usize,
}

impl Fixture {
    async fn new() -> Fixture {
        let kek = aes_kek("tamper", WrapAlgorithm::A256Kw);
        let msg = data(LEN, 42);
        let env = seal(std::slice::from_ref(&kek), Profile::Blob, CTX, &msg)
            .await
            .unwrap();
        let header_len = Header::parse_prefix(&env).unwrap().1;
        Fixture {
            kek,
            msg,
            env,
            header_len,
        }
    }

    fn chunk_start(&self, i: usize) -> usize {
        self.header_len + 56 + i * CT_CHUNK
    }

    fn chunk(&self, i: usize) -> &[u8] {
        let s = self.chunk_start(i);
        &self.env[s..(s + CT_CHUNK).min(self.env.len())]
    }

    fn resolver(&self) -> StaticResolver {
        [self.kek.clone()].into_iter().collect()
    }
}

/// Opens `env` and streams it in reads of `read_size` bytes. Returns the
/// error (if any), all plaintext released before it, and the read buffer as
/// the failed read left it.
async fn attempt(
    env: &[u8],
    resolver: &StaticResolver,
    profile: Profile,
    ctx: &[u8],
    read_size: usize,
) -> (Option<Error>, Vec<u8>, Vec<u8>) {
    let mut r = match open_reader(Cursor::new(env), resolver, profile, ctx).await {
        Ok(r) => r,
        Err(e) => return (Some(e), Vec::new(), Vec::new()),
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; read_size];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (None, out, buf),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (Some(Error::from_io(e)), out, buf),
        }
    }
}

/// Asserts that `env` fails and released only plaintext of chunks before
/// `damaged_chunk`, all of it correct.
async fn must_fail(f: &Fixture, env: &[u8], damaged_chunk: usize, what: &str) -> Error {
    // 1000-byte reads go through the reader's chunk buffer; 64 KiB reads
    // open whole chunks straight into the caller's buffer.
    let mut first = None;
    for read_size in [1000, 4 * CHUNK] {
        let (err, released, buf) = attempt(env, &f.resolver(), Profile::Blob, CTX, read_size).await;
        let err = err.unwrap_or_else(|| panic!("{what}: accepted ({read_size}-byte reads)"));
        assert!(
            released.len() <= damaged_chunk * CHUNK,
            "{what}: released {} bytes",
            released.len()
        );
        assert_eq!(
            &released[..],
            &f.msg[..released.len()],
            "{what}: released wrong plaintext"
        );
        // The failed read left no plaintext of the chunk it refused in the
        // caller's buffer.
        let next = &f.msg[released.len()..];
        let k = next.len().min(CHUNK).min(buf.len());
        if k > 0 {
            assert!(
                buf[..k] != next[..k],
                "{what}: refused chunk's plaintext left in the read buffer"
            );
        }
        first.get_or_insert(err);
    }
    first.expect("two attempts")
}

#[tokio::test]
async fn every_bit_flip_of_header_and_first_200_body_bytes() {
    let f = Fixture::new().await;
    let mut n = 0;
    for byte in 0..f.header_len + 200 {
        for bit in 0..8 {
            let mut env = f.env.clone();
            env[byte] ^= 1 << bit;
            must_fail(&f, &env, 0, &format!("flip byte {byte} bit {bit}")).await;
            n += 1;
        }
    }
    println!("tamper: {n} single-bit flips rejected");
    assert_eq!(n, (f.header_len + 200) * 8);
}

#[tokio::test]
async fn bit_flips_in_later_chunks_stop_at_that_chunk() {
    let f = Fixture::new().await;
    for chunk in 1..6 {
        for off in [0usize, 500, CHUNK - 1, CHUNK, CT_CHUNK - 1] {
            let pos = f.chunk_start(chunk) + off;
            if pos >= f.env.len() {
                continue;
            }
            let mut env = f.env.clone();
            env[pos] ^= 0x20;
            let e = must_fail(&f, &env, chunk, &format!("flip in chunk {chunk} at {off}")).await;
            assert!(
                matches!(e, Error::ChunkAuthentication { chunk: c } if c == chunk as u64),
                "{e:?}"
            );
        }
    }
}

#[tokio::test]
async fn truncation_at_every_chunk_boundary_and_random_offsets() {
    let f = Fixture::new().await;
    let body_start = f.header_len;
    // chunk boundaries (ends of full chunks), the prefix boundary, and the
    // start of the body
    let mut cuts: Vec<usize> = (0..=5).map(|i| f.chunk_start(i)).collect();
    cuts.push(body_start);
    cuts.push(body_start + 24);
    // 50 pseudo-random offsets
    let mut x = 0x2545F4914F6CDD1Du64;
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cuts.push((x % f.env.len() as u64) as usize);
    }
    cuts.push(f.env.len() - 1);
    for cut in cuts {
        let env = &f.env[..cut];
        let damaged = if cut <= f.chunk_start(0) {
            0
        } else {
            (cut - f.chunk_start(0)) / CT_CHUNK
        };
        let e = must_fail(&f, env, damaged, &format!("truncate at {cut}")).await;
        assert!(
            matches!(
                e,
                Error::Truncated | Error::ChunkAuthentication { .. } | Error::MalformedHeader(_)
            ),
            "cut {cut}: {e:?}"
        );
    }
}

#[tokio::test]
async fn reordered_duplicated_dropped_and_extra_chunks() {
    let f = Fixture::new().await;
    let prefix = &f.env[..f.chunk_start(0)];
    let build = |order: &[usize]| -> Vec<u8> {
        let mut v = prefix.to_vec();
        for &i in order {
            v.extend_from_slice(f.chunk(i));
        }
        v
    };
    let cases: &[(&[usize], usize, &str)] = &[
        (&[1, 0, 2, 3, 4, 5], 0, "swap 0 and 1"),
        (&[0, 1, 3, 2, 4, 5], 2, "swap 2 and 3"),
        (&[0, 0, 1, 2, 3, 4, 5], 1, "duplicate 0"),
        (&[0, 1, 2, 2, 3, 4, 5], 3, "duplicate 2"),
        (&[0, 1, 3, 4, 5], 2, "drop 2"),
        (&[1, 2, 3, 4, 5], 0, "drop 0"),
        (&[0, 1, 2, 3, 4], 5, "drop final"),
        (&[0, 1, 2, 3, 5], 4, "drop 4"),
        (&[0, 1, 2, 3, 4, 5, 5], 6, "final duplicated at the end"),
        (&[0, 1, 2, 3, 4, 5, 0], 6, "extra chunk after the final"),
    ];
    for (order, damaged, what) in cases {
        must_fail(&f, &build(order), *damaged, what).await;
    }
    // trailing garbage after a valid envelope
    let mut env = f.env.clone();
    env.extend_from_slice(&[0u8; 20]);
    must_fail(&f, &env, 5, "20 trailing bytes").await;
}

#[tokio::test]
async fn chunk_spliced_from_another_envelope() {
    let f = Fixture::new().await;
    // same KEK, same context, same plaintext: only the data key differs
    let other = seal(std::slice::from_ref(&f.kek), Profile::Blob, CTX, &f.msg)
        .await
        .unwrap();
    for i in 0..6 {
        let mut env = f.env.clone();
        let s = f.chunk_start(i);
        let e = (s + CT_CHUNK).min(env.len());
        env[s..e].copy_from_slice(&other[s..e]);
        must_fail(&f, &env, i, &format!("chunk {i} spliced")).await;
    }
    // the other envelope's header on this body
    let mut env = other[..f.header_len].to_vec();
    env.extend_from_slice(&f.env[f.header_len..]);
    let e = must_fail(&f, &env, 0, "foreign header").await;
    assert!(matches!(e, Error::CommitmentMismatch), "{e:?}");
}

#[tokio::test]
async fn wrong_context_profile_and_kek() {
    let f = Fixture::new().await;
    let (e, out, _) = attempt(
        &f.env,
        &f.resolver(),
        Profile::Blob,
        b"container/other.bin",
        1000,
    )
    .await;
    assert!(matches!(e, Some(Error::CommitmentMismatch)) && out.is_empty());
    let (e, out, _) = attempt(&f.env, &f.resolver(), Profile::Document, CTX, 1000).await;
    assert!(matches!(e, Some(Error::CommitmentMismatch)) && out.is_empty());
    let impostor: StaticResolver = [aes_kek("tamper", WrapAlgorithm::A256Kw)]
        .into_iter()
        .collect();
    let (e, out, _) = attempt(&f.env, &impostor, Profile::Blob, CTX, 1000).await;
    assert!(matches!(e, Some(Error::UnwrapFailed { .. })) && out.is_empty());
    let stranger: StaticResolver = [aes_kek("someone-else", WrapAlgorithm::A256Kw)]
        .into_iter()
        .collect();
    let (e, out, _) = attempt(&f.env, &stranger, Profile::Blob, CTX, 1000).await;
    assert!(matches!(e, Some(Error::UnknownKek { .. })) && out.is_empty());
    // and the untouched envelope opens
    let (e, out, _) = attempt(&f.env, &f.resolver(), Profile::Blob, CTX, 1000).await;
    assert!(e.is_none());
    assert_eq!(out, f.msg);
}
