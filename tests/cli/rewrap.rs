//! `rewrap`: header-only key rotation.

use super::*;

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
