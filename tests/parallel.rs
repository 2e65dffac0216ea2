//! The parallel engine: every encryption path on any number of threads
//! round-trips through every decryption path (that they write the same
//! bytes for one data key and salt is checked by the crate's unit tests,
//! which alone can fix a salt), failures exactly like the sequential
//! reader, parallel range reads equal to single-threaded ones, and memory
//! that does not grow with the object (a counting global allocator; the
//! tests of this binary take turns so that the measurement sees only its
//! own allocations).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cmk_envelope::stream::CHUNK_SIZE;
use cmk_envelope::{
    Decryptor, Encryptor, Error, Header, KeyEncryptionKey, Profile, StaticResolver, Threads,
    WrapAlgorithm,
};
use futures::executor::block_on;
use proptest::prelude::*;

// ----- counting allocator -----

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests of this binary run one at a time (for the memory measurement).
fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

// ----- helpers -----

const CTX: &[u8] = b"container/parallel";

fn kek() -> Arc<dyn KeyEncryptionKey> {
    static K: OnceLock<Arc<dyn KeyEncryptionKey>> = OnceLock::new();
    K.get_or_init(|| common::aes_kek("par", WrapAlgorithm::A256Kw))
        .clone()
}

fn encryptor() -> Encryptor {
    block_on(Encryptor::new(&[kek()], Profile::Blob, CTX)).unwrap()
}

fn decryptor(header: &Header) -> Decryptor {
    let r: StaticResolver = [kek()].into_iter().collect();
    block_on(Decryptor::new(header, &r, Profile::Blob, CTX)).unwrap()
}

fn threads(n: usize) -> Threads {
    Threads::Fixed(NonZeroUsize::new(n).unwrap())
}

