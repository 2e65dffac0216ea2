//! The decrypting reader: sequential `Read`, and `Seek` / `read_at` random
//! access when the source can seek.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use super::chunk::{ChunkCipher, BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE};
use super::codec::{deliver_range_chunk, fill, open_piece, open_piece_into, read_full, Sticky};
use super::{layout, parallel, RangePlan, Threads};
use crate::error::Error;

const CHUNK: u64 = CHUNK_SIZE as u64;

/// `inner_chunk` when the source's position is not known (a read of many
/// chunks stopped part-way): the next access seeks.
const UNKNOWN_CHUNK: u64 = u64::MAX;

/// [`DecryptingReader::read_at`] opens the chunks of a read this long or
/// longer on several threads, when the reader has them (256 KiB: 16
/// chunks); shorter reads stay on the calling thread.
pub const PARALLEL_READ_MIN: usize = 16 * CHUNK_SIZE;

/// Decrypts an envelope body.
///
/// Guarantees:
///
/// * The key commitment was verified before this reader existed (see
///   [`Decryptor::decrypt`](crate::Decryptor::decrypt)).
/// * No byte of a chunk is returned before that chunk's tag has verified,
///   and a failed chunk leaves no plaintext in memory.
/// * The end of the message is authenticated: a read returns `Ok(0)` (or a
///   short count) only after the final, short chunk has been opened.
///   Truncation, trailing data and reordered, duplicated or spliced chunks
///   are errors ([`Error::Truncated`], [`Error::ChunkAuthentication`],
///   carried in `io::Error`; `?` into a [`crate::Result`] gives them
///   back), never short reads. Once a read has failed authentication,
///   every later read fails too.
/// * An I/O error from the source loses nothing: the ciphertext read
///   before it is kept, and the next read continues where the source
///   stopped (a source that can resume after a timeout, such as a socket,
///   can simply be read again).
///
/// With a seekable source it also implements [`Seek`] and
/// [`DecryptingReader::read_at`], which open only the chunks covering the
/// requested range (a 4 KiB read opens one chunk, or two when it straddles a
/// boundary) plus, when the read reaches the end of the object, the final
/// chunk. Seeking from the end authenticates the final chunk first.
///
/// Memory: one 16 KiB buffer, allocated once; chunks are decrypted in place
/// in it. The last decrypted chunk is kept, so small sequential reads open
/// each chunk once.
pub struct DecryptingReader<R> {
    inner: R,
    cipher: ChunkCipher,
    /// Ciphertext, then plaintext of `buf_chunk` (`buf_len` bytes).
    buf: crate::util::SecretBuf,
    buf_chunk: Option<u64>,
    buf_len: usize,
    /// Plaintext position for `Read`/`Seek`.
    pos: u64,
    /// The chunk at whose start `inner` is positioned (plus `partial`
    /// bytes), or [`UNKNOWN_CHUNK`].
    inner_chunk: u64,
    /// Ciphertext bytes of `inner_chunk` already read into `buf` by a read
    /// that then failed with an I/O error; the next load of that chunk
    /// continues after them.
    partial: usize,
    /// Offset of chunk 0 in `inner`, learned the first time we seek.
    chunks_start: Option<u64>,
    /// Body length claimed by the source (unauthenticated), once known.
    claimed_len: Option<u64>,
    /// The authenticated plaintext length, once the final chunk opened.
    final_len: Option<u64>,
    sticky: Option<Sticky>,
    /// For `read_at` of large ranges.
    threads: Threads,
}

impl<R> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("pos", &self.pos)
            .field("authenticated_len", &self.final_len)
            .finish_non_exhaustive()
    }
}

