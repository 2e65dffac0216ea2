//! End-to-end tests of the `cmk-envelope` binary: every test runs the built
//! executable in its own temporary directory.
#![cfg(feature = "cli")]

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

// ---------------------------------------------------------------- keygen

#[test]
fn keygen_aes_algorithms() {
    let env = Env::new();
    for alg in ["A256KW", "A256KWP"] {
        let file = format!("{alg}.jwk");
        let kid = format!("kid-{alg}");
        let out = env.ok(&["keygen", "--alg", alg, "--kid", &kid, "--out", &file]);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{kid}\n"));
        assert_eq!(mode(&env.path(&file)), 0o600);
        let jwk: Value = serde_json::from_slice(&env.read(&file)).unwrap();
        assert_eq!(jwk["kty"], "oct");
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["kid"], kid.as_str());
    }
    // Without --kid a random one is chosen and printed.
    let out = env.ok(&["keygen", "--alg", "A256KWP", "--out", "random.jwk"]);
    let kid = String::from_utf8(out).unwrap();
    assert!(kid.starts_with("local-") && kid.ends_with('\n'), "{kid:?}");
    let jwk: Value = serde_json::from_slice(&env.read("random.jwk")).unwrap();
    assert_eq!(jwk["kid"], kid.trim_end());
    // --bits is for RSA only.
    let out = env.run(&[
        "keygen", "--alg", "A256KW", "--bits", "3072", "--out", "bits.jwk",
    ]);
    fails(&out, "--bits");
    assert!(!env.exists("bits.jwk"));
    // An unknown algorithm is a usage error, still one line.
    let out = env.run(&["keygen", "--alg", "RSA1_5", "--out", "x.jwk"]);
    fails(&out, "RSA1_5");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keygen_rsa_and_round_trip() {
    let env = Env::new();
    for (alg, file, bits) in [
        ("RSA-OAEP-256", "r256.jwk", Some("3072")),
        ("RSA-OAEP", "r1.jwk", None),
    ] {
        let mut args = vec!["keygen", "--alg", alg, "--kid", file, "--out", file];
        if let Some(b) = bits {
            args.extend(["--bits", b]);
        }
        assert_eq!(env.ok(&args), format!("{file}\n").into_bytes());
        assert_eq!(mode(&env.path(file)), 0o600);
        let jwk: Value = serde_json::from_slice(&env.read(file)).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], alg);
        assert!(jwk["d"].is_string(), "a private JWK");
    }
    let plain = data(40_000, 1);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "r256.jwk",
        "--kek",
        "r1.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    let h = env.inspect("e");
    let keys = h["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["alg"], "RSA-OAEP-256");
    assert_eq!(keys[1]["alg"], "RSA-OAEP");
    assert_eq!(keys[0]["wrapped_len"], 384);
    for key in ["r256.jwk", "r1.jwk"] {
        assert_eq!(
            env.ok(&["decrypt", "--kek", key, "--context", "c", "e"]),
            plain
        );
    }
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let env = Env::new();
    env.write("k.jwk", b"keep me");
    let out = env.run(&["keygen", "--alg", "A256KW", "--out", "k.jwk"]);
    fails(&out, "already exists");
    assert_eq!(env.read("k.jwk"), b"keep me");
    assert!(out.stdout.is_empty());
    env.ok(&[
        "keygen", "--alg", "A256KW", "--kid", "new", "--out", "k.jwk", "--force",
    ]);
    let jwk: Value = serde_json::from_slice(&env.read("k.jwk")).unwrap();
    assert_eq!(jwk["kid"], "new");
    assert_eq!(mode(&env.path("k.jwk")), 0o600);
    env.assert_no_temp_files();
}

// ------------------------------------------------------------ round trips

#[test]
fn round_trip_embedded_files() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    for (i, len) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 100]
        .into_iter()
        .enumerate()
    {
        let plain = data(len, i as u64);
        env.write("p", &plain);
        env.ok(&[
            "encrypt",
            "--kek",
            "k.jwk",
            "--context",
            "obj/1",
            "-o",
            "e",
            "--force",
            "p",
        ]);
        assert_eq!(mode(&env.path("e")) & 0o600, 0o600);
        let out = env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "obj/1",
            "-o",
            "d",
            "--force",
            "e",
        ]);
        assert!(out.is_empty());
        assert_eq!(env.read("d"), plain, "len {len}");
        assert_eq!(mode(&env.path("d")), 0o600, "plaintext output is private");
    }
    env.assert_no_temp_files();
}

#[test]
fn round_trip_stdin_stdout() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let plain = data(100_000, 7);
    let env_bytes = env.ok_with(&["encrypt", "--kek", "k.jwk", "--context", "c"], &plain);
    assert_eq!(&env_bytes[..4], b"CMKE");
    let back = env.ok_with(&["decrypt", "--kek", "k.jwk", "--context", "c"], &env_bytes);
    assert_eq!(back, plain);
    // `-` means stdin / stdout too.
    let env2 = env.ok_with(
        &[
            "encrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "-",
            "-",
        ],
        &plain,
    );
    assert_eq!(
        env.ok_with(&["decrypt", "--kek", "k.jwk", "--context", "c", "-"], &env2),
        plain
    );
    // inspect reads stdin too.
    let h: Value = serde_json::from_slice(&env.ok_with(&["inspect"], &env_bytes)).unwrap();
    assert_eq!(h["keys"][0]["kid"], "k");
}

