//! `scope`: operators manage scopes end to end, `encrypt`/`decrypt` under
//! them, and the tool as a second OS process on the file store an
//! in-process instance uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, FsScopeStore, ScopeStore};
use cmk_envelope::{open, seal, Header, KeyEncryptionKey, LocalKek, Profile};

use super::*;

impl Env {
    /// `scope show` as JSON.
    fn show(&self, scope: &str) -> Value {
        serde_json::from_slice(&self.ok(&["scope", "show", "--store", "st", "--scope", scope]))
            .expect("scope show prints JSON")
    }

    fn seal_under(&self, scope: &str, cmk: &str, input: &str, out: &str) {
        self.ok(&[
            "encrypt",
            "--store",
            "st",
            "--scope",
            scope,
            "--cmk",
            cmk,
            "--context",
            out,
            "-o",
            out,
            input,
        ]);
    }

    fn open_with(&self, cmk: &str, env: &str, out: &str) -> Output {
        self.run(&[
            "decrypt",
            "--store",
            "st",
            "--cmk",
            cmk,
            "--context",
            env,
            "-o",
            out,
            env,
        ])
    }
}

fn kids(record: &Value) -> Vec<String> {
    record["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kek_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn scope_commands_end_to_end() {
    let env = Env::new();
    fs::create_dir_all(env.path("vault")).unwrap();
    fs::create_dir_all(env.path("other-vault")).unwrap();
    env.aes_key("vault/cmk1.jwk", "cmk-1");
    env.aes_key("vault/cmk2.jwk", "cmk-2");
    env.aes_key("other-vault/x.jwk", "cmk-x");
    let msg = data(50_000, 21);
    env.write("plain", &msg);

    let created: Value = serde_json::from_slice(&env.ok(&[
        "scope",
        "create",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--cmk",
        "vault/cmk1.jwk",
    ]))
    .unwrap();
    assert_eq!(created["mode"], "customer-managed");
    assert_eq!(created["current"], 1);
    assert_eq!(created["labelled"], true);
    assert_eq!(kids(&created), ["cmk-1"]);
    assert!(created["key_container"].as_str().unwrap().contains("vault"));
    // never key bytes, not even wrapped ones
    let text = created.to_string();
    assert!(!text.contains("\"wrapped\""), "{text}");
    assert_eq!(env.show("tenant-1"), created);
    let again = env.run(&[
        "scope",
        "create",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--cmk",
        "vault/cmk1.jwk",
    ]);
    fails(&again, "already exists");

    env.seal_under("tenant-1", "vault/cmk1.jwk", "plain", "e1");
    assert_eq!(env.inspect("e1")["keys"][0]["kid"], "scope:tenant-1/1");
    ok(env.open_with("vault/cmk1.jwk", "e1", "o1"), &["decrypt"]);
    assert_eq!(env.read("o1"), msg);

    let rotated: Value = serde_json::from_slice(&env.ok(&[
        "scope",
        "rotate-key",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--cmk",
        "vault/cmk1.jwk",
    ]))
    .unwrap();
    assert_eq!(rotated["current"], 2);
    env.seal_under("tenant-1", "vault/cmk1.jwk", "plain", "e2");
    assert_eq!(env.inspect("e2")["keys"][0]["kid"], "scope:tenant-1/2");

    // Another key directory: refused, the record untouched.
    let before = env.show("tenant-1");
    let far = env.run(&[
        "scope",
        "rotate-cmk",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--cmk",
        "vault/cmk1.jwk",
        "--new-cmk",
        "other-vault/x.jwk",
    ]);
    fails(&far, "same key vault");
    assert_eq!(env.show("tenant-1"), before);
    // The same directory: every version re-wrapped, objects untouched.
    let moved: Value = serde_json::from_slice(&env.ok(&[
        "scope",
        "rotate-cmk",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--cmk",
        "vault/cmk1.jwk",
        "--new-cmk",
        "vault/cmk2.jwk",
    ]))
    .unwrap();
    assert_eq!(kids(&moved), ["cmk-2", "cmk-2"]);
    for e in ["e1", "e2"] {
        ok(
            env.open_with("vault/cmk2.jwk", e, &format!("{e}.out")),
            &["decrypt"],
        );
        assert_eq!(env.read(&format!("{e}.out")), msg);
    }
    let stale = env.open_with("vault/cmk1.jwk", "e1", "stale.out");
    fails(&stale, "cmk-2");
    assert!(!env.exists("stale.out"));

    // Destroy: confirmed by the id, then every decrypt fails.
    let unconfirmed = env.run(&[
        "scope",
        "destroy",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--confirm",
        "tenant-2",
    ]);
    fails(&unconfirmed, "id twice");
    env.ok(&[
        "scope",
        "destroy",
        "--store",
        "st",
        "--scope",
        "tenant-1",
        "--confirm",
        "tenant-1",
    ]);
    let gone = env.open_with("vault/cmk2.jwk", "e1", "gone.out");
    fails(&gone, "no key record");
    assert!(!env.exists("gone.out"), "no output left behind");
    fails(
        &env.run(&["scope", "show", "--store", "st", "--scope", "tenant-1"]),
        "no key record",
    );
    env.assert_no_temp_files();
}

#[test]
fn service_managed_scopes_and_usage_errors() {
    let env = Env::new();
    env.aes_key("svc.jwk", "svc");
    env.write("plain", b"hello");
    let created: Value = serde_json::from_slice(&env.ok(&[
        "scope",
        "create",
        "--store",
        "st",
        "--scope",
        "s",
        "--cmk",
        "svc.jwk",
        "--service-managed",
    ]))
    .unwrap();
    assert_eq!(created["mode"], "service-managed");
    env.seal_under("s", "svc.jwk", "plain", "e");
    ok(env.open_with("svc.jwk", "e", "o"), &["decrypt"]);
    assert_eq!(env.read("o"), b"hello");
    // encrypt --store without --scope; --store without --cmk; a missing store
    fails(
        &env.run(&[
            "encrypt",
            "--store",
            "st",
            "--cmk",
            "svc.jwk",
            "--context",
            "c",
            "plain",
        ]),
        "--scope",
    );
    fails(
        &env.run(&["decrypt", "--store", "st", "--context", "c", "e"]),
        "--cmk",
    );
    fails(
        &env.run(&["scope", "show", "--store", "nowhere", "--scope", "s"]),
        "no such directory",
    );
    // a header that names no scope, opened through --store
    env.ok(&[
        "encrypt",
        "--kek",
        "svc.jwk",
        "--context",
        "c",
        "-o",
        "plain.env",
        "plain",
    ]);
    fails(
        &env.run(&[
            "decrypt",
            "--store",
            "st",
            "--cmk",
            "svc.jwk",
            "--context",
            "c",
            "plain.env",
        ]),
        "names no scope key",
    );
}

/// The tool runs as a second OS process on the file store an in-process
/// instance (B) uses: B follows its key rotation and refuses everything
/// within the TTL of its destroy.
#[tokio::test]
async fn a_second_process_rotates_and_destroys_a_scope_another_one_uses() {
    let env = Env::new();
    env.aes_key("cmk.jwk", "cmk");
    env.ok(&[
        "scope", "create", "--store", "st", "--scope", "shared", "--cmk", "cmk.jwk",
    ]);
    let ttl = Duration::from_millis(500);
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(env.path("st")).unwrap());
    let cmk: Arc<dyn KeyEncryptionKey> =
        Arc::new(LocalKek::from_jwk_file(env.path("cmk.jwk")).unwrap());
    let policy = CachePolicy {
        ttl,
        failure_backoff: Duration::from_millis(20),
        ..CachePolicy::default()
    };
    let b = EncryptionScope::open(store, "shared", Cmk::CustomerManaged(cmk), policy)
        .await
        .unwrap();
    let kid = |e: &[u8]| Header::parse_prefix(e).unwrap().0.keys()[0].kek_id.clone();
    let first = seal(&[b.kek()], Profile::Blob, b"b1", b"from B")
        .await
        .unwrap();
    assert_eq!(kid(&first), "scope:shared/1");

    env.ok(&[
        "scope",
        "rotate-key",
        "--store",
        "st",
        "--scope",
        "shared",
        "--cmk",
        "cmk.jwk",
    ]);
    let rotated = Instant::now();
    loop {
        let e = seal(&[b.kek()], Profile::Blob, b"b2", b"x").await.unwrap();
        if kid(&e) == "scope:shared/2" {
            break;
        }
        assert!(rotated.elapsed() < ttl + Duration::from_millis(250));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "B followed the other process's rotation after {:?}",
        rotated.elapsed()
    );
    // and the tool opens what B sealed
    env.write("first.env", &first);
    env.ok(&[
        "decrypt",
        "--store",
        "st",
        "--cmk",
        "cmk.jwk",
        "--context",
        "b1",
        "-o",
        "first.out",
        "first.env",
    ]);
    assert_eq!(env.read("first.out"), b"from B");

    env.ok(&[
        "scope",
        "destroy",
        "--store",
        "st",
        "--scope",
        "shared",
        "--confirm",
        "shared",
    ]);
    let destroyed = Instant::now();
    let e = loop {
        match open(&b.resolver(), Profile::Blob, b"b1", &first).await {
            Ok(_) => assert!(destroyed.elapsed() < ttl + Duration::from_millis(250)),
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!(
        "B refused {:?} after the other process destroyed the scope: {e}",
        destroyed.elapsed()
    );
    assert!(
        matches!(e, cmk_envelope::Error::ScopeNotFound { .. }),
        "{e}"
    );
    assert!(seal(&[b.kek()], Profile::Blob, b"b3", b"x").await.is_err());
}

/// STORE as an Azure Blob container URL (Azurite, a SAS in the query):
/// the same commands, and the SAS never shows in what the tool prints.
#[cfg(feature = "blob")]
#[tokio::test]
async fn scopes_kept_in_an_azure_blob_container() {
    let url = super::azurite::container_url(&super::azurite::unique_container("cli-scope"));
    super::azurite::create_container(&url).await;
    let sig = url.split("sig=").nth(1).unwrap().to_owned();
    let env = Env::new();
    env.aes_key("cmk.jwk", "cmk");
    env.write("plain", b"kept under a scope in blob storage");
    let created = env.ok(&[
        "scope", "create", "--store", &url, "--scope", "t", "--cmk", "cmk.jwk",
    ]);
    let created: Value = serde_json::from_slice(&created).unwrap();
    assert_eq!(created["current"], 1);
    env.ok(&[
        "encrypt",
        "--store",
        &url,
        "--scope",
        "t",
        "--cmk",
        "cmk.jwk",
        "--context",
        "c",
        "-o",
        "e",
        "plain",
    ]);
    env.ok(&[
        "scope",
        "rotate-key",
        "--store",
        &url,
        "--scope",
        "t",
        "--cmk",
        "cmk.jwk",
    ]);
    env.ok(&[
        "decrypt",
        "--store",
        &url,
        "--cmk",
        "cmk.jwk",
        "--context",
        "c",
        "-o",
        "o",
        "e",
    ]);
    assert_eq!(env.read("o"), b"kept under a scope in blob storage");
    env.ok(&[
        "scope",
        "destroy",
        "--store",
        &url,
        "--scope",
        "t",
        "--confirm",
        "t",
    ]);
    let gone = env.run(&[
        "decrypt",
        "--store",
        &url,
        "--cmk",
        "cmk.jwk",
        "--context",
        "c",
        "-o",
        "o2",
        "e",
    ]);
    let line = fails(&gone, "no key record");
    assert!(!line.contains(&sig), "{line}");
    assert!(!env.exists("o2"));
}