impl<R> DecryptingReader<R> {
    /// `inner` must be positioned at chunk 0 (the prefix has been read and
    /// the commitment verified). `threads` serve `read_at` of large ranges.
    pub(crate) fn new(inner: R, cipher: ChunkCipher, threads: Threads) -> Self {
        DecryptingReader {
            inner,
            cipher,
            buf: crate::util::SecretBuf::zeroed(CHUNK_CT_SIZE),
            buf_chunk: None,
            buf_len: 0,
            pos: 0,
            inner_chunk: 0,
            partial: 0,
            chunks_start: None,
            claimed_len: None,
            final_len: None,
            sticky: None,
            threads,
        }
    }

    /// The plaintext length, if it has been authenticated already (the final
    /// chunk was opened). See [`DecryptingReader::plaintext_len`] to force it.
    pub fn authenticated_len(&self) -> Option<u64> {
        self.final_len
    }

    /// Returns the source. Buffered plaintext is wiped.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&mut self, e: Error) -> Error {
        Sticky::record(&mut self.sticky, e)
    }
}

impl<R: Read> DecryptingReader<R> {
    /// Reads the ciphertext of chunk `index` into `buf` from the current
    /// position of `inner` (the start of that chunk, plus the `partial`
    /// bytes an earlier, failed read of it already holds); returns its
    /// length. A short read is the final chunk. On an I/O error the bytes
    /// read are kept in `partial`, so that a retry resumes instead of
    /// opening a misaligned chunk.
    fn read_chunk(&mut self, index: u64) -> crate::Result<usize> {
        debug_assert_eq!(self.inner_chunk, index, "inner stream misaligned");
        // Before the source is read: a refused key leaves it in place.
        self.cipher.check_lease()?;
        self.buf_chunk = None;
        self.buf_len = 0;
        fill(&mut self.inner, &mut self.buf[..], &mut self.partial)?;
        self.inner_chunk = index + 1;
        Ok(std::mem::take(&mut self.partial))
    }