#[test]
fn round_trip_detached() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let plain = data(70_000, 3);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header-out",
        "h",
        "-o",
        "body",
        "p",
    ]);
    let h = env.inspect("h");
    let hl = h["header_len"].as_u64().unwrap() as usize;
    assert_eq!(env.read("h").len(), hl);
    assert_ne!(&env.read("body")[..4], b"CMKE", "the body holds no header");
    // The body alone is not an envelope.
    fails(
        &env.run(&["inspect", "body"]),
        "corrupted or truncated input",
    );
    // Header from a file, body from a file or stdin.
    env.ok(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header",
        "h",
        "-o",
        "d",
        "body",
    ]);
    assert_eq!(env.read("d"), plain);
    let body = env.read("body");
    assert_eq!(
        env.ok_with(
            &[
                "decrypt",
                "--kek",
                "k.jwk",
                "--context",
                "c",
                "--header",
                "h"
            ],
            &body
        ),
        plain
    );
    // Body to stdout, header to a file.
    let body2 = env.ok_with(
        &[
            "encrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--header-out",
            "h2",
        ],
        &plain,
    );
    assert_eq!(
        body2.len(),
        56 + 4 * (CHUNK + 16) + (70_000 - 4 * CHUNK) + 16
    );
    assert_eq!(
        env.ok_with(
            &[
                "decrypt",
                "--kek",
                "k.jwk",
                "--context",
                "c",
                "--header",
                "h2"
            ],
            &body2
        ),
        plain
    );
    // header || body is the embedded form.
    let mut embedded = env.read("h2");
    embedded.extend_from_slice(&body2);
    assert_eq!(
        env.ok_with(&["decrypt", "--kek", "k.jwk", "--context", "c"], &embedded),
        plain
    );
    // The header of one envelope does not open the body of another.
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header",
        "h2",
        "-o",
        "x",
        "body",
    ]);
    fails(&out, "wrong context or profile");
    assert!(!env.exists("x"));
    // An embedded envelope given as a detached header is refused.
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header",
        "e",
        "body",
    ]);
    fails(&out, "corrupted or truncated input");
    env.assert_no_temp_files();
}

#[test]
fn multiple_keks_either_opens() {
    let env = Env::new();
    env.aes_key("a.jwk", "key-a");
    env.ok(&[
        "keygen", "--alg", "A256KWP", "--kid", "key-b", "--out", "b.jwk",
    ]);
    let plain = data(20_000, 9);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "a.jwk",
        "--kek",
        "b.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    let h = env.inspect("e");
    let kids: Vec<&str> = h["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["key-a", "key-b"]);
    assert_eq!(h["keys"][1]["alg"], "A256KWP");
    for keks in [
        &["--kek", "a.jwk"][..],
        &["--kek", "b.jwk"],
        &["--kek", "b.jwk", "--kek", "a.jwk"],
    ] {
        let mut args = vec!["decrypt", "--context", "c", "e"];
        args.extend_from_slice(keks);
        assert_eq!(env.ok(&args), plain, "{keks:?}");
    }
}

#[test]
fn profiles_are_bound() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    env.write("p", b"segment data");
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "idx/seg1",
        "--profile",
        "index",
        "-o",
        "e",
        "p",
    ]);
    assert_eq!(env.inspect("e")["profile"], "index");
    let args = [
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "idx/seg1",
        "--profile",
        "index",
        "e",
    ];
    assert_eq!(env.ok(&args), b"segment data");
    for profile in ["blob", "document"] {
        let out = env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "idx/seg1",
            "--profile",
            profile,
            "-o",
            "d",
            "e",
        ]);
        fails(&out, "wrong context or profile");
        assert!(!env.exists("d"));
    }
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "doc",
        "--profile",
        "document",
        "-o",
        "e2",
        "p",
    ]);
    assert_eq!(env.inspect("e2")["profile"], "document");
}

