//! Write-then-rename files, so that a failed write never leaves a partial
//! file at the destination.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file being written beside its destination under a temporary name.
/// [`AtomicFile::commit`] flushes, fsyncs and renames it into place; if the
/// value is dropped without `commit`, the temporary file is removed, and the
/// destination is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    overwrite: bool,
}

impl AtomicFile {
    /// Starts writing `dest`. The temporary file is created with `mode`
    /// (on Unix) and exclusively, in the same directory so the final rename
    /// is atomic. With `overwrite == false`, an existing `dest` is refused
    /// now and again at commit.
    pub fn create(dest: &Path, mode: u32, overwrite: bool) -> io::Result<AtomicFile> {
        if !overwrite && dest.symlink_metadata().is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists (use --force to overwrite)",
                    dest.display()
                ),
            ));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "output path has no file name")
            })?
            .to_string_lossy()
            .into_owned();
        let mut last_err = None;
        for _ in 0..16 {
            let mut rnd = [0u8; 8];
            crate::CryptoProvider::default_provider()
                .fill_random(&mut rnd)
                .map_err(|_| io::Error::other("random number generator failed"))?;
            let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(mode);
            }
            #[cfg(not(unix))]
            let _ = mode;
            match opts.open(&tmp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        tmp,
                        dest: dest.to_path_buf(),
                        overwrite,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("cannot create a temporary file")))
    }

    /// Flushes and fsyncs the data, renames the file onto its destination
    /// and fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("file present until commit");
        file.sync_all()?;
        drop(file);
        if !self.overwrite && self.dest.symlink_metadata().is_ok() {
            let _ = fs::remove_file(&self.tmp);
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exists (use --force to overwrite)",
                    self.dest.display()
                ),
            ));
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            let _ = fs::remove_file(&self.tmp);
            return Err(e);
        }
        #[cfg(unix)]
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .expect("file present until commit")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("file present until commit")
            .flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir() -> PathBuf {
        let mut rnd = [0u8; 8];
        crate::CryptoProvider::default_provider()
            .fill_random(&mut rnd)
            .unwrap();
        let d = std::env::temp_dir().join(format!("cmk-atomic-{}", u64::from_le_bytes(rnd)));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn dropped_leaves_nothing() {
        let d = tmpdir();
        let dest = d.join("out");
        {
            let mut f = AtomicFile::create(&dest, 0o600, false).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn commit_and_no_overwrite() {
        let d = tmpdir();
        let dest = d.join("out");
        let mut f = AtomicFile::create(&dest, 0o600, false).unwrap();
        f.write_all(b"one").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            AtomicFile::create(&dest, 0o600, false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let mut f = AtomicFile::create(&dest, 0o600, true).unwrap();
        f.write_all(b"two").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"two");
        fs::remove_dir_all(d).unwrap();
    }
}