/// A detached body of `msg` and its header.
fn sealed_detached(msg: &[u8]) -> (Header, Vec<u8>) {
    let enc = encryptor().detached();
    let header = enc.header().clone();
    (header, enc.seal(msg).unwrap())
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

/// Sequential decryption with the reader: what it released, and its error.
fn sequential_decrypt(header: &Header, body: &[u8]) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let mut r = match decryptor(header).decrypt(body) {
        Ok(r) => r,
        Err(e) => return (out, Some(format!("{e:?}"))),
    };
    let mut buf = vec![0u8; 50_000];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(format!("{:?}", Error::from(e)))),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every encryption path, embedded and detached, on `threads` threads,
    /// writes an envelope of the expected length that every decryption
    /// path, on `threads` threads, opens back to the input.
    #[test]
    fn parallel_round_trips(
        len in len_strategy(),
        seed in any::<u8>(),
        threads_n in 1usize..=8,
        step in 1usize..70_000,
    ) {
        let _g = serial();
        let t = threads(threads_n);
        let msg = common::data(len, seed);
        let enc = encryptor().threads(t);
        let header = enc.header().clone();
        let hl = header.encoded_len();
        let body_len = cmk_envelope::stream::layout::body_len(len as u64) as usize;
        let sealed = enc.seal(&msg).unwrap();
        prop_assert_eq!(sealed.len(), hl + body_len);
        prop_assert_eq!(Header::parse_prefix(&sealed).unwrap().0, header.clone());
        prop_assert!(decryptor(&header).threads(t).open(&sealed[hl..]).unwrap() == msg);

        let enc = encryptor().threads(t);
        let h = enc.header().clone();
        let mut streamed = Vec::new();
        let n = enc.encrypt_stream(Dribble { data: &msg, step }, &mut streamed).unwrap();
        prop_assert_eq!(n, len as u64);
        prop_assert_eq!(streamed.len(), hl + body_len);
        let mut out = Vec::new();
        let n = decryptor(&h)
            .threads(t)
            .decrypt_stream(Dribble { data: &streamed[hl..], step }, &mut out)
            .unwrap();
        prop_assert_eq!(n, len as u64);
        prop_assert!(out == msg);

        let enc = encryptor().threads(t).detached();
        let h = enc.header().clone();
        let body = enc.seal(&msg).unwrap();
        prop_assert_eq!(body.len(), body_len);
        prop_assert!(decryptor(&h).threads(t).open(&body).unwrap() == msg);

        // From a file, read by position from where its cursor is (`step`
        // bytes of something else come first), to its end.
        let skip = step % 5000;
        let mut file = file_with(&[&common::data(skip, 9), &msg]);
        for detached in [false, true] {
            file.seek(SeekFrom::Start(skip as u64)).unwrap();
            let enc = encryptor().threads(t);
            let h = enc.header().clone();
            let enc = if detached { enc.detached() } else { enc };
            let mut from_file = Vec::new();
            let n = enc.encrypt_file(&file, &mut from_file).unwrap();
            prop_assert_eq!(n, len as u64);
            prop_assert_eq!(file.stream_position().unwrap(), (skip + len) as u64);
            let body = if detached { &from_file[..] } else { &from_file[hl..] };
            prop_assert_eq!(body.len(), body_len);
            prop_assert!(decryptor(&h).open(body).unwrap() == msg, "encrypt_file");
        }

        // An embedded envelope in a file: the header read from it, then
        // the body decrypted from where that left the cursor.
        let mut file = file_with(&[&sealed]);
        let h = Header::read_from(&mut file).unwrap();
        let mut out = Vec::new();
        let n = decryptor(&h).threads(t).decrypt_file(&file, &mut out).unwrap();
        prop_assert_eq!(n, len as u64);
        prop_assert!(out == msg);
        prop_assert_eq!(file.stream_position().unwrap(), sealed.len() as u64);
    }

    /// Tampered, truncated or extended bodies: the parallel decryptions fail
    /// with the sequential reader's error, and decrypt_stream writes exactly
    /// what the sequential reader released (the chunks before the lowest
    /// failing one), nothing from the failing chunk on.
    #[test]
    fn parallel_failures_match_sequential(
        len in len_strategy(),
        threads in 2usize..=8,
        kind in 0u8..4,
        pos in any::<prop::sample::Index>(),
        pos2 in any::<prop::sample::Index>(),
        extra in 1usize..40_000,
    ) {
        let _g = serial();
        let msg = common::data(len, 3);
        let (header, mut body) = sealed_detached(&msg);
        let threads = self::threads(threads);
        match kind {
            0 => {
                let i = pos.index(body.len());
                body[i] ^= 0x20;
            }
            1 => {
                // Two chunks modified: the lowest must be reported.
                let i = pos.index(body.len());
                let j = pos2.index(body.len());
                body[i] ^= 1;
                body[j] ^= 2;
            }
            2 => body.truncate(pos.index(body.len())),
            _ => body.extend(std::iter::repeat_n(7u8, extra)),
        }
        let (seq_out, seq_err) = sequential_decrypt(&header, &body);
        let seq_err = seq_err.expect("the sequential reader must fail");

        let mut par_out = Vec::new();
        let par_err = decryptor(&header)
            .threads(threads)
            .decrypt_stream(&body[..], &mut par_out)
            .expect_err("decrypt_stream must fail");
        prop_assert_eq!(format!("{par_err:?}"), seq_err.clone());
        prop_assert!(par_out == seq_out, "written {} vs released {}", par_out.len(), seq_out.len());
        if let Error::ChunkAuthentication { chunk } = par_err {
            prop_assert_eq!(par_out.len() as u64, chunk * CHUNK_SIZE as u64);
        }

        // From a file: the same error; what is written is what the
        // sequential reader released, except that a body whose length no
        // message has fails before anything is written.
        let mut file_out = Vec::new();
        let file_err = decryptor(&header)
            .threads(threads)
            .decrypt_file(&file_with(&[&body]), &mut file_out)
            .expect_err("decrypt_file must fail");
        prop_assert_eq!(format!("{file_err:?}"), seq_err.clone());
        if matches!(file_err, Error::Truncated) {
            prop_assert!(seq_out.starts_with(&file_out));
        } else {
            prop_assert!(file_out == seq_out, "written {} vs released {}", file_out.len(), seq_out.len());
        }

        let mem_seq = decryptor(&header).open(&body).expect_err("open must fail");
        let mem_par = decryptor(&header).threads(threads).open(&body).expect_err("open on threads must fail");
        prop_assert_eq!(format!("{mem_par:?}"), format!("{mem_seq:?}"));
    }

    /// read_at on several threads returns what read_at on one returns, for
    /// any range.
    #[test]
    fn parallel_read_at_matches_read_at(
        len in len_strategy(),
        threads_n in 1usize..=4,
        reads in proptest::collection::vec((0u64..320 * 1024, 0usize..400_000), 1..6),
    ) {
        let _g = serial();
        let msg = common::data(len, 9);
        let (header, body) = sealed_detached(&msg);
        let mut a = decryptor(&header)
            .threads(threads(threads_n))
            .decrypt(Cursor::new(&body[..]))
            .unwrap();
        let mut b = decryptor(&header).decrypt(Cursor::new(&body[..])).unwrap();
        for (off, n) in reads {
            let mut x = vec![0u8; n];
            let mut y = vec![0u8; n];
            let nx = a.read_at(off, &mut x).unwrap();
            let ny = b.read_at(off, &mut y).unwrap();
            prop_assert_eq!(nx, ny);
            prop_assert!(x[..nx] == y[..ny]);
            let lo = (off as usize).min(len);
            prop_assert!(x[..nx] == msg[lo..lo + nx]);
            prop_assert_eq!(a.authenticated_len(), b.authenticated_len());
        }
        // Sequential reading still works after the random access.
        let mut all = Vec::new();
        a.read_to_end(&mut all).unwrap();
        prop_assert!(all == msg);
    }
}

