//! The tokio adapters: round trips against the sync path (that the async
//! writer's bytes are the sync writer's for one data key and salt is a
//! unit test of the crate, which alone can fix a salt), random access over
//! a tokio `File`, the authenticated end, and cancellation (dropped writers
//! and futures never leave a valid envelope).
#![cfg(feature = "tokio")]

mod common;

use std::io::Cursor;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use cmk_envelope::stream::CHUNK_SIZE;
use cmk_envelope::{
    open, Decryptor, Encryptor, Error, Header, KeyEncryptionKey, Profile, StaticResolver,
    WrapAlgorithm,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CTX: &[u8] = b"container/async";

fn kek() -> Arc<dyn KeyEncryptionKey> {
    static K: OnceLock<Arc<dyn KeyEncryptionKey>> = OnceLock::new();
    K.get_or_init(|| common::aes_kek("async", WrapAlgorithm::A256Kw))
        .clone()
}

fn resolver() -> StaticResolver {
    [kek()].into_iter().collect()
}

async fn encryptor() -> Encryptor {
    Encryptor::new(&[kek()], Profile::Blob, CTX).await.unwrap()
}

async fn decryptor(h: &Header) -> Decryptor {
    Decryptor::new(h, &resolver(), Profile::Blob, CTX)
        .await
        .unwrap()
}

/// A detached body of `msg` and its header.
async fn sealed_detached(msg: &[u8]) -> (Header, Vec<u8>) {
    let enc = encryptor().await.detached();
    let h = enc.header().clone();
    (h, enc.seal(msg).unwrap())
}

const SIZES: [usize; 8] = [0, 1, 16383, 16384, 16385, 100_000, 16 * 16384, 300_000];

#[tokio::test]
async fn async_writer_round_trips() {
    for len in SIZES {
        for ws in [7usize, 1000, 16384, 65_536] {
            let msg = common::data(len, len as u8);
            let enc = encryptor().await;
            let header = enc.header().clone();
            let mut w = enc.wrap_async_output(Vec::new()).unwrap();
            for piece in msg.chunks(ws) {
                w.write_all(piece).await.unwrap();
            }
            w.flush().await.unwrap();
            assert_eq!(w.plaintext_len(), len as u64);
            let env = w.finish().await.unwrap();
            assert_eq!(
                env.len() as u64,
                header.encoded_len() as u64 + cmk_envelope::stream::layout::body_len(len as u64),
                "len {len} ws {ws}: not the sync writer's length"
            );
            assert_eq!(Header::parse_prefix(&env).unwrap().0, header);
            assert_eq!(
                open(&resolver(), Profile::Blob, CTX, &env).await.unwrap(),
                msg
            );
        }
    }
}

#[tokio::test]
async fn async_reader_round_trips_with_any_read_size() {
    for len in SIZES {
        let msg = common::data(len, 2);
        let env = encryptor().await.seal(&msg).unwrap();
        for rs in [1usize, 999, 16384, 70_000] {
            if len > 20_000 && rs == 1 {
                continue; // slow in debug builds; covered by smaller sizes
            }
            let mut src = Cursor::new(&env[..]);
            let h = Header::read_from_async(&mut src).await.unwrap();
            let mut r = decryptor(&h).await.decrypt_async(src).await.unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; rs];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(out == msg, "len {len} rs {rs}");
            assert_eq!(r.authenticated_len(), Some(len as u64));
        }
    }
}

#[tokio::test]
async fn async_reader_rejects_truncation_and_tampering_stickily() {
    let msg = common::data(50_000, 3);
    let (h, body) = sealed_detached(&msg).await;
    // Cut right after a full chunk: the final chunk is missing.
    let cut = &body[..56 + 3 * (CHUNK_SIZE + 16)];
    let mut r = decryptor(&h).await.decrypt_async(cut).await.unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).await.unwrap_err();
    assert!(matches!(Error::from(e), Error::Truncated));
    assert_eq!(out.len(), 3 * CHUNK_SIZE, "verified chunks only");
    let e = r.read(&mut [0u8; 10]).await.unwrap_err();
    assert!(matches!(Error::from(e), Error::Truncated), "sticky");

    let mut bad = body.clone();
    bad[56 + CHUNK_SIZE + 16 + 5] ^= 1;
    let mut r = decryptor(&h).await.decrypt_async(&bad[..]).await.unwrap();
    let mut out = Vec::new();
    let e = r.read_to_end(&mut out).await.unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::ChunkAuthentication { chunk: 1 }
    ));
    assert_eq!(out.len(), CHUNK_SIZE);

    // Trailing data after the final chunk.
    let mut long = body.clone();
    long.extend_from_slice(&[0u8; 40]);
    let mut r = decryptor(&h).await.decrypt_async(&long[..]).await.unwrap();
    let e = r.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(
        Error::from(e),
        Error::ChunkAuthentication { chunk: 3 }
    ));
}

