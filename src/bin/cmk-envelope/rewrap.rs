//! `rewrap`: re-wraps an envelope's data key under new key-encryption keys,
//! rewriting only the header, atomically.

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::Path;

use cmk_envelope::Header;

use crate::error::CliError;
use crate::output::Output;
use crate::{block_on, keys, RewrapArgs};

/// Runs `rewrap`. With `--header H`, H (a detached header) is replaced and
/// FILE (the body) is only checked to exist: a body does not change when
/// its header is re-wrapped. Without it, FILE is an embedded envelope and is
/// replaced by a copy with the new header and the same body bytes.
///
/// Either way the replacement is a temporary file renamed over the
/// original, keeping its permissions; on any failure the original is
/// unchanged.
pub(crate) fn run(args: &RewrapArgs) -> Result<(), CliError> {
    let resolver = keys::load_resolver(&args.keks)?;
    let new_keks = keys::load_keks(&args.new_keks)?;
    let rewrap = |h: &Header| -> Result<Header, CliError> {
        block_on(cmk_envelope::rewrap(h, &resolver, &new_keks))?
            .map_err(|e| CliError::with_context("cannot re-wrap the data key", e))
    };
    match &args.header {
        Some(header_path) => {
            std::fs::metadata(&args.file)
                .map_err(|e| CliError::io(&format!("cannot open {}", args.file.display()), e))?;
            let bytes = std::fs::read(header_path)
                .map_err(|e| CliError::io(&format!("cannot read {}", header_path.display()), e))?;
            let header = Header::parse(&bytes)
                .map_err(|e| CliError::with_context(&format!("{}", header_path.display()), e))?;
            let new = rewrap(&header)?;
            replace(header_path, |out| out.write_all(&new.to_bytes()))
        }
        None => {
            let f = File::open(&args.file)
                .map_err(|e| CliError::io(&format!("cannot open {}", args.file.display()), e))?;
            let mut src = BufReader::with_capacity(256 * 1024, f);
            let header = Header::read_from(&mut src)
                .map_err(|e| CliError::with_context(&format!("{}", args.file.display()), e))?;
            let new = rewrap(&header)?;
            replace(&args.file, |out| {
                out.write_all(&new.to_bytes())?;
                io::copy(&mut src, out)?;
                Ok(())
            })
        }
    }
}

/// Writes a replacement for `path` with `fill` and renames it into place,
/// keeping the original's permission bits.
fn replace(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), CliError> {
    let mode = file_mode(path)?;
    let mut out = Output::file(path, mode, true)?;
    fill(&mut out).map_err(|e| CliError::io(&format!("cannot write {}", path.display()), e))?;
    out.commit()
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Result<u32, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path)
        .map_err(|e| CliError::io(&format!("cannot open {}", path.display()), e))?;
    Ok(m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> Result<u32, CliError> {
    Ok(crate::output::MODE_PUBLIC)
}
