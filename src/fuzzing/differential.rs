//! `envelope_differential`: a valid envelope, edited as the input says
//! (header fields, bit flips, chunks swapped, dropped, duplicated or
//! spliced from another envelope, truncation, trailing bytes), then opened
//! by every decryption path of the crate, which must agree.
//!
//! The paths: the sync reader with small reads (through its chunk buffer)
//! and with whole-chunk reads (straight into the caller's buffer); the
//! tokio reader; `decrypt_stream` and `decrypt_file` on 1 and 4 threads;
//! the one-shot `open` and `open_into` on 4 threads; `read_at` at the
//! input's offsets on the sync reader (4 threads, so long reads open
//! chunks in parallel) and on the tokio reader; and [`RangeDecryptor`]
//! with the input's ranges.
//!
//! What they must agree on, and the documented exceptions:
//!
//! * Every byte any path releases is the true plaintext at its place: an
//!   edited envelope never decrypts to anything else.
//! * The streaming paths (both sync readers, the tokio reader, the
//!   streams, the file on 1 thread) release the same verified prefix —
//!   every chunk before the lowest failing one — and fail with the same
//!   error (variant and chunk).
//! * The paths that know the body's length up front (`open`,
//!   `open_into`, the file on several threads) release nothing on failure
//!   and, for a body whose length no envelope has, fail with
//!   [`Error::Truncated`] before opening any chunk (a streaming path finds
//!   an earlier damaged chunk first, if there is one). Otherwise their
//!   error is the streaming paths' error, and the file path releases what
//!   they release.
//! * Random access (`read_at`, ranges) returns exactly the plaintext asked
//!   for, or less only at the authenticated end; it fails only if the
//!   envelope is damaged, and then with [`Error::Truncated`] or the
//!   failure of a chunk at or after the lowest damaged one; once a reader
//!   failed, it keeps failing.
//! * A header the paths cannot use fails them all the same way, with
//!   nothing released; no error is ever `ApiMisuse` or `Internal`.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::sync::{Mutex, OnceLock};

use arbitrary::Arbitrary;
use pollster::block_on;

use super::{assert_input_error, error_kind, kek, plaintext, resolver, CONTEXT};
use crate::stream::{layout, BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE, PARALLEL_READ_MIN};
use crate::{Decryptor, Error, Header, Profile, RangePlan, Threads};

/// Edits applied per input, at most.
const MAX_EDITS: usize = 8;
/// Random-access reads and ranges per input, at most.
const MAX_READS: usize = 4;

/// The plaintext length of the envelope to edit.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Size {
    /// No plaintext: the body is one empty final chunk.
    Empty,
    /// One byte.
    One,
    /// One byte short of a full chunk.
    ChunkLessOne,
    /// One full chunk and an empty final one.
    Chunk,
    /// One full chunk and a final chunk of one byte.
    ChunkPlusOne,
    /// Four chunks, the last one short.
    FourChunks,
    /// Seventeen full chunks and a short one: more than one parallel group
    /// (16 chunks), so the parallel paths split the work.
    SeventeenChunks,
}

impl Size {
    const ALL: [Size; 7] = [
        Size::Empty,
        Size::One,
        Size::ChunkLessOne,
        Size::Chunk,
        Size::ChunkPlusOne,
        Size::FourChunks,
        Size::SeventeenChunks,
    ];

    fn len(self) -> usize {
        match self {
            Size::Empty => 0,
            Size::One => 1,
            Size::ChunkLessOne => CHUNK_SIZE - 1,
            Size::Chunk => CHUNK_SIZE,
            Size::ChunkPlusOne => CHUNK_SIZE + 1,
            Size::FourChunks => 3 * CHUNK_SIZE + 100,
            Size::SeventeenChunks => 17 * CHUNK_SIZE + 5,
        }
    }
}

/// A header field of the fixtures (one A256KW entry, key id `fuzz`, a
/// 40-byte wrapped key: 61 bytes, always laid out the same way).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum HeaderField {
    /// `version` (byte 4).
    Version,
    /// `suite` (byte 5).
    Suite,
    /// `profile` (byte 6).
    Profile,
    /// `header_len` (bytes 7..11, big-endian).
    HeaderLen,
    /// `key_count` (byte 11).
    KeyCount,
    /// The entry's `alg` (byte 12).
    Alg,
    /// The entry's `kek_id_len` (bytes 13..15).
    KekIdLen,
    /// A byte of the key id (bytes 15..19): which one, from the value's
    /// high byte.
    KekIdByte,
    /// The entry's `wrapped_len` (bytes 19..21).
    WrappedLen,
}