#[test]
fn inspect_prints_exact_fields() {
    let env = Env::new();
    env.aes_key("k.jwk", "my-kid");
    env.write("p", b"x");
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    let h = env.inspect("e");
    let obj = h.as_object().unwrap();
    let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["header_len", "keys", "profile", "suite", "version"]
    );
    assert_eq!(h["version"], 1);
    assert_eq!(h["suite"], 1);
    assert_eq!(h["profile"], "blob");
    // 12 fixed bytes + alg, two lengths, kid and a 40-byte A256KW wrap.
    assert_eq!(h["header_len"], 12 + 5 + "my-kid".len() + 40);
    let key = h["keys"][0].as_object().unwrap();
    let mut kfields: Vec<&str> = key.keys().map(String::as_str).collect();
    kfields.sort_unstable();
    assert_eq!(kfields, ["alg", "kid", "wrapped_len"]);
    assert_eq!(key["alg"], "A256KW");
    assert_eq!(key["kid"], "my-kid");
    assert_eq!(key["wrapped_len"], 40);
    // Inspect needs no key, and rejects what is not an envelope.
    env.write("junk", b"this is not an envelope at all");
    fails(
        &env.run(&["inspect", "junk"]),
        "corrupted or truncated input",
    );
    fails(&env.run(&["inspect", "missing"]), "missing");
}

// ----------------------------------------------------------------- ranges

#[test]
fn range_reads_slices() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let len = 3 * CHUNK + 1_000; // chunks 0..=2 full, chunk 3 final
    let plain = data(len, 11);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header-out",
        "h",
        "-o",
        "body",
        "p",
    ]);
    let cases: &[(u64, u64)] = &[
        (0, 10),
        (0, 0),
        (5, 5),
        (CHUNK as u64 - 4, CHUNK as u64 + 4), // crosses chunk 0/1
        (CHUNK as u64, 2 * CHUNK as u64),     // exactly chunk 1
        (CHUNK as u64 - 1, 3 * CHUNK as u64 + 1), // crosses three boundaries
        (100, len as u64 - 100),
        (0, len as u64),
        (len as u64 - 10, len as u64 + 10_000), // past the end: clipped
        (len as u64, len as u64 + 5),           // at the end: empty
        (len as u64 + 100, len as u64 + 200),   // wholly past the end
        (2 * CHUNK as u64 + 7, u64::MAX),
    ];
    for &(start, end) in cases {
        let spec = format!("{start}:{end}");
        let lo = (start as usize).min(len);
        let hi = (end.min(len as u64)) as usize;
        let want = &plain[lo..hi.max(lo)];
        let got = env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            &spec,
            "e",
        ]);
        assert_eq!(got, want, "embedded {spec}");
        let got = env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--header",
            "h",
            "--range",
            &spec,
            "body",
        ]);
        assert_eq!(got, want, "detached {spec}");
    }
    // Open-ended forms, and output to a file.
    assert_eq!(
        env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            ":10",
            "e"
        ]),
        &plain[..10]
    );
    let spec = format!("{}:", len - 5);
    assert_eq!(
        env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            &spec,
            "e"
        ]),
        &plain[len - 5..]
    );
    env.ok(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--range",
        "16000:17000",
        "-o",
        "r",
        "e",
    ]);
    assert_eq!(env.read("r"), &plain[16_000..17_000]);
    // Bad specs are usage errors.
    fails(
        &env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            "10:5",
            "e",
        ]),
        "after END",
    );
    fails(
        &env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            "abc",
            "e",
        ]),
        "START:END",
    );
}

#[test]
fn range_needs_a_file() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let e = env.ok_with(&["encrypt", "--kek", "k.jwk", "--context", "c"], b"hello");
    let out = env.run_with(
        &[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            "0:2",
        ],
        Some(&e),
    );
    let line = fails(&out, "--range");
    assert!(line.contains("file") && line.contains("stdin"), "{line}");
    let out = env.run_with(
        &[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            "0:2",
            "-o",
            "o",
            "-",
        ],
        Some(&e),
    );
    fails(&out, "--range");
    assert!(!env.exists("o"));
}

#[test]
fn range_detects_tampering_in_the_range() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let plain = data(3 * CHUNK, 5);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    let mut e = env.read("e");
    let hl = header_len(&env, "e");
    e[hl + 56 + (CHUNK + 16) + 100] ^= 0x01; // inside chunk 1
    env.write("bad", &e);
    // A range not touching chunk 1 still reads...
    let got = env.ok(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--range",
        "0:100",
        "bad",
    ]);
    assert_eq!(got, &plain[..100]);
    // ...one that does fails, and leaves no file.
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--range",
        "100:20000",
        "-o",
        "o",
        "bad",
    ]);
    fails(&out, "corrupted or truncated input");
    assert!(!env.exists("o"));
    env.assert_no_temp_files();
}

// --------------------------------------------------------------- failures

/// Sets up `k.jwk` (kid "k") and an envelope `e` of `p` under context "c".
fn sealed(len: usize) -> (Env, Vec<u8>) {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let plain = data(len, 42);
    env.write("p", &plain);
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "p",
    ]);
    (env, plain)
}

#[test]
fn fails_wrong_key() {
    let (env, _) = sealed(30_000);
    // Same kid, different key material.
    env.aes_key("other.jwk", "k");
    let out = env.run(&[
        "decrypt",
        "--kek",
        "other.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "e",
    ]);
    let line = fails(&out, "wrong key");
    assert!(!env.exists("out"));
    env.assert_no_temp_files();
    // No key material in the message.
    for file in ["k.jwk", "other.jwk"] {
        let jwk: Value = serde_json::from_slice(&env.read(file)).unwrap();
        assert!(!line.contains(jwk["k"].as_str().unwrap()));
    }
    // A modified wrapped key is reported the same way.
    let mut e = env.read("e");
    let hl = header_len(&env, "e");
    e[hl - 3] ^= 0x80;
    env.write("e2", &e);
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "e2",
    ]);
    fails(&out, "wrong key");
    assert!(!env.exists("out"));
}

