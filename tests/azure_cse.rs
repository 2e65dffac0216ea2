//! Azure Storage client-side encryption v2: interoperability with the
//! official Python SDK (its own encryption code, run from the virtual
//! environment `scripts/test.sh` creates), ranges, rotation, and tampering.
//!
//! The SDK tests need `target/pyvenv` (or `CMK_CSE_PYTHON`); without it
//! they fail with a message saying how to create it. They never skip.
#![cfg(feature = "azure-cse")]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cmk_envelope::azure_cse::{
    self, CseDecryptor, CseEncryptOptions, CseEncryptor, CseRangePlan, EncryptionData,
    InsecureCseV1Decryptor, InsecureV1, NonceEncoding, Protocol,
};
use cmk_envelope::{
    CryptoProvider, Error, KeyEncryptionKey, KeyResolver, LocalKek, StaticResolver, WrapAlgorithm,
};

const MIB: usize = 1024 * 1024;
const SIZES: [usize; 6] = [0, 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 9 * MIB];
const KID: &str = "local:cse-test-kek";

/// The Python interpreter of the SDK's virtual environment.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CMK_CSE_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "CMK_CSE_PYTHON={} does not exist; run scripts/test.sh to create the SDK's virtual environment",
            p.display()
        );
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv/bin/python");
    assert!(
        p.exists(),
        "the Azure Storage Python SDK is missing: {} does not exist. Run scripts/test.sh once \
         (it creates target/pyvenv with azure-storage-blob), or set CMK_CSE_PYTHON",
        p.display()
    );
    p
}

fn key_bytes() -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(29).wrapping_add(3);
    }
    k
}

fn kek_with(kid: &str, key: &[u8; 32]) -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key(kid, WrapAlgorithm::A256Kw, key).unwrap())
}

fn kek() -> Arc<dyn KeyEncryptionKey> {
    kek_with(KID, &key_bytes())
}

fn resolver(k: &Arc<dyn KeyEncryptionKey>) -> StaticResolver {
    StaticResolver::new().with(Arc::clone(k))
}

