//! Where a command writes to: stdout, or a file written atomically.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::CliError;

/// File mode for outputs that are not secret (ciphertext, headers).
pub(crate) const MODE_PUBLIC: u32 = 0o644;
/// File mode for plaintext outputs.
pub(crate) const MODE_PRIVATE: u32 = 0o600;

enum Sink {
    Stdout(Box<dyn Write>),
    File { tmp: NamedTempFile, force: bool },
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

    /// A file output at `dest`: a temporary file in its directory, created
    /// with `mode` (on Unix). Without `force` an existing `dest` is refused
    /// now, and the final rename never replaces one that appeared since.
    pub(crate) fn file(dest: &Path, mode: u32, force: bool) -> Result<Output, CliError> {
        let context = || format!("cannot create {}", dest.display());
        if !force && dest.symlink_metadata().is_ok() {
            return Err(CliError::msg(format!("{}: {}", context(), exists(dest))));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".cmk-envelope-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        #[cfg(not(unix))]
        let _ = mode;
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| CliError::io(&context(), e))?;
        Ok(Output {
            sink: Sink::File { tmp, force },
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

    /// Flushes stdout, or fsyncs the file, renames it into place (without
    /// `--force`, never over a file that appeared meanwhile) and fsyncs its
    /// directory.
    pub(crate) fn commit(self) -> Result<(), CliError> {
        let ctx = self.write_context();
        let (tmp, force) = match self.sink {
            Sink::Stdout(mut w) => return w.flush().map_err(|e| CliError::io(&ctx, e)),
            Sink::File { tmp, force } => (tmp, force),
        };
        let dest = self.path.expect("a file output has a path");
        tmp.as_file()
            .sync_all()
            .map_err(|e| CliError::io(&ctx, e))?;
        let persisted = if force {
            tmp.persist(&dest)
        } else {
            tmp.persist_noclobber(&dest)
        };
        // A failed persist drops the temporary file, which removes it.
        persisted.map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => CliError::msg(format!("{ctx}: {}", exists(&dest))),
            _ => CliError::io(&ctx, e.error),
        })?;
        #[cfg(unix)]
        if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                d.sync_all().map_err(|e| CliError::io(&ctx, e))?;
            }
        }
        Ok(())
    }
}

/// The refusal to replace an existing output.
fn exists(dest: &Path) -> String {
    format!(
        "{} already exists (use --force to overwrite)",
        dest.display()
    )
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
            Sink::File { tmp, .. } => tmp.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => w.write_all(buf),
            Sink::File { tmp, .. } => tmp.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::File { tmp, .. } => tmp.flush(),
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