#[test]
fn fails_wrong_context() {
    let (env, _) = sealed(30_000);
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "C",
        "-o",
        "out",
        "e",
    ]);
    fails(&out, "wrong context or profile");
    assert!(!env.exists("out"));
    // To stdout nothing is released either: the commitment fails first.
    let out = env.run(&["decrypt", "--kek", "k.jwk", "--context", "other"]);
    fails(&out, "corrupted or truncated input"); // empty stdin
    let out = env.run_with(
        &["decrypt", "--kek", "k.jwk", "--context", "other"],
        Some(&env.read("e")),
    );
    fails(&out, "wrong context or profile");
    assert!(out.stdout.is_empty());
    env.assert_no_temp_files();
}

#[test]
fn fails_wrong_profile() {
    let (env, _) = sealed(30_000);
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--profile",
        "index",
        "-o",
        "out",
        "e",
    ]);
    fails(&out, "wrong context or profile");
    assert!(!env.exists("out"));
    env.assert_no_temp_files();
}

#[test]
fn fails_truncated_input() {
    let (env, _) = sealed(3 * CHUNK + 500);
    let e = env.read("e");
    let hl = header_len(&env, "e");
    let cuts = [
        5,                               // inside the fixed header
        hl - 1,                          // inside the wrapped key
        hl + 30,                         // inside salt/commitment
        hl + 56 + (CHUNK + 16),          // right after a full chunk
        hl + 56 + 3 * (CHUNK + 16) + 10, // inside the final chunk's tag
        e.len() - 1,                     // one byte short
    ];
    for cut in cuts {
        env.write("t", &e[..cut]);
        let out = env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "out",
            "t",
        ]);
        fails(&out, "corrupted or truncated input");
        assert!(!env.exists("out"), "cut {cut}");
        // Random access notices it too when the range reaches the end.
        let out = env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--range",
            "0:999999999",
            "-o",
            "out",
            "t",
        ]);
        fails(&out, "corrupted or truncated input");
        assert!(!env.exists("out"), "range, cut {cut}");
    }
    // Trailing garbage is detected as well.
    let mut longer = e.clone();
    longer.extend_from_slice(b"extra");
    env.write("t", &longer);
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "t",
    ]);
    fails(&out, "corrupted or truncated input");
    assert!(!env.exists("out"));
    env.assert_no_temp_files();
}

#[test]
fn fails_flipped_bit() {
    let len = 4 * CHUNK + 10;
    let (env, plain) = sealed(len);
    let e = env.read("e");
    let hl = header_len(&env, "e");
    // A bit in the salt, in the commitment, in chunk 2, and in the last tag.
    for pos in [
        hl + 3,
        hl + 40,
        hl + 56 + 2 * (CHUNK + 16) + 77,
        e.len() - 1,
    ] {
        let mut bad = e.clone();
        bad[pos] ^= 0x10;
        env.write("bad", &bad);
        let out = env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "out",
            "bad",
        ]);
        let line = fails(&out, "");
        assert!(
            line.contains("corrupted or truncated input")
                || line.contains("wrong context or profile"),
            "{line}"
        );
        assert!(!env.exists("out"), "pos {pos}");
        assert!(out.stdout.is_empty());
    }
    // A body chunk flip is an authentication failure of that chunk.
    let mut bad = e.clone();
    bad[hl + 56 + 2 * (CHUNK + 16) + 77] ^= 0x10;
    env.write("bad", &bad);
    let line = fails(
        &env.run(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "out",
            "bad",
        ]),
        "corrupted or truncated input",
    );
    assert!(line.contains("chunk 2"), "{line}");
    // To stdout: non-zero exit; only verified chunks (before chunk 2) came out.
    let out = env.run(&["decrypt", "--kek", "k.jwk", "--context", "c", "bad"]);
    fails(&out, "corrupted or truncated input");
    assert!(out.stdout.len() <= 2 * CHUNK);
    assert_eq!(out.stdout, &plain[..out.stdout.len()]);
    env.assert_no_temp_files();
}

#[test]
fn fails_unknown_kid() {
    let (env, _) = sealed(1_000);
    env.aes_key("x.jwk", "someone-else");
    let out = env.run(&[
        "decrypt",
        "--kek",
        "x.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "e",
    ]);
    let line = fails(&out, "unknown kid");
    assert!(
        line.contains("header names: k"),
        "names the header's kid: {line}"
    );
    assert!(!env.exists("out"));
}