/// Runs the SDK fixture on `jobs` with the test key.
fn run_sdk(dir: &Path, key: &[u8; 32], jobs: &serde_json::Value) {
    let jobs_path = dir.join(format!(
        "jobs-{}.json",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    fs::write(&jobs_path, serde_json::to_vec(jobs).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/azure_cse_sdk.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(KID)
        .arg(&jobs_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the SDK fixture");
    writeln!(child.stdin.take().unwrap(), "{}", hex::encode(key)).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SDK fixture failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

fn metadata(path: impl AsRef<Path>) -> EncryptionData {
    EncryptionData::parse(&fs::read_to_string(path).unwrap()).unwrap()
}

fn ranges(len: usize) -> Vec<(usize, usize)> {
    let mut v = vec![(0, len), (0, 0), (len / 2, len / 2)];
    if len > 0 {
        v.push((len - 1, len));
        v.push((0, 1));
    }
    if len > 4 * MIB {
        v.push((4 * MIB - 3, 4 * MIB + 3));
        v.push((4 * MIB, len));
        v.push((1000, 8 * MIB + 17));
    }
    if len > 10 {
        v.push((3, len - 5));
    }
    v.into_iter()
        .map(|(s, e)| (s.min(len), e.min(len)))
        .collect()
}

fn check_ranges(d: &CseDecryptor, blob: &[u8], plain: &[u8]) -> usize {
    let mut n = 0;
    for (s, e) in ranges(plain.len()) {
        let plan = d.plan_range(s as u64..e as u64, blob.len() as u64).unwrap();
        let ct = plan.ciphertext();
        let fetched = &blob[ct.start as usize..ct.end as usize];
        let got = d.decrypt_range(&plan, fetched).unwrap();
        assert_eq!(got, &plain[s..e], "range {s}..{e} of {}", plain.len());
        // The streaming form, fed one odd-sized piece at a time.
        let mut r = d.range_reader(&plan, Trickle(fetched, 7919));
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, &plain[s..e]);
        n += 1;
    }
    n
}

/// A reader that returns at most `n` bytes per call.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[tokio::test]
async fn sdk_written_blobs_decrypt_whole_and_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jobs: Vec<_> = SIZES
        .iter()
        .map(|n| {
            serde_json::json!({"op": "encrypt", "size": n, "plain": p(d, &format!("{n}.plain")),
                "blob": p(d, &format!("{n}.blob")), "metadata": p(d, &format!("{n}.json"))})
        })
        .collect();
    run_sdk(d, &key_bytes(), &serde_json::Value::Array(jobs));
    let k = kek();
    let mut checked = 0;
    for n in SIZES {
        let plain = fs::read(d.join(format!("{n}.plain"))).unwrap();
        let blob = fs::read(d.join(format!("{n}.blob"))).unwrap();
        let m = metadata(d.join(format!("{n}.json")));
        assert_eq!(m.protocol(), Protocol::V2_0);
        assert_eq!(
            blob.len() as u64,
            azure_cse::ciphertext_len(n as u64, 4 << 20)
        );
        for provider in CryptoProvider::all() {
            let dec = CseDecryptor::with_provider(&m, &resolver(&k), provider)
                .await
                .unwrap();
            assert_eq!(dec.decrypt(&blob).unwrap(), plain, "size {n}");
            let mut out = Vec::new();
            dec.reader(Trickle(&blob, 65_537))
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, plain);
            checked += check_ranges(&dec, &blob, &plain);
        }
        if n == 9 * MIB {
            // The SDK's own 3-region blob, tampered: regions swapped, the
            // middle one dropped, one duplicated, a bit flipped.
            let dec = CseDecryptor::new(&m, &resolver(&k)).await.unwrap();
            let rl = 4 * MIB + 28;
            let r: Vec<&[u8]> = blob.chunks(rl).collect();
            for (what, order, region) in [
                ("swapped", vec![1, 0, 2], 0u64),
                ("middle dropped", vec![0, 2], 1),
                ("duplicated", vec![0, 0, 1, 2], 1),
            ] {
                let body: Vec<u8> = order.iter().flat_map(|i| r[*i].to_vec()).collect();
                let e = dec.decrypt(&body).unwrap_err();
                assert!(
                    matches!(e, Error::CseRegion { region: x, .. } if x == region)
                        && e.to_string().contains("nonce"),
                    "{what}: {e}"
                );
            }
            let mut flipped = blob.clone();
            flipped[rl + 1000] ^= 4;
            let e = dec.decrypt(&flipped).unwrap_err();
            assert!(
                e.to_string().contains("region 1: authentication failed"),
                "{e}"
            );
        }
    }
    println!("checked {checked} ranges of SDK-written blobs");
}

const V1_SIZES: [usize; 6] = [0, 1, 15, 16, 17, MIB + 3];

/// The one message of every protocol 1.0 body failure.
const V1_BODY_ERROR: &str = "the protocol 1.0 body did not decrypt";

fn assert_v1_body_error(e: &Error, what: &str) {
    assert!(
        matches!(e, Error::CseRegion { region: 0, .. }),
        "{what}: {e}"
    );
    assert!(e.to_string().contains(V1_BODY_ERROR), "{what}: {e}");
}

/// `json` with `field` of the metadata replaced (a base64 string value).
fn with_b64_field(json: &str, field: &str, edit: impl FnOnce(&mut Vec<u8>)) -> EncryptionData {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    let slot = if field == "EncryptedKey" {
        &mut v["WrappedContentKey"][field]
    } else {
        &mut v[field]
    };
    let mut bytes = b64.decode(slot.as_str().unwrap()).unwrap();
    edit(&mut bytes);
    *slot = serde_json::Value::String(b64.encode(&bytes));
    EncryptionData::parse(&v.to_string()).unwrap()
}

/// Protocol 1.0 (AES-CBC, CVE-2022-30187), written by the SDK itself: refused
/// without the opt-in; with it, read whole and streaming on both providers;
/// any tampering of the body is one generic error. (The crate has no API
/// that writes 1.0: there is nothing to test on that side.)
#[tokio::test]
async fn sdk_written_v1_blobs_need_the_insecure_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jobs: Vec<_> = V1_SIZES
        .iter()
        .map(|n| {
            serde_json::json!({"op": "encrypt", "version": "1.0", "size": n,
                "plain": p(d, &format!("{n}.plain")), "blob": p(d, &format!("{n}.blob")),
                "metadata": p(d, &format!("{n}.json"))})
        })
        .collect();
    run_sdk(d, &key_bytes(), &serde_json::Value::Array(jobs));
    let k = kek();
    let r = resolver(&k);
    let ok = InsecureV1::AcceptUnauthenticatedCbc;
    let mut wrong_key_errors = 0;
    for n in V1_SIZES {
        let plain = fs::read(d.join(format!("{n}.plain"))).unwrap();
        let blob = fs::read(d.join(format!("{n}.blob"))).unwrap();
        let json = fs::read_to_string(d.join(format!("{n}.json"))).unwrap();
        let m = EncryptionData::parse(&json).unwrap();
        assert_eq!(m.protocol(), Protocol::V1_0);
        assert!(m.content_encryption_iv().is_some());
        assert_eq!(blob.len(), (n / 16 + 1) * 16, "PKCS#7 always pads");

        // (a) Without the opt-in: refused, naming the CVE and the opt-in.
        let e = azure_cse::decrypt(&m, &r, &blob).await.unwrap_err();
        assert!(matches!(e, Error::CseMetadata(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("CVE-2022-30187") && msg.contains("InsecureV1::AcceptUnauthenticatedCbc"),
            "{msg}"
        );
        assert!(CseDecryptor::new(&m, &r).await.is_err());

        // (b) With it: the SDK's plaintext, whole and streaming.
        for provider in CryptoProvider::all() {
            let dec = InsecureCseV1Decryptor::with_provider(&m, &r, provider, ok)
                .await
                .unwrap();
            assert_eq!(dec.decrypt(&blob).unwrap(), plain, "size {n}");
            for piece in [1, 15, 4099, 1 << 20] {
                let mut out = Vec::new();
                dec.reader(Trickle(&blob, piece))
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, plain, "size {n}, pieces of {piece}");
            }
        }
        assert_eq!(
            azure_cse::decrypt_insecure_v1(&m, &r, &blob, ok)
                .await
                .unwrap(),
            plain
        );

        // (c) Tampered padding: flip a bit of the last padding byte through
        // the block before it (or the IV, for a one-block blob). The pad
        // byte becomes > 16: always invalid.
        let dec = InsecureCseV1Decryptor::new(&m, &r, ok).await.unwrap();
        if blob.len() >= 32 {
            let mut t = blob.clone();
            let at = t.len() - 17;
            t[at] ^= 0x20;
            assert_v1_body_error(&dec.decrypt(&t).unwrap_err(), "padding");
            let mut out = Vec::new();
            let e = dec.reader(&t[..]).read_to_end(&mut out).unwrap_err();
            assert_v1_body_error(&Error::from(e), "padding, streaming");
        } else {
            let m2 = with_b64_field(&json, "ContentEncryptionIV", |iv| iv[15] ^= 0x20);
            let dec2 = InsecureCseV1Decryptor::new(&m2, &r, ok).await.unwrap();
            assert_v1_body_error(&dec2.decrypt(&blob).unwrap_err(), "padding via the IV");
        }
        // Truncated, or not a whole number of blocks: the same error.
        for cut in [&blob[..blob.len() - 1], &blob[..0]] {
            assert_v1_body_error(&dec.decrypt(cut).unwrap_err(), "truncated");
            let mut out = Vec::new();
            let e = dec.reader(cut).read_to_end(&mut out).unwrap_err();
            assert_v1_body_error(&Error::from(e), "truncated, streaming");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert_v1_body_error(&dec.decrypt(&longer).unwrap_err(), "trailing byte");

        // A wrong content key (another blob's, wrapped by the same KEK):
        // the padding check is all there is, so this is the generic error,
        // except when the garbage happens to end in valid padding
        // (about 1 in 256); then the output is still not the plaintext.
        let other = if n == 0 { 1 } else { 0 };
        let other_json = fs::read_to_string(d.join(format!("{other}.json"))).unwrap();
        let other_key = serde_json::from_str::<serde_json::Value>(&other_json).unwrap()
            ["WrappedContentKey"]["EncryptedKey"]
            .clone();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["WrappedContentKey"]["EncryptedKey"] = other_key;
        let swapped = EncryptionData::parse(&v.to_string()).unwrap();
        let dec3 = InsecureCseV1Decryptor::new(&swapped, &r, ok).await.unwrap();
        match dec3.decrypt(&blob) {
            Err(e) => {
                assert_v1_body_error(&e, "wrong content key");
                wrong_key_errors += 1;
            }
            Ok(out) => assert_ne!(out, plain),
        }
    }
    assert!(wrong_key_errors >= V1_SIZES.len() - 1, "{wrong_key_errors}");

    // A wrong KEK fails its own integrity check (A256KW), before any CBC.
    let json = fs::read_to_string(d.join("17.json")).unwrap();
    let m = EncryptionData::parse(&json).unwrap();
    let wrong = kek_with(KID, &[7u8; 32]);
    let e =
        InsecureCseV1Decryptor::new(&m, &resolver(&wrong), InsecureV1::AcceptUnauthenticatedCbc)
            .await
            .unwrap_err();
    assert!(matches!(e, Error::UnwrapFailed { .. }), "{e}");
    // A protocol 2.x wrapped key (40 bytes, with its prefix) under
    // metadata rewritten to 1.0 is refused: a downgrade cannot reach CBC.
    let (m2, _) = azure_cse::encrypt(k.as_ref(), &CseEncryptOptions::v2_0(), b"x")
        .await
        .unwrap();
    let v2_key = serde_json::from_str::<serde_json::Value>(&m2.to_json()).unwrap()
        ["WrappedContentKey"]["EncryptedKey"]
        .clone();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["WrappedContentKey"]["EncryptedKey"] = v2_key;
    let downgraded = EncryptionData::parse(&v.to_string()).unwrap();
    let e = InsecureCseV1Decryptor::new(&downgraded, &r, InsecureV1::AcceptUnauthenticatedCbc)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bare 32-byte"), "{e}");
    // And 2.x metadata is not read through the insecure path at all.
    let e = InsecureCseV1Decryptor::new(&m2, &r, InsecureV1::AcceptUnauthenticatedCbc)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CseDecryptor"), "{e}");
}

#[tokio::test]
async fn java_and_dotnet_nonce_encodings_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut jobs = Vec::new();
    for style in ["java", "dotnet"] {
        for (size, region) in [(9 * MIB, 4 * MIB), (1000, 64), (0, 64), (128, 64)] {
            let name = format!("{style}-{size}-{region}");
            jobs.push(
                serde_json::json!({"op": "encrypt-nonces", "style": style, "size": size,
                "region": region, "plain": p(d, &format!("{name}.plain")),
                "blob": p(d, &format!("{name}.blob")), "metadata": p(d, &format!("{name}.json"))}),
            );
        }
    }
    run_sdk(d, &key_bytes(), &serde_json::Value::Array(jobs));
    let k = kek();
    for style in ["java", "dotnet"] {
        for (size, region) in [(9 * MIB, 4 * MIB), (1000, 64), (0, 64), (128, 64)] {
            let name = format!("{style}-{size}-{region}");
            let plain = fs::read(d.join(format!("{name}.plain"))).unwrap();
            let blob = fs::read(d.join(format!("{name}.blob"))).unwrap();
            let m = metadata(d.join(format!("{name}.json")));
            assert_eq!(m.region_data_len(), region as u64);
            let dec = CseDecryptor::new(&m, &resolver(&k)).await.unwrap();
            assert_eq!(dec.decrypt(&blob).unwrap(), plain, "{name}");
            check_ranges(&dec, &blob, &plain);
        }
    }
}

#[tokio::test]
async fn sdk_decrypts_blobs_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let k = kek();
    let mut jobs = Vec::new();
    let mut expect = Vec::new();
    let mut cases: Vec<(CseEncryptOptions, usize)> = SIZES
        .iter()
        .map(|n| (CseEncryptOptions::v2_0(), *n))
        .collect();
    let v21 = CseEncryptOptions::v2_1(64 * 1024).unwrap();
    cases.extend([(v21, 0), (v21, 1), (v21, 64 * 1024), (v21, 300 * 1024 + 5)]);
    for (i, (opts, n)) in cases.iter().enumerate() {
        let plain: Vec<u8> = (0..*n).map(|j| (j * 7 + i) as u8).collect();
        let (m, blob) = azure_cse::encrypt(k.as_ref(), opts, &plain).await.unwrap();
        assert_eq!(m.protocol(), opts.protocol());
        fs::write(d.join(format!("{i}.blob")), &blob).unwrap();
        fs::write(d.join(format!("{i}.json")), m.to_json()).unwrap();
        jobs.push(serde_json::json!({"op": "decrypt", "blob": p(d, &format!("{i}.blob")),
            "metadata": p(d, &format!("{i}.json")), "out": p(d, &format!("{i}.out")), "range": null}));
        expect.push((format!("{i}.out"), plain.clone()));
        // Ranged downloads through the SDK's own range arithmetic
        // (inclusive ends).
        for (j, (s, e)) in ranges(*n).into_iter().filter(|(s, e)| e > s).enumerate() {
            let out = format!("{i}-r{j}.out");
            jobs.push(
                serde_json::json!({"op": "decrypt", "blob": p(d, &format!("{i}.blob")),
                "metadata": p(d, &format!("{i}.json")), "out": p(d, &out), "range": [s, e - 1]}),
            );
            expect.push((out, plain[s..e].to_vec()));
        }
    }
    run_sdk(d, &key_bytes(), &serde_json::Value::Array(jobs));
    for (out, plain) in &expect {
        assert_eq!(&fs::read(d.join(out)).unwrap(), plain, "{out}");
    }
    println!(
        "the SDK decrypted {} blobs and ranges we wrote",
        expect.len()
    );
}

#[tokio::test]
async fn rotation_rewraps_only_the_metadata_and_the_sdk_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = kek_with("old-kek", &[9; 32]);
    let new = kek_with(KID, &key_bytes());
    let plain = vec![0x5Au8; 5 * MIB];
    let (m, blob) = azure_cse::encrypt(old.as_ref(), &CseEncryptOptions::v2_0(), &plain)
        .await
        .unwrap();
    // An unknown field survives the rotation in place.
    let with_extra = m.to_json().replace(
        "\"EncryptionMode\"",
        "\"Custom\":{\"x\":1},\"EncryptionMode\"",
    );
    let m = EncryptionData::parse(&with_extra).unwrap();
    let rotated = azure_cse::rewrap_metadata(&m, &resolver(&old), new.as_ref())
        .await
        .unwrap();
    assert_eq!(rotated.key_id(), KID);
    assert_ne!(rotated.encrypted_key(), m.encrypted_key());
    assert!(rotated
        .to_json()
        .contains("\"Custom\":{\"x\":1},\"EncryptionMode\":\"FullBlob\""));
    // We read it with the new key, and no longer with the old one.
    assert_eq!(
        azure_cse::decrypt(&rotated, &resolver(&new), &blob)
            .await
            .unwrap(),
        plain
    );
    assert!(matches!(
        azure_cse::decrypt(&rotated, &resolver(&old), &blob).await,
        Err(Error::UnknownKek { .. })
    ));
    // The SDK reads it with the new key; a wrong key fails there too.
    fs::write(d.join("r.blob"), &blob).unwrap();
    fs::write(d.join("r.json"), rotated.to_json()).unwrap();
    let job = serde_json::json!([{"op": "decrypt", "blob": p(d, "r.blob"), "metadata": p(d, "r.json"),
        "out": p(d, "r.out"), "range": null}]);
    run_sdk(d, &key_bytes(), &job);
    assert_eq!(fs::read(d.join("r.out")).unwrap(), plain);
}

