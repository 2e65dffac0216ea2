//! The official Azure Cosmos DB JavaScript SDK's own encryption code, run
//! in Node through tests/fixtures/cosmos_ae_sdk.js (its header lists the
//! jobs). Shared by tests/cosmos_ae.rs, the CLI tests and
//! benches/cosmos_ae.rs.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cmk_envelope::{KeyEncryptionKey, LocalKek};
use serde_json::{json, Value};

/// A test KEK the SDKs can use: an RSA key for RSA-OAEP (SHA-1) whose id
/// is a Key Vault-style key URL, with its private JWK for the fixture's
/// resolver (which finds keys by URL, as the SDKs' Key Vault resolver
/// does).
pub struct TestKek {
    /// The key URL (the KEK's id).
    pub url: String,
    /// The key, for this crate.
    pub kek: Arc<dyn KeyEncryptionKey>,
    /// The private JWK, for the fixture.
    pub jwk: Value,
}

impl TestKek {
    /// The RSA key `rsa_jwk` (a private JWK text) as KEK `url`.
    pub fn new(rsa_jwk: &str, url: String) -> TestKek {
        let mut jwk: Value = serde_json::from_str(rsa_jwk).unwrap();
        jwk["alg"] = json!("RSA-OAEP");
        jwk["kid"] = json!(url);
        let kek = Arc::new(LocalKek::from_jwk_bytes(jwk.to_string().as_bytes()).unwrap());
        TestKek { url, kek, jwk }
    }

    /// [`TestKek::new`], the key loaded from a file in `dir`: its key
    /// container (its "vault", for the same-vault rule) is `dir`.
    pub fn in_dir(rsa_jwk: &str, url: String, dir: &Path) -> TestKek {
        let mut k = TestKek::new(rsa_jwk, url);
        let file = dir.join(format!(
            "{}.jwk",
            k.url.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        std::fs::write(&file, k.jwk.to_string()).unwrap();
        k.kek = Arc::new(LocalKek::from_jwk_file(&file).unwrap());
        k
    }
}

/// How the JavaScript SDK sees a JSON value: every number is a double, an
/// integral one is written as its exact decimal (see the fixture).
pub fn js_view(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 && f.abs() < 9.3e18 {
                let i = f as i128;
                if let Ok(i) = i64::try_from(i) {
                    json!(i)
                } else {
                    json!(u64::try_from(i).unwrap())
                }
            } else {
                json!(f)
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(js_view).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), js_view(x))).collect()),
        other => other.clone(),
    }
}

/// The fixture's stdin for `keks`: a JSON object from URL to private JWK.
pub fn keys_json(keks: &[&TestKek]) -> Value {
    Value::Object(
        keks.iter()
            .map(|k| (k.url.clone(), k.jwk.clone()))
            .collect(),
    )
}

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
    run_with(jobs, keys, &[])
}

/// [`run`] for the fixture's live jobs: the SDK client talks to the
/// Cosmos DB test server (`COSMOS_ENDPOINT`, `COSMOS_KEY`), trusting its
/// test CA (`COSMOS_CA_CERT`, from scripts/cosmosdb.sh) as Node's extra CA.
pub fn run_live(jobs: &Path, keys: &str) -> String {
    let ca = std::env::var("COSMOS_CA_CERT").expect(
        "COSMOS_CA_CERT is not set: run these tests through scripts/test.sh or scripts/cosmosdb.sh",
    );
    run_with(jobs, keys, &[("NODE_EXTRA_CA_CERTS", ca.as_str())])
}

fn run_with(jobs: &Path, keys: &str, env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cosmos_ae_sdk.js");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(jobs)
        .envs(env.iter().copied())
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
