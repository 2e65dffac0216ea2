//! `cosmos-ae encrypt | decrypt | new-cek | rewrap-cek`, and one round
//! trip through the official JavaScript SDK's own encryption code
//! (tests/fixtures/cosmos_ae_sdk.js; needs `scripts/cosmos-sdk.sh`).

use super::*;

#[path = "../common/cosmos_sdk.rs"]
mod cosmos_sdk;

const POLICY: &str = r#"{"includedPaths":[
  {"path":"/id","clientEncryptionKeyId":"cek1","encryptionType":"Deterministic","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256"},
  {"path":"/ssn","clientEncryptionKeyId":"cek1","encryptionType":"Randomized","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256"},
  {"path":"/tags","clientEncryptionKeyId":"cek1","encryptionType":"Deterministic","encryptionAlgorithm":"AEAD_AES_256_CBC_HMAC_SHA256"}],
 "policyFormatVersion":2}"#;

const KEK_URL: &str =
    "https://myvault.vault.azure.net/keys/cli-kek/00112233445566778899aabbccddeeff";

/// An RSA-OAEP key `kek.jwk` whose kid is a Key Vault-style URL, a CEK
/// `cek.json` under it, the policy, and two items.
fn setup() -> Env {
    let env = Env::new();
    env.ok(&[
        "keygen", "--alg", "RSA-OAEP", "--kid", KEK_URL, "--bits", "3072", "--out", "kek.jwk",
    ]);
    let out = env.run(&[
        "cosmos-ae",
        "new-cek",
        "--kek",
        "kek.jwk",
        "--id",
        "cek1",
        "-o",
        "cek.json",
    ]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    env.write("policy.json", POLICY.as_bytes());
    env.write(
        "items.json",
        br#"[{"id":"p/1","ssn":"078-05-1120","tags":["a",{"k":2.5},null],"clear":true},{"id":"p2","ssn":null}]"#,
    );
    env
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON output")
}

const KEYS: [&str; 6] = [
    "--kek",
    "kek.jwk",
    "--cek",
    "cek.json",
    "--policy",
    "policy.json",
];

/// `cosmos-ae CMD --kek KEK --cek CEK --policy POLICY ITEM`.
fn item_cmd(env: &Env, cmd: &str, kek: &str, cek: &str, policy: &str, item: &str) -> Output {
    env.run(&[
        "cosmos-ae",
        cmd,
        "--kek",
        kek,
        "--cek",
        cek,
        "--policy",
        policy,
        item,
    ])
}

fn args<'a>(cmd: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["cosmos-ae", cmd];
    v.extend_from_slice(&KEYS);
    v.extend_from_slice(extra);
    v
}