/// One edit of the envelope. Chunk numbers count from the first chunk
/// after the header and body prefix, modulo one more than the chunks
/// there are (so that one in a few edits falls just past the end and does
/// nothing).
#[derive(Debug, Clone, Arbitrary)]
pub enum Edit {
    /// XORs `mask` (0 counts as 1) into the byte at `at`, modulo the
    /// length: always a change.
    Xor {
        /// Where.
        at: u32,
        /// What to flip.
        mask: u8,
    },
    /// Writes `value` into a header field.
    SetHeader {
        /// Which field.
        field: HeaderField,
        /// Its new value (truncated to the field's width).
        value: u16,
    },
    /// Swaps two chunks.
    SwapChunks(u8, u8),
    /// Removes a chunk.
    DropChunk(u8),
    /// Repeats a chunk right after itself.
    DuplicateChunk(u8),
    /// Replaces a chunk with the same chunk of another envelope of the same
    /// plaintext (another data key).
    SpliceChunk(u8),
    /// Replaces the body prefix (salt and key commitment) with the other
    /// envelope's.
    SplicePrefix,
    /// Replaces the header with the other envelope's (which wraps another
    /// data key).
    SpliceHeader,
    /// Cuts this many bytes (modulo the length plus one) off the end.
    Truncate(u32),
    /// Cuts the envelope right after a chunk.
    CutAfterChunk(u8),
    /// Appends `n` bytes of value `byte`.
    Append {
        /// How many.
        n: u8,
        /// Which.
        byte: u8,
    },
}

/// One input of `envelope_differential`.
#[derive(Debug, Arbitrary)]
pub struct EnvelopeCase {
    /// Which envelope to start from.
    pub size: Size,
    /// The edits, applied in order (the first [`MAX_EDITS`]).
    pub edits: Vec<Edit>,
    /// Small sequential reads: 1 to 4,096 bytes (at least a thousandth of
    /// the plaintext).
    pub small_read: u16,
    /// Large sequential reads: 16 KiB plus 0 to 64 KiB.
    pub large_read: u16,
    /// Reads of the tokio reader: 1 to 65,536 bytes (at least a thousandth
    /// of the plaintext).
    pub async_read: u16,
    /// `read_at` calls: (offset, length), the offset modulo the plaintext
    /// length plus two chunks (`u32::MAX` meaning `u64::MAX`), the length
    /// modulo the plaintext length plus 256 KiB.
    pub read_at: Vec<(u32, u32)>,
    /// Ranges for [`RangeDecryptor`]: (start, length), taken as for
    /// `read_at`.
    pub ranges: Vec<(u32, u32)>,
}

/// An envelope to edit: its plaintext, the envelope, and another envelope
/// of the same plaintext under another data key.
struct Fixture {
    msg: Vec<u8>,
    env: Vec<u8>,
    other: Vec<u8>,
    header_len: usize,
}

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        Size::ALL
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let msg = plaintext(size.len(), i as u8);
                let seal = || block_on(crate::seal(&[kek()], Profile::Blob, CONTEXT, &msg));
                let env = seal().expect("seal");
                let other = seal().expect("seal");
                let header_len = Header::parse_prefix(&env).expect("header").1;
                assert_eq!(header_len, 61, "the fixture header's layout");
                Fixture {
                    msg,
                    env,
                    other,
                    header_len,
                }
            })
            .collect()
    })
}

/// The envelope as head (header and body prefix) and chunk windows.
fn split(env: &[u8], head_len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let at = head_len.min(env.len());
    let chunks = env[at..]
        .chunks(CHUNK_CT_SIZE)
        .map(<[u8]>::to_vec)
        .collect();
    (env[..at].to_vec(), chunks)
}

fn join(head: Vec<u8>, chunks: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = head;
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out
}