#[tokio::test]
async fn read_at_over_a_tokio_file() {
    let dir = common::tempdir();
    for len in [0usize, 16384, 100_000, 300_000] {
        let msg = common::data(len, 5);
        let env = encryptor().await.seal(&msg).unwrap();
        let path = dir.join(format!("obj-{len}.cmke"));
        std::fs::write(&path, &env).unwrap();
        let mut file = tokio::fs::File::open(&path).await.unwrap();
        let h = Header::read_from_async(&mut file).await.unwrap();
        let mut r = decryptor(&h).await.decrypt_async(file).await.unwrap();
        // Start a sequential read, then interleave random access.
        let mut head = vec![0u8; 5000.min(len)];
        r.read_exact(&mut head).await.unwrap();
        assert!(head[..] == msg[..head.len()]);
        for (off, n) in [
            (0u64, 10usize),
            (16380, 10),
            (1, 70_000),
            (len as u64 / 2, 40_000),
            (len.saturating_sub(3) as u64, 100),
            (len as u64, 5),
            (len as u64 + 100_000, 5),
        ] {
            let mut buf = vec![0u8; n];
            let got = r.read_at(off, &mut buf).await.unwrap();
            let lo = (off as usize).min(len);
            let hi = (off as usize).saturating_add(n).min(len);
            assert_eq!(got, hi - lo, "len {len} off {off} n {n}");
            assert!(buf[..got] == msg[lo..hi]);
        }
        assert_eq!(r.plaintext_len().await.unwrap(), len as u64);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert!(
            rest[..] == msg[head.len()..],
            "sequential position kept: len {len}, got {} bytes",
            rest.len()
        );
    }
}

/// Random access at offsets whose chunk offset does not fit in a `u64`
/// (the async reader's `read_at` is its only way to a position): nothing
/// past the end, no overflow, and the reader goes on working.
#[tokio::test]
async fn read_at_the_largest_offsets_returns_nothing() {
    let msg = common::data(40_000, 9);
    let env = encryptor().await.seal(&msg).unwrap();
    let mut src = std::io::Cursor::new(env);
    let h = Header::read_from_async(&mut src).await.unwrap();
    let mut r = decryptor(&h).await.decrypt_async(src).await.unwrap();
    let mut buf = [0u8; 100];
    for off in [u64::MAX, u64::MAX - 1, u64::MAX / 2, u64::MAX / 16384] {
        assert_eq!(r.read_at(off, &mut buf).await.unwrap(), 0, "offset {off}");
    }
    assert_eq!(r.read_at(39_950, &mut buf).await.unwrap(), 50);
    assert!(buf[..50] == msg[39_950..]);
    let mut all = Vec::new();
    r.read_to_end(&mut all).await.unwrap();
    assert!(all == msg);
}

/// An inner writer that takes at most 100 bytes per call and is pending on
/// every other call, recording what it was given.
#[derive(Clone, Default)]
struct Slow {
    out: Arc<Mutex<Vec<u8>>>,
    flip: bool,
}

