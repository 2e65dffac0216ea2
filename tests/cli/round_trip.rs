//! `encrypt`, `decrypt` and `inspect`: round trips, several KEKs, profiles.

use super::*;

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