#[tokio::test]
async fn rsa_keks_round_trip() {
    for alg in [WrapAlgorithm::RsaOaep256, WrapAlgorithm::RsaOaep] {
        let k: Arc<dyn KeyEncryptionKey> =
            Arc::new(LocalKek::generate(alg, Some(format!("rsa-{alg}")), Some(3072)).unwrap());
        let opts = CseEncryptOptions::v2_1(1000).unwrap();
        let plain = vec![7u8; 2500];
        let (m, blob) = azure_cse::encrypt(k.as_ref(), &opts, &plain).await.unwrap();
        assert_eq!(m.algorithm(), alg);
        assert_eq!(m.encrypted_key().len(), 384);
        let back = EncryptionData::parse(&m.to_json()).unwrap();
        assert_eq!(
            azure_cse::decrypt(&back, &resolver(&k), &blob)
                .await
                .unwrap(),
            plain
        );
    }
    // A256KWP is not one of the SDKs' algorithms.
    let kwp = kek_with_alg(WrapAlgorithm::A256Kwp);
    let e = CseEncryptor::new(kwp.as_ref(), &CseEncryptOptions::v2_0())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("A256KWP"), "{e}");
}

fn kek_with_alg(alg: WrapAlgorithm) -> Arc<dyn KeyEncryptionKey> {
    Arc::new(LocalKek::from_aes_key("kwp", alg, &[1; 32]).unwrap())
}

