//! The tamper matrix: every damage to a multi-chunk envelope is an error
//! on **every** decryption path, all paths agree on the error, and none
//! releases plaintext from the damaged chunk onwards.
//!
//! The paths: the one-shot `open`; `Decryptor::open_into` on 1 and 2
//! threads; the sync reader with small reads (through its chunk buffer)
//! and with whole-chunk reads (straight into the caller's buffer);
//! `DecryptingReader::read_at` on 1 thread and on 2 (a read long enough to
//! open its chunks in parallel); the async reader, sequential and by
//! `read_at`; `decrypt_stream` and `decrypt_file` on 1 and 2 threads; and
//! `ranges` with a plan covering the whole object.

mod common;

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::sync::Arc;

use cmk_envelope::stream::PARALLEL_READ_MIN;
use cmk_envelope::{
    seal, Decryptor, Error, Header, KeyEncryptionKey, Profile, RangePlan, StaticResolver, Threads,
    WrapAlgorithm,
};
use common::{aes_kek, data};
use tokio::io::AsyncReadExt;

const CTX: &[u8] = b"container/model.bin";
const CHUNK: usize = 16384;
const CT_CHUNK: usize = 16400;
/// Five full chunks and a short sixth.
const LEN: usize = 5 * CHUNK + 1000;

/// Every decryption path of the crate.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// `cmk_envelope::open`.
    Open,
    /// `Decryptor::open_into` over a reused buffer, on this many threads.
    OpenInto(usize),
    /// `Decryptor::decrypt`, read in pieces of this many bytes.
    Reader(usize),
    /// `DecryptingReader::read_at` of the whole object into a buffer of
    /// this many bytes, on this many threads.
    ReadAt(usize, usize),
    /// `Decryptor::decrypt_async`, read in pieces of this many bytes.
    Async(usize),
    /// `AsyncDecryptingReader::read_at` of the whole object.
    AsyncReadAt,
    /// `Decryptor::decrypt_stream` on this many threads.
    Stream(usize),
    /// `Decryptor::decrypt_file` on this many threads.
    File(usize),
    /// `Decryptor::ranges` and one plan for the whole object.
    Ranges,
}

const PATHS: [Path; 15] = [
    Path::Open,
    Path::OpenInto(1),
    Path::OpenInto(2),
    // 1000-byte reads go through the reader's chunk buffer; 64 KiB reads
    // open whole chunks straight into the caller's buffer.
    Path::Reader(1000),
    Path::Reader(4 * CHUNK),
    Path::ReadAt(LEN + 100, 1),
    Path::ReadAt(PARALLEL_READ_MIN, 2),
    Path::Async(1000),
    Path::Async(4 * CHUNK),
    Path::AsyncReadAt,
    Path::Stream(1),
    Path::Stream(2),
    Path::File(1),
    Path::File(2),
    Path::Ranges,
];

/// What one path did with one envelope.
struct Attempt {
    /// The error, if it failed.
    err: Option<Error>,
    /// Plaintext handed to the caller as good before the error (or all of
    /// it on success).
    released: Vec<u8>,
    /// The caller's buffer as the failed call left it (`read`/`read_at`
    /// paths; empty otherwise).
    buf: Vec<u8>,
}

impl Attempt {
    fn failed(e: Error) -> Attempt {
        Attempt {
            err: Some(e),
            released: Vec::new(),
            buf: Vec::new(),
        }
    }
}

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

fn threads(n: usize) -> Threads {
    Threads::Fixed(NonZeroUsize::new(n).unwrap())
}

/// Reads `r` to its end in pieces of `size` bytes.
fn read_all(mut r: impl Read, size: usize) -> Attempt {
    let mut released = Vec::new();
    let mut buf = vec![0u8; size];
    loop {
        match r.read(&mut buf) {
            Ok(0) => {
                return Attempt {
                    err: None,
                    released,
                    buf,
                }
            }
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Attempt {
                    err: Some(e.into()),
                    released,
                    buf,
                }
            }
        }
    }
}