#[test]
fn fails_bad_key_file() {
    let (env, _) = sealed(1_000);
    env.write("bad.jwk", b"{\"kty\": \"oct\", \"k\": ");
    let out = env.run(&[
        "decrypt",
        "--kek",
        "bad.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "e",
    ]);
    let line = fails(&out, "bad key file");
    assert!(line.contains("bad.jwk"), "{line}");
    assert!(!env.exists("out"));
    let out = env.run(&[
        "encrypt",
        "--kek",
        "bad.jwk",
        "--context",
        "c",
        "-o",
        "out2",
        "p",
    ]);
    fails(&out, "bad key file");
    assert!(!env.exists("out2"));
    // A good key plus a bad one still fails, before any output.
    let out = env.run(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--kek",
        "bad.jwk",
        "--context",
        "c",
        "-o",
        "out2",
        "p",
    ]);
    fails(&out, "bad key file");
    assert!(!env.exists("out2"));
    let out = env.run(&["encrypt", "--kek", "no-such.jwk", "--context", "c", "p"]);
    fails(&out, "bad key file");
    assert!(out.stdout.is_empty());
    env.assert_no_temp_files();
}

#[test]
fn existing_output_needs_force() {
    let (env, plain) = sealed(20_000);
    env.write("taken", b"precious");
    // encrypt
    let out = env.run(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "taken",
        "p",
    ]);
    fails(&out, "already exists");
    assert_eq!(env.read("taken"), b"precious");
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "taken",
        "--force",
        "p",
    ]);
    assert_eq!(
        env.ok(&["decrypt", "--kek", "k.jwk", "--context", "c", "taken"]),
        plain
    );
    // decrypt
    env.write("taken2", b"precious");
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "taken2",
        "e",
    ]);
    fails(&out, "already exists");
    assert_eq!(env.read("taken2"), b"precious");
    env.ok(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "-o",
        "taken2",
        "--force",
        "e",
    ]);
    assert_eq!(env.read("taken2"), plain);
    // --header-out: refused, and OUT is not created either.
    env.write("hdr", b"precious");
    let out = env.run(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header-out",
        "hdr",
        "-o",
        "b",
        "p",
    ]);
    fails(&out, "already exists");
    assert_eq!(env.read("hdr"), b"precious");
    assert!(!env.exists("b"));
    env.ok(&[
        "encrypt",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "--header-out",
        "hdr",
        "-o",
        "b",
        "--force",
        "p",
    ]);
    assert_eq!(
        env.ok(&[
            "decrypt",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "--header",
            "hdr",
            "b"
        ]),
        plain
    );
    // A failing decrypt with --force leaves the old file alone.
    env.write("taken3", b"precious");
    let out = env.run(&[
        "decrypt",
        "--kek",
        "k.jwk",
        "--context",
        "nope",
        "-o",
        "taken3",
        "--force",
        "e",
    ]);
    fails(&out, "wrong context or profile");
    assert_eq!(env.read("taken3"), b"precious");
    env.assert_no_temp_files();
}

