//! Failures: wrong keys, contexts and profiles, tampering, bad key files, existing outputs, usage errors.

use super::*;

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
