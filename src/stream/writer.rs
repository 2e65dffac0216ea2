//! The encrypting writer.

use std::fmt;
use std::io::{self, Write};

use super::chunk::{ChunkCipher, BODY_PREFIX_LEN};
use super::codec::ChunkEncoder;
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
    enc: ChunkEncoder,
    poisoned: bool,
}

impl<W: Write> fmt::Debug for EncryptingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptingWriter")
            .field("chunks_sealed", &self.enc.chunks_sealed())
            .field("plaintext_bytes", &self.enc.plaintext_len())
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
            enc: ChunkEncoder::new(cipher),
            poisoned: false,
        })
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.enc.plaintext_len()
    }

    /// Writes the sealed chunk, if any, in one `write_all`.
    fn drain(&mut self) -> crate::Result<()> {
        let pending = self.enc.pending();
        if !pending.is_empty() {
            let n = pending.len();
            self.poisoned = true; // until the write completes
            self.inner.write_all(pending)?;
            self.poisoned = false;
            self.enc.advance(n);
        }
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
        self.drain()?;
        self.enc.seal_final()?;
        self.drain()?;
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
            let took = self.enc.absorb(rest)?;
            rest = &rest[took..];
            // A full chunk is never the last one: it was sealed, write it.
            self.drain()?;
        }
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
// stream into a valid, truncated object. The chunk buffer is a `SecretBuf`, so
// buffered plaintext is wiped when the writer goes away.
