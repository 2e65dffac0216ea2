//! `azure-cse encrypt` / `azure-cse decrypt`.

use super::*;

// ----- azure-cse -----

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