/// The async [`read_all`].
async fn read_all_async(mut r: impl tokio::io::AsyncRead + Unpin, size: usize) -> Attempt {
    let mut released = Vec::new();
    let mut buf = vec![0u8; size];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => {
                return Attempt {
                    err: None,
                    released,
                    buf,
                }
            }
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => {
                return Attempt {
                    err: Some(e.into()),
                    released,
                    buf,
                }
            }
        }
    }
}

/// A `read_at` of the whole object: on success its bytes are released; on
/// failure nothing is, and `buf` is what the call left in the buffer.
fn read_at_result(r: cmk_envelope::Result<usize>, buf: Vec<u8>) -> Attempt {
    match r {
        Ok(n) => Attempt {
            err: None,
            released: buf[..n].to_vec(),
            buf,
        },
        Err(e) => Attempt {
            err: Some(e),
            released: Vec::new(),
            buf,
        },
    }
}

/// Decrypts `env` (an embedded envelope) along `path`.
async fn attempt(
    env: &[u8],
    resolver: &StaticResolver,
    profile: Profile,
    ctx: &[u8],
    path: Path,
) -> Attempt {
    macro_rules! check {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Attempt::failed(e),
            }
        };
    }
    match path {
        Path::Open => match cmk_envelope::open(resolver, profile, ctx, env).await {
            Ok(released) => Attempt {
                err: None,
                released,
                buf: Vec::new(),
            },
            Err(e) => Attempt::failed(e),
        },
        Path::OpenInto(n) => {
            let (h, used) = check!(Header::parse_prefix(env));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await).threads(threads(n));
            // A reused buffer that already holds something of the right
            // length: on failure it must come back empty.
            let mut out = vec![0xEE; LEN];
            match dec.open_into(&env[used..], &mut out) {
                Ok(()) => Attempt {
                    err: None,
                    released: out,
                    buf: Vec::new(),
                },
                Err(e) => {
                    assert!(out.is_empty(), "open_into left {} bytes", out.len());
                    Attempt::failed(e)
                }
            }
        }
        Path::Reader(size) => {
            let mut src = Cursor::new(env);
            let h = check!(Header::read_from(&mut src));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await);
            let r = check!(dec.decrypt(src));
            read_all(r, size)
        }
        Path::ReadAt(size, n) => {
            let mut src = Cursor::new(env);
            let h = check!(Header::read_from(&mut src));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await).threads(threads(n));
            let mut r = check!(dec.decrypt(src));
            let mut buf = vec![0u8; size];
            let got = r.read_at(0, &mut buf);
            read_at_result(got, buf)
        }
        Path::Async(size) => {
            let mut src = env;
            let h = check!(Header::read_from_async(&mut src).await);
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await);
            let r = check!(dec.decrypt_async(src).await);
            read_all_async(r, size).await
        }
        Path::AsyncReadAt => {
            let mut src = Cursor::new(env);
            let h = check!(Header::read_from_async(&mut src).await);
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await);
            let mut r = check!(dec.decrypt_async(src).await);
            let mut buf = vec![0u8; LEN + 100];
            let got = r.read_at(0, &mut buf).await;
            read_at_result(got, buf)
        }
        Path::Stream(n) => {
            let mut src = Cursor::new(env);
            let h = check!(Header::read_from(&mut src));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await).threads(threads(n));
            let mut released = Vec::new();
            let err = dec.decrypt_stream(src, &mut released).err();
            Attempt {
                err,
                released,
                buf: Vec::new(),
            }
        }
        Path::File(n) => {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(env).unwrap();
            file.seek(SeekFrom::Start(0)).unwrap();
            let h = check!(Header::read_from(&mut file));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await).threads(threads(n));
            let mut released = Vec::new();
            let err = dec.decrypt_file(&file, &mut released).err();
            Attempt {
                err,
                released,
                buf: Vec::new(),
            }
        }
        Path::Ranges => {
            let (h, used) = check!(Header::parse_prefix(env));
            let dec = check!(Decryptor::new(&h, resolver, profile, ctx).await);
            let body = &env[used..];
            let ranges = check!(dec.ranges(&body[..body.len().min(56)]));
            let plan = check!(RangePlan::new(0..u64::MAX, body.len() as u64));
            let ct = plan.ciphertext();
            let mut fetched = body[ct.start as usize..ct.end as usize].to_vec();
            match ranges.decrypt_range(&plan, &mut fetched) {
                Ok(released) => Attempt {
                    err: None,
                    released,
                    buf: Vec::new(),
                },
                Err(e) => Attempt::failed(e),
            }
        }
    }
}