#[test]
fn parallel_read_at_reports_lowest_failing_chunk_and_sticks() {
    let _g = serial();
    let msg = common::data(40 * CHUNK_SIZE + 5, 1);
    let (header, mut body) = sealed_detached(&msg);
    let at = |chunk: usize| 56 + chunk * (CHUNK_SIZE + 16) + 100;
    body[at(33)] ^= 1;
    body[at(21)] ^= 1;
    let mut r = decryptor(&header)
        .threads(threads(4))
        .decrypt(Cursor::new(&body[..]))
        .unwrap();
    let mut out = vec![0u8; 38 * CHUNK_SIZE];
    // A range before the damage reads fine.
    assert_eq!(
        r.read_at(0, &mut out[..20 * CHUNK_SIZE]).unwrap(),
        20 * CHUNK_SIZE
    );
    let e = r.read_at(0, &mut out).unwrap_err();
    assert!(
        matches!(e, Error::ChunkAuthentication { chunk: 21 }),
        "{e:?}"
    );
    let e = r.read_at(0, &mut out[..CHUNK_SIZE]).unwrap_err();
    assert!(matches!(e, Error::ChunkAuthentication { chunk: 21 }));
}

/// A temporary file holding `parts`, one after another, cursor at 0.
fn file_with(parts: &[&[u8]]) -> std::fs::File {
    let mut f = tempfile::tempfile().unwrap();
    for p in parts {
        f.write_all(p).unwrap();
    }
    f.seek(SeekFrom::Start(0)).unwrap();
    f
}

/// `encrypt_file`/`decrypt_file` on something that is not a regular file
/// (a pipe) read it as a stream. (That the output is byte for byte that
/// of `seal` is a unit test of the crate.)
#[cfg(unix)]
#[test]
fn file_apis_read_pipes_as_streams() {
    let _g = serial();
    let msg = common::data(5 * CHUNK_SIZE + 77, 4);
    let pipe_file = |data: Vec<u8>| {
        let (r, mut w) = std::io::pipe().unwrap();
        let t = std::thread::spawn(move || w.write_all(&data).unwrap());
        (std::fs::File::from(std::os::fd::OwnedFd::from(r)), t)
    };
    let (f, t) = pipe_file(msg.clone());
    let mut env = Vec::new();
    let enc = encryptor().threads(threads(2));
    let header = enc.header().clone();
    enc.encrypt_file(&f, &mut env).unwrap();
    t.join().unwrap();
    assert_eq!(
        env.len() as u64,
        header.encoded_len() as u64 + cmk_envelope::stream::layout::body_len(msg.len() as u64)
    );
    let (mut f, t) = pipe_file(env);
    let h = Header::read_from(&mut f).unwrap();
    assert_eq!(h, header);
    let mut plain = Vec::new();
    decryptor(&h)
        .threads(threads(2))
        .decrypt_file(&f, &mut plain)
        .unwrap();
    t.join().unwrap();
    assert!(plain == msg);
}

#[test]
fn all_cores_round_trips() {
    let _g = serial();
    let msg = common::data(100_000, 4);
    let enc = encryptor().threads(Threads::AllCores);
    let header = enc.header().clone();
    let env = enc.seal(&msg).unwrap();
    let used = header.encoded_len();
    assert_eq!(
        decryptor(&header)
            .threads(Threads::AllCores)
            .open(&env[used..])
            .unwrap(),
        msg
    );
    assert!(Threads::AllCores.count() >= 1);
    assert_eq!(Threads::default(), Threads::ONE);
}

