//! The parallel engine: the chunk engine on several threads.
//!
//! Chunk *i* is sealed with nonce index *i* whichever thread seals it, so
//! the output is byte-for-byte the output of the sequential
//! [`EncryptingWriter`](super::EncryptingWriter) for the same data key and
//! salt. All threads are scoped ([`std::thread::scope`]): nothing outlives
//! the call.
//!
//! Work is cut into *groups* of [`GROUP_CHUNKS`] chunks (256 KiB of
//! plaintext).
//!
//! * **In memory** ([`seal_into`], [`open_into`]): the threads take groups
//!   in order from a shared cursor and work on disjoint slices of the
//!   output.
//! * **Streams** ([`encrypt_stream`], [`decrypt_stream`]): the calling
//!   thread is the coordinator and one of the `threads` (it spawns
//!   `threads - 1` workers). It reads a group from the source into a
//!   buffer (one read call per group) and queues it, and writes finished
//!   groups to the sink strictly in order (one write call per group);
//!   whenever the next group to write is not finished, it seals or opens
//!   a queued group itself instead of waiting. So with 2 threads on 2
//!   cores there are 2 busy threads, not a coordinator competing with 2
//!   workers: when writing is expensive (a file) the coordinator mostly
//!   writes while the worker seals; when it is free (`/dev/null`) both
//!   seal. Groups are sealed or opened out of place between their
//!   plaintext and ciphertext buffers (256 KiB each), so no chunk is
//!   copied. At most `window = 2 × threads + 2` groups exist at once
//!   (each buffer is reused), so memory is O(threads) — about 3 MiB for 2
//!   threads — whatever the object size. A slow sink blocks the
//!   coordinator, which then stops reading: backpressure, without
//!   unbounded buffering.
//! * **Regular files** ([`positional`](super::positional)): the same
//!   pipeline, but each group is read by position on the thread that
//!   seals or opens it, so reading is parallel too.
//! * **Decryption** writes the plaintext of a group only after every chunk
//!   before it, and the group's own chunks, verified; on the first failure
//!   it writes the verified chunks before the failing one, stops, and
//!   returns the failing chunk's error — which is the lowest failing chunk,
//!   as the sequential reader would report it. The end is authenticated as
//!   by the sequential reader: the source is read in the same 16,400-byte
//!   windows, classified by [`open_piece`], and success needs the final,
//!   short chunk.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};

use super::chunk::{ChunkCipher, CHUNK_CT_SIZE, CHUNK_SIZE};
use super::codec::{open_piece, open_piece_into, read_full, seal_piece_from, Decoded};
use crate::error::Error;

/// Chunks per unit of work (256 KiB of plaintext).
pub(crate) const GROUP_CHUNKS: usize = 16;

/// Runs `f` over `items` on `threads` threads (the caller is one of them),
/// taking items in order from a shared cursor. On failure, items after the
/// lowest failing one may be skipped; every item before it was run. Returns
/// the error of the lowest failing item.
pub(crate) fn par_for_each<T, I, F>(threads: usize, items: I, f: F) -> crate::Result<()>
where
    T: Send,
    I: Iterator<Item = T> + Send,
    F: Fn(T) -> crate::Result<()> + Sync,
{
    if threads <= 1 {
        for item in items {
            f(item)?;
        }
        return Ok(());
    }
    let queue = Mutex::new(items.enumerate());
    let lowest = AtomicUsize::new(usize::MAX);
    let first_err: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    let worker = || loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
        let Some((i, item)) = next else { break };
        if i > lowest.load(Ordering::Acquire) {
            // Items come out in order: all later ones are higher too.
            break;
        }
        if let Err(e) = f(item) {
            lowest.fetch_min(i, Ordering::AcqRel);
            let mut slot = first_err.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                *slot = Some((i, e));
            }
        }
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = (1..threads).map(|_| s.spawn(worker)).collect();
        worker();
        join_all(workers);
    });
    match first_err
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Seals `plaintext` into `out`, the chunk region of a body
/// (`layout::body_len(len) - 56` bytes), on `threads` threads.
pub(crate) fn seal_into(
    cipher: &ChunkCipher,
    plaintext: &[u8],
    out: &mut [u8],
    threads: usize,
) -> crate::Result<()> {
    let group_ct = GROUP_CHUNKS * CHUNK_CT_SIZE;
    let group_pt = GROUP_CHUNKS * CHUNK_SIZE;
    let items = out.chunks_mut(group_ct).enumerate();
    par_for_each(threads, items, |(g, slots)| {
        let pt = plaintext.get(g * group_pt..).unwrap_or_default();
        for (k, slot) in slots.chunks_mut(CHUNK_CT_SIZE).enumerate() {
            let from = (k * CHUNK_SIZE).min(pt.len());
            let to = ((k + 1) * CHUNK_SIZE).min(pt.len());
            let index = (g * GROUP_CHUNKS + k) as u64;
            seal_piece_from(cipher, index, &pt[from..to], slot)?;
        }
        Ok(())
    })
}