/// `f.env` with `edits` applied.
fn apply(f: &Fixture, edits: &[Edit]) -> Vec<u8> {
    let head_len = f.header_len + BODY_PREFIX_LEN;
    let mut env = f.env.clone();
    for edit in edits {
        let (head, mut chunks) = split(&env, head_len);
        let pick = |i: u8, n: usize| usize::from(i) % (n + 1);
        env = match *edit {
            Edit::Xor { at, mask } => {
                if !env.is_empty() {
                    let at = at as usize % env.len();
                    env[at] ^= mask.max(1);
                }
                env
            }
            Edit::SetHeader { field, value } => {
                set_header(&mut env, field, value);
                env
            }
            Edit::SwapChunks(a, b) => {
                let (a, b) = (pick(a, chunks.len()), pick(b, chunks.len()));
                if a < chunks.len() && b < chunks.len() {
                    chunks.swap(a, b);
                }
                join(head, chunks)
            }
            Edit::DropChunk(i) => {
                let i = pick(i, chunks.len());
                if i < chunks.len() {
                    chunks.remove(i);
                }
                join(head, chunks)
            }
            Edit::DuplicateChunk(i) => {
                let i = pick(i, chunks.len());
                if i < chunks.len() {
                    chunks.insert(i, chunks[i].clone());
                }
                join(head, chunks)
            }
            Edit::SpliceChunk(i) => {
                let (_, theirs) = split(&f.other, head_len);
                let i = pick(i, chunks.len());
                if let (Some(c), Some(t)) = (chunks.get_mut(i), theirs.get(i)) {
                    c.clone_from(t);
                }
                join(head, chunks)
            }
            Edit::SplicePrefix => {
                let n = env.len().min(head_len);
                if n > f.header_len {
                    env[f.header_len..n].copy_from_slice(&f.other[f.header_len..n]);
                }
                env
            }
            Edit::SpliceHeader => {
                let n = env.len().min(f.header_len);
                env[..n].copy_from_slice(&f.other[..n]);
                env
            }
            Edit::Truncate(n) => {
                let n = n as usize % (env.len() + 1);
                env.truncate(env.len() - n);
                env
            }
            Edit::CutAfterChunk(i) => {
                let i = pick(i, chunks.len());
                chunks.truncate(i + 1);
                join(head, chunks)
            }
            Edit::Append { n, byte } => {
                env.extend(std::iter::repeat_n(byte, usize::from(n)));
                env
            }
        };
    }
    env
}

fn set_header(env: &mut [u8], field: HeaderField, value: u16) {
    let [hi, lo] = value.to_be_bytes();
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = env.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    match field {
        HeaderField::Version => put(4, &[lo]),
        HeaderField::Suite => put(5, &[lo]),
        HeaderField::Profile => put(6, &[lo]),
        HeaderField::HeaderLen => put(7, &u32::from(value).to_be_bytes()),
        HeaderField::KeyCount => put(11, &[lo]),
        HeaderField::Alg => put(12, &[lo]),
        HeaderField::KekIdLen => put(13, &[hi, lo]),
        HeaderField::KekIdByte => put(15 + usize::from(hi % 4), &[lo]),
        HeaderField::WrappedLen => put(19, &[hi, lo]),
    }
}

/// What one path did: the plaintext it handed out as good, and its error.
#[derive(Debug)]
struct Outcome {
    released: Vec<u8>,
    err: Option<Error>,
}

impl Outcome {
    fn failed(e: Error) -> Outcome {
        Outcome {
            released: Vec::new(),
            err: Some(e),
        }
    }

    fn of(r: crate::Result<Vec<u8>>) -> Outcome {
        match r {
            Ok(released) => Outcome {
                released,
                err: None,
            },
            Err(e) => Outcome::failed(e),
        }
    }

    fn kind(&self) -> Option<String> {
        self.err.as_ref().map(error_kind)
    }
}

/// Returns the outcome of the enclosing path when `$e` fails.
macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Outcome::failed(e.into()),
        }
    };
}

fn threads(n: usize) -> Threads {
    Threads::Fixed(NonZeroUsize::new(n).expect("threads"))
}

async fn decryptor(header: &Header, n: usize) -> crate::Result<Decryptor> {
    Ok(Decryptor::new(header, &resolver(), Profile::Blob, CONTEXT)
        .await?
        .threads(threads(n)))
}

/// Panics unless the buffer a failed read left holds none of the plaintext
/// that follows what was released (the refused chunk). Only checked over
/// 16 bytes or more, where a chance match is impossible.
fn assert_nothing_refused_left(buf: &[u8], truth: &[u8], released: usize, what: &str) {
    let next = &truth[released.min(truth.len())..];
    let k = next.len().min(CHUNK_SIZE).min(buf.len());
    assert!(
        k < 16 || buf[..k] != next[..k],
        "{what}: the refused chunk's plaintext is in the caller's buffer"
    );
}