#[test]
fn kek_uris_need_their_feature_and_never_echo_secrets() {
    let (env, _) = sealed(100);
    let out = env.run(&[
        "encrypt",
        "--kek",
        "https://v.vault.azure.net/keys/cmk/0123",
        "--context",
        "c",
        "p",
    ]);
    if cfg!(feature = "azure") {
        // accepted as a Key Vault URL, refused as an invalid vault name
        fails(&out, "vault name");
    } else {
        let line = fails(&out, "not supported in this build");
        assert!(line.contains("azure"), "{line}");
    }
    let out = env.run(&[
        "decrypt",
        "--kek",
        "pkcs11:token=t;object=o?pin-value=123456",
        "--context",
        "c",
        "e",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(!stderr.contains("123456"), "the PIN leaked: {stderr}");
    if !cfg!(feature = "pkcs11") {
        let line = fails(&out, "not supported in this build");
        assert!(line.contains("pkcs11"), "{line}");
    }
}

#[test]
fn at_most_sixteen_keks() {
    let (env, plain) = sealed(100);
    let mut args = vec!["encrypt", "--context", "c", "-o", "e16", "p"];
    for _ in 0..16 {
        args.extend(["--kek", "k.jwk"]);
    }
    env.ok(&args);
    assert_eq!(env.inspect("e16")["keys"].as_array().unwrap().len(), 16);
    assert_eq!(
        env.ok(&["decrypt", "--kek", "k.jwk", "--context", "c", "e16"]),
        plain
    );
    args[4] = "e17";
    args.extend(["--kek", "k.jwk"]);
    fails(&env.run(&args), "at most 16");
    assert!(!env.exists("e17"));
}

#[test]
fn usage_errors_are_one_line() {
    let env = Env::new();
    let out = env.run(&["encrypt", "--kek", "k.jwk"]);
    fails(&out, "--context");
    assert_eq!(out.status.code(), Some(2));
    let out = env.run(&["decrypt", "--context", "c", "--profile", "nope"]);
    fails(&out, "nope");
    // --help is not a failure and documents the streaming behaviour.
    let help = env.ok(&["decrypt", "--help"]);
    let help = String::from_utf8(help).unwrap();
    assert!(
        help.contains("stdout") && help.contains("exits non-zero"),
        "{help}"
    );
}

// ---------------------------------------------------------------- rewrap

#[test]
fn rewrap_embedded_in_place() {
    let env = Env::new();
    env.aes_key("old.jwk", "old");
    env.aes_key("new.jwk", "new");
    let msg = data(40_000, 11);
    env.write("plain", &msg);
    env.ok(&[
        "encrypt",
        "--kek",
        "old.jwk",
        "--context",
        "c",
        "-o",
        "env",
        "plain",
    ]);
    let before = env.read("env");
    let hlen = header_len(&env, "env");
    env.ok(&["rewrap", "--kek", "old.jwk", "--new-kek", "new.jwk", "env"]);
    let after = env.read("env");
    // body bytes untouched, header now names only the new key
    assert_eq!(&after[header_len(&env, "env")..], &before[hlen..]);
    assert_eq!(env.inspect("env")["keys"][0]["kid"], "new");
    assert_eq!(env.inspect("env")["keys"].as_array().unwrap().len(), 1);
    env.ok(&[
        "decrypt",
        "--kek",
        "new.jwk",
        "--context",
        "c",
        "-o",
        "out",
        "env",
    ]);
    assert_eq!(env.read("out"), msg);
    let old = env.run(&[
        "decrypt",
        "--kek",
        "old.jwk",
        "--context",
        "c",
        "-o",
        "out2",
        "env",
    ]);
    fails(&old, "unknown kid");
    env.assert_no_temp_files();
}

#[test]
fn rewrap_detached_header() {
    let env = Env::new();
    env.aes_key("old.jwk", "old");
    env.aes_key("new.jwk", "new");
    env.write("plain", b"detached data");
    env.ok(&[
        "encrypt",
        "--kek",
        "old.jwk",
        "--context",
        "c",
        "--header-out",
        "hdr",
        "-o",
        "body",
        "plain",
    ]);
    let body = env.read("body");
    env.ok(&[
        "rewrap",
        "--kek",
        "old.jwk",
        "--new-kek",
        "new.jwk",
        "--new-kek",
        "old.jwk",
        "--header",
        "hdr",
        "body",
    ]);
    assert_eq!(env.read("body"), body);
    assert_eq!(env.inspect("hdr")["keys"].as_array().unwrap().len(), 2);
    env.ok(&[
        "decrypt",
        "--kek",
        "new.jwk",
        "--context",
        "c",
        "--header",
        "hdr",
        "-o",
        "out",
        "body",
    ]);
    assert_eq!(env.read("out"), b"detached data");
}

#[test]
fn rewrap_failure_leaves_the_file_unchanged() {
    let env = Env::new();
    env.aes_key("old.jwk", "old");
    env.aes_key("other.jwk", "other");
    env.aes_key("new.jwk", "new");
    env.write("plain", &data(20_000, 3));
    env.ok(&[
        "encrypt",
        "--kek",
        "old.jwk",
        "--context",
        "c",
        "-o",
        "env",
        "plain",
    ]);
    let before = env.read("env");
    // a key the header does not name
    fails(
        &env.run(&[
            "rewrap",
            "--kek",
            "other.jwk",
            "--new-kek",
            "new.jwk",
            "env",
        ]),
        "unknown kid",
    );
    // a bad new key file
    env.write("bad.jwk", b"{not json");
    fails(
        &env.run(&["rewrap", "--kek", "old.jwk", "--new-kek", "bad.jwk", "env"]),
        "bad key file",
    );
    // a corrupted header
    let mut broken = before.clone();
    broken[5] = 9;
    env.write("broken", &broken);
    fails(
        &env.run(&[
            "rewrap",
            "--kek",
            "old.jwk",
            "--new-kek",
            "new.jwk",
            "broken",
        ]),
        "corrupted",
    );
    assert_eq!(env.read("broken"), broken);
    assert_eq!(env.read("env"), before);
    env.assert_no_temp_files();
}

// ---------------------------------------------------------------- threads

#[test]
fn threads_give_the_same_plaintext_and_refuse_zero() {
    let env = Env::new();
    env.aes_key("k.jwk", "k");
    let msg = data(5 * 256 * 1024 + 777, 21);
    env.write("plain", &msg);
    for (enc_t, dec_t) in [("1", "2"), ("2", "1"), ("2", "2"), ("3", "1")] {
        let e = format!("env-{enc_t}-{dec_t}");
        let o = format!("out-{enc_t}-{dec_t}");
        env.ok(&[
            "encrypt",
            "--threads",
            enc_t,
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            &e,
            "plain",
        ]);
        env.ok(&[
            "decrypt",
            "--threads",
            dec_t,
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            &o,
            &e,
        ]);
        assert_eq!(env.read(&o), msg, "encrypt -t{enc_t}, decrypt -t{dec_t}");
    }
    // a tampered chunk with several threads: failure, nothing at OUT
    let mut bad = env.read("env-2-2");
    let n = bad.len();
    bad[n / 2] ^= 1;
    env.write("bad", &bad);
    fails(
        &env.run(&[
            "decrypt",
            "--threads",
            "2",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "x",
            "bad",
        ]),
        "corrupted",
    );
    assert!(!env.exists("x"));
    // a truncated file with several threads: refused before any plaintext
    // is written, nothing at OUT
    env.write("short", &env.read("env-2-2")[..n - 9]);
    fails(
        &env.run(&[
            "decrypt",
            "--threads",
            "2",
            "--kek",
            "k.jwk",
            "--context",
            "c",
            "-o",
            "x",
            "short",
        ]),
        "truncated",
    );
    assert!(!env.exists("x"));
    // stdin (a pipe) with several threads: the stream pipeline, same bytes
    // out as from the file.
    let k = ["--kek", "k.jwk", "--context", "c", "--threads", "2"];
    let from_stdin = env.ok_with(&[&["encrypt"][..], &k[..]].concat(), &msg);
    env.write("env-stdin", &from_stdin);
    let plain = env.ok_with(&[&["decrypt"][..], &k[..]].concat(), &from_stdin);
    assert_eq!(plain, msg);
    let plain = env.ok(&[&["decrypt"][..], &k[..], &["env-stdin"][..]].concat());
    assert_eq!(plain, msg);
    let out = env.run(&[
        "encrypt",
        "--threads",
        "0",
        "--kek",
        "k.jwk",
        "--context",
        "c",
        "plain",
    ]);
    assert!(!out.status.success());
    env.assert_no_temp_files();
}

// ----- azure-cse -----

#[cfg(feature = "azure-cse")]
#[test]
fn azure_cse_round_trip_ranges_and_failures() {
    let env = Env::new();
    env.aes_key("k.jwk", "cse-kid");
    env.aes_key("other.jwk", "other-kid");
    let plain = data(300 * 1024 + 7, 9);
    env.write("plain.bin", &plain);
    // 2.1 with 64 KiB regions, files in and out.
    env.ok(&[
        "azure-cse",
        "encrypt",
        "--kek",
        "k.jwk",
        "--region-size",
        "65536",
        "--metadata-out",
        "m.json",
        "-o",
        "blob.bin",
        "plain.bin",
    ]);
    let meta: Value = serde_json::from_slice(&env.read("m.json")).unwrap();
    assert_eq!(meta["EncryptionAgent"]["Protocol"], "2.1");
    assert_eq!(meta["EncryptedRegionInfo"]["DataLength"], 65536);
    assert_eq!(meta["WrappedContentKey"]["KeyId"], "cse-kid");
    assert_eq!(env.read("blob.bin").len(), plain.len() + 5 * 28);
    env.ok(&[
        "azure-cse",
        "decrypt",
        "--kek",
        "other.jwk",
        "--kek",
        "k.jwk",
        "--metadata",
        "m.json",
        "-o",
        "back.bin",
        "blob.bin",
    ]);
    assert_eq!(env.read("back.bin"), plain);
    // Stdin to stdout, 2.0.
    let blob = env.ok_with(
        &[
            "azure-cse",
            "encrypt",
            "--kek",
            "k.jwk",
            "--metadata-out",
            "m20.json",
        ],
        &plain,
    );
    let back = env.ok_with(
        &[
            "azure-cse",
            "decrypt",
            "--kek",
            "k.jwk",
            "--metadata",
            "m20.json",
        ],
        &blob,
    );
    assert_eq!(back, plain);
    // Ranges.
    for (s, e) in [
        (0usize, 1usize),
        (65530, 65600),
        (100, plain.len()),
        (200_000, 999_999),
    ] {
        let r = format!("{s}:{e}");
        let out = env.ok(&[
            "azure-cse",
            "decrypt",
            "--kek",
            "k.jwk",
            "--metadata",
            "m.json",
            "--range",
            &r,
            "blob.bin",
        ]);
        assert_eq!(out, &plain[s..e.min(plain.len())], "{r}");
    }
    // Failures: one line, nothing left at OUT.
    let mut bad = env.read("blob.bin");
    bad[70_000] ^= 1;
    env.write("bad.bin", &bad);
    let out = env.run(&[
        "azure-cse",
        "decrypt",
        "--kek",
        "k.jwk",
        "--metadata",
        "m.json",
        "-o",
        "x.bin",
        "bad.bin",
    ]);
    fails(&out, "region 1");
    assert!(!env.exists("x.bin"));
    env.write("cut.bin", &env.read("blob.bin")[..65_564 + 20]);
    let out = env.run(&[
        "azure-cse",
        "decrypt",
        "--kek",
        "k.jwk",
        "--metadata",
        "m.json",
        "-o",
        "x.bin",
        "cut.bin",
    ]);
    fails(&out, "truncated");
    assert!(!env.exists("x.bin"));
    let out = env.run(&[
        "azure-cse",
        "decrypt",
        "--kek",
        "other.jwk",
        "--metadata",
        "m.json",
        "blob.bin",
    ]);
    fails(&out, "cse-kid");
    env.write("m-bad.json", b"{\"WrappedContentKey\": 1}");
    let out = env.run(&[
        "azure-cse",
        "decrypt",
        "--kek",
        "k.jwk",
        "--metadata",
        "m-bad.json",
        "blob.bin",
    ]);
    fails(&out, "metadata");
    let out = env.run(&[
        "azure-cse",
        "encrypt",
        "--kek",
        "k.jwk",
        "--region-size",
        "8",
        "--metadata-out",
        "n.json",
        "plain.bin",
    ]);
    fails(&out, "--region-size");
    let out = env.run(&[
        "azure-cse",
        "encrypt",
        "--kek",
        "k.jwk",
        "--metadata-out",
        "m.json",
        "-o",
        "y.bin",
        "plain.bin",
    ]);
    fails(&out, "exists");
    assert!(!env.exists("y.bin"));
    env.assert_no_temp_files();
}

/// Protocol 1.0 (AES-CBC, CVE-2022-30187): refused, unless
/// `--insecure-allow-v1`, which warns, streams, and leaves no OUT when the
/// padding does not check out. The blob is built here with aws-lc-rs as
/// the SDKs build it (tests/azure_cse.rs reads ones the Python SDK wrote).
#[cfg(feature = "azure-cse")]
#[test]
fn azure_cse_v1_only_with_insecure_allow_v1() {
    use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
    use aws_lc_rs::key_wrap::{AesKek, KeyWrap as _};
    use base64::Engine as _;
    let env = Env::new();
    env.aes_key("k.jwk", "cse-kid");
    let jwk: Value = serde_json::from_slice(&env.read("k.jwk")).unwrap();
    let kek = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["k"].as_str().expect("an oct JWK"))
        .unwrap();
    let (cek, iv) = ([0x42u8; 32], [0x24u8; 16]);
    let plain = data(200 * 1024 + 5, 11);
    let mut body = plain.clone();
    PaddedBlockEncryptingKey::cbc_pkcs7(
        UnboundCipherKey::new(&aws_lc_rs::cipher::AES_256, &cek).unwrap(),
    )
    .unwrap()
    .less_safe_encrypt(&mut body, EncryptionContext::Iv128(iv.into()))
    .unwrap();
    let mut wrapped = [0u8; 40];
    let wrapped = AesKek::new(&aws_lc_rs::key_wrap::AES_256, &kek)
        .unwrap()
        .wrap(&cek, &mut wrapped)
        .unwrap()
        .to_vec();
    let b64 = base64::engine::general_purpose::STANDARD;
    let meta = serde_json::json!({
        "WrappedContentKey": {"KeyId": "cse-kid", "EncryptedKey": b64.encode(&wrapped), "Algorithm": "A256KW"},
        "EncryptionAgent": {"Protocol": "1.0", "EncryptionAlgorithm": "AES_CBC_256"},
        "ContentEncryptionIV": b64.encode(iv),
        "KeyWrappingMetadata": {"EncryptionLibrary": "Python 12.31.1"},
        "EncryptionMode": "FullBlob"});
    env.write("m.json", meta.to_string().as_bytes());
    env.write("blob.bin", &body);
    let base = [
        "azure-cse",
        "decrypt",
        "--kek",
        "k.jwk",
        "--metadata",
        "m.json",
    ];
    // Refused without the flag, naming the CVE and the flag.
    let line = fails(
        &env.run(&[&base[..], &["-o", "out.bin", "blob.bin"]].concat()),
        "CVE-2022-30187",
    );
    assert!(line.contains("--insecure-allow-v1"), "{line}");
    assert!(!env.exists("out.bin"));
    // With it: the plaintext, and a warning.
    let out = env.run(
        &[
            &base[..],
            &["--insecure-allow-v1", "-o", "out.bin", "blob.bin"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WITHOUT AUTHENTICATION"));
    assert_eq!(env.read("out.bin"), plain);
    let got = env.ok_with(&[&base[..], &["--insecure-allow-v1"]].concat(), &body);
    assert_eq!(got, plain);
    // Bad padding: the generic error, and no OUT.
    let mut bad = body.clone();
    let at = bad.len() - 17;
    bad[at] ^= 0x20;
    env.write("bad.bin", &bad);
    let out = env.run(
        &[
            &base[..],
            &["--insecure-allow-v1", "-o", "bad.out", "bad.bin"],
        ]
        .concat(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol 1.0 body did not decrypt"));
    assert!(!env.exists("bad.out"));
    env.assert_no_temp_files();
    // No ranges for 1.0.
    let out = env.run(
        &[
            &base[..],
            &["--insecure-allow-v1", "--range", "0:10", "blob.bin"],
        ]
        .concat(),
    );
    assert!(!out.status.success());
}
