//! `decrypt --range`: slices, and tampering inside the range.

use super::*;

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
