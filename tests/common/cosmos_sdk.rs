//! The official Azure Cosmos DB JavaScript SDK's own encryption code, run
//! in Node through tests/fixtures/cosmos_ae_sdk.js (its header lists the
//! jobs). Shared by tests/cosmos_ae.rs, the CLI tests and
//! benches/cosmos_ae.rs.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The SDK's install prefix: `CMK_COSMOS_SDK_DIR`, or `.cosmos-sdk/`.
/// Panics, saying how to install it, when the SDK is not there.
pub fn sdk_dir() -> PathBuf {
    let dir = std::env::var_os("CMK_COSMOS_SDK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cosmos-sdk"));
    assert!(
        dir.join("node_modules/@azure/cosmos/package.json").exists(),
        "the Azure Cosmos DB JavaScript SDK is missing from {}: run `source scripts/cosmos-sdk.sh` \
         (scripts/test.sh does), or set CMK_COSMOS_SDK_DIR",
        dir.display()
    );
    dir
}

/// Runs the fixture on the jobs file `jobs`, with `keys` (a JSON object
/// from KEK URL to private RSA JWK) on its stdin. Panics with the
/// fixture's stderr if it fails; returns its stdout.
pub fn run(jobs: &Path, keys: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cosmos_ae_sdk.js");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(jobs)
        .env("CMK_COSMOS_SDK_DIR", sdk_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node (Node.js 20+ is needed for the SDK fixture)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(keys.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SDK fixture failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
