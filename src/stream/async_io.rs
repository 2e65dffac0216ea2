//! tokio adapters (feature `tokio`): [`AsyncEncryptingWriter`] and
//! [`AsyncDecryptingReader`]. They drive the same chunk logic as the sync
//! [`EncryptingWriter`](super::EncryptingWriter) and
//! [`DecryptingReader`](super::DecryptingReader) (the `codec` module): only
//! the I/O differs.
//!
//! Cancellation: all progress lives in the adapter, never in a future, so a
//! dropped `write`/`read` future loses nothing; and the message is ended
//! only by [`AsyncEncryptingWriter::finish`], so a writer dropped without
//! it, or a `finish` future dropped before completion, leaves output that
//! every reader rejects (truncated, or a final chunk whose tag fails).

use std::fmt;
use std::future::poll_fn;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt, ReadBuf,
};

use super::chunk::{ChunkCipher, BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE, TAG_LEN};
use super::codec::{
    deliver_range_chunk, open_piece, open_piece_into, ChunkEncoder, Decoded, Sticky,
};
use super::RangePlan;
use crate::error::Error;

const CHUNK: u64 = CHUNK_SIZE as u64;

/// Chunk slots in the async reader's read-ahead ring (≈ 512 KiB).
const READ_AHEAD_CHUNKS: usize = 32;

/// The most the async reader asks its source for in one read (half the
/// ring, ≈ 256 KiB): sources such as `tokio::fs::File` pay a thread
/// hand-off per read, and half the ring stays free to read ahead into
/// while the other half is opened.
const MAX_READ: usize = READ_AHEAD_CHUNKS / 2 * CHUNK_CT_SIZE;

/// The least free room worth a read-ahead poll (4 chunks).
const MIN_READ_AHEAD: usize = 4 * CHUNK_CT_SIZE;

/// The async [`EncryptingWriter`](super::EncryptingWriter): implements
/// [`AsyncWrite`].
///
/// * Memory: one 16 KiB chunk buffer plus the header.
/// * **Call [`AsyncEncryptingWriter::finish`]**: it writes the final
///   (short) chunk. `poll_shutdown` (`AsyncWriteExt::shutdown`) does *not*
///   end the message: it writes the sealed full chunks, shuts the inner
///   writer down and leaves a body that readers reject as truncated — as
///   does dropping the writer or a `finish` future before it completes.
/// * `poll_flush` writes the sealed chunks and flushes the inner writer; it
///   never seals a partial chunk.
pub struct AsyncEncryptingWriter<W> {
    inner: W,
    enc: ChunkEncoder,
    /// Header (embedded form) and body prefix, written before any chunk.
    preamble: Vec<u8>,
    preamble_pos: usize,
    poisoned: bool,
    shut_down: bool,
}

impl<W> fmt::Debug for AsyncEncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncEncryptingWriter")
            .field("chunks_sealed", &self.enc.chunks_sealed())
            .field("plaintext_bytes", &self.enc.plaintext_len())
            .finish_non_exhaustive()
    }
}

fn misuse(m: &'static str) -> io::Error {
    Error::ApiMisuse(m).into_io()
}

impl<W: AsyncWrite + Unpin> AsyncEncryptingWriter<W> {
    /// No I/O happens here: `preamble` and the body prefix are written on
    /// the first poll.
    pub(crate) fn new(
        inner: W,
        cipher: ChunkCipher,
        preamble: &[u8],
        prefix: &[u8; BODY_PREFIX_LEN],
    ) -> Self {
        let mut pre = Vec::with_capacity(preamble.len() + BODY_PREFIX_LEN);
        pre.extend_from_slice(preamble);
        pre.extend_from_slice(prefix);
        AsyncEncryptingWriter {
            inner,
            enc: ChunkEncoder::new(cipher),
            preamble: pre,
            preamble_pos: 0,
            poisoned: false,
            shut_down: false,
        }
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.enc.plaintext_len()
    }