/// Reads `r` to its end in reads of `size` bytes.
fn read_all(mut r: impl Read, size: usize, truth: &[u8], what: &str) -> Outcome {
    let mut released = Vec::new();
    let mut buf = vec![0u8; size];
    loop {
        match r.read(&mut buf) {
            Ok(0) => {
                return Outcome {
                    released,
                    err: None,
                }
            }
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert_nothing_refused_left(&buf, truth, released.len(), what);
                return Outcome {
                    released,
                    err: Some(e.into()),
                };
            }
        }
    }
}

fn reader(env: &[u8], size: usize, truth: &[u8], what: &str) -> Outcome {
    let mut src = Cursor::new(env);
    let h = attempt!(Header::read_from(&mut src));
    let dec = attempt!(block_on(decryptor(&h, 1)));
    read_all(attempt!(dec.decrypt(src)), size, truth, what)
}

fn async_reader(env: &[u8], size: usize, truth: &[u8]) -> Outcome {
    use tokio::io::AsyncReadExt;
    block_on(async {
        let mut src = env;
        let h = attempt!(Header::read_from_async(&mut src).await);
        let dec = attempt!(decryptor(&h, 1).await);
        let mut r = attempt!(dec.decrypt_async(src).await);
        let mut released = Vec::new();
        let mut buf = vec![0u8; size];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => {
                    return Outcome {
                        released,
                        err: None,
                    }
                }
                Ok(n) => released.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_nothing_refused_left(&buf, truth, released.len(), "async reader");
                    return Outcome {
                        released,
                        err: Some(e.into()),
                    };
                }
            }
        }
    })
}

fn stream(env: &[u8], n: usize) -> Outcome {
    let mut src = Cursor::new(env);
    let h = attempt!(Header::read_from(&mut src));
    let dec = attempt!(block_on(decryptor(&h, n)));
    let mut released = Vec::new();
    let err = dec.decrypt_stream(src, &mut released).err();
    Outcome { released, err }
}

/// One regular file per process, rewritten for each input (on tmpfs when
/// there is one): `decrypt_file` reads a real file by position.
fn file(env: &[u8], n: usize) -> Outcome {
    static FILE: OnceLock<Mutex<File>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let f = tempfile::tempfile_in("/dev/shm")
            .or_else(|_| tempfile::tempfile())
            .expect("a temporary file");
        Mutex::new(f)
    });
    let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
    file.set_len(0).expect("truncate");
    file.seek(SeekFrom::Start(0)).expect("seek");
    file.write_all(env).expect("write");
    file.seek(SeekFrom::Start(0)).expect("seek");
    let h = attempt!(Header::read_from(&mut *file));
    let dec = attempt!(block_on(decryptor(&h, n)));
    let mut released = Vec::new();
    let err = dec.decrypt_file(&file, &mut released).err();
    Outcome { released, err }
}

fn open_into(env: &[u8], truth: &[u8]) -> Outcome {
    let (h, used) = attempt!(Header::parse_prefix(env));
    let dec = attempt!(block_on(decryptor(&h, 4)));
    // A reused buffer that already holds something of the right length.
    let mut out = vec![0xEE; truth.len()];
    match dec.open_into(&env[used..], &mut out) {
        Ok(()) => Outcome {
            released: out,
            err: None,
        },
        Err(e) => {
            assert!(out.is_empty(), "open_into left {} bytes", out.len());
            Outcome::failed(e)
        }
    }
}

/// Offset and length of a random-access read, from the input's numbers.
fn place(off: u32, len: u32, truth: &[u8]) -> (u64, usize) {
    let off = if off == u32::MAX {
        u64::MAX
    } else {
        u64::from(off) % (truth.len() + 2 * CHUNK_SIZE) as u64
    };
    (off, len as usize % (truth.len() + PARALLEL_READ_MIN + 1))
}

/// What the streaming paths said, for judging random access.
struct Verdict<'a> {
    truth: &'a [u8],
    /// The streaming paths failed.
    damaged: bool,
    /// The lowest failing chunk, when a chunk failed.
    lowest_chunk: Option<u64>,
    /// The body has a length no envelope has.
    bad_length: bool,
}