    /// Reads and opens chunk `index` from the current position of `inner`
    /// (see [`Self::read_chunk`]).
    fn load_chunk(&mut self, index: u64) -> crate::Result<()> {
        let n = self.read_chunk(index)?;
        match open_piece(&self.cipher, index, &mut self.buf[..n]) {
            Ok(d) => {
                self.buf_chunk = Some(index);
                self.buf_len = d.len;
                if d.is_final {
                    self.final_len = Some(index * CHUNK + d.len as u64);
                }
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Reads chunk `index` and opens it out of place into `out` (at least
    /// [`CHUNK_SIZE`] bytes); returns its plaintext length. On failure
    /// `out` holds no plaintext of the chunk.
    fn read_chunk_direct(&mut self, index: u64, out: &mut [u8]) -> crate::Result<usize> {
        let n = self.read_chunk(index)?;
        match open_piece_into(&self.cipher, index, &self.buf[..n], out) {
            Ok(d) => {
                if d.is_final {
                    self.final_len = Some(index * CHUNK + d.len as u64);
                }
                self.pos += d.len as u64;
                Ok(d.len)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Copies from the buffered chunk if it covers `at`; returns the count
    /// (0 if it does not).
    fn copy_buffered(&self, at: u64, out: &mut [u8]) -> usize {
        let chunk = at / CHUNK;
        let off = (at % CHUNK) as usize;
        if self.buf_chunk != Some(chunk) || off >= self.buf_len {
            return 0;
        }
        let n = out.len().min(self.buf_len - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        n
    }

    fn read_sequential(&mut self, out: &mut [u8]) -> crate::Result<usize> {
        if let Some(s) = self.sticky {
            return Err(s.error());
        }
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.copy_buffered(self.pos, out);
            if n > 0 {
                self.pos += n as u64;
                return Ok(n);
            }
            if let Some(len) = self.final_len {
                if self.pos >= len {
                    return Ok(0);
                }
            }
            let chunk = self.pos / CHUNK;
            // `seek`, `read_at` and `plaintext_len` leave `inner` aligned
            // for `pos`, and authenticate the end when `pos` is past it.
            if self.pos.is_multiple_of(CHUNK) && out.len() >= CHUNK_SIZE {
                // The caller's buffer holds a whole chunk: open it straight
                // into it (no plaintext copy out of our buffer).
                return self.read_chunk_direct(chunk, out);
            }
            self.load_chunk(chunk)?;
        }
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_sequential(out).map_err(Error::into_io)
    }
}

impl<R: Read + Seek> DecryptingReader<R> {
    fn chunks_start(&mut self) -> crate::Result<u64> {
        if let Some(s) = self.chunks_start {
            return Ok(s);
        }
        // `inner` sits `partial` bytes into `inner_chunk` (known: it only
        // becomes unknown after this was computed).
        let here = self.inner.stream_position()?;
        let read = self
            .inner_chunk
            .checked_mul(CHUNK_CT_SIZE as u64)
            .and_then(|n| n.checked_add(self.partial as u64));
        let start = read
            .and_then(|n| here.checked_sub(n))
            .ok_or(Error::ApiMisuse(
                "the source was moved behind the reader's back",
            ))?;
        self.chunks_start = Some(start);
        Ok(start)
    }

    /// The source offset of chunk `chunk`, which a seek can reach only if
    /// it fits in a `u64`.
    fn chunk_pos(&mut self, chunk: u64) -> crate::Result<u64> {
        let start = self.chunks_start()?;
        chunk
            .checked_mul(CHUNK_CT_SIZE as u64)
            .and_then(|n| n.checked_add(start))
            .ok_or(Error::TooLarge("a position beyond any source"))
    }

    /// The body length the source claims (chunks plus the 56-byte prefix).
    fn claimed_body_len(&mut self) -> crate::Result<u64> {
        if let Some(l) = self.claimed_len {
            return Ok(l);
        }
        let start = self.chunks_start()?;
        let end = self.inner.seek(SeekFrom::End(0))?;
        let len = end
            .checked_sub(start)
            .and_then(|n| n.checked_add(BODY_PREFIX_LEN as u64))
            .ok_or(Error::Truncated)?;
        self.claimed_len = Some(len);
        // `inner` moved: put it back where it was (or leave it for the next
        // access to seek, when that was not known).
        if self.inner_chunk != UNKNOWN_CHUNK {
            let back = self.chunk_pos(self.inner_chunk)? + self.partial as u64;
            self.inner.seek(SeekFrom::Start(back))?;
        }
        Ok(len)
    }

    /// Puts `inner` at the start of `chunk` (or leaves it where a failed
    /// read of `chunk` stopped, to resume there).
    fn seek_inner_to(&mut self, chunk: u64) -> crate::Result<()> {
        if self.inner_chunk != chunk {
            let at = self.chunk_pos(chunk)?;
            self.inner.seek(SeekFrom::Start(at))?;
            self.inner_chunk = chunk;
            self.partial = 0;
        }
        Ok(())
    }

    /// Puts `inner` at the chunk the next sequential `read` will load.
    /// At or past the authenticated end a read returns `Ok(0)` without
    /// touching `inner`: nothing to do (and nothing to overflow for a
    /// position such as `u64::MAX`).
    fn align_for_pos(&mut self) -> crate::Result<()> {
        if self.final_len.is_some_and(|len| self.pos >= len) {
            return Ok(());
        }
        let chunk = self.pos / CHUNK;
        let next = if self.buf_chunk == Some(chunk) {
            chunk + 1
        } else {
            chunk
        };
        self.seek_inner_to(next)
    }

    /// The authenticated plaintext length. Opens the final chunk if it has
    /// not been opened yet (one seek and at most 16 KiB of decryption).
    pub fn plaintext_len(&mut self) -> crate::Result<u64> {
        if let Some(s) = self.sticky {
            return Err(s.error());
        }
        if let Some(l) = self.final_len {
            return Ok(l);
        }
        let body = self.claimed_body_len()?;
        let claimed = layout::plaintext_len(body).map_err(|e| self.fail(e))?;
        let final_chunk = claimed / CHUNK;
        self.seek_inner_to(final_chunk)?;
        let r = self.load_chunk(final_chunk);
        // Restore the sequential position whatever happened.
        self.align_for_pos()?;
        r?;
        match self.final_len {
            Some(l) if l == claimed => Ok(l),
            // The chunk at the claimed final index was full-size: it cannot
            // be final.
            _ => Err(self.fail(Error::Truncated)),
        }
    }

    /// Reads plaintext at `offset` into `out` without moving the `Read`
    /// position. Returns `out.len()` bytes, or fewer only when the object
    /// ends (an authenticated end); `Ok(0)` at or past the end. Only
    /// verified plaintext reaches `out`; a range reaching the end
    /// authenticates the final chunk; failures are sticky, as for `read`.
    ///
    /// Cost: opens each chunk covering the range once (the last opened
    /// chunk is cached), plus the final chunk when the range reaches the
    /// end. A read of at least [`PARALLEL_READ_MIN`] bytes by a reader
    /// given several [`Threads`] (by
    /// [`Decryptor::threads`](crate::Decryptor::threads)) reads the source
    /// in windows of up to `2 × threads × 256 KiB` of ciphertext (memory is
    /// bounded by the window, not the range) and opens each window's chunks
    /// in parallel; the error is then still that of the lowest failing
    /// chunk.
    pub fn read_at(&mut self, offset: u64, out: &mut [u8]) -> crate::Result<usize> {
        if let Some(s) = self.sticky {
            return Err(s.error());
        }
        let threads = if out.len() < PARALLEL_READ_MIN {
            1
        } else {
            self.threads.count()
        };
        let r = if threads > 1 {
            self.read_at_parallel_inner(offset, out, threads)
        } else {
            self.read_at_inner(offset, out)
        };
        let restore = self.align_for_pos();
        let n = r?;
        restore?;
        Ok(n)
    }

    fn read_at_parallel_inner(
        &mut self,
        offset: u64,
        out: &mut [u8],
        threads: usize,
    ) -> crate::Result<usize> {
        let body = self.claimed_body_len()?;
        let end = offset.saturating_add(out.len() as u64);
        let plan = RangePlan::new(offset..end, body).map_err(|e| self.fail(e))?;
        if plan.plaintext().is_empty() {
            // At or past the end: only the final chunk, as `read_at` does.
            return self.read_at_inner(offset, out);
        }
        let prefix = BODY_PREFIX_LEN as u64;
        let ct_end = plan.ciphertext().end - prefix; // relative to chunk 0
        let window = (2 * threads * parallel::GROUP_CHUNKS * CHUNK_CT_SIZE) as u64;
        let mut chunk = plan.first_chunk();
        let mut scratch = crate::util::SecretBuf::zeroed(
            window.min(ct_end - chunk * CHUNK_CT_SIZE as u64) as usize,
        );
        if self.partial != 0 {
            // A failed sequential read left `inner` inside a chunk: these
            // whole-window reads start from a chunk boundary.
            self.inner_chunk = UNKNOWN_CHUNK;
            self.partial = 0;
        }
        self.seek_inner_to(chunk)?;
        while chunk * (CHUNK_CT_SIZE as u64) < ct_end {
            let want = (ct_end - chunk * CHUNK_CT_SIZE as u64).min(scratch.len() as u64) as usize;
            let got = read_full(&mut self.inner, &mut scratch[..want]);
            // `inner` is now wherever the read stopped: re-seek next time.
            self.inner_chunk = UNKNOWN_CHUNK;
            if got? < want {
                // The source is shorter than it claimed a moment ago.
                return Err(self.fail(Error::Truncated));
            }
            let opened = parallel::open_pieces(&self.cipher, chunk, &mut scratch[..want], threads)
                .map_err(|e| self.fail(e))?;
            let last_window = chunk * (CHUNK_CT_SIZE as u64) + want as u64 == ct_end;
            for (k, d) in opened.iter().enumerate() {
                let expect_final =
                    plan.includes_final_chunk() && last_window && k + 1 == opened.len();
                let piece = &scratch[k * CHUNK_CT_SIZE..];
                let end =
                    deliver_range_chunk(&plan, chunk + k as u64, *d, expect_final, piece, out)
                        .map_err(|e| self.fail(e))?;
                if end.is_some() {
                    self.final_len = end;
                }
            }
            chunk += opened.len() as u64;
            if want.is_multiple_of(CHUNK_CT_SIZE) {
                self.inner_chunk = chunk;
            }
        }
        Ok((plan.plaintext().end - plan.plaintext().start) as usize)
    }

    fn read_at_inner(&mut self, offset: u64, out: &mut [u8]) -> crate::Result<usize> {
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let n = self.copy_buffered(at, &mut out[done..]);
            if n > 0 {
                done += n;
                continue;
            }
            // Nothing buffered at `at`: either it is past the end, or a
            // chunk must be opened. Decide on the authenticated length when
            // the claimed one says we are at or past the end.
            let claimed =
                layout::plaintext_len(self.claimed_body_len()?).map_err(|e| self.fail(e))?;
            if at >= claimed {
                let len = self.plaintext_len()?;
                if at >= len {
                    break;
                }
            }
            let chunk = at / CHUNK;
            self.seek_inner_to(chunk)?;
            self.load_chunk(chunk)?;
            if self.copy_buffered(at, &mut out[done..]) == 0 {
                // The chunk opened but is shorter than the claim: only the
                // final chunk can be short, and it was authenticated as such.
                break;
            }
        }
        Ok(done)
    }
}

impl<R: Read + Seek> Seek for DecryptingReader<R> {
    fn seek(&mut self, from: SeekFrom) -> io::Result<u64> {
        let r: crate::Result<u64> = (|| {
            let new = match from {
                SeekFrom::Start(n) => Some(n),
                SeekFrom::Current(d) => self.pos.checked_add_signed(d),
                SeekFrom::End(d) => self.plaintext_len()?.checked_add_signed(d),
            }
            .ok_or(Error::ApiMisuse(
                "seek to a negative or overflowing position",
            ))?;
            let claimed =
                layout::plaintext_len(self.claimed_body_len()?).map_err(|e| self.fail(e))?;
            if new >= claimed {
                // What a read returns here depends on the length: make
                // sure it is authentic before anyone relies on it.
                self.plaintext_len()?;
            }
            self.pos = new;
            self.align_for_pos()?;
            Ok(new)
        })();
        r.map_err(Error::into_io)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::sync::Arc;

    use super::*;
    use crate::{Decryptor, Header, KeyEncryptionKey, LocalKek, Profile, StaticResolver};
    use pollster::block_on;

    /// Three full chunks and a short fourth.
    const LEN: usize = 3 * CHUNK_SIZE + 100;

    /// The plaintext, and a reader over its body read from `wrap(body)`.
    fn reader<S: Read>(wrap: impl FnOnce(Vec<u8>) -> S) -> (Vec<u8>, DecryptingReader<S>) {
        let kek: Arc<dyn KeyEncryptionKey> = Arc::new(
            LocalKek::from_aes_key("reader", crate::WrapAlgorithm::A256Kw, &[5; 32]).unwrap(),
        );
        let msg: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
        let env = block_on(crate::seal(
            std::slice::from_ref(&kek),
            Profile::Blob,
            b"r",
            &msg,
        ))
        .unwrap();
        let (header, used) = Header::parse_prefix(&env).unwrap();
        let resolver = StaticResolver::new().with(kek);
        let dec = block_on(Decryptor::new(&header, &resolver, Profile::Blob, b"r")).unwrap();
        let r = dec.decrypt(wrap(env[used..].to_vec())).unwrap();
        (msg, r)
    }

    fn read_to_end(r: &mut impl Read, size: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; size];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Seeks to positions whose chunk offset does not fit in a `u64`: they
    /// are past the end, where reads return nothing, and the reader goes
    /// on working. (The chunk offset of such a position overflowed.)
    #[test]
    fn seeking_to_the_largest_positions_does_not_overflow() {
        let (msg, mut r) = reader(Cursor::new);
        for to in [
            SeekFrom::Start(u64::MAX),
            SeekFrom::Start(u64::MAX / 2),
            SeekFrom::End(i64::MAX),
            SeekFrom::Current(i64::MAX),
        ] {
            r.seek(SeekFrom::Start(10)).unwrap();
            let at = r.seek(to).unwrap();
            assert!(at > LEN as u64, "{to:?}");
            let mut buf = [0u8; 100];
            assert_eq!(r.read(&mut buf).unwrap(), 0, "{to:?}");
            assert_eq!(r.read_at(at, &mut buf).unwrap(), 0, "{to:?}");
            assert_eq!(r.read_at(u64::MAX, &mut buf).unwrap(), 0, "{to:?}");
        }
        r.seek(SeekFrom::Start(0)).unwrap();
        assert_eq!(read_to_end(&mut r, 1000).unwrap(), msg);
    }

    /// A source that hands out `fail_at` bytes, fails once with a timeout,
    /// then goes on where it stopped (a socket after a timeout).
    struct Hiccup {
        inner: Cursor<Vec<u8>>,
        fail_at: u64,
        failed: bool,
    }

    impl Read for Hiccup {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let pos = self.inner.position();
            if !self.failed && pos == self.fail_at {
                self.failed = true;
                return Err(io::ErrorKind::TimedOut.into());
            }
            let limit = if self.failed {
                buf.len()
            } else {
                buf.len().min((self.fail_at - pos) as usize)
            };
            self.inner.read(&mut buf[..limit])
        }
    }

    impl Seek for Hiccup {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    /// An I/O error in the middle of a chunk is reported as such, and a
    /// retried read goes on with the right plaintext, whether reads go
    /// through the chunk buffer (small) or straight into the caller's
    /// buffer (whole chunks). (The bytes read before the error were lost,
    /// so the retry opened a misaligned chunk and reported a false
    /// authentication failure.)
    #[test]
    fn a_read_retried_after_an_io_error_mid_chunk_goes_on() {
        // The source starts at chunk 0 (the prefix was read by `decrypt`).
        for fail_at in [56 + 100, 56 + CHUNK_CT_SIZE as u64 + 7_000] {
            for size in [1000, 2 * CHUNK_SIZE] {
                let (msg, mut r) = reader(|body| Hiccup {
                    inner: Cursor::new(body),
                    fail_at,
                    failed: false,
                });
                let mut got = Vec::new();
                let mut buf = vec![0u8; size];
                let mut errors = 0;
                loop {
                    match r.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => {
                            let e = Error::from(e);
                            assert!(
                                matches!(&e, Error::Io(io) if io.kind() == io::ErrorKind::TimedOut),
                                "fail at {fail_at}, reads of {size}: {e:?}"
                            );
                            assert!(e.is_retryable());
                            errors += 1;
                        }
                    }
                }
                assert_eq!(errors, 1);
                assert!(got == msg, "fail at {fail_at}, reads of {size}");
            }
        }
    }

    /// The same with random access in between: the failed chunk is read
    /// again from its start, and sequential reading resumes.
    #[test]
    fn random_access_after_an_io_error_mid_chunk_reads_from_chunk_starts() {
        let fail_at = 56 + 300;
        let (msg, mut r) = reader(|body| Hiccup {
            inner: Cursor::new(body),
            fail_at,
            failed: false,
        });
        let mut buf = vec![0u8; 500];
        assert!(r.read(&mut buf).is_err());
        let mut at = vec![0u8; 2 * CHUNK_SIZE];
        assert_eq!(r.read_at(10, &mut at).unwrap(), at.len());
        assert!(at[..] == msg[10..10 + at.len()]);
        assert_eq!(read_to_end(&mut r, 700).unwrap(), msg);
    }
}
