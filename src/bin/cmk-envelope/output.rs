//! Where a command writes to: stdout, or a file written atomically.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use cmk_envelope::AtomicFile;

use crate::error::CliError;

/// File mode for outputs that are not secret (ciphertext, headers).
pub(crate) const MODE_PUBLIC: u32 = 0o644;
/// File mode for plaintext outputs.
pub(crate) const MODE_PRIVATE: u32 = 0o600;

enum Sink {
    Stdout(Box<dyn Write>),
    File(AtomicFile),
}

/// An output: stdout, or a temporary file beside the destination that is
/// renamed into place by [`Output::commit`]. Dropped without `commit`, a
/// file output leaves nothing behind.
pub(crate) struct Output {
    sink: Sink,
    path: Option<PathBuf>,
}

impl Output {
    /// `None` and `-` mean stdout. A file is created now, so that an
    /// existing destination without `force` is refused before any work.
    pub(crate) fn create(dest: Option<&Path>, mode: u32, force: bool) -> Result<Output, CliError> {
        match dest {
            None => Ok(Output::stdout()),
            Some(p) if p.as_os_str() == "-" => Ok(Output::stdout()),
            Some(p) => Output::file(p, mode, force),
        }
    }

    /// A file output at `dest`.
    pub(crate) fn file(dest: &Path, mode: u32, force: bool) -> Result<Output, CliError> {
        let f = AtomicFile::create(dest, mode, force)
            .map_err(|e| CliError::io(&format!("cannot create {}", dest.display()), e))?;
        Ok(Output {
            sink: Sink::File(f),
            path: Some(dest.to_path_buf()),
        })
    }

    fn stdout() -> Output {
        Output {
            sink: Sink::Stdout(stdout_raw()),
            path: None,
        }
    }

    /// The destination file, if this is not stdout.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// "cannot write <dest>", the context of write errors.
    pub(crate) fn write_context(&self) -> String {
        match &self.path {
            Some(p) => format!("cannot write {}", p.display()),
            None => "cannot write stdout".into(),
        }
    }

    /// Flushes stdout, or fsyncs and renames the file into place.
    pub(crate) fn commit(self) -> Result<(), CliError> {
        let ctx = self.write_context();
        match self.sink {
            Sink::Stdout(mut w) => w.flush().map_err(|e| CliError::io(&ctx, e)),
            Sink::File(f) => f.commit().map_err(|e| CliError::io(&ctx, e)),
        }
    }
}

/// Flushes the buffer of `sink` and returns its output, to commit; a
/// failed flush is reported with the output's write context.
pub(crate) fn unbuffer(sink: BufWriter<Output>) -> Result<Output, CliError> {
    sink.into_inner().map_err(|e| {
        let (err, sink) = e.into_parts();
        CliError::io(&sink.get_ref().write_context(), err)
    })
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => w.write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

/// Stdout without Rust's line buffering (the tool writes binary data in
/// large blocks, and prints nothing else on stdout meanwhile).
#[cfg(unix)]
fn stdout_raw() -> Box<dyn Write> {
    use std::os::fd::AsFd;
    match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(File::from(fd)),
        Err(_) => Box::new(io::stdout()),
    }
}

#[cfg(not(unix))]
fn stdout_raw() -> Box<dyn Write> {
    Box::new(io::stdout())
}
