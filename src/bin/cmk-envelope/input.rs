//! Where a command reads from: a file or stdin, and how long it is.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// An input named on the command line.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Standard input (no IN, or `-`).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// `None` and `-` mean stdin.
    pub(crate) fn from_arg(arg: Option<&Path>) -> Source {
        match arg {
            None => Source::Stdin,
            Some(p) if p.as_os_str() == "-" => Source::Stdin,
            Some(p) => Source::File(p.to_path_buf()),
        }
    }

    /// "stdin" or the path, for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::Stdin => "stdin".into(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// "cannot read <name>", the context of read errors.
    pub(crate) fn read_context(&self) -> String {
        format!("cannot read {}", self.name())
    }

    /// Opens the input. Returns it and, when the input is a regular file,
    /// its length (for the progress bar).
    pub(crate) fn open(&self) -> Result<(Input, Option<u64>), CliError> {
        match self {
            Source::Stdin => Ok((Input::Stream(Box::new(io::stdin().lock())), stdin_len())),
            Source::File(p) => {
                let f = File::open(p)
                    .map_err(|e| CliError::io(&format!("cannot open {}", p.display()), e))?;
                let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                Ok((Input::File(f), len))
            }
        }
    }
}

/// An opened input: a file named on the command line (which the parallel
/// engine reads by position when it is a regular file), or a stream.
pub(crate) enum Input {
    File(File),
    Stream(Box<dyn Read>),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::File(f) => f.read(buf),
            Input::Stream(r) => r.read(buf),
        }
    }
}

/// The length of stdin when it is redirected from a regular file.
#[cfg(unix)]
fn stdin_len() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

#[cfg(not(unix))]
fn stdin_len() -> Option<u64> {
    None
}
