//! A progress bar on stderr for large inputs.

use std::io::{self, IsTerminal, Read, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
pub(crate) const THRESHOLD: u64 = 64 * 1024 * 1024;

/// A progress bar, or nothing. Cleared from the terminal when dropped, so
/// that an error line printed afterwards stands alone.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` bytes, if `total` is known, over the threshold,
    /// and stderr is a terminal.
    pub(crate) fn new(total: Option<u64>, verb: &'static str) -> Progress {
        let bar = match total {
            Some(total) if total > THRESHOLD && io::stderr().is_terminal() => {
                let style = ProgressStyle::with_template(
                    "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                let bar = ProgressBar::new(total).with_style(style).with_message(verb);
                Some(bar)
            }
            _ => None,
        };
        Progress(bar)
    }

    /// A reader that advances the bar by the bytes read through it.
    pub(crate) fn reader<R: Read>(&self, inner: R) -> Counted<R> {
        Counted {
            inner,
            bar: self.0.clone(),
        }
    }
}

impl Progress {
    /// A writer that advances the bar by the bytes written through it
    /// (when the input is read elsewhere: by the parallel engine's
    /// workers).
    pub(crate) fn writer<W: Write>(&self, inner: W) -> Counted<W> {
        Counted {
            inner,
            bar: self.0.clone(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// See [`Progress::reader`] and [`Progress::writer`].
pub(crate) struct Counted<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
