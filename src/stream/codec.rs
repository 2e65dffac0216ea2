//! The chunk logic shared by every driver of the chunk engine (the sync
//! writer and reader, the tokio adapters, the parallel engine and the
//! random-access fan-out): how a chunk read from a stream is classified
//! and opened, how a chunk is sealed into its slot, and the plaintext
//! buffering of the writers. I/O lives in the drivers; the rules live here,
//! once.

use std::io::{self, Read};

use super::chunk::{ChunkCipher, CHUNK_CT_SIZE, CHUNK_SIZE, TAG_LEN};
use super::layout::RangePlan;
use crate::error::Error;

/// A failure that, once seen by a reader, every later read reports again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sticky {
    Truncated,
    Chunk(u64),
}

impl Sticky {
    pub(crate) fn error(self) -> Error {
        match self {
            Sticky::Truncated => Error::Truncated,
            Sticky::Chunk(chunk) => Error::ChunkAuthentication { chunk },
        }
    }

    /// Records `e` in `slot` if it is an authentication failure; returns it.
    pub(crate) fn record(slot: &mut Option<Sticky>, e: Error) -> Error {
        match e {
            Error::Truncated => *slot = Some(Sticky::Truncated),
            Error::ChunkAuthentication { chunk } => *slot = Some(Sticky::Chunk(chunk)),
            _ => {}
        }
        e
    }
}

/// An opened chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Plaintext bytes (at the start of the piece).
    pub(crate) len: usize,
    /// Whether this was the final (short) chunk: the end of the message.
    pub(crate) is_final: bool,
}

/// Opens one *piece*: the bytes found where chunk `index` starts, read in
/// windows of [`CHUNK_CT_SIZE`] bytes (so at most that many; fewer only
/// when the source ended).
///
/// * fewer than [`TAG_LEN`] bytes: [`Error::Truncated`] (the source ended
///   right after a full chunk, so the final chunk is missing, or inside a
///   tag);
/// * a short piece is the final chunk; a full one never is. Data trailing
///   the final chunk therefore makes a full-size piece whose tag fails.
///
/// Decrypts in place; on failure the piece holds no plaintext.
pub(crate) fn open_piece(
    cipher: &ChunkCipher,
    index: u64,
    piece: &mut [u8],
) -> crate::Result<Decoded> {
    debug_assert!(piece.len() <= CHUNK_CT_SIZE);
    if piece.len() < TAG_LEN {
        return Err(Error::Truncated);
    }
    let is_final = piece.len() < CHUNK_CT_SIZE;
    let len = cipher.open_chunk_with_tag(index, piece)?;
    Ok(Decoded { len, is_final })
}

/// [`open_piece`] from a borrowed piece into `out` (at least the piece's
/// data length), out of place: no copy of the ciphertext. On failure `out`
/// holds no plaintext.
pub(crate) fn open_piece_into(
    cipher: &ChunkCipher,
    index: u64,
    piece: &[u8],
    out: &mut [u8],
) -> crate::Result<Decoded> {
    debug_assert!(piece.len() <= CHUNK_CT_SIZE);
    if piece.len() < TAG_LEN {
        return Err(Error::Truncated);
    }
    let is_final = piece.len() < CHUNK_CT_SIZE;
    let (data, tag) = piece.split_at(piece.len() - TAG_LEN);
    let tag: &[u8; TAG_LEN] = tag.try_into().expect("tag length");
    cipher.open_chunk_to(index, data, tag, &mut out[..data.len()])?;
    Ok(Decoded {
        len: data.len(),
        is_final,
    })
}

