//! End-to-end tests of the `cmk-envelope` binary: every test runs the built
//! executable in its own temporary directory.
#![cfg(feature = "cli")]

#[cfg(feature = "azure-cse")]
mod azure_cse;
#[cfg(feature = "blob")]
#[path = "../common/azurite.rs"]
mod azurite;
#[cfg(feature = "cosmos-ae")]
mod cosmos_ae;
mod failures;
mod keygen;
mod range;
mod rewrap;
mod round_trip;
mod scope;
mod threads;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cmk-envelope");
const CHUNK: usize = 16 * 1024;

/// A temporary working directory and helpers to run the tool in it.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    fn exists(&self, name: &str) -> bool {
        self.path(name).symlink_metadata().is_ok()
    }

    /// Runs the tool with `args`, feeding `stdin` (empty when `None`).
    fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cmk-envelope");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.unwrap_or_default().to_vec();
        // Feed stdin from another thread so a large input cannot deadlock
        // against a full stdout pipe. A broken pipe (the tool exited early)
        // is expected in failure tests.
        let feeder = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait cmk-envelope");
        feeder.join().unwrap();
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        ok(self.run(args), args)
    }

    fn ok_with(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        ok(self.run_with(args, Some(stdin)), args)
    }

    /// Generates an AES key (fast) named `file` with key id `kid`.
    fn aes_key(&self, file: &str, kid: &str) {
        let out = self.ok(&["keygen", "--alg", "A256KW", "--kid", kid, "--out", file]);
        assert_eq!(String::from_utf8(out).unwrap().trim_end(), kid);
    }

    /// No temporary file left behind by the atomic writer.
    fn assert_no_temp_files(&self) {
        for entry in fs::read_dir(self.dir.path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".tmp"),
                "temporary file left behind: {name}"
            );
        }
    }

    fn inspect(&self, file: &str) -> Value {
        serde_json::from_slice(&self.ok(&["inspect", file])).expect("inspect prints JSON")
    }
}

fn ok(out: Output, args: &[&str]) -> Vec<u8> {
    assert!(
        out.status.success(),
        "cmk-envelope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts a failure: non-zero exit and exactly one stderr line, in the
/// tool's format, mentioning `cause`. Returns the line.
fn fails(out: &Output, cause: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a failure ({cause}), stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one stderr line, got: {stderr:?}"
    );
    let line = lines[0];
    assert!(
        line.starts_with("cmk-envelope: error: "),
        "bad prefix: {line}"
    );
    assert!(line.contains(cause), "expected {cause:?} in: {line}");
    line.to_owned()
}

/// Deterministic, incompressible-looking test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0o600
    }
}

fn header_len(env: &Env, file: &str) -> usize {
    env.inspect(file)["header_len"].as_u64().unwrap() as usize
}