impl Verdict<'_> {
    /// Judges a random-access read of `len` bytes at `off` that returned
    /// `got` into `buf`; returns the failure's kind, if any.
    fn read(
        &self,
        off: u64,
        len: usize,
        got: crate::Result<usize>,
        buf: &[u8],
        what: &str,
    ) -> Option<String> {
        match got {
            Ok(n) => {
                // An empty read needs no chunk, so it succeeds whatever the
                // body; any other read of a body of bad length fails.
                assert!(
                    !self.bad_length || len == 0,
                    "{what}: read {n} bytes of a body of bad length"
                );
                let start = usize::try_from(off)
                    .unwrap_or(usize::MAX)
                    .min(self.truth.len());
                let want = len.min(self.truth.len() - start);
                if n < len || !self.damaged {
                    assert_eq!(n, want, "{what}: {n} bytes at {off} (length {len})");
                }
                assert!(
                    buf[..n] == self.truth[start..start + n],
                    "{what}: wrong plaintext at {off}"
                );
                None
            }
            Err(e) => {
                assert_input_error(&e, what);
                assert!(self.damaged, "{what}: {e:?} on an intact envelope");
                match e {
                    Error::Truncated => {}
                    Error::ChunkAuthentication { chunk } => assert!(
                        !self.bad_length && self.lowest_chunk.is_none_or(|k| chunk >= k),
                        "{what}: chunk {chunk} failed, the lowest damaged is {:?}",
                        self.lowest_chunk
                    ),
                    other => panic!("{what}: {other:?}"),
                }
                Some(error_kind(&e))
            }
        }
    }
}

/// Asserts that `kinds` (each read's failure, in order) never succeeds
/// after a failure and always fails the same way after the first.
fn assert_sticky(kinds: &[Option<String>], what: &str) {
    if let Some(first) = kinds.iter().position(Option::is_some) {
        for k in &kinds[first..] {
            assert_eq!(k, &kinds[first], "{what}: not sticky: {kinds:?}");
        }
    }
}