/// Opens `chunks` (a body without its prefix, whose length was validated
/// with `layout::plaintext_len`) into `out` (exactly that plaintext
/// length) on `threads` threads. On error `out` may hold plaintext of
/// verified chunks only; the caller wipes it.
pub(crate) fn open_into(
    cipher: &ChunkCipher,
    chunks: &[u8],
    out: &mut [u8],
    threads: usize,
) -> crate::Result<()> {
    let group_ct = GROUP_CHUNKS * CHUNK_CT_SIZE;
    let group_pt = GROUP_CHUNKS * CHUNK_SIZE;
    let n_groups = chunks.len().div_ceil(group_ct);
    // Pair each ciphertext group with its plaintext slice; the last
    // plaintext group may be empty (an empty final chunk).
    let mut outs = out.chunks_mut(group_pt);
    let items = chunks
        .chunks(group_ct)
        .enumerate()
        .map(move |(g, ct)| (g, ct, outs.next().unwrap_or_default()))
        .take(n_groups);
    par_for_each(threads, items, |(g, ct, pt)| {
        // The body length was checked: only the last piece of the body is
        // short (the final chunk), exactly as a sequential read finds it.
        for (k, piece) in ct.chunks(CHUNK_CT_SIZE).enumerate() {
            let index = (g * GROUP_CHUNKS + k) as u64;
            let from = (k * CHUNK_SIZE).min(pt.len());
            open_piece_into(cipher, index, piece, &mut pt[from..])?;
        }
        Ok(())
    })
}

/// Opens the pieces of `buf` (consecutive chunks from `first`, read in
/// 16,400-byte windows) in place, on `threads` threads. Returns each
/// piece's result, or the error of the lowest failing piece.
pub(crate) fn open_pieces(
    cipher: &ChunkCipher,
    first: u64,
    buf: &mut [u8],
    threads: usize,
) -> crate::Result<Vec<Decoded>> {
    let n = buf.len().div_ceil(CHUNK_CT_SIZE);
    let mut results = vec![
        Decoded {
            len: 0,
            is_final: false
        };
        n
    ];
    let items = buf
        .chunks_mut(GROUP_CHUNKS * CHUNK_CT_SIZE)
        .zip(results.chunks_mut(GROUP_CHUNKS))
        .enumerate();
    par_for_each(threads, items, |(g, (pieces, res))| {
        for (k, (piece, r)) in pieces.chunks_mut(CHUNK_CT_SIZE).zip(res).enumerate() {
            *r = open_piece(cipher, first + (g * GROUP_CHUNKS + k) as u64, piece)?;
        }
        Ok(())
    })?;
    Ok(results)
}

/// One group of chunks in flight in the stream pipeline.
pub(crate) struct Job {
    pub(crate) seq: u64,
    /// Ciphertext of the group: chunk slots of `CHUNK_CT_SIZE` bytes, each
    /// `data || tag` (encrypt: sealed into; decrypt: read into).
    pub(crate) buf: crate::util::SecretBuf,
    /// Plaintext of the group, contiguous (encrypt: read into in one call;
    /// decrypt: opened into, then written in one call). Chunks move between
    /// the two buffers by out-of-place seal/open: no copy of their own.
    pub(crate) plain: crate::util::SecretBuf,
    /// Bytes read (encrypt: plaintext; decrypt: ciphertext).
    pub(crate) len: usize,
    /// Encrypt: ciphertext length of each sealed chunk.
    /// Decrypt: plaintext length of each opened piece.
    pub(crate) pieces: Vec<usize>,
    /// The source ended in this group.
    pub(crate) eof: bool,
    pub(crate) error: Option<Error>,
}

impl Job {
    pub(crate) fn first_chunk(&self) -> u64 {
        self.seq * GROUP_CHUNKS as u64
    }
}

