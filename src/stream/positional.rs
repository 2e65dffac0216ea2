//! The parallel engine over a regular file read by position.
//!
//! In [`encrypt_stream`](super::parallel::encrypt_stream) the coordinator
//! reads every group from the source before a worker can seal it, so the
//! read — a copy out of the page cache, on the build machine slower than
//! the AES-GCM it feeds — is serial. A regular file can be read at any
//! offset from any thread (`pread`), so here the thread that seals (or
//! opens) a group reads it itself: the coordinator only plans groups,
//! writes finished ones in order, and works on queued ones while the next
//! to write is not done. Reading, sealing and writing then overlap on
//! every core, with the same bounded window, the same output byte for
//! byte, and the same release rule for plaintext as the stream pipeline.
//!
//! The file is taken from its current position to the end it has when the
//! call starts. A file that changes size while it is read is an error,
//! never a silently torn object: a read that finds it shorter than
//! planned fails with "shrank", and the reader of the last group checks
//! that nothing follows the planned end ("grew").

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use super::chunk::{ChunkCipher, CHUNK_CT_SIZE, CHUNK_SIZE};
use super::parallel::{
    open_group, pipeline, seal_group, write_opened, write_sealed, Job, GROUP_CHUNKS,
};
use crate::error::Error;

/// The bytes of a regular file from `start`, `len` long, read by position.
pub(crate) struct FileSpan<'a> {
    file: &'a File,
    start: u64,
    len: u64,
}

impl<'a> FileSpan<'a> {
    /// What the parallel engine reads of `file` by position with `threads`
    /// threads: the rest of it from its current position, or `None` when
    /// it must be read as a stream instead (one thread; a pipe, terminal
    /// or device).
    pub(crate) fn for_threads(file: &'a File, threads: usize) -> io::Result<Option<FileSpan<'a>>> {
        if threads <= 1 {
            return Ok(None);
        }
        Self::rest_of(file)
    }

    /// The rest of `file` from its current position, if it is a regular
    /// file (`None` for pipes, terminals, devices: read those as streams).
    pub(crate) fn rest_of(file: &'a File) -> io::Result<Option<FileSpan<'a>>> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let start = (&*file).stream_position()?;
        Ok(Some(FileSpan {
            file,
            start,
            len: meta.len().saturating_sub(start),
        }))
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The span without its first `n` bytes (`n <= len`).
    pub(crate) fn skip(&self, n: u64) -> FileSpan<'a> {
        debug_assert!(n <= self.len);
        FileSpan {
            file: self.file,
            start: self.start + n,
            len: self.len - n,
        }
    }

    /// Fills `buf` from `offset` within the span.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match read_at(
                self.file,
                &mut buf[done..],
                self.start + offset + done as u64,
            ) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the input file shrank while it was being read",
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Checks that the file ends where the span does.
    fn check_end(&self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        loop {
            match read_at(self.file, &mut probe, self.start + self.len) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(io::Error::other(
                        "the input file grew while it was being read",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the `job.len` bytes of group `job.seq` (groups `group` bytes
    /// long) into `into(job)`; in the last group, checks the end too. A
    /// failure is left in `job.error`.
    fn read_group(&self, job: &mut Job, group: usize, into: fn(&mut Job) -> &mut [u8]) -> bool {
        let offset = job.seq * group as u64;
        let len = job.len;
        let r = self
            .read_exact_at(&mut into(job)[..len], offset)
            .and_then(|()| if job.eof { self.check_end() } else { Ok(()) });
        match r {
            Ok(()) => true,
            Err(e) => {
                job.error = Some(Error::Io(e));
                false
            }
        }
    }

    /// Leaves the file position at the end of the span, where a
    /// sequential read of it would have left it.
    fn seek_past(&self) -> io::Result<()> {
        (&*self.file).seek(SeekFrom::Start(self.start + self.len))?;
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Plans the groups of a span `len` bytes long, `group` bytes each: the
/// next group's length, and whether it is the last (short, possibly
/// empty — a span that is a whole number of groups ends with an empty
/// one, as a stream ends with an empty read).
fn plan(job: &mut Job, next: &mut u64, len: u64, group: usize) {
    let rest = len - *next;
    job.len = rest.min(group as u64) as usize;
    job.eof = job.len < group;
    *next += job.len as u64;
}

/// Runs the pipeline over `span` in groups of `group` bytes: each group
/// is planned on the coordinator, read into `into(job)` and handed to
/// `work` on whichever thread takes it, and consumed in order.
fn run<F, C>(
    span: &FileSpan<'_>,
    threads: usize,
    group: usize,
    into: fn(&mut Job) -> &mut [u8],
    work: F,
    consume: C,
) -> crate::Result<()>
where
    F: Fn(&mut Job) + Sync,
    C: FnMut(&mut Job) -> crate::Result<()>,
{
    let mut next = 0u64;
    pipeline(
        threads,
        |job| {
            plan(job, &mut next, span.len, group);
            Ok(())
        },
        |job| {
            if span.read_group(job, group, into) {
                work(job);
            }
        },
        consume,
    )?;
    span.seek_past()?;
    Ok(())
}

/// Encrypts `span` (plaintext) to `writer` (chunks only: the caller wrote
/// the header and the body prefix) on `threads` threads that each read
/// their own group. Returns the plaintext length. Does not flush.
pub(crate) fn encrypt_file<W: Write>(
    cipher: &ChunkCipher,
    span: &FileSpan<'_>,
    mut writer: W,
    threads: usize,
) -> crate::Result<u64> {
    run(
        span,
        threads,
        GROUP_CHUNKS * CHUNK_SIZE,
        |j| &mut j.plain[..],
        |job| seal_group(cipher, job),
        |job| write_sealed(&mut writer, job),
    )?;
    Ok(span.len)
}

/// Decrypts `span` (the chunks of a body, after its prefix) to `writer` on
/// `threads` threads that each read their own group. Plaintext is written
/// in order, a group's only after it and every group before it verified;
/// returns the plaintext length once the final chunk authenticated. Does
/// not flush.
pub(crate) fn decrypt_file<W: Write>(
    cipher: &ChunkCipher,
    span: &FileSpan<'_>,
    mut writer: W,
    threads: usize,
) -> crate::Result<u64> {
    let mut total = 0u64;
    run(
        span,
        threads,
        GROUP_CHUNKS * CHUNK_CT_SIZE,
        |j| &mut j.buf[..],
        |job| open_group(cipher, job),
        |job| {
            total += write_opened(&mut writer, job)?;
            Ok(())
        },
    )?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f
    }

    #[test]
    fn span_is_the_rest_from_the_cursor() {
        let f = file(b"0123456789");
        let span = FileSpan::rest_of(&f).unwrap().expect("regular file");
        assert_eq!(span.len(), 7);
        let mut buf = [0u8; 4];
        span.skip(2).read_exact_at(&mut buf, 1).unwrap();
        assert_eq!(&buf, b"6789");
        span.check_end().unwrap();
        span.seek_past().unwrap();
        assert_eq!((&f).stream_position().unwrap(), 10);
    }

    #[test]
    fn a_file_that_changes_size_is_an_error() {
        let f = file(b"0123456789");
        let span = FileSpan::rest_of(&f).unwrap().expect("regular file");
        (&f).seek(SeekFrom::End(0)).unwrap();
        (&f).write_all(b"more").unwrap();
        let e = span.check_end().unwrap_err();
        assert!(e.to_string().contains("grew"), "{e}");
        f.set_len(5).unwrap();
        let mut buf = [0u8; 7];
        let e = span.read_exact_at(&mut buf, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("shrank"), "{e}");
    }
}