    fn check(&self) -> io::Result<()> {
        if self.poisoned {
            return Err(misuse("a previous write failed; the output is incomplete"));
        }
        if self.shut_down {
            return Err(misuse("the writer was shut down; the output is incomplete"));
        }
        Ok(())
    }

    /// Writes the preamble and the sealed chunk, if any.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let pending = if self.preamble_pos < self.preamble.len() {
                &self.preamble[self.preamble_pos..]
            } else {
                self.enc.pending()
            };
            if pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = match ready!(Pin::new(&mut self.inner).poll_write(cx, pending)) {
                Ok(0) => {
                    self.poisoned = true;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => n,
                Err(e) => {
                    self.poisoned = true;
                    return Poll::Ready(Err(e));
                }
            };
            if self.preamble_pos < self.preamble.len() {
                self.preamble_pos += n;
            } else {
                self.enc.advance(n);
            }
        }
    }

    /// Writes the final chunk, flushes, and returns the inner writer (which
    /// is not shut down: do that yourself if its protocol needs it).
    ///
    /// Only after `finish` returns `Ok` is the output a complete envelope.
    /// Dropped before it completes, it leaves an output that fails to
    /// decrypt.
    pub async fn finish(mut self) -> crate::Result<W> {
        self.check()?;
        poll_fn(|cx| self.poll_drain(cx)).await?;
        poll_fn(|cx| self.enc.cipher().poll_lease(cx)).await?;
        self.enc.seal_final()?;
        poll_fn(|cx| self.poll_drain(cx)).await?;
        self.inner.flush().await?;
        Ok(self.inner)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptingWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_drain(cx))?;
        ready!(this.enc.cipher().poll_lease(cx)).map_err(Error::into_io)?;
        let mut taken = 0;
        loop {
            taken += this.enc.absorb(&data[taken..]).map_err(Error::into_io)?;
            if taken == data.len() {
                break;
            }
            // A chunk filled and was sealed: write it and go on, as long as
            // the inner writer keeps accepting.
            match this.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Writes the sealed chunks and shuts the inner writer down **without
    /// ending the message** (see [`AsyncEncryptingWriter::finish`]).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.poisoned {
            ready!(this.poll_drain(cx))?;
        }
        this.shut_down = true;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The async [`DecryptingReader`](super::DecryptingReader): implements
/// [`AsyncRead`], with [`AsyncDecryptingReader::read_at`] when the source
/// also implements [`AsyncSeek`].
///
/// Same guarantees as the sync reader: the commitment was checked before it
/// existed; no byte of a chunk is returned before that chunk's tag
/// verified; a read returns end-of-file only after the final, short chunk
/// opened (truncation, trailing data, reordering are errors, carried in
/// `io::Error`; `?` into a [`crate::Result`] gives back the crate's
/// [`Error`]); failures are sticky.
///
/// Memory: a read-ahead ring of 32 chunks (≈ 512 KiB), plus one chunk for
/// `read_at`. Reads of at least 16 KiB get whole chunks opened straight
/// into the caller's buffer; smaller ones are served from a chunk opened in
/// place in the ring. After handing out data the reader asks the source
/// for the next run of the ring without waiting, so a source that reads on
/// another thread (`tokio::fs::File`) reads ahead while chunks are opened.
pub struct AsyncDecryptingReader<R> {
    inner: R,
    cipher: ChunkCipher,
    /// A ring of `READ_AHEAD_CHUNKS` slots of `CHUNK_CT_SIZE` bytes.
    /// Chunk *i* of the body lands in one slot, contiguous (the ring wraps
    /// only at slot boundaries), so it can be opened where it lies.
    buf: crate::util::SecretBuf,
    /// Ciphertext read and not yet opened: `filled` bytes from `head` (a
    /// slot boundary), wrapping at the end of the ring.
    head: usize,
    filled: usize,
    /// Plaintext of the last opened chunk not yet returned,
    /// `buf[plain_start..plain_end]`, in the slot just behind `head`, which
    /// stays reserved until it is returned.
    plain_start: usize,
    plain_end: usize,
    plain_slot: usize,
    /// A read-ahead failed: reported by the next read that needs data.
    read_error: Option<io::Error>,
    /// The source reported its end.
    eof: bool,
    /// The next chunk to open.
    index: u64,
    /// Sequential reading opened the final chunk.
    at_end: bool,
    /// Ciphertext bytes read from the source so far (from chunk 0).
    consumed: u64,
    final_len: Option<u64>,
    sticky: Option<Sticky>,
    // Random access.
    chunks_start: Option<u64>,
    claimed_len: Option<u64>,
    scratch: Option<crate::util::SecretBuf>,
}