/// Runs the pipeline on `threads` threads, the caller's included:
/// `produce` fills a job on the coordinator (and sets `eof` on the last),
/// `work` runs on any thread (the coordinator takes queued jobs when the
/// next one to consume is not done), `consume` takes the jobs in order on
/// the coordinator. Stops at the first error.
pub(crate) fn pipeline<P, F, C>(
    threads: usize,
    mut produce: P,
    work: F,
    mut consume: C,
) -> crate::Result<()>
where
    P: FnMut(&mut Job) -> crate::Result<()>,
    F: Fn(&mut Job) + Sync,
    C: FnMut(&mut Job) -> crate::Result<()>,
{
    let threads = threads.max(1);
    let window = 2 * threads + 2;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Job>();
    let run = |job: &mut Job| {
        if catch_unwind(AssertUnwindSafe(|| work(job))).is_err() {
            job.error = Some(Error::Internal("a worker thread panicked"));
        }
    };
    std::thread::scope(|s| {
        // The calling thread is one of the `threads`: it spawns one fewer.
        let workers: Vec<_> = (1..threads)
            .map(|_| {
                let done_tx = done_tx.clone();
                let (job_rx, run) = (&job_rx, &run);
                s.spawn(move || loop {
                    let next = job_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(mut job) = next else { break };
                    run(&mut job);
                    if done_tx.send(job).is_err() {
                        break;
                    }
                })
            })
            .collect();
        drop(done_tx);
        let result = (|| {
            let mut spare: Vec<Job> = Vec::with_capacity(window);
            let mut ready: BTreeMap<u64, Job> = BTreeMap::new();
            let (mut next_seq, mut next_out, mut in_flight) = (0u64, 0u64, 0usize);
            let mut more = true;
            loop {
                while more && in_flight < window {
                    let mut job = spare.pop().unwrap_or_else(|| Job {
                        seq: 0,
                        buf: crate::util::SecretBuf::zeroed(GROUP_CHUNKS * CHUNK_CT_SIZE),
                        plain: crate::util::SecretBuf::zeroed(GROUP_CHUNKS * CHUNK_SIZE),
                        len: 0,
                        pieces: Vec::with_capacity(GROUP_CHUNKS),
                        eof: false,
                        error: None,
                    });
                    job.seq = next_seq;
                    job.len = 0;
                    job.pieces.clear();
                    job.eof = false;
                    job.error = None;
                    produce(&mut job)?;
                    more = !job.eof;
                    next_seq += 1;
                    in_flight += 1;
                    job_tx
                        .send(job)
                        .map_err(|_| Error::Internal("worker threads ended"))?;
                }
                // Write out, in order, whatever is ready.
                if let Some(mut job) = ready.remove(&next_out) {
                    next_out += 1;
                    in_flight -= 1;
                    consume(&mut job)?;
                    spare.push(job);
                    continue;
                }
                if in_flight == 0 {
                    return Ok(());
                }
                // The next group is not done: seal or open a queued one
                // here rather than wait. `try_lock`: a worker holds the
                // lock only while it takes a job or waits for one (then
                // the queue is empty).
                let queued = job_rx.try_lock().ok().and_then(|rx| rx.try_recv().ok());
                let job = match queued {
                    Some(mut job) => {
                        run(&mut job);
                        job
                    }
                    None => done_rx
                        .recv()
                        .map_err(|_| Error::Internal("worker threads ended"))?,
                };
                ready.insert(job.seq, job);
                while let Ok(job) = done_rx.try_recv() {
                    ready.insert(job.seq, job);
                }
            }
        })();
        // Workers finish the job in hand and exit.
        drop(job_tx);
        join_all(workers);
        result
    })
}