/// Hands one opened chunk of a range read to the caller: checks that chunk
/// `index` is final exactly when the range's last piece should be
/// (`expect_final`) — a full chunk where the final one was claimed, or a
/// short one anywhere else, is a truncation — then copies the part of its
/// plaintext (`d.len` bytes at the start of `plaintext`) that falls in
/// `plan.plaintext()` to its place in `out`, which holds that range from its
/// start. Returns the object's authenticated plaintext length when this
/// was the final chunk. Every range reader (sync, parallel, async, and
/// [`RangeDecryptor::decrypt_range`](crate::RangeDecryptor::decrypt_range))
/// goes through here.
pub(crate) fn deliver_range_chunk(
    plan: &RangePlan,
    index: u64,
    d: Decoded,
    expect_final: bool,
    plaintext: &[u8],
    out: &mut [u8],
) -> crate::Result<Option<u64>> {
    if d.is_final != expect_final {
        return Err(Error::Truncated);
    }
    let start = index * CHUNK_SIZE as u64;
    let range = plan.plaintext();
    let lo = range.start.max(start);
    let hi = range.end.min(start + d.len as u64);
    if lo < hi {
        let src = (lo - start) as usize;
        let dst = (lo - range.start) as usize;
        let n = (hi - lo) as usize;
        out[dst..dst + n].copy_from_slice(&plaintext[src..src + n]);
    }
    Ok(d.is_final.then_some(start + d.len as u64))
}

/// Seals chunk `index`, whose `n` plaintext bytes are at the start of
/// `slot`, in place, and writes its tag right after them. Returns the
/// ciphertext length `n + TAG_LEN`. `slot` holds at least that many bytes.
pub(crate) fn seal_piece(
    cipher: &ChunkCipher,
    index: u64,
    slot: &mut [u8],
    n: usize,
) -> crate::Result<usize> {
    debug_assert!(n <= CHUNK_SIZE);
    let tag = cipher.seal_chunk(index, &mut slot[..n])?;
    slot[n..n + TAG_LEN].copy_from_slice(&tag);
    Ok(n + TAG_LEN)
}

/// Seals chunk `index` from `plaintext` into `slot`, out of place, with its
/// tag right after the ciphertext. Returns `plaintext.len() + TAG_LEN`.
/// `slot` holds at least that many bytes.
pub(crate) fn seal_piece_from(
    cipher: &ChunkCipher,
    index: u64,
    plaintext: &[u8],
    slot: &mut [u8],
) -> crate::Result<usize> {
    let n = plaintext.len();
    debug_assert!(n <= CHUNK_SIZE);
    let (ct, rest) = slot.split_at_mut(n);
    let tag = cipher.seal_chunk_to(index, plaintext, ct)?;
    rest[..TAG_LEN].copy_from_slice(&tag);
    Ok(n + TAG_LEN)
}

/// Reads until `buf` is full or EOF; returns the count.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    fill(r, buf, &mut n)?;
    Ok(n)
}