#[test]
fn reused_output_buffers_are_overwritten_and_wiped_on_failure() {
    let _g = serial();
    let mut env = vec![0xEEu8; 400_000]; // longer than the envelope: truncated
    let mut plain = vec![0xEEu8; 10]; // shorter than the plaintext: grown
    for (len, threads_n) in [(100_000usize, 2usize), (16_384, 1), (0, 2), (70_001, 1)] {
        let t = threads(threads_n);
        let msg = common::data(len, 7);
        let enc = encryptor().threads(t);
        let header = enc.header().clone();
        enc.seal_into(&msg, &mut env).unwrap();
        let used = header.encoded_len();
        assert_eq!(Header::parse_prefix(&env).unwrap().0, header);
        decryptor(&header)
            .threads(t)
            .open_into(&env[used..], &mut plain)
            .unwrap();
        assert!(plain == msg, "len {len}");
        // The same body through the sequential reader.
        assert_eq!(sequential_decrypt(&header, &env[used..]).0, msg);
        if len > 2 * CHUNK_SIZE {
            let mut bad = env.clone();
            bad[used + 56 + CHUNK_SIZE + 16 + 3] ^= 1; // chunk 1
            let e = decryptor(&header)
                .threads(t)
                .open_into(&bad[used..], &mut plain)
                .unwrap_err();
            assert!(matches!(e, Error::ChunkAuthentication { chunk: 1 }), "{e}");
            assert!(plain.is_empty(), "no plaintext left after a failure");
        }
    }
}

// ----- memory bound -----

/// Plaintext generated on the fly: a repeating 64 KiB pattern.
struct Source {
    left: u64,
    pattern: Arc<Vec<u8>>,
    pos: usize,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        let mut done = 0;
        while done < n {
            let k = (n - done).min(self.pattern.len() - self.pos);
            buf[done..done + k].copy_from_slice(&self.pattern[self.pos..self.pos + k]);
            self.pos = (self.pos + k) % self.pattern.len();
            done += k;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A sink that checks the plaintext against the pattern and keeps nothing.
struct Check {
    pattern: Arc<Vec<u8>>,
    pos: usize,
    seen: u64,
}

impl Write for Check {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let k = (buf.len() - done).min(self.pattern.len() - self.pos);
            assert!(buf[done..done + k] == self.pattern[self.pos..self.pos + k]);
            self.pos = (self.pos + k) % self.pattern.len();
            done += k;
        }
        self.seen += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams `size` bytes through encrypt_stream, an OS pipe, and
/// decrypt_stream (2 threads each, concurrently); returns the peak of
/// live heap bytes above the starting point.
fn streamed_peak(size: u64) -> usize {
    let pattern: Arc<Vec<u8>> = Arc::new((0..65_521u32).map(|i| (i * 7 + 3) as u8).collect());
    let enc = encryptor().detached().threads(threads(2));
    let header = enc.header().clone();
    let dec = decryptor(&header).threads(threads(2));
    let (pipe_r, pipe_w) = std::io::pipe().unwrap();
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let src = Source {
        left: size,
        pattern: pattern.clone(),
        pos: 0,
    };
    let mut check = Check {
        pattern,
        pos: 0,
        seen: 0,
    };
    std::thread::scope(|s| {
        let t = s.spawn(move || enc.encrypt_stream(src, pipe_w).unwrap());
        let n = dec.decrypt_stream(pipe_r, &mut check).unwrap();
        assert_eq!(n, size);
        assert_eq!(t.join().unwrap(), size);
    });
    assert_eq!(check.seen, size);
    PEAK.load(Ordering::SeqCst) - base
}

#[test]
fn memory_does_not_grow_with_object_size() {
    let _g = serial();
    const MIB: u64 = 1024 * 1024;
    let small = streamed_peak(64 * MIB);
    let large = streamed_peak(1024 * MIB);
    eprintln!("peak heap above baseline: 64 MiB object {small} B, 1 GiB object {large} B");
    // Two pipelines of 6 groups of 16 chunks each (≈ 3.2 MiB) plus small
    // bookkeeping; independent of the size.
    assert!(large < 8 * MIB as usize, "peak {large} B");
    assert!(
        large <= small + 256 * 1024,
        "peak grew with the object: {small} B -> {large} B"
    );
}