#[test]
fn cosmos_ae_round_trip_files_stdin_and_rewrap() {
    let env = setup();
    let cek = json_of(&env.read("cek.json"));
    assert_eq!(cek["keyWrapMetadata"]["value"], KEK_URL);
    assert_eq!(cek["keyWrapMetadata"]["type"], "AZURE_KEY_VAULT");
    assert_eq!(cek["keyWrapMetadata"]["algorithm"], "RSA-OAEP");
    env.ok(&args("encrypt", &["-o", "enc.json", "items.json"]));
    let enc = json_of(&env.read("enc.json"));
    assert_eq!(enc[0]["clear"], true);
    assert!(enc[0]["ssn"].is_string() && enc[1]["ssn"].is_null());
    assert!(enc[0]["tags"][1]["k"].is_string() && enc[0]["tags"][2].is_null());
    assert!(!enc[0]["id"].as_str().unwrap().contains('/'));
    // stdin to stdout, one item.
    let one = serde_json::to_vec(&enc[0]).unwrap();
    let back = json_of(&env.ok_with(&args("decrypt", &[]), &one));
    assert_eq!(
        back,
        json_of(br#"{"id":"p/1","ssn":"078-05-1120","tags":["a",{"k":2.5},null],"clear":true}"#)
    );
    env.ok(&args("decrypt", &["-o", "dec.json", "enc.json"]));
    assert_eq!(
        json_of(&env.read("dec.json")),
        json_of(&env.read("items.json"))
    );
    assert_eq!(mode(&env.path("dec.json")), 0o600);

    // Rewrap to another RSA-OAEP key in the same directory.
    let url2 = "https://myvault.vault.azure.net/keys/cli-kek2/ffeeddccbbaa99887766554433221100";
    env.ok(&[
        "keygen", "--alg", "RSA-OAEP", "--kid", url2, "--bits", "3072", "--out", "kek2.jwk",
    ]);
    env.ok(&[
        "cosmos-ae",
        "rewrap-cek",
        "--kek",
        "kek.jwk",
        "--new-kek",
        "kek2.jwk",
        "-o",
        "cek2.json",
        "cek.json",
    ]);
    assert_eq!(
        json_of(&env.read("cek2.json"))["keyWrapMetadata"]["value"],
        url2
    );
    let back = ok(
        item_cmd(
            &env,
            "decrypt",
            "kek2.jwk",
            "cek2.json",
            "policy.json",
            "enc.json",
        ),
        &["decrypt"],
    );
    assert_eq!(json_of(&back), json_of(&env.read("items.json")));
    env.assert_no_temp_files();
}

#[test]
fn cosmos_ae_failures_are_one_line_and_leave_nothing() {
    let env = setup();
    env.ok(&args("encrypt", &["-o", "enc.json", "items.json"]));
    let mut enc = json_of(&env.read("enc.json"));
    // One bit of one leaf of the first item.
    let leaf = enc[0]["tags"][0].as_str().unwrap().to_owned();
    let mut raw = base64_decode(&leaf);
    raw[10] ^= 0x04;
    enc[0]["tags"][0] = Value::String(base64_encode(&raw));
    env.write("bad.json", &serde_json::to_vec(&enc).unwrap());
    let out = env.run(&args("decrypt", &["-o", "out.json", "bad.json"]));
    let line = fails(&out, "item 0: corrupted or tampered input");
    assert!(line.contains("`/tags/0`"), "{line}");
    assert!(!env.exists("out.json"));
    env.assert_no_temp_files();

    // Another key with the same kid: the wrong root key.
    env.ok(&[
        "keygen",
        "--alg",
        "RSA-OAEP",
        "--kid",
        KEK_URL,
        "--bits",
        "3072",
        "--out",
        "other.jwk",
    ]);
    let out = env.run(&[
        "cosmos-ae",
        "decrypt",
        "--kek",
        "other.jwk",
        "--cek",
        "cek.json",
        "--policy",
        "policy.json",
        "-o",
        "out.json",
        "enc.json",
    ]);
    fails(&out, "wrong key");
    // A key that is not the CEK's: never contacted.
    env.aes_key("aes.jwk", "aes-kid");
    let out = item_cmd(
        &env,
        "decrypt",
        "aes.jwk",
        "cek.json",
        "policy.json",
        "enc.json",
    );
    fails(&out, "unknown kid");
    // Bad policy and CEK files name the field.
    env.write(
        "p1.json",
        POLICY
            .replace("\"policyFormatVersion\":2", "\"policyFormatVersion\":1")
            .as_bytes(),
    );
    let out = item_cmd(
        &env,
        "encrypt",
        "kek.jwk",
        "cek.json",
        "p1.json",
        "items.json",
    );
    fails(&out, "policyFormatVersion");
    let cek = String::from_utf8(env.read("cek.json")).unwrap();
    env.write(
        "c2.json",
        cek.replace("AEAD_AES_256_CBC_HMAC_SHA256", "AES")
            .as_bytes(),
    );
    let out = item_cmd(
        &env,
        "encrypt",
        "kek.jwk",
        "c2.json",
        "policy.json",
        "items.json",
    );
    fails(&out, "encryptionAlgorithm");
    // Not JSON; an existing output.
    let out = env.run_with(&args("encrypt", &[]), Some(b"{not json"));
    fails(&out, "stdin: not valid JSON");
    let out = env.run(&args("encrypt", &["-o", "enc.json", "items.json"]));
    fails(&out, "already exists");
    // An id that is not a string, under an encrypted /id.
    let out = env.run_with(&args("encrypt", &[]), Some(br#"{"id":5}"#));
    fails(&out, "`/id`");
    // Rewrap to another directory needs the opt-out.
    std::fs::create_dir(env.path("elsewhere")).unwrap();
    env.ok(&[
        "keygen",
        "--alg",
        "RSA-OAEP",
        "--kid",
        "far",
        "--bits",
        "3072",
        "--out",
        "elsewhere/far.jwk",
    ]);
    let out = env.run(&[
        "cosmos-ae",
        "rewrap-cek",
        "--kek",
        "kek.jwk",
        "--new-kek",
        "elsewhere/far.jwk",
        "-o",
        "moved.json",
        "cek.json",
    ]);
    fails(&out, "within its vault");
    assert!(!env.exists("moved.json"));
    env.ok(&[
        "cosmos-ae",
        "rewrap-cek",
        "--allow-other-vault",
        "--kek",
        "kek.jwk",
        "--new-kek",
        "elsewhere/far.jwk",
        "-o",
        "moved.json",
        "cek.json",
    ]);
    // An AES KEK makes a CEK only this tool reads: it says so.
    let out = env.run(&[
        "cosmos-ae",
        "new-cek",
        "--kek",
        "aes.jwk",
        "--id",
        "c",
        "-o",
        "aes-cek.json",
    ]);
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("warning") && warning.contains("RSA-OAEP"),
        "{warning}"
    );
    env.assert_no_temp_files();
}

/// Items the SDK encrypted decrypt with the tool, and the tool's decrypt
/// with the SDK, with a CEK the tool created.
#[test]
fn cosmos_ae_interoperates_with_the_sdk() {
    let env = setup();
    let p = |n: &str| env.path(n).to_str().unwrap().to_owned();
    let keys = format!(
        r#"{{"{KEK_URL}": {}}}"#,
        String::from_utf8(env.read("kek.jwk")).unwrap()
    );
    let run_sdk = |op: &str, input: &str, out: &str| {
        let jobs = serde_json::json!([
            {"op": op, "ceks": [p("cek.json")], "policy": p("policy.json"),
             "partitionKeyPaths": ["/pk"], "in": p(input), "out": p(out)},
        ]);
        env.write("jobs.json", jobs.to_string().as_bytes());
        cosmos_sdk::run(&env.path("jobs.json"), &keys);
    };
    run_sdk("encrypt", "items.json", "sdk-out.json");
    let sdk_enc: Vec<Value> = json_of(&env.read("sdk-out.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].clone())
        .collect();
    env.write("sdk-enc.json", &serde_json::to_vec(&sdk_enc).unwrap());
    let back = env.ok(&args("decrypt", &["sdk-enc.json"]));
    assert_eq!(json_of(&back), json_of(&env.read("items.json")));
    // The tool's deterministic leaves are the SDK's.
    let ours = json_of(&env.ok(&args("encrypt", &["items.json"])));
    assert_eq!(ours[0]["id"], sdk_enc[0]["id"]);
    assert_eq!(ours[0]["tags"], sdk_enc[0]["tags"]);
    // And the SDK decrypts the tool's output.
    env.write("ours.json", &serde_json::to_vec(&ours).unwrap());
    run_sdk("decrypt", "ours.json", "sdk-dec.json");
    let dec: Vec<Value> = json_of(&env.read("sdk-dec.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].clone())
        .collect();
    assert_eq!(Value::Array(dec), json_of(&env.read("items.json")));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
