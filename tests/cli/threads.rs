//! `--threads`: the parallel paths give the same bytes.

use super::*;

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