/// Joins the scoped threads `workers`, re-raising a worker's panic.
/// `thread::scope` by itself waits only until each thread's closure has
/// returned, not until the thread has ended; joining also waits for its
/// thread-local destructors, so no thread of a call is still running (and
/// holding memory) once the call returned.
fn join_all(workers: Vec<std::thread::ScopedJoinHandle<'_, ()>>) {
    for w in workers {
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Seals the `job.len` plaintext bytes of a group into its chunk slots:
/// its full chunks and, in the last group (`eof`), the final short
/// (possibly empty) chunk — a full chunk is never the last. Runs on a
/// worker; a failure is left in `job.error`.
pub(crate) fn seal_group(cipher: &ChunkCipher, job: &mut Job) {
    let first = job.first_chunk();
    let full = job.len / CHUNK_SIZE;
    let count = if job.eof { full + 1 } else { full };
    for k in 0..count {
        let pt = &job.plain[k * CHUNK_SIZE..job.len.min((k + 1) * CHUNK_SIZE)];
        let slot = &mut job.buf[k * CHUNK_CT_SIZE..(k + 1) * CHUNK_CT_SIZE];
        match seal_piece_from(cipher, first + k as u64, pt, slot) {
            Ok(ct) => job.pieces.push(ct),
            Err(e) => {
                job.error = Some(e);
                return;
            }
        }
    }
}

/// Writes a sealed group (on the coordinator, in order), or returns the
/// error its worker met.
pub(crate) fn write_sealed<W: Write>(writer: &mut W, job: &mut Job) -> crate::Result<()> {
    if let Some(e) = job.error.take() {
        return Err(e);
    }
    // Every slot but the last is full: the ciphertext is contiguous.
    let len: usize = job.pieces.iter().sum();
    writer.write_all(&job.buf[..len])?;
    Ok(())
}

/// Opens the `job.len` ciphertext bytes of a group (read in 16,400-byte
/// pieces) into its plaintext buffer, stopping at the first failure,
/// which is left in `job.error`. In the last group (`eof`) the final,
/// short chunk must be found. Runs on a worker.
pub(crate) fn open_group(cipher: &ChunkCipher, job: &mut Job) {
    let first = job.first_chunk();
    let mut ended = false;
    for (k, piece) in job.buf[..job.len].chunks(CHUNK_CT_SIZE).enumerate() {
        let out = &mut job.plain[k * CHUNK_SIZE..(k + 1) * CHUNK_SIZE];
        match open_piece_into(cipher, first + k as u64, piece, out) {
            Ok(d) => {
                job.pieces.push(d.len);
                ended = d.is_final;
            }
            Err(e) => {
                job.error = Some(e);
                return;
            }
        }
    }
    if job.eof && !ended {
        // The source ended right after a full chunk: the final chunk is
        // missing (an empty read is a truncated piece).
        job.error = Some(Error::Truncated);
    }
}

/// Writes the verified plaintext of an opened group (on the coordinator,
/// in order) and returns its length, then the failure its worker met, if
/// any. Pieces opened before a failure verified: they are released, as
/// the sequential reader releases them. All but the last opened piece are
/// full, so they are contiguous.
pub(crate) fn write_opened<W: Write>(writer: &mut W, job: &mut Job) -> crate::Result<u64> {
    let n: usize = job.pieces.iter().sum();
    writer.write_all(&job.plain[..n])?;
    match job.error.take() {
        Some(e) => Err(e),
        None => Ok(n as u64),
    }
}

/// Encrypts `reader` to `writer` (chunks only: the caller wrote the header
/// and the body prefix) on `threads` threads. Returns the plaintext length.
/// Does not flush `writer`.
pub(crate) fn encrypt_stream<R: Read, W: Write>(
    cipher: &ChunkCipher,
    mut reader: R,
    mut writer: W,
    threads: usize,
) -> crate::Result<u64> {
    let mut total = 0u64;
    pipeline(
        threads,
        |job| {
            // One read call for the whole group (a short read only at EOF).
            job.len = read_full(&mut reader, &mut job.plain[..])?;
            job.eof = job.len < job.plain.len();
            total += job.len as u64;
            Ok(())
        },
        |job| seal_group(cipher, job),
        |job| write_sealed(&mut writer, job),
    )?;
    Ok(total)
}

/// Decrypts chunks from `reader` (positioned after the body prefix) to
/// `writer` on `threads` threads. Returns the plaintext length, only once
/// the final chunk authenticated. Does not flush `writer`.
pub(crate) fn decrypt_stream<R: Read, W: Write>(
    cipher: &ChunkCipher,
    mut reader: R,
    mut writer: W,
    threads: usize,
) -> crate::Result<u64> {
    let mut total = 0u64;
    pipeline(
        threads,
        |job| {
            job.len = read_full(&mut reader, &mut job.buf[..])?;
            job.eof = job.len < job.buf.len();
            Ok(())
        },
        |job| open_group(cipher, job),
        |job| {
            total += write_opened(&mut writer, job)?;
            Ok(())
        },
    )?;
    Ok(total)
}