impl<R> fmt::Debug for AsyncDecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDecryptingReader")
            .field("chunks_opened", &self.index)
            .field("authenticated_len", &self.final_len)
            .finish_non_exhaustive()
    }
}

impl<R> AsyncDecryptingReader<R> {
    /// `inner` must be positioned at chunk 0 (prefix read, commitment
    /// verified).
    pub(crate) fn new(inner: R, cipher: ChunkCipher) -> Self {
        AsyncDecryptingReader {
            inner,
            cipher,
            buf: crate::util::SecretBuf::zeroed(READ_AHEAD_CHUNKS * CHUNK_CT_SIZE),
            head: 0,
            filled: 0,
            plain_start: 0,
            plain_end: 0,
            plain_slot: 0,
            read_error: None,
            eof: false,
            index: 0,
            at_end: false,
            consumed: 0,
            final_len: None,
            sticky: None,
            chunks_start: None,
            claimed_len: None,
            scratch: None,
        }
    }

    /// The plaintext length, if the final chunk has been opened already.
    pub fn authenticated_len(&self) -> Option<u64> {
        self.final_len
    }

    /// Returns the source. Buffered plaintext is wiped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncDecryptingReader<R> {
    /// The free run of the ring the next read may fill: `(start, len)`.
    fn free_run(&mut self) -> (usize, usize) {
        let ring = self.buf.len();
        let plain_pending = self.plain_start < self.plain_end;
        let (occ_start, occ_len) = if plain_pending {
            (self.plain_slot, CHUNK_CT_SIZE + self.filled)
        } else {
            if self.filled == 0 {
                // Empty: start again at the front for the longest run.
                self.head = 0;
            }
            (self.head, self.filled)
        };
        if occ_len >= ring {
            return (0, 0);
        }
        let at = (occ_start + occ_len) % ring;
        let end = if at >= occ_start && !(at == occ_start && occ_len > 0) {
            ring
        } else {
            occ_start
        };
        (at, (end - at).min(MAX_READ))
    }

    /// Polls the source once to fill `run` (from [`Self::free_run`]).
    fn poll_source(&mut self, cx: &mut Context<'_>, run: (usize, usize)) -> Poll<io::Result<()>> {
        let (at, len) = run;
        let mut rb = ReadBuf::new(&mut self.buf[at..at + len]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            self.eof = true;
        } else {
            self.filled += n;
            self.consumed += n as u64;
        }
        Poll::Ready(Ok(()))
    }