/// Reads into `buf[*filled..]` until `buf` is full or EOF, counting in
/// `filled` as it goes: after an error, `buf[..*filled]` holds every byte
/// read so far, so a caller can keep them and resume rather than lose its
/// place in the stream.
pub(crate) fn fill<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    filled: &mut usize,
) -> io::Result<()> {
    while *filled < buf.len() {
        match r.read(&mut buf[*filled..]) {
            Ok(0) => break,
            Ok(k) => *filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The buffering of a sequential encrypting writer (sync or async): takes
/// plaintext into a one-chunk buffer, seals each chunk as soon as it is
/// full — a full chunk is never the last — and hands out the sealed bytes
/// for the driver to write. Only [`ChunkEncoder::seal_final`] seals a short
/// chunk, which ends the message.
pub(crate) struct ChunkEncoder {
    cipher: ChunkCipher,
    /// Plaintext of the current chunk, or, once sealed, its ciphertext
    /// and tag.
    buf: crate::util::SecretBuf,
    filled: usize,
    /// When non-zero, `buf[out_pos..sealed]` is sealed output not yet
    /// written by the driver.
    sealed: usize,
    out_pos: usize,
    index: u64,
    plaintext_len: u64,
    finished: bool,
    /// A seal failed: the buffer may hold partial ciphertext, which must
    /// never be sealed again. Every later call fails.
    broken: bool,
}

impl ChunkEncoder {
    pub(crate) fn new(cipher: ChunkCipher) -> Self {
        ChunkEncoder {
            cipher,
            buf: crate::util::SecretBuf::zeroed(CHUNK_CT_SIZE),
            filled: 0,
            sealed: 0,
            out_pos: 0,
            index: 0,
            plaintext_len: 0,
            finished: false,
            broken: false,
        }
    }

    /// The chunk cipher (for async drivers to renew its lease).
    #[cfg(feature = "tokio")]
    pub(crate) fn cipher(&self) -> &ChunkCipher {
        &self.cipher
    }

    /// Sealed bytes waiting to be written (empty when none).
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.out_pos..self.sealed]
    }

    /// Marks `n` bytes of [`ChunkEncoder::pending`] as written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.out_pos += n;
        debug_assert!(self.out_pos <= self.sealed);
        if self.out_pos == self.sealed {
            self.sealed = 0;
            self.out_pos = 0;
            self.filled = 0;
        }
    }

    /// Takes plaintext into the current chunk and returns how much it took
    /// (0 while sealed output is pending, or after the end). Seals the chunk
    /// when it fills.
    pub(crate) fn absorb(&mut self, data: &[u8]) -> crate::Result<usize> {
        self.check()?;
        if self.sealed != 0 || self.finished {
            return Ok(0);
        }
        if self.filled == 0 && data.len() >= CHUNK_SIZE {
            // A whole chunk in the caller's slice: seal it straight from
            // there into the buffer (no plaintext copy). A full chunk is
            // never the last, as below.
            self.filled = CHUNK_SIZE;
            self.plaintext_len += CHUNK_SIZE as u64;
            self.seal_current(Some(&data[..CHUNK_SIZE]))?;
            return Ok(CHUNK_SIZE);
        }
        let take = data.len().min(CHUNK_SIZE - self.filled);
        self.buf[self.filled..self.filled + take].copy_from_slice(&data[..take]);
        self.filled += take;
        self.plaintext_len += take as u64;
        if self.filled == CHUNK_SIZE {
            self.seal_current(None)?;
        }
        Ok(take)
    }

    fn check(&self) -> crate::Result<()> {
        if self.broken {
            return Err(Error::ApiMisuse(
                "a previous seal failed; the output is incomplete",
            ));
        }
        Ok(())
    }

    /// Seals the current chunk into the buffer: from `src` (a whole chunk
    /// of the caller's, out of place) or from the `filled` plaintext bytes
    /// already in the buffer (in place).
    fn seal_current(&mut self, src: Option<&[u8]>) -> crate::Result<()> {
        // Broken until the seal succeeds: a failed seal may have left
        // ciphertext in the buffer, and it must not be sealed again.
        self.broken = true;
        self.sealed = match src {
            Some(pt) => seal_piece_from(&self.cipher, self.index, pt, &mut self.buf)?,
            None => seal_piece(&self.cipher, self.index, &mut self.buf, self.filled)?,
        };
        self.broken = false;
        self.out_pos = 0;
        self.index += 1;
        Ok(())
    }

    /// Seals the final, short (possibly empty) chunk. Call only when nothing
    /// is pending.
    pub(crate) fn seal_final(&mut self) -> crate::Result<()> {
        self.check()?;
        if self.finished {
            return Err(Error::Internal("the message was already finished"));
        }
        if self.sealed != 0 {
            return Err(Error::Internal("sealed output is still pending"));
        }
        // Full chunks are sealed as soon as they fill, so this one is short.
        debug_assert!(self.filled < CHUNK_SIZE);
        self.seal_current(None)?;
        self.finished = true;
        Ok(())
    }

    /// Plaintext bytes accepted so far.
    pub(crate) fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Chunks sealed so far.
    pub(crate) fn chunks_sealed(&self) -> u64 {
        self.index
    }
}
