//! Whole-file writes that never leave a partial file at the destination:
//! a `tempfile` temporary file in the destination's directory, fsynced,
//! then renamed into place (`persist`, or `persist_noclobber`, which is
//! atomic: there is no window between a check and the rename), then the
//! directory fsynced so the rename survives a crash.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `dest` atomically, with file mode `mode` (on Unix,
/// subject to the umask). With `replace == false` an existing `dest` is
/// never replaced: the result is an [`io::ErrorKind::AlreadyExists`] error
/// naming the file. On any error the destination is untouched and the
/// temporary file is removed.
///
/// Cost: one file creation, one write, two fsyncs (file and directory),
/// one rename.
pub(crate) fn write(dest: &Path, mode: u32, replace: bool, bytes: &[u8]) -> io::Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".cmk-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let persisted = if replace {
        tmp.persist(dest)
    } else {
        tmp.persist_noclobber(dest)
    };
    // On failure the temporary file is dropped with the error, which
    // removes it.
    persisted.map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists and is not replaced", dest.display()),
        ),
        _ => e.error,
    })?;
    // The rename is durable once the directory is synced; a directory
    // that cannot be opened for that (some platforms) is left as it is.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_refuses_to_clobber_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        write(&dest, 0o600, false, b"one").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let e = write(&dest, 0o600, false, b"two").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("out already exists"), "{e}");
        assert!(!e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        write(&dest, 0o600, true, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        // no temporary file is left behind, after success or refusal
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn racing_writers_never_clobber() {
        // Many threads create the same file without replacing: exactly one
        // wins and the file holds its bytes (a check-then-rename would let
        // several "win" and the last rename decide).
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("contended");
        let wins: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0u8..16)
                .map(|i| {
                    let dest = &dest;
                    s.spawn(move || write(dest, 0o600, false, &[i; 64]).ok().map(|_| i))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(wins.len(), 1, "{wins:?}");
        assert_eq!(std::fs::read(&dest).unwrap(), vec![wins[0]; 64]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("no-such-dir").join("out");
        assert!(write(&dest, 0o600, true, b"x").is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