impl AsyncWrite for Slow {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.flip = !self.flip;
        if self.flip {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = buf.len().min(100);
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn fails_to_open(env: &[u8]) -> Error {
    open(&resolver(), Profile::Blob, CTX, env)
        .await
        .expect_err("an unfinished envelope must not open")
}

#[tokio::test]
async fn dropped_writer_and_cancelled_futures_leave_nothing_valid() {
    let msg = common::data(3 * CHUNK_SIZE, 6);

    // Dropped without finish (after whole chunks): truncated.
    let sink = Slow::default();
    let mut w = encryptor().await.wrap_async_output(sink.clone()).unwrap();
    w.write_all(&msg).await.unwrap();
    w.flush().await.unwrap();
    drop(w);
    let env = sink.out.lock().unwrap().clone();
    assert!(matches!(fails_to_open(&env).await, Error::Truncated));

    // A write future cancelled midway, then the writer dropped.
    let sink = Slow::default();
    let mut w = encryptor().await.wrap_async_output(sink.clone()).unwrap();
    {
        let mut fut = std::pin::pin!(w.write_all(&msg));
        for _ in 0..300 {
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
    }
    drop(w);
    let env = sink.out.lock().unwrap().clone();
    assert!(env.len() > 56, "something was written");
    // It ends inside a chunk: that piece is taken as the final chunk and
    // its tag fails (or it is shorter than a tag: truncated).
    assert!(matches!(
        fails_to_open(&env).await,
        Error::Truncated | Error::ChunkAuthentication { .. }
    ));

    // The finish future cancelled before it completed: the final chunk is
    // incomplete, so the output fails (truncated, or its tag fails).
    let sink = Slow::default();
    let mut w = encryptor().await.wrap_async_output(sink.clone()).unwrap();
    w.write_all(&msg[..2 * CHUNK_SIZE + 5000]).await.unwrap();
    {
        let mut fut = std::pin::pin!(w.finish());
        for _ in 0..30 {
            assert!(futures::poll!(fut.as_mut()).is_pending());
        }
    }
    let env = sink.out.lock().unwrap().clone();
    assert!(matches!(
        fails_to_open(&env).await,
        Error::Truncated | Error::ChunkAuthentication { .. }
    ));

    // shutdown() does not end the message, and finish() afterwards refuses.
    let sink = Slow::default();
    let mut w = encryptor().await.wrap_async_output(sink.clone()).unwrap();
    w.write_all(&msg[..1000]).await.unwrap();
    w.shutdown().await.unwrap();
    let env = sink.out.lock().unwrap().clone();
    let e = fails_to_open(&env).await;
    assert!(matches!(e, Error::Truncated), "{e:?} {}", env.len());
    assert!(matches!(w.finish().await, Err(Error::ApiMisuse(_))));

    // And a finished writer through the same slow sink opens.
    let sink = Slow::default();
    let mut w = encryptor().await.wrap_async_output(sink.clone()).unwrap();
    w.write_all(&msg).await.unwrap();
    w.finish().await.unwrap();
    let env = sink.out.lock().unwrap().clone();
    assert_eq!(
        open(&resolver(), Profile::Blob, CTX, &env).await.unwrap(),
        msg
    );
}

/// A source that answers every other poll with `Pending` (waking the task
/// at once) and otherwise returns a short read of a pseudo-random length:
/// drives the reader's read-ahead ring through partial slots, wrap-around
/// and read-ahead polls that find nothing ready.
struct Choppy<'a> {
    data: &'a [u8],
    pos: usize,
    state: u32,
    pending_next: bool,
}

impl<'a> Choppy<'a> {
    fn new(data: &'a [u8], seed: u32) -> Self {
        Choppy {
            data,
            pos: 0,
            state: seed | 1,
            pending_next: true,
        }
    }
}

impl tokio::io::AsyncRead for Choppy<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending_next {
            self.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_next = true;
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        let want = 1 + (x as usize % 40_000);
        let n = want.min(buf.remaining()).min(self.data.len() - self.pos);
        let from = self.pos;
        buf.put_slice(&self.data[from..from + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn async_reader_survives_short_reads_and_pending_sources() {
    for (len, seed) in [(0usize, 1u32), (16384, 2), (50_000, 3), (1_300_000, 4)] {
        let msg = common::data(len, 9);
        let (h, body) = sealed_detached(&msg).await;
        for rs in [1000usize, 16384, 70_000] {
            let mut r = decryptor(&h)
                .await
                .decrypt_async(Choppy::new(&body, seed ^ rs as u32))
                .await
                .unwrap();
            let mut out = Vec::new();
            let mut buf = vec![0u8; rs];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(out == msg, "len {len} read size {rs}");
            assert_eq!(r.authenticated_len(), Some(len as u64));
        }
        if len > 100_000 {
            // A flipped bit deep in the body (after the ring wrapped):
            // everything before its chunk, then the chunk's error.
            let bad_chunk = 70u64;
            let mut bad = body.clone();
            bad[56 + bad_chunk as usize * (CHUNK_SIZE + 16) + 7] ^= 0x20;
            let mut r = decryptor(&h)
                .await
                .decrypt_async(Choppy::new(&bad, seed))
                .await
                .unwrap();
            let mut out = Vec::new();
            let e = r.read_to_end(&mut out).await.unwrap_err();
            assert!(matches!(
                Error::from(e),
                Error::ChunkAuthentication { chunk } if chunk == bad_chunk
            ));
            assert_eq!(out.len(), bad_chunk as usize * CHUNK_SIZE);
            assert!(out[..] == msg[..out.len()]);
        }
    }
}