// ----- tampering -----

const R: usize = 64; // region data length of the tampering fixtures
const RL: usize = R + 28;

/// A 2.1 blob of 3 full regions and a 10-byte last one.
async fn small() -> (Arc<dyn KeyEncryptionKey>, EncryptionData, Vec<u8>, Vec<u8>) {
    let k = kek();
    let plain: Vec<u8> = (0..3 * R + 10).map(|i| i as u8).collect();
    let (m, blob) = azure_cse::encrypt(
        k.as_ref(),
        &CseEncryptOptions::v2_1(R as u64).unwrap(),
        &plain,
    )
    .await
    .unwrap();
    assert_eq!(blob.len(), 4 * RL - R + 10);
    (k, m, plain, blob)
}

fn region_error(r: Result<Vec<u8>, Error>) -> (u64, String) {
    match r {
        Err(e @ Error::CseRegion { region, .. }) => (region, e.to_string()),
        other => panic!("expected a region error, got {other:?}"),
    }
}

#[tokio::test]
async fn tampered_bodies_are_refused() {
    let (k, m, plain, blob) = small().await;
    let d = CseDecryptor::new(&m, &resolver(&k)).await.unwrap();
    assert_eq!(d.decrypt(&blob).unwrap(), plain);
    let regions: Vec<&[u8]> = blob.chunks(RL).collect();
    let join =
        |order: &[usize]| -> Vec<u8> { order.iter().flat_map(|i| regions[*i].to_vec()).collect() };

    let cases: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        ("reordered", join(&[1, 0, 2, 3]), 0, "nonce"),
        ("swapped in the middle", join(&[0, 2, 1, 3]), 1, "nonce"),
        ("dropped from the middle", join(&[0, 2, 3]), 1, "nonce"),
        ("duplicated", join(&[0, 0, 1, 2, 3]), 1, "nonce"),
        (
            "region repeated at the end",
            join(&[0, 1, 2, 2]),
            3,
            "nonce",
        ),
    ];
    for (what, body, region, word) in cases {
        let (r, msg) = region_error(d.decrypt(&body));
        assert_eq!(r, region, "{what}: {msg}");
        assert!(msg.contains(word), "{what}: {msg}");
    }
    // A flipped bit anywhere: nonce, data or tag.
    let mut flips = 0;
    for pos in (0..blob.len()).step_by(5) {
        let mut b = blob.clone();
        b[pos] ^= 0x10;
        let (r, msg) = region_error(d.decrypt(&b));
        assert_eq!(r as usize, pos / RL, "bit at {pos}");
        let in_nonce = pos % RL < 12;
        assert!(
            msg.contains(if in_nonce {
                "nonce"
            } else {
                "authentication failed"
            }),
            "bit at {pos}: {msg}"
        );
        flips += 1;
    }
    println!("{flips} flipped bits refused");
    // Truncated inside a region, or trailing bytes: refused by length, or
    // (inside the last region) by its tag. What the reader released
    // before is whole regions only.
    for cut in [1, 27, RL + 5, 2 * RL + 27, blob.len() - 1] {
        let (_, msg) = region_error(d.decrypt(&blob[..cut]));
        assert!(
            msg.contains("truncated") || msg.contains("authentication failed"),
            "cut {cut}: {msg}"
        );
        let mut out = Vec::new();
        let e = d.reader(&blob[..cut]).read_to_end(&mut out).unwrap_err();
        assert!(matches!(Error::from(e), Error::CseRegion { .. }));
        assert_eq!(out.len() % R, 0, "cut {cut}: only whole verified regions");
        assert_eq!(out, &plain[..out.len()]);
    }
    let mut longer = blob.clone();
    longer.extend_from_slice(&[0; 3]);
    region_error(d.decrypt(&longer));
    // What the format cannot detect: truncation at a region boundary
    // (documented in the module). It yields a prefix of the plaintext.
    assert_eq!(d.decrypt(&blob[..2 * RL]).unwrap(), &plain[..2 * R]);
    // A region from another blob under another key fails authentication.
    let (_, _, _, other) = small().await;
    let mut spliced = blob.clone();
    spliced[RL..2 * RL].copy_from_slice(&other[RL..2 * RL]);
    let (r, msg) = region_error(d.decrypt(&spliced));
    assert_eq!(r, 1);
    assert!(msg.contains("authentication failed"), "{msg}");
    // A ranged fetch of the wrong bytes.
    let plan = d.plan_range(70..80, blob.len() as u64).unwrap();
    assert_eq!(plan.first_region(), 1);
    let ct = plan.ciphertext();
    let wrong = &blob[..ct.end as usize - ct.start as usize];
    let (r, _) = region_error(d.decrypt_range(&plan, wrong));
    assert_eq!(r, 1);
}