/// `envelope_differential`: see the module docs.
pub fn envelope(case: &EnvelopeCase) {
    let f = &fixtures()[case.size as usize];
    let env = apply(f, &case.edits[..case.edits.len().min(MAX_EDITS)]);
    let truth = &f.msg[..];

    // The streaming paths agree with the small-read reader. Reads are at
    // least a thousandth of the object: a few thousand calls per path.
    let least = truth.len() / 1024;
    let small = (1 + usize::from(case.small_read) % 4096).max(least);
    let s = reader(&env, small, truth, "reader");
    let large = CHUNK_SIZE + usize::from(case.large_read);
    let async_read = (1 + usize::from(case.async_read)).max(least);
    let streaming = [
        (
            "reader (whole chunks)",
            reader(&env, large, truth, "reader (whole chunks)"),
        ),
        ("async reader", async_reader(&env, async_read, truth)),
        ("stream, 1 thread", stream(&env, 1)),
        ("stream, 4 threads", stream(&env, 4)),
        ("file, 1 thread", file(&env, 1)),
    ];
    assert_eq!(
        &s.released[..],
        &truth[..s.released.len().min(truth.len())],
        "reader: released plaintext that is not the envelope's"
    );
    match &s.err {
        None => assert!(s.released == truth, "reader: a wrong plaintext verified"),
        Some(e) => {
            assert_input_error(e, "reader");
            if let Error::ChunkAuthentication { chunk } = e {
                assert_eq!(s.released.len() as u64, chunk * CHUNK_SIZE as u64, "reader");
            }
        }
    }
    for (what, o) in &streaming {
        assert_eq!(
            o.kind(),
            s.kind(),
            "{what} and the reader disagree: {:?} vs {:?}",
            o.err,
            s.err
        );
        assert!(
            o.released == s.released,
            "{what} released {} bytes, the reader {}",
            o.released.len(),
            s.released.len()
        );
    }

    // Whether the header and key work, and whether the body's length is one
    // an envelope can have.
    let parsed = Header::parse_prefix(&env);
    let opened = parsed
        .as_ref()
        .ok()
        .and_then(|(h, used)| Some((block_on(decryptor(h, 4)).ok()?, *used)));
    let bad_length = opened
        .as_ref()
        .is_some_and(|(_, used)| layout::plaintext_len((env.len() - used) as u64).is_err());

    // The paths that check the length first.
    let up_front = [
        (
            "open",
            Outcome::of(block_on(crate::open(
                &resolver(),
                Profile::Blob,
                CONTEXT,
                &env,
            ))),
        ),
        ("open_into, 4 threads", open_into(&env, truth)),
        ("file, 4 threads", file(&env, 4)),
    ];
    for (what, o) in &up_front {
        if opened.is_some() && bad_length {
            assert!(
                matches!(o.err, Some(Error::Truncated)),
                "{what}: {:?} for a body of bad length",
                o.err
            );
            assert!(
                o.released.is_empty(),
                "{what} released plaintext of a body of bad length"
            );
            continue;
        }
        assert_eq!(
            o.kind(),
            s.kind(),
            "{what} and the reader disagree: {:?} vs {:?}",
            o.err,
            s.err
        );
        let expect: &[u8] = match (o.err.is_some(), *what == "file, 4 threads") {
            (false, _) | (true, true) => &s.released,
            (true, false) => &[],
        };
        assert!(
            o.released == expect,
            "{what} released {} bytes",
            o.released.len()
        );
    }

    let Some((dec, used)) = opened else {
        return; // The header failed every path alike (checked above).
    };
    let body = &env[used..];
    let verdict = Verdict {
        truth,
        damaged: s.err.is_some(),
        lowest_chunk: match s.err {
            Some(Error::ChunkAuthentication { chunk }) => Some(chunk),
            _ => None,
        },
        bad_length,
    };
    let reads: Vec<(u64, usize)> = case
        .read_at
        .iter()
        .take(MAX_READS)
        .map(|&(o, l)| place(o, l, truth))
        .collect();

    // Ranges: the commitment first, then the plan (the length), then the
    // chunks.
    match dec.ranges(&body[..body.len().min(BODY_PREFIX_LEN)]) {
        Err(e) => assert_eq!(
            Some(error_kind(&e)),
            s.kind(),
            "ranges and the reader disagree"
        ),
        Ok(ranges) => {
            for &(start, len) in case.ranges.iter().take(MAX_READS) {
                let (start, len) = place(start, len, truth);
                let start = start.min(truth.len() as u64 + 2 * CHUNK_SIZE as u64);
                let range = start..start + len as u64;
                let plan = match RangePlan::new(range.clone(), body.len() as u64) {
                    Ok(p) => p,
                    Err(e) => {
                        assert!(
                            bad_length && matches!(e, Error::Truncated),
                            "RangePlan::new: {e:?}"
                        );
                        continue;
                    }
                };
                let ct = plan.ciphertext();
                let mut fetched = body[ct.start as usize..ct.end as usize].to_vec();
                let (got, bytes) = match ranges.decrypt_range(&plan, &mut fetched) {
                    Ok(b) => (Ok(b.len()), b),
                    Err(e) => (Err(e), Vec::new()),
                };
                let ok = got.is_ok();
                verdict.read(range.start, len, got, &bytes, "RangeDecryptor");
                if ok && plan.includes_final_chunk() {
                    // The final chunk verified: the length is the true one.
                    assert_eq!(
                        layout::plaintext_len(body.len() as u64).ok(),
                        Some(truth.len() as u64),
                        "RangeDecryptor authenticated a wrong length"
                    );
                }
            }
        }
    }

    // read_at on the sync reader (4 threads: long reads open chunks in
    // parallel) and on the tokio reader, each on one reader for all reads.
    let mut src = Cursor::new(&env[..]);
    if Header::read_from(&mut src).is_ok() {
        if let Ok(mut r) =
            block_on(decryptor(&parsed.as_ref().expect("parsed").0, 4)).and_then(|d| d.decrypt(src))
        {
            let kinds: Vec<_> = reads
                .iter()
                .map(|&(off, len)| {
                    let mut buf = vec![0u8; len];
                    let got = r.read_at(off, &mut buf);
                    verdict.read(off, len, got, &buf, "read_at")
                })
                .collect();
            assert_sticky(&kinds, "read_at");
        }
    }
    block_on(async {
        let mut src = Cursor::new(&env[..]);
        if Header::read_from_async(&mut src).await.is_err() {
            return;
        }
        let Ok(dec) = decryptor(&parsed.as_ref().expect("parsed").0, 1).await else {
            return;
        };
        let Ok(mut r) = dec.decrypt_async(src).await else {
            return;
        };
        let mut kinds = Vec::new();
        for &(off, len) in &reads {
            let mut buf = vec![0u8; len];
            let got = r.read_at(off, &mut buf).await;
            kinds.push(verdict.read(off, len, got, &buf, "async read_at"));
        }
        assert_sticky(&kinds, "async read_at");
    });
}
