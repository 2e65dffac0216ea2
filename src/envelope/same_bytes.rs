//! Every encryption path writes the same bytes for the same data key and
//! salt: `seal` on any number of threads, `seal_into` over a reused buffer,
//! `encrypt_stream`, `encrypt_file` (a regular file read by position, or a
//! pipe read as a stream), the `Write` and tokio `AsyncWrite` adapters;
//! and the detached form is the embedded one without its header. Only a
//! test build can fix a salt ([`Encryptor::duplicate_with_salt`]), so
//! these are unit tests.

use std::io::{Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use crate::stream::{Threads, CHUNK_SIZE};
use crate::{Encryptor, KeyEncryptionKey, LocalKek, Profile, WrapAlgorithm};
use pollster::block_on;

fn kek() -> Arc<dyn KeyEncryptionKey> {
    static K: OnceLock<Arc<dyn KeyEncryptionKey>> = OnceLock::new();
    K.get_or_init(|| {
        Arc::new(LocalKek::generate(WrapAlgorithm::A256Kw, Some("same".into()), None).unwrap())
    })
    .clone()
}

fn encryptor() -> Encryptor {
    block_on(Encryptor::new(&[kek()], Profile::Blob, b"container/same")).unwrap()
}

fn threads(n: usize) -> Threads {
    Threads::Fixed(NonZeroUsize::new(n).unwrap())
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A reader that returns at most `step` bytes per call.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn len_strategy() -> impl Strategy<Value = usize> {
    let c = CHUNK_SIZE;
    prop_oneof![
        Just(0usize),
        Just(1usize),
        Just(c - 1),
        Just(c),
        Just(c + 1),
        Just(16 * c),
        Just(16 * c + 1),
        Just(16 * c - 1),
        Just(18 * c),
        0usize..300 * 1024,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_encryption_path_writes_the_same_bytes(
        len in len_strategy(),
        seed in any::<u8>(),
        threads_n in 1usize..=8,
        step in 1usize..70_000,
    ) {
        let msg = data(len, seed);
        let enc = encryptor();
        let salt = [seed; 24];
        let copy = |t: usize| enc.duplicate_with_salt(salt).threads(threads(t));
        let seq = copy(1).seal(&msg).unwrap();
        let header = enc.header().to_bytes();
        prop_assert!(seq.starts_with(&header));

        prop_assert!(copy(threads_n).seal(&msg).unwrap() == seq, "seal on threads");
        let mut reused = vec![0xEE; seq.len() + 100];
        copy(threads_n).seal_into(&msg, &mut reused).unwrap();
        prop_assert!(reused == seq, "seal_into");

        let mut streamed = Vec::new();
        let n = copy(threads_n)
            .encrypt_stream(Dribble { data: &msg, step }, &mut streamed)
            .unwrap();
        prop_assert_eq!(n, len as u64);
        prop_assert!(streamed == seq, "encrypt_stream");

        let mut w = copy(1).wrap_output(Vec::new()).unwrap();
        for piece in msg.chunks(step) {
            w.write_all(piece).unwrap();
        }
        prop_assert!(w.finish().unwrap() == seq, "wrap_output");

        let body = copy(threads_n).detached().seal(&msg).unwrap();
        prop_assert!(seq[header.len()..] == body[..], "detached body");

        // From a file, read by position from where its cursor is (`step`
        // bytes of something else come first), to its end.
        let skip = step % 5000;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data(skip, 9)).unwrap();
        file.write_all(&msg).unwrap();
        file.seek(SeekFrom::Start(skip as u64)).unwrap();
        let mut from_file = Vec::new();
        let n = copy(threads_n).encrypt_file(&file, &mut from_file).unwrap();
        prop_assert_eq!(n, len as u64);
        prop_assert!(from_file == seq, "encrypt_file");
        file.seek(SeekFrom::Start(skip as u64)).unwrap();
        let mut detached = Vec::new();
        copy(threads_n).detached().encrypt_file(&file, &mut detached).unwrap();
        prop_assert!(detached == body, "encrypt_file, detached");
    }
}

/// A pipe given to `encrypt_file` is read as a stream: same bytes.
#[cfg(unix)]
#[test]
fn encrypt_file_of_a_pipe_writes_the_same_bytes() {
    let msg = data(5 * CHUNK_SIZE + 77, 4);
    let enc = encryptor();
    let salt = [3u8; 24];
    let seq = enc.duplicate_with_salt(salt).seal(&msg).unwrap();
    let (r, mut w) = std::io::pipe().unwrap();
    let feed = msg.clone();
    let t = std::thread::spawn(move || w.write_all(&feed).unwrap());
    let f = std::fs::File::from(std::os::fd::OwnedFd::from(r));
    let mut out = Vec::new();
    enc.duplicate_with_salt(salt)
        .threads(threads(2))
        .encrypt_file(&f, &mut out)
        .unwrap();
    t.join().unwrap();
    assert!(out == seq);
}

/// The tokio adapter writes what the sync path writes, for any write
/// sizes.
#[cfg(feature = "tokio")]
#[test]
fn the_async_writer_writes_the_same_bytes() {
    use tokio::io::AsyncWriteExt;
    for len in [0usize, 1, 16383, 16384, 16385, 100_000, 16 * 16384, 300_000] {
        for ws in [7usize, 1000, 16384, 65_536] {
            let msg = data(len, len as u8);
            let enc = encryptor();
            let salt = [0x5c; 24];
            let sync = enc.duplicate_with_salt(salt).seal(&msg).unwrap();
            let mut w = enc
                .duplicate_with_salt(salt)
                .wrap_async_output(Vec::new())
                .unwrap();
            let env = block_on(async {
                for piece in msg.chunks(ws) {
                    w.write_all(piece).await.unwrap();
                }
                w.flush().await.unwrap();
                w.finish().await.unwrap()
            });
            assert!(
                env == sync,
                "len {len} ws {ws}: differs from the sync writer"
            );
        }
    }
}
