//! The encrypting writer.

use std::fmt;
use std::io::{self, Write};

use super::chunk::{ChunkCipher, BODY_PREFIX_LEN, CHUNK_CT_SIZE, CHUNK_SIZE};
use crate::error::Error;

/// Encrypts everything written to it into an envelope body (and, in the
/// embedded form, the header before it), chunk by chunk.
///
/// * Memory: one 16 KiB chunk buffer, allocated once; each chunk is
///   encrypted in place in it and written with its tag in one `write_all`.
/// * No KEK call happens here: keys were wrapped when the
///   [`Encryptor`](crate::Encryptor) was built.
/// * **Call [`EncryptingWriter::finish`].** It writes the final (short,
///   possibly empty) chunk that marks the end of the message. A writer
///   dropped without `finish` leaves a body that ends at a chunk boundary,
///   which every reader rejects as truncated: an aborted upload never turns
///   into a valid shorter object.
pub struct EncryptingWriter<W: Write> {
    inner: W,
    cipher: ChunkCipher,
    /// `CHUNK_CT_SIZE` bytes: plaintext of the current chunk, then room for
    /// its tag.
    buf: zeroize::Zeroizing<Vec<u8>>,
    filled: usize,
    index: u64,
    written: u64,
    poisoned: bool,
}

impl<W: Write> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("chunks_sealed", &self.index)
            .field("plaintext_bytes", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptingWriter<W> {
    /// Writes `preamble` (the header, or nothing in the detached form) and
    /// the body prefix, and returns a writer for the chunks.
    pub(crate) fn start(
        mut inner: W,
        cipher: ChunkCipher,
        preamble: &[u8],
        prefix: &[u8; BODY_PREFIX_LEN],
    ) -> crate::Result<Self> {
        if !preamble.is_empty() {
            inner.write_all(preamble)?;
        }
        inner.write_all(prefix)?;
        Ok(EncryptingWriter {
            inner,
            cipher,
            buf: zeroize::Zeroizing::new(vec![0u8; CHUNK_CT_SIZE]),
            filled: 0,
            index: 0,
            written: 0,
            poisoned: false,
        })
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.written
    }

    /// Seals the chunk in the buffer (`filled` bytes) and writes it.
    fn flush_chunk(&mut self) -> crate::Result<()> {
        let n = self.filled;
        // Poisoned until the chunk is out: the buffer now holds ciphertext,
        // and a failed seal or write must not be retried over it.
        self.poisoned = true;
        let tag = self.cipher.seal_chunk(self.index, &mut self.buf[..n])?;
        self.buf[n..n + tag.len()].copy_from_slice(&tag);
        self.inner.write_all(&self.buf[..n + tag.len()])?;
        self.poisoned = false;
        self.index += 1;
        self.filled = 0;
        Ok(())
    }

    /// Writes the final chunk, flushes, and returns the inner writer.
    ///
    /// Only after `finish` returns `Ok` is the output a complete envelope.
    pub fn finish(mut self) -> crate::Result<W> {
        if self.poisoned {
            return Err(Error::ApiMisuse(
                "a previous write failed; the output is incomplete",
            ));
        }
        // The final chunk is always shorter than CHUNK_SIZE: full chunks are
        // flushed as soon as they fill, so `filled < CHUNK_SIZE` here.
        debug_assert!(self.filled < CHUNK_SIZE);
        self.flush_chunk()?;
        self.inner.flush()?;
        let EncryptingWriter { inner, .. } = self;
        Ok(inner)
    }

    fn write_inner(&mut self, data: &[u8]) -> crate::Result<usize> {
        if self.poisoned {
            return Err(Error::ApiMisuse(
                "a previous write failed; the output is incomplete",
            ));
        }
        let mut rest = data;
        while !rest.is_empty() {
            let take = rest.len().min(CHUNK_SIZE - self.filled);
            self.buf[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == CHUNK_SIZE {
                // A full chunk is never the last one: seal it now.
                self.flush_chunk()?;
            }
        }
        self.written += data.len() as u64;
        Ok(data.len())
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_inner(data).map_err(Error::into_io)
    }

    /// Flushes the inner writer. Does **not** seal a partial chunk (only
    /// [`EncryptingWriter::finish`] may end the message).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// No `Drop` impl on purpose: finalizing on drop would turn an aborted
// stream into a valid, truncated object. The chunk buffer is `Zeroizing`, so
// buffered plaintext is wiped when the writer goes away.