fn edit(m: &EncryptionData, from: &str, to: &str) -> EncryptionData {
    let j = m.to_json();
    assert!(j.contains(from), "{j}");
    EncryptionData::parse(&j.replacen(from, to, 1)).unwrap()
}

#[tokio::test]
async fn tampered_metadata_and_wrong_keys_are_refused() {
    let (k, m, plain, blob) = small().await;
    let r = resolver(&k);
    // A mismatched protocol: the prefix inside the wrapped key says 2.1.
    let v20 = m
        .to_json()
        .replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"2.0\"")
        .replace(&format!("\"DataLength\":{R}"), "\"DataLength\":4194304");
    let v20 = EncryptionData::parse(&v20).unwrap();
    let e = azure_cse::decrypt(&v20, &r, &blob).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("encryption metadata has been tampered"),
        "{e}"
    );
    // A changed region size: every region then fails.
    let bigger = edit(&m, &format!("\"DataLength\":{R}"), "\"DataLength\":32");
    let e = azure_cse::decrypt(&bigger, &r, &blob).await.unwrap_err();
    assert!(matches!(e, Error::CseRegion { .. }), "{e}");
    // A wrong KeyId: unknown to the resolver, or a KEK with another id.
    let other_id = edit(
        &m,
        &format!("\"KeyId\":\"{KID}\""),
        "\"KeyId\":\"someone-else\"",
    );
    let e = azure_cse::decrypt(&other_id, &r, &blob).await.unwrap_err();
    assert!(matches!(e, Error::UnknownKek { .. }), "{e}");
    let e = CseDecryptor::with_kek(&other_id, k.as_ref(), CryptoProvider::default_provider())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("KeyId") && e.to_string().contains("someone-else"),
        "{e}"
    );
    // A resolver that maps the id to a KEK with another id.
    struct Liar(Arc<dyn KeyEncryptionKey>);
    impl KeyResolver for Liar {
        fn resolve(&self, _: &str) -> Option<Arc<dyn KeyEncryptionKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    let e = azure_cse::decrypt(&other_id, &Liar(Arc::clone(&k)), &blob)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("KeyId"), "{e}");
    // The right id but the wrong key material.
    let impostor = kek_with(KID, &[0x77; 32]);
    let e = azure_cse::decrypt(&m, &resolver(&impostor), &blob)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnwrapFailed { .. }), "{e}");
    // The wrapped key of another blob: unwraps, and regions fail.
    let (_, m2, _, _) = small().await;
    let swapped = EncryptionData::parse(&m.to_json().replace(
        &base64_of(m.encrypted_key()),
        &base64_of(m2.encrypted_key()),
    ))
    .unwrap();
    let e = azure_cse::decrypt(&swapped, &r, &blob).await.unwrap_err();
    assert!(matches!(e, Error::CseRegion { region: 0, .. }), "{e}");
    // An algorithm the KEK does not use.
    let alg = edit(&m, "\"Algorithm\":\"A256KW\"", "\"Algorithm\":\"RSA-OAEP\"");
    let e = azure_cse::decrypt(&alg, &r, &blob).await.unwrap_err();
    assert!(e.to_string().contains("Algorithm"), "{e}");
    // Protocol 1.0 metadata parses but is never decrypted without the opt-in.
    let v1 = m
        .to_json()
        .replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"1.0\"")
        .replace("AES_GCM_256", "AES_CBC_256")
        .replace(
            "\"EncryptionMode\"",
            "\"ContentEncryptionIV\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"EncryptionMode\"",
        );
    let v1 = EncryptionData::parse(&v1).unwrap();
    assert_eq!(v1.protocol(), Protocol::V1_0);
    let e = azure_cse::decrypt(&v1, &r, &blob).await.unwrap_err();
    assert!(e.to_string().contains("CVE-2022-30187"), "{e}");
    // Malformed JSON and the wrong mode, with clear messages.
    for (j, word) in [
        ("{", "JSON"),
        ("{}", "EncryptionAgent"),
        (
            &m.to_json().replace("FullBlob", "PartialBlob")[..],
            "EncryptionMode",
        ),
        (
            &m.to_json().replace("AES_GCM_256", "AES_CBC_256")[..],
            "EncryptionAlgorithm",
        ),
    ] {
        let e = EncryptionData::parse(j).unwrap_err();
        assert!(
            matches!(e, Error::CseMetadata(_)) && e.to_string().contains(word),
            "{e}"
        );
    }
    // The untouched metadata still works.
    assert_eq!(azure_cse::decrypt(&m, &r, &blob).await.unwrap(), plain);
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn our_nonces_are_pythons_and_a_writer_streams() {
    let k = kek();
    let enc = CseEncryptor::new(k.as_ref(), &CseEncryptOptions::v2_1(R as u64).unwrap())
        .await
        .unwrap();
    let m = enc.metadata().clone();
    let mut w = enc.writer(Vec::new());
    let plain: Vec<u8> = (0..5 * R).map(|i| (i * 3) as u8).collect();
    for piece in plain.chunks(13) {
        w.write_all(piece).unwrap();
    }
    let blob = w.finish().unwrap();
    assert_eq!(
        blob.len(),
        5 * RL,
        "an exact multiple ends with a full region"
    );
    for (i, region) in blob.chunks(RL).enumerate() {
        assert_eq!(region[..12], NonceEncoding::Python.nonce(i as u64));
    }
    let d = CseDecryptor::new(&m, &resolver(&k)).await.unwrap();
    assert_eq!(d.decrypt(&blob).unwrap(), plain);
    let plan = CseRangePlan::new(0..u64::MAX, blob.len() as u64, R as u64).unwrap();
    assert_eq!(plan.plaintext(), 0..plain.len() as u64);
}