    /// Reads until a whole chunk is buffered at `head` or the source ends.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<crate::Result<()>> {
        if let Some(e) = self.read_error.take() {
            return Poll::Ready(Err(Error::from(e)));
        }
        while self.filled < CHUNK_CT_SIZE && !self.eof {
            let run = self.free_run();
            debug_assert!(run.1 > 0, "the ring holds at most two chunks here");
            ready!(self.poll_source(cx, run))?;
        }
        Poll::Ready(Ok(()))
    }

    /// After data was handed out: if the ring has room, asks the source for
    /// more without waiting, so a source that reads on another thread
    /// (`tokio::fs::File`) fetches the next run while this one is opened.
    /// A pending answer is left to wake the task; an error is kept for the
    /// next read that needs data.
    fn read_ahead(&mut self, cx: &mut Context<'_>) {
        if self.eof || self.at_end || self.read_error.is_some() {
            return;
        }
        let run = self.free_run();
        if run.1 < MIN_READ_AHEAD {
            return;
        }
        if let Poll::Ready(Err(e)) = self.poll_source(cx, run) {
            self.read_error = Some(e);
        }
    }

    /// The piece at `head`: a whole chunk window, or what is left at the end.
    fn piece_len(&self) -> usize {
        self.filled.min(CHUNK_CT_SIZE)
    }

    /// Records an opened chunk.
    fn opened(&mut self, take: usize, d: Decoded) {
        self.head = (self.head + take) % self.buf.len();
        self.filled -= take;
        if d.is_final {
            self.final_len = Some(self.index * CHUNK + d.len as u64);
            self.at_end = true;
        }
        self.index += 1;
    }

    /// Opens the next chunk straight into `out`, which has room for a whole
    /// chunk (no copy out of the read-ahead ring). On failure `out` holds
    /// no plaintext of the chunk.
    fn poll_chunk_into(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<crate::Result<()>> {
        ready!(self.poll_fill(cx))?;
        let take = self.piece_len();
        let piece = &self.buf[self.head..self.head + take];
        let dst = out.initialize_unfilled_to(take.saturating_sub(TAG_LEN));
        let d = open_piece_into(&self.cipher, self.index, piece, dst)
            .map_err(|e| Sticky::record(&mut self.sticky, e))?;
        out.advance(d.len);
        self.opened(take, d);
        Poll::Ready(Ok(()))
    }

    /// Reads until a whole chunk window is buffered or the source ends,
    /// then opens the next chunk in place.
    fn poll_next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<crate::Result<()>> {
        ready!(self.poll_fill(cx))?;
        let take = self.piece_len();
        let at = self.head;
        let d = open_piece(&self.cipher, self.index, &mut self.buf[at..at + take])
            .map_err(|e| Sticky::record(&mut self.sticky, e))?;
        self.plain_slot = at;
        self.plain_start = at;
        self.plain_end = at + d.len;
        self.opened(take, d);
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(s) = this.sticky {
                return Poll::Ready(Err(s.error().into_io()));
            }
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.plain_start < this.plain_end {
                let n = out.remaining().min(this.plain_end - this.plain_start);
                out.put_slice(&this.buf[this.plain_start..this.plain_start + n]);
                this.plain_start += n;
                this.read_ahead(cx);
                return Poll::Ready(Ok(()));
            }
            if this.at_end {
                // The authenticated end.
                return Poll::Ready(Ok(()));
            }
            // A chunk is about to be opened: renew the key's lease without
            // blocking (the check inside the chunk engine then passes).
            ready!(this.cipher.poll_lease(cx)).map_err(Error::into_io)?;
            if out.remaining() >= CHUNK_SIZE {
                let before = out.filled().len();
                ready!(this.poll_chunk_into(cx, out)).map_err(Error::into_io)?;
                if out.filled().len() > before || this.at_end {
                    this.read_ahead(cx);
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            ready!(this.poll_next_chunk(cx)).map_err(Error::into_io)?;
        }
    }
}

/// Reads until `buf` is full or the source ends; returns the count.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: AsyncRead + AsyncSeek + Unpin> AsyncDecryptingReader<R> {
    async fn chunks_start(&mut self) -> crate::Result<u64> {
        if let Some(s) = self.chunks_start {
            return Ok(s);
        }
        let here = self.inner.stream_position().await?;
        let start = here.checked_sub(self.consumed).ok_or(Error::ApiMisuse(
            "the source was moved behind the reader's back",
        ))?;
        self.chunks_start = Some(start);
        Ok(start)
    }

    async fn claimed_body_len(&mut self) -> crate::Result<u64> {
        if let Some(l) = self.claimed_len {
            return Ok(l);
        }
        let start = self.chunks_start().await?;
        let end = self.inner.seek(SeekFrom::End(0)).await?;
        let len = end.checked_sub(start).ok_or(Error::Truncated)? + BODY_PREFIX_LEN as u64;
        self.claimed_len = Some(len);
        Ok(len)
    }

    /// Puts the source back where sequential reading left it.
    async fn restore_position(&mut self) -> crate::Result<()> {
        if let Some(start) = self.chunks_start {
            self.inner
                .seek(SeekFrom::Start(start + self.consumed))
                .await?;
        }
        Ok(())
    }

    /// Reads plaintext at `offset` into `out` without disturbing sequential
    /// reads. Returns `out.len()` bytes, or fewer only at the authenticated
    /// end (`Ok(0)` at or past it). Opens each chunk covering the range once,
    /// plus the final chunk when the range reaches the end. A failure is
    /// sticky, as for reads.
    pub async fn read_at(&mut self, offset: u64, out: &mut [u8]) -> crate::Result<usize> {
        if let Some(s) = self.sticky {
            return Err(s.error());
        }
        if out.is_empty() {
            return Ok(0);
        }
        let r = self.read_at_inner(offset, out).await;
        let restore = self.restore_position().await;
        let n = r?;
        restore?;
        Ok(n)
    }

    /// The authenticated plaintext length (opens the final chunk if needed).
    pub async fn plaintext_len(&mut self) -> crate::Result<u64> {
        if let Some(s) = self.sticky {
            return Err(s.error());
        }
        if let Some(l) = self.final_len {
            return Ok(l);
        }
        let body = self.claimed_body_len().await?;
        let claimed =
            super::layout::plaintext_len(body).map_err(|e| Sticky::record(&mut self.sticky, e))?;
        // An empty read at the claimed end opens exactly the final chunk.
        let r = self.read_range(claimed..claimed, &mut []).await;
        let restore = self.restore_position().await;
        r?;
        restore?;
        self.final_len.ok_or(Error::Truncated)
    }

    async fn read_at_inner(&mut self, offset: u64, out: &mut [u8]) -> crate::Result<usize> {
        let end = offset.saturating_add(out.len() as u64);
        self.read_range(offset..end, out).await
    }

    async fn read_range(
        &mut self,
        range: std::ops::Range<u64>,
        out: &mut [u8],
    ) -> crate::Result<usize> {
        let body = self.claimed_body_len().await?;
        let plan = RangePlan::new(range, body).map_err(|e| Sticky::record(&mut self.sticky, e))?;
        let start = self.chunks_start().await?;
        let prefix = BODY_PREFIX_LEN as u64;
        self.inner
            .seek(SeekFrom::Start(start + plan.ciphertext().start - prefix))
            .await?;
        let mut scratch = self
            .scratch
            .take()
            .unwrap_or_else(|| crate::util::SecretBuf::zeroed(CHUNK_CT_SIZE));
        let r = async {
            poll_fn(|cx| self.cipher.poll_lease(cx)).await?;
            let mut index = plan.first_chunk();
            let mut remaining = plan.ciphertext().end - plan.ciphertext().start;
            while remaining > 0 {
                let want = remaining.min(CHUNK_CT_SIZE as u64) as usize;
                let n = read_full(&mut self.inner, &mut scratch[..want]).await?;
                if n < want {
                    return Err(Error::Truncated);
                }
                let d = open_piece(&self.cipher, index, &mut scratch[..n])?;
                let expect_final = plan.includes_final_chunk() && remaining == want as u64;
                let end = deliver_range_chunk(&plan, index, d, expect_final, &scratch, out)?;
                if end.is_some() {
                    self.final_len = end;
                }
                index += 1;
                remaining -= want as u64;
            }
            Ok((plan.plaintext().end - plan.plaintext().start) as usize)
        }
        .await;
        self.scratch = Some(scratch);
        r.map_err(|e| Sticky::record(&mut self.sticky, e))
    }
}