/// What the paths must agree on: the variant, and the chunk of a chunk
/// failure.
fn kind(e: &Error) -> String {
    match e {
        Error::ChunkAuthentication { chunk } => format!("ChunkAuthentication {{ chunk: {chunk} }}"),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Asserts that `env` fails on every path with the same error, and that no
/// path released plaintext of chunk `damaged_chunk` or later (or wrong
/// plaintext of earlier chunks). Returns the error.
async fn must_fail(f: &Fixture, env: &[u8], damaged_chunk: usize, what: &str) -> Error {
    let mut first: Option<(Path, Error)> = None;
    for path in PATHS {
        let a = attempt(env, &f.resolver(), Profile::Blob, CTX, path).await;
        let err = a
            .err
            .unwrap_or_else(|| panic!("{what}: accepted by {path:?}"));
        assert!(
            a.released.len() <= damaged_chunk * CHUNK,
            "{what}: {path:?} released {} bytes",
            a.released.len()
        );
        assert_eq!(
            &a.released[..],
            &f.msg[..a.released.len()],
            "{what}: {path:?} released wrong plaintext"
        );
        // The failed call left no plaintext of the chunk it refused, or of
        // any later one, in the caller's buffer.
        match path {
            Path::Reader(_) | Path::Async(_) => {
                let next = &f.msg[a.released.len()..];
                let k = next.len().min(CHUNK).min(a.buf.len());
                if k > 0 {
                    assert!(
                        a.buf[..k] != next[..k],
                        "{what}: {path:?} left the refused chunk's plaintext in the buffer"
                    );
                }
            }
            Path::ReadAt(..) | Path::AsyncReadAt => {
                for c in damaged_chunk..LEN.div_ceil(CHUNK) {
                    let s = c * CHUNK;
                    let e = ((c + 1) * CHUNK).min(LEN);
                    if e <= a.buf.len() {
                        assert!(
                            a.buf[s..e] != f.msg[s..e],
                            "{what}: {path:?} left chunk {c}'s plaintext in the buffer"
                        );
                    }
                }
            }
            _ => {}
        }
        match &first {
            None => first = Some((path, err)),
            Some((p0, e0)) => assert_eq!(
                kind(&err),
                kind(e0),
                "{what}: {path:?} and {p0:?} disagree: {err:?} vs {e0:?}"
            ),
        }
    }
    first.expect("at least one path").1
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
    println!(
        "tamper: {n} single-bit flips rejected on each of {} decryption paths",
        PATHS.len()
    );
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
    let impostor: StaticResolver = [aes_kek("tamper", WrapAlgorithm::A256Kw)]
        .into_iter()
        .collect();
    let stranger: StaticResolver = [aes_kek("someone-else", WrapAlgorithm::A256Kw)]
        .into_iter()
        .collect();
    let cases: [(&StaticResolver, Profile, &[u8], &str); 4] = [
        (
            &f.resolver(),
            Profile::Blob,
            b"container/other.bin",
            "CommitmentMismatch",
        ),
        (&f.resolver(), Profile::Document, CTX, "CommitmentMismatch"),
        (&impostor, Profile::Blob, CTX, "UnwrapFailed"),
        (&stranger, Profile::Blob, CTX, "UnknownKek"),
    ];
    for path in PATHS {
        for (resolver, profile, ctx, want) in &cases {
            let a = attempt(&f.env, resolver, *profile, ctx, path).await;
            let e = a.err.unwrap_or_else(|| panic!("{path:?}: accepted"));
            assert_eq!(kind(&e), *want, "{path:?}: {e:?}");
            assert!(a.released.is_empty(), "{path:?}");
        }
        // and the untouched envelope opens
        let a = attempt(&f.env, &f.resolver(), Profile::Blob, CTX, path).await;
        assert!(a.err.is_none(), "{path:?}: {:?}", a.err);
        assert!(a.released == f.msg, "{path:?}");
    }
}