/// A sink that fails its `fail_at`-th write once, recording what it took.
struct FlakySink {
    taken: Vec<u8>,
    writes: usize,
    fail_at: usize,
}

impl Write for FlakySink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        if self.writes == self.fail_at {
            return Err(std::io::Error::other("disk full"));
        }
        self.taken.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failed_write_poisons_the_writer_and_never_reseals_a_region() {
    let k = kek();
    let plain = [0x41u8; 3 * R];
    // The second inner write is the first region's body: it fails after
    // the region was sealed in place.
    let mut sink = FlakySink {
        taken: Vec::new(),
        writes: 0,
        fail_at: 2,
    };
    let enc = CseEncryptor::new(k.as_ref(), &CseEncryptOptions::v2_1(R as u64).unwrap())
        .await
        .unwrap();
    let mut w = enc.writer(&mut sink);
    w.write_all(&plain[..R]).unwrap();
    let e = w.write_all(&plain[R..]).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    // A retry must not seal the buffered ciphertext again under the same
    // nonce (that would write the plaintext out): it fails, and so does
    // finish.
    let e = w.write(&plain[R..]).unwrap_err();
    assert!(Error::from(e).to_string().contains("previous write failed"));
    assert!(w.finish().is_err());
    assert!(
        !sink.taken.windows(16).any(|win| win == [0x41u8; 16]),
        "plaintext reached the sink"
    );
}
