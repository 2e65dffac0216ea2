//! Moving bytes from a reader to a writer in large blocks.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use crate::error::CliError;

/// Size of the I/O buffers (reads, writes, copies).
pub(crate) const BUF_SIZE: usize = 256 * 1024;

/// Copies `r` to `w` until `r` reports the end, with a 256 KiB buffer that
/// is wiped afterwards (it may hold plaintext). Read failures are reported
/// with `read_ctx`, write failures with `write_ctx`; crate errors carried
/// inside `io::Error` (authentication failures) are recovered.
pub(crate) fn copy<R: Read + ?Sized, W: Write + ?Sized>(
    r: &mut R,
    w: &mut W,
    read_ctx: &str,
    write_ctx: &str,
) -> Result<u64, CliError> {
    let mut buf = Zeroizing::new(vec![0u8; BUF_SIZE]);
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf[..]) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CliError::io(read_ctx, e)),
        };
        w.write_all(&buf[..n])
            .map_err(|e| CliError::io(write_ctx, e))?;
        total += n as u64;
    }
}

/// A reader or writer that remembers whether it failed, to tell read
/// errors from write errors when one call does both (the parallel engine).
pub(crate) struct Tracked<R> {
    inner: R,
    failed: bool,
}

impl<R> Tracked<R> {
    pub(crate) fn new(inner: R) -> Self {
        Tracked {
            inner,
            failed: false,
        }
    }

    /// Whether a read returned an error (other than `Interrupted`).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        if matches!(&r, Err(e) if e.kind() != io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        r
    }
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        if matches!(&r, Err(e) if e.kind() != io::ErrorKind::Interrupted) {
            self.failed = true;
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}
