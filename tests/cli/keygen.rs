//! `keygen`: key generation and its refusals.

use super::*;

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
