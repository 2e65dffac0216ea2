//! Azure Key Vault / Managed HSM KEKs against an in-process HTTPS Key Vault
//! server (tests/common/keyvault_server.rs): conformance, versioned kids,
//! preflight, retries under fault injection, secrets hygiene, latency.

#![cfg(feature = "azure")]

mod common;
#[path = "common/keyvault_client.rs"]
mod keyvault_client;
#[path = "common/keyvault_server.rs"]
mod keyvault_server;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Method, Request, Transport, Url};
use cmk_envelope::conformance::kek as kek_conformance;
use cmk_envelope::kek::azure::{
    AzureKeyVaultKek, AzureKeyVaultResolver, CredentialChain, CredentialChainOptions,
    CredentialKind, PreflightProblem, RetryConfig,
};
use cmk_envelope::{
    open, seal, CryptoProvider, DataKey, Error, Header, KekErrorKind, KeyEncryptionKey,
    KeyResolver, Profile, WrapAlgorithm,
};
use keyvault_client::{fast_retry, http, kek, kek_with, FixedToken};
use keyvault_server::{Fault, KeySpec, KeyVaultServer, RandomFaults, HSM_HOST, TENANT, VAULT_HOST};

fn dek() -> DataKey {
    DataKey::generate(CryptoProvider::default_provider()).unwrap()
}

fn kek_kind(e: &Error) -> Option<KekErrorKind> {
    match e {
        Error::Kek(k) => Some(k.kind()),
        _ => None,
    }
}

fn preflight_problem(e: &Error) -> Option<PreflightProblem> {
    match e {
        Error::Kek(k) => std::error::Error::source(k)?
            .downcast_ref::<PreflightProblem>()
            .cloned(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_rsa_oaep_256_and_rsa_oaep() {
    let server = KeyVaultServer::start().await;
    let va = server.add_key(KeySpec::rsa("cmk-a"));
    let vb = server.add_key(KeySpec::rsa("cmk-b"));
    for alg in [WrapAlgorithm::RsaOaep256, WrapAlgorithm::RsaOaep] {
        let a = kek(&server, &KeyVaultServer::kid(VAULT_HOST, "cmk-a", &va), alg);
        let b = kek(&server, &KeyVaultServer::kid(VAULT_HOST, "cmk-b", &vb), alg);
        let r = kek_conformance::run(Arc::new(a), Arc::new(b)).await;
        println!("conformance azure {alg}: {r:?}");
        assert_eq!(r.modifications_rejected, 256 * 2);
        assert_eq!(r.material_round_trips, 4);
        assert_eq!(r.lengths_refused, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_managed_hsm_a256kw() {
    let server = KeyVaultServer::start().await;
    let va = server.add_key(KeySpec::hsm_aes("aes-a"));
    let vb = server.add_key(KeySpec::hsm_aes("aes-b"));
    let a = kek(
        &server,
        &KeyVaultServer::kid(HSM_HOST, "aes-a", &va),
        WrapAlgorithm::A256Kw,
    );
    let b = kek(
        &server,
        &KeyVaultServer::kid(HSM_HOST, "aes-b", &vb),
        WrapAlgorithm::A256Kw,
    );
    assert_eq!(
        a.key_container().as_deref(),
        Some("https://myhsm.managedhsm.azure.net")
    );
    let r = kek_conformance::run(Arc::new(a), Arc::new(b)).await;
    println!("conformance azure managed HSM A256KW: {r:?}");
    assert_eq!(r.modifications_rejected, 40 * 2);
    assert_eq!(r.material_round_trips, 4);
    assert_eq!(r.lengths_refused, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_record_versioned_kid_and_decrypt_through_resolver() {
    let server = KeyVaultServer::start().await;
    let v1 = server.add_key(KeySpec::rsa("cmk"));
    let unversioned = format!("https://{VAULT_HOST}/keys/cmk");
    let first = kek(&server, &unversioned, WrapAlgorithm::RsaOaep256);
    let verified = first.verify().await.unwrap();
    assert_eq!(verified.kid, KeyVaultServer::kid(VAULT_HOST, "cmk", &v1));
    assert_eq!(verified.recovery_level, "Recoverable");
    let resolver = AzureKeyVaultResolver::new(first);
    // Through the unversioned KEK itself:
    let base: Arc<dyn KeyEncryptionKey> = Arc::new(kek_with(
        &server,
        &unversioned,
        WrapAlgorithm::RsaOaep256,
        fast_retry(),
    ));
    let e1 = seal(
        &[Arc::clone(&base)],
        Profile::Blob,
        b"container/blob-1",
        b"hello key vault",
    )
    .await
    .unwrap();
    let (h1, _) = Header::parse_prefix(&e1).unwrap();
    assert_eq!(
        h1.keys()[0].kek_id,
        KeyVaultServer::kid(VAULT_HOST, "cmk", &v1),
        "header kid must be versioned"
    );
    assert_eq!(
        open(&resolver, Profile::Blob, b"container/blob-1", &e1)
            .await
            .unwrap(),
        b"hello key vault"
    );
    // An unversioned KEK cannot know which version wrapped a key.
    let w = base.wrap_key(&dek()).await.unwrap();
    let err = base.unwrap_key(&w.wrapped).await.unwrap_err();
    assert_eq!(kek_kind(&err), Some(KekErrorKind::KeyUsage), "{err}");
    assert!(err.to_string().contains("AzureKeyVaultResolver"), "{err}");

    // Rotate: a new version becomes current after verify(); old envelopes
    // still open with the version their header names.
    let v2 = server.add_key(KeySpec::rsa("cmk"));
    let base_kek = kek_with(
        &server,
        &unversioned,
        WrapAlgorithm::RsaOaep256,
        fast_retry(),
    );
    base_kek.verify().await.unwrap();
    let e2 = seal(
        &[Arc::new(base_kek) as Arc<dyn KeyEncryptionKey>],
        Profile::Blob,
        b"c/b2",
        b"second",
    )
    .await
    .unwrap();
    let (h2, _) = Header::parse_prefix(&e2).unwrap();
    assert_eq!(
        h2.keys()[0].kek_id,
        KeyVaultServer::kid(VAULT_HOST, "cmk", &v2)
    );
    let unwraps_before = server
        .counters()
        .unwraps
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        open(&resolver, Profile::Blob, b"c/b2", &e2).await.unwrap(),
        b"second"
    );
    assert_eq!(
        open(&resolver, Profile::Blob, b"container/blob-1", &e1)
            .await
            .unwrap(),
        b"hello key vault"
    );
    assert_eq!(
        server
            .counters()
            .unwraps
            .load(std::sync::atomic::Ordering::Relaxed)
            - unwraps_before,
        2
    );

    // A resolver for one version allows only that version.
    let only_v1 = AzureKeyVaultResolver::new(kek(
        &server,
        &KeyVaultServer::kid(VAULT_HOST, "cmk", &v1),
        WrapAlgorithm::RsaOaep256,
    ));
    assert!(only_v1.resolve(&h1.keys()[0].kek_id).is_some());
    assert!(only_v1.resolve(&h2.keys()[0].kek_id).is_none());
    assert!(matches!(
        open(&only_v1, Profile::Blob, b"c/b2", &e2).await,
        Err(Error::UnknownKek { .. })
    ));
}

#[tokio::test]
async fn resolver_never_contacts_a_key_only_because_a_header_names_it() {
    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let resolver = AzureKeyVaultResolver::new(kek(
        &server,
        &format!("https://{VAULT_HOST}/keys/cmk"),
        WrapAlgorithm::RsaOaep256,
    ));
    for id in [
        format!("https://{VAULT_HOST}/keys/cmk"), // unversioned
        format!("https://othervault.vault.azure.net/keys/cmk/{v}"), // another vault
        format!("https://{VAULT_HOST}/keys/other/{v}"), // another key
        format!("https://{HSM_HOST}/keys/cmk/{v}"), // another service
        format!("http://{VAULT_HOST}/keys/cmk/{v}"), // not https
        format!("https://{VAULT_HOST}:8443/keys/cmk/{v}"), // a port
        format!("https://{VAULT_HOST}/keys/cmk/{v}?x=1"), // a query
        "local-0123".to_string(),
    ] {
        assert!(resolver.resolve(&id).is_none(), "{id} must not resolve");
    }
    assert!(resolver
        .resolve(&format!("https://MYVAULT.vault.azure.net/keys/CMK/{v}"))
        .is_some());
    assert_eq!(
        server
            .counters()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no request may be made"
    );
}

/// One vault misconfiguration per key; each must fail preflight with its own
/// problem, kind and message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_preflight_failure_has_its_own_error() {
    let server = KeyVaultServer::start().await;
    type Case = (
        &'static str,
        fn(&mut KeySpec),
        WrapAlgorithm,
        &'static str,
        KekErrorKind,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "disabled",
            |s| s.enabled = false,
            WrapAlgorithm::RsaOaep256,
            "Disabled",
            KekErrorKind::KeyUnavailable,
            "enable it",
        ),
        (
            "nbf",
            |s| s.nbf = Some(keyvault_server_now() + 3600),
            WrapAlgorithm::RsaOaep256,
            "NotYetValid",
            KekErrorKind::KeyUnavailable,
            "activation date",
        ),
        (
            "exp",
            |s| s.exp = Some(keyvault_server_now() - 60),
            WrapAlgorithm::RsaOaep256,
            "Expired",
            KekErrorKind::KeyUnavailable,
            "expiration date",
        ),
        (
            "nowrap",
            |s| s.key_ops = vec!["unwrapKey"],
            WrapAlgorithm::RsaOaep256,
            "MissingKeyOps",
            KekErrorKind::KeyUsage,
            "wrapKey",
        ),
        (
            "nounwrap",
            |s| s.key_ops = vec!["wrapKey", "encrypt"],
            WrapAlgorithm::RsaOaep256,
            "MissingKeyOps",
            KekErrorKind::KeyUsage,
            "unwrapKey",
        ),
        (
            "purgeable",
            |s| s.recovery_level = "Purgeable",
            WrapAlgorithm::RsaOaep256,
            "NotRecoverable",
            KekErrorKind::Misconfigured,
            "enable soft delete and purge protection",
        ),
        (
            "rpurgeable",
            |s| s.recovery_level = "Recoverable+Purgeable",
            WrapAlgorithm::RsaOaep256,
            "NotRecoverable",
            KekErrorKind::Misconfigured,
            "enable soft delete and purge protection",
        ),
        (
            "cpurgeable",
            |s| s.recovery_level = "CustomizedRecoverable+Purgeable",
            WrapAlgorithm::RsaOaep256,
            "NotRecoverable",
            KekErrorKind::Misconfigured,
            "enable soft delete and purge protection",
        ),
        (
            "eckey",
            |s| s.kty = "EC",
            WrapAlgorithm::RsaOaep256,
            "KeyTypeMismatch",
            KekErrorKind::Unsupported,
            "cannot do RSA-OAEP-256",
        ),
        (
            "small",
            |s| s.rsa_bits = 1024,
            WrapAlgorithm::RsaOaep256,
            "KeyTooSmall",
            KekErrorKind::Unsupported,
            "1024 bits",
        ),
    ];
    let mut messages = std::collections::HashSet::new();
    for (name, tweak, alg, variant, kind, hint) in cases {
        let mut spec = KeySpec::rsa(name);
        tweak(&mut spec);
        server.add_key(spec);
        let k = kek(&server, &format!("https://{VAULT_HOST}/keys/{name}"), alg);
        let e = k.verify().await.unwrap_err();
        let p =
            preflight_problem(&e).unwrap_or_else(|| panic!("{name}: no PreflightProblem in {e}"));
        assert!(format!("{p:?}").starts_with(variant), "{name}: {p:?}");
        assert_eq!(kek_kind(&e), Some(kind), "{name}: {e}");
        assert!(e.to_string().contains(hint), "{name}: {e}");
        assert!(!e.is_retryable(), "{name}");
        // The first wrap runs the same preflight and fails the same way.
        let w = k.wrap_key(&dek()).await.unwrap_err();
        assert_eq!(w.to_string(), e.to_string());
        println!("preflight {name}: {e}");
        assert!(
            messages.insert(p.to_string()),
            "{name}: message not distinct"
        );
    }

    // RSA key under a Managed HSM asked for A256KW: the key type does not fit.
    let mut hsm_rsa = KeySpec::rsa("hsmrsa");
    hsm_rsa.host = HSM_HOST;
    server.add_key(hsm_rsa);
    let e = kek(
        &server,
        &format!("https://{HSM_HOST}/keys/hsmrsa"),
        WrapAlgorithm::A256Kw,
    )
    .verify()
    .await
    .unwrap_err();
    assert!(
        matches!(
            preflight_problem(&e),
            Some(PreflightProblem::KeyTypeMismatch { .. })
        ),
        "{e}"
    );

    // Missing key: 404 on get.
    let e = kek(
        &server,
        &format!("https://{VAULT_HOST}/keys/nosuchkey"),
        WrapAlgorithm::RsaOaep256,
    )
    .verify()
    .await
    .unwrap_err();
    assert_eq!(
        preflight_problem(&e),
        Some(PreflightProblem::NotFound),
        "{e}"
    );
    assert_eq!(kek_kind(&e), Some(KekErrorKind::NotFound));

    // Caller cannot `get`: 403, naming the permission; never retried.
    server.add_key(KeySpec::rsa("noget"));
    server.deny("get");
    let before = server
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let e = kek(
        &server,
        &format!("https://{VAULT_HOST}/keys/noget"),
        WrapAlgorithm::RsaOaep256,
    )
    .verify()
    .await
    .unwrap_err();
    let after = server
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        preflight_problem(&e),
        Some(PreflightProblem::GetForbidden),
        "{e}"
    );
    assert_eq!(kek_kind(&e), Some(KekErrorKind::PermissionDenied));
    assert!(e.to_string().contains("keys/get"), "{e}");
    assert_eq!(
        after - before,
        2,
        "challenge + one get: a 403 is not retried"
    );
    server.allow_all();

    // Accepted recovery levels.
    for level in [
        "Recoverable+ProtectedSubscription",
        "CustomizedRecoverable",
        "CustomizedRecoverable+ProtectedSubscription",
    ] {
        let name = format!("ok{}", level.len());
        let mut spec = KeySpec::rsa(&name);
        spec.recovery_level = level;
        server.add_key(spec);
        let v = kek(
            &server,
            &format!("https://{VAULT_HOST}/keys/{name}"),
            WrapAlgorithm::RsaOaep256,
        )
        .verify()
        .await
        .unwrap();
        assert_eq!(v.recovery_level, level);
    }
}

fn keyvault_server_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_map_to_distinct_kinds_and_are_not_retried() {
    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let url = KeyVaultServer::kid(VAULT_HOST, "cmk", &v);
    let k = kek(&server, &url, WrapAlgorithm::RsaOaep256);
    let w = k.wrap_key(&dek()).await.unwrap();
    let count = || {
        server
            .counters()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };

    server.deny("wrapKey");
    let before = count();
    let e = k.wrap_key(&dek()).await.unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::PermissionDenied), "{e}");
    assert!(e.to_string().contains("keys/wrapKey"), "{e}");
    assert_eq!(count() - before, 1, "403 not retried");
    server.allow_all();

    server.deny("unwrapKey");
    let e = k.unwrap_key(&w.wrapped).await.unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::PermissionDenied), "{e}");
    assert!(e.to_string().contains("keys/unwrapKey"), "{e}");
    server.allow_all();

    server.queue_faults([Fault::Status(404)]);
    let before = count();
    let e = k.unwrap_key(&w.wrapped).await.unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::NotFound), "{e}");
    assert_eq!(count() - before, 1, "404 not retried");

    // The service's error code reaches the message only when it is a
    // short identifier: anything else a response calls its code is left
    // out.
    server.queue_faults([Fault::StatusWithCode(404, "KeyNotFound".into())]);
    let e = k.unwrap_key(&w.wrapped).await.unwrap_err();
    assert!(e.to_string().contains("HTTP 404 KeyNotFound"), "{e}");
    let hostile = format!("\u{1b}]0;owned\u{7}\u{1b}[31m{}", "y".repeat(5_000));
    server.queue_faults([Fault::StatusWithCode(404, hostile)]);
    let e = k.unwrap_key(&w.wrapped).await.unwrap_err();
    let m = e.to_string();
    assert!(!m.contains("owned") && !m.contains("yyyy"), "{m}");
    assert!(!m.chars().any(char::is_control), "{m}");

    // A token the vault rejects: 401 after the challenge.
    let bad = AzureKeyVaultKek::builder(&url)
        .unwrap()
        .credential(Arc::new(FixedToken("not-the-token".into())))
        .http(http(&server))
        .retry(fast_retry())
        .build()
        .unwrap();
    let e = bad.wrap_key(&dek()).await.unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::Unauthenticated), "{e}");
    assert!(!e.is_retryable());

    // Wrong bytes: the service refuses to unwrap (400) -> UnwrapFailed.
    let mut m = w.wrapped.clone();
    m[10] ^= 1;
    assert!(matches!(
        k.unwrap_key(&m).await,
        Err(Error::UnwrapFailed { .. })
    ));

    // Algorithms.
    let e = AzureKeyVaultKek::builder(&url)
        .unwrap()
        .algorithm_name("RSA1_5")
        .unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::Unsupported));
    assert!(
        e.to_string().contains("RSA1_5") && e.to_string().contains("RSA-OAEP-256"),
        "{e}"
    );
    let e = AzureKeyVaultKek::builder(&url)
        .unwrap()
        .algorithm(WrapAlgorithm::A256Kw)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("Managed HSM"), "{e}");
    assert!(AzureKeyVaultKek::builder(&url)
        .unwrap()
        .algorithm_name("RSA-OAEP")
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_under_fault_injection() {
    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let retry = RetryConfig::default()
        .backoff(Duration::from_millis(1), Duration::from_millis(10))
        .max_retries(30)
        .max_total_time(Duration::from_secs(30))
        .per_request_timeout(Duration::from_millis(250))
        .seed(7);
    let url = format!("https://{VAULT_HOST}/keys/cmk");
    let kek: Arc<dyn KeyEncryptionKey> = Arc::new(kek_with(
        &server,
        &url,
        WrapAlgorithm::RsaOaep256,
        retry.clone(),
    ));
    let resolver = Arc::new(AzureKeyVaultResolver::new(kek_with(
        &server,
        &url,
        WrapAlgorithm::RsaOaep256,
        retry,
    )));
    server.set_random(Some(RandomFaults {
        p_throttle: 0.30,
        p_unavailable: 0.05,
        p_slow: 0.03,
        p_drop: 0.02,
        slow: Duration::from_millis(600),
        retry_after_ms: 5,
    }));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..10 {
        let kek = Arc::clone(&kek);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..50 {
                let ctx = format!("obj-{t}-{i}");
                let pt = common::data(100 + i, t as u8);
                let env = seal(&[Arc::clone(&kek)], Profile::Document, ctx.as_bytes(), &pt)
                    .await
                    .expect("seal under faults");
                out.push((ctx, pt, env));
            }
            out
        }));
    }
    let mut envelopes = Vec::new();
    for t in tasks {
        envelopes.extend(t.await.unwrap());
    }
    assert_eq!(envelopes.len(), 500);
    let sealed_in = start.elapsed();
    let mut tasks = Vec::new();
    for chunk in envelopes.chunks(50) {
        let chunk = chunk.to_vec();
        let resolver = Arc::clone(&resolver);
        tasks.push(tokio::spawn(async move {
            for (ctx, pt, env) in chunk {
                let back = open(&*resolver, Profile::Document, ctx.as_bytes(), &env)
                    .await
                    .expect("open under faults");
                assert_eq!(back, pt);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = server.counters();
    let faults = c.faults.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "fault injection: 500 sealed in {sealed_in:?}, all 500 opened (total {:?}); {} requests, {faults} injected faults, kid {}",
        start.elapsed(),
        c.requests.load(std::sync::atomic::Ordering::Relaxed),
        KeyVaultServer::kid(VAULT_HOST, "cmk", &v),
    );
    assert!(faults > 250, "expected many injected faults, got {faults}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_retries_give_up_within_the_total_time() {
    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let url = KeyVaultServer::kid(VAULT_HOST, "cmk", &v);
    let budget = Duration::from_millis(600);
    let retry = RetryConfig::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(80))
        .max_retries(1000)
        .max_total_time(budget)
        .per_request_timeout(Duration::from_millis(150))
        .seed(3);
    let k = kek_with(&server, &url, WrapAlgorithm::RsaOaep256, retry.clone());
    k.verify().await.unwrap();
    for (fault, expect_kind, expect_text) in [
        (Fault::Unavailable, KekErrorKind::Transient, "HTTP 503"),
        (Fault::Drop, KekErrorKind::Transient, "connection"),
        (
            Fault::Slow(Duration::from_secs(3)),
            KekErrorKind::Transient,
            "no response within",
        ),
        (
            Fault::Throttle {
                retry_after: None,
                retry_after_ms: Some(20),
            },
            KekErrorKind::Throttled,
            "HTTP 429",
        ),
    ] {
        server.set_always(Some(fault.clone()));
        let start = Instant::now();
        let e = k.wrap_key(&dek()).await.unwrap_err();
        let took = start.elapsed();
        println!("gave up on {fault:?} after {took:?}: {e}");
        // Slack for scheduling on a loaded 2-core machine (the retry loop
        // itself never starts an attempt past the budget).
        assert!(
            took <= budget + Duration::from_millis(250),
            "{fault:?}: took {took:?}"
        );
        assert_eq!(kek_kind(&e), Some(expect_kind), "{e}");
        assert!(e.is_retryable());
        let s = e.to_string();
        // The last attempt gets only what is left of the budget: on a loaded
        // machine a dropped connection may not be seen within it, and that
        // attempt then ends as a timeout.
        let last_attempt_cut = matches!(fault, Fault::Drop) && s.contains("no response within");
        assert!(
            s.contains("gave up after") && (s.contains(expect_text) || last_attempt_cut),
            "{s}"
        );
    }
    // A Retry-After beyond the budget: give up at once, and say why.
    server.set_always(Some(Fault::Throttle {
        retry_after: Some("30".into()),
        retry_after_ms: None,
    }));
    let start = Instant::now();
    let e = k.wrap_key(&dek()).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(300));
    assert!(e.to_string().contains("asked to retry after 30.0s"), "{e}");
    server.set_always(None);

    // A Retry-After within budget is honoured.
    let k = kek_with(&server, &url, WrapAlgorithm::RsaOaep256, fast_retry());
    k.verify().await.unwrap();
    server.queue_faults([Fault::Throttle {
        retry_after: Some("1".into()),
        retry_after_ms: None,
    }]);
    let start = Instant::now();
    k.wrap_key(&dek()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 not honoured: {:?}",
        start.elapsed()
    );
}

/// A `MakeWriter` collecting everything logged.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn forms(bytes: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    vec![
        hex::encode(bytes),
        hex::encode_upper(bytes),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        format!("{bytes:?}"),
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn no_token_secret_or_key_in_logs_or_errors() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    // Global, not thread-local: tracing caches per-callsite interest
    // process-wide, and other tests run concurrently. Their logs are
    // captured too, which only widens the check.
    tracing::subscriber::set_global_default(subscriber)
        .expect("only this test installs a subscriber");

    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let url = KeyVaultServer::kid(VAULT_HOST, "cmk", &v);
    // The credential chain, with a client secret against the test Entra ID.
    let client_options = ClientOptions {
        transport: Some(Transport::new(http(&server).build().unwrap())),
        ..Default::default()
    };
    let mut options = CredentialChainOptions::default();
    options.kinds = vec![CredentialKind::ClientSecret];
    options.client_options = client_options;
    let env = |k: &str| match k {
        "AZURE_TENANT_ID" => Some(TENANT.to_string()),
        "AZURE_CLIENT_ID" => Some("11111111-2222-3333-4444-555555555555".to_string()),
        "AZURE_CLIENT_SECRET" => Some(keyvault_server::CLIENT_SECRET.to_string()),
        _ => None,
    };
    let chain = CredentialChain::from_env_with(options.clone(), env);
    let k = AzureKeyVaultKek::builder(&url)
        .unwrap()
        .credential(chain)
        .http(http(&server))
        .retry(fast_retry())
        .build()
        .unwrap();

    let mut texts = Vec::new();
    let mut secrets: Vec<String> = vec![
        server.token.clone(),
        keyvault_server::CLIENT_SECRET.to_string(),
    ];
    for _ in 0..3 {
        let d = dek();
        secrets.extend(forms(d.expose_secret_bytes()));
        let w = k.wrap_key(&d).await.unwrap();
        texts.push(format!("{w:?}"));
        let back = k.unwrap_key(&w.wrapped).await.unwrap();
        assert!(back == d);
    }
    assert!(
        server
            .counters()
            .tokens_issued
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Failures: retried faults, a give-up, a refused permission, a bad unwrap.
    server.queue_faults([
        Fault::Unavailable,
        Fault::Throttle {
            retry_after: None,
            retry_after_ms: Some(1),
        },
    ]);
    let d = dek();
    secrets.extend(forms(d.expose_secret_bytes()));
    let w = k.wrap_key(&d).await.unwrap();
    server.deny("unwrapKey");
    let e = k.unwrap_key(&w.wrapped).await.unwrap_err();
    texts.push(format!("{e} / {e:?}"));
    server.allow_all();
    let mut m = w.wrapped.clone();
    m[0] ^= 0x80;
    let e = k.unwrap_key(&m).await.unwrap_err();
    texts.push(format!("{e} / {e:?}"));
    // A wrong client secret: the chain's error names the credential, not the secret.
    let bad_env = |key: &str| {
        if key == "AZURE_CLIENT_SECRET" {
            Some("wrong-secret-XYZ".into())
        } else {
            env(key)
        }
    };
    let bad = AzureKeyVaultKek::builder(&url)
        .unwrap()
        .credential(CredentialChain::from_env_with(options, bad_env))
        .http(http(&server))
        .retry(fast_retry())
        .build()
        .unwrap();
    let e = bad.wrap_key(&dek()).await.unwrap_err();
    assert_eq!(kek_kind(&e), Some(KekErrorKind::Unauthenticated), "{e}");
    assert!(e.to_string().contains("client secret"), "{e}");
    texts.push(format!("{e} / {e:?}"));
    secrets.push("wrong-secret-XYZ".into());
    texts.push(format!("{k:?}"));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("cmk_envelope::azure_kek"),
        "spans must be logged"
    );
    assert!(
        logs.contains("op=\"wrapKey\"") || logs.contains("op=wrapKey"),
        "{}",
        &logs[..logs.len().min(2000)]
    );
    assert!(logs.contains("outcome"), "outcome recorded");
    assert!(logs.contains(&url), "key id recorded");
    let all = format!("{logs}\n{}", texts.join("\n"));
    for s in &secrets {
        assert!(
            !all.contains(s.as_str()),
            "secret material found in logs or errors: {}…",
            &s[..s.len().min(6)]
        );
    }
    println!(
        "secrets hygiene: {} bytes of logs and {} error texts checked against {} secret forms",
        logs.len(),
        texts.len(),
        secrets.len()
    );
}

#[tokio::test]
async fn credential_chain_reports_every_failure() {
    let mut options = CredentialChainOptions::default();
    options.kinds = vec![
        CredentialKind::ClientSecret,
        CredentialKind::WorkloadIdentity,
    ];
    let chain = CredentialChain::from_env_with(options, |k| {
        (k == "AZURE_TENANT_ID").then(|| TENANT.to_string())
    });
    assert_eq!(
        chain.kinds(),
        vec![
            (CredentialKind::ClientSecret, false),
            (CredentialKind::WorkloadIdentity, false)
        ]
    );
    let e = chain
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("client secret") && s.contains("AZURE_CLIENT_SECRET"),
        "{s}"
    );
    assert!(
        s.contains("workload identity") && s.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{s}"
    );
    assert!(
        s.contains("AZURE_CLIENT_ID, AZURE_CLIENT_SECRET unset"),
        "{s}"
    );
    assert_eq!(
        CredentialKind::DEFAULT_ORDER[2],
        CredentialKind::ManagedIdentity
    );
}

/// Latency the crate adds over a raw HTTPS round trip to the same server,
/// for wrap and unwrap (medians). Printed for the report; asserts only
/// that one call is one round trip after warm-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_over_raw_round_trip() {
    let server = KeyVaultServer::start().await;
    let v = server.add_key(KeySpec::rsa("cmk"));
    let url = KeyVaultServer::kid(VAULT_HOST, "cmk", &v);
    let k = kek(&server, &url, WrapAlgorithm::RsaOaep256);
    let d = dek();
    let w = k.wrap_key(&d).await.unwrap();
    let raw = http(&server).build().unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let wrap_body = format!(
        r#"{{"alg":"RSA-OAEP-256","value":"{}"}}"#,
        b64.encode([7u8; 32])
    );
    let unwrap_body = format!(
        r#"{{"alg":"RSA-OAEP-256","value":"{}"}}"#,
        b64.encode(&w.wrapped)
    );
    let raw_call = |op: &'static str, body: String| {
        let raw = Arc::clone(&raw);
        let token = server.token.clone();
        let url = format!("{url}/{op}?api-version=2025-07-01");
        async move {
            let mut req = Request::new(Url::parse(&url).unwrap(), Method::Post);
            req.insert_header("authorization", format!("Bearer {token}"));
            req.insert_header("content-type", "application/json");
            req.set_body(body);
            let rsp = raw.execute_request(&req).await.unwrap();
            assert_eq!(u16::from(rsp.status()), 200);
            rsp.into_body().collect().await.unwrap();
        }
    };
    const N: usize = 300;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    // Warm up both paths (connections, challenge, preflight).
    for _ in 0..20 {
        raw_call("wrapkey", wrap_body.clone()).await;
        k.wrap_key(&d).await.unwrap();
    }
    let before = server
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut rw, mut ru, mut kw, mut ku) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        let t = Instant::now();
        raw_call("wrapkey", wrap_body.clone()).await;
        rw.push(t.elapsed());
        let t = Instant::now();
        k.wrap_key(&d).await.unwrap();
        kw.push(t.elapsed());
        let t = Instant::now();
        raw_call("unwrapkey", unwrap_body.clone()).await;
        ru.push(t.elapsed());
        let t = Instant::now();
        k.unwrap_key(&w.wrapped).await.unwrap();
        ku.push(t.elapsed());
    }
    let requests = server
        .counters()
        .requests
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert_eq!(
        requests as usize,
        4 * N,
        "one round trip per wrap or unwrap"
    );
    let (rw, kw, ru, ku) = (median(rw), median(kw), median(ru), median(ku));
    println!(
        "latency (median of {N}, RSA-2048 on loopback): wrap raw {rw:?} / crate {kw:?} (+{:?}); unwrap raw {ru:?} / crate {ku:?} (+{:?})",
        kw.saturating_sub(rw),
        ku.saturating_sub(ru)
    );
}

/// Cosmos DB Always Encrypted client encryption keys under a Key Vault key:
/// the root key wrapped and unwrapped with RSA-OAEP by the vault, the
/// metadata the SDKs expect, the allow-list (a CEK naming another key is
/// refused without a request), the cache (one unwrap), and rewrapping
/// within the vault only unless the caller opts out.
#[cfg(feature = "cosmos-ae")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cosmos_ae_client_encryption_keys_in_key_vault() {
    use cmk_envelope::cosmos_ae::{
        CekKeyring, ClientEncryptionKey, ClientEncryptionPolicy, EncryptionType, IncludedPath,
        ItemCipher, VaultRule, AZURE_KEY_VAULT,
    };
    use cmk_envelope::scope::CachePolicy;
    use std::sync::atomic::Ordering;

    let server = KeyVaultServer::start().await;
    let v1 = server.add_key(KeySpec::rsa("cosmos-cmk"));
    let v2 = server.add_key(KeySpec::rsa("cosmos-other"));
    let hv = server.add_key(KeySpec::hsm_aes("cosmos-hsm"));
    let url1 = KeyVaultServer::kid(VAULT_HOST, "cosmos-cmk", &v1);
    let url2 = KeyVaultServer::kid(VAULT_HOST, "cosmos-other", &v2);
    let hsm_url = KeyVaultServer::kid(HSM_HOST, "cosmos-hsm", &hv);
    let k1 = kek(&server, &url1, WrapAlgorithm::RsaOaep);
    let k2 = kek(&server, &url2, WrapAlgorithm::RsaOaep);
    let hsm = kek(&server, &hsm_url, WrapAlgorithm::A256Kw);

    let cek = ClientEncryptionKey::create("cek-kv", &k1).await.unwrap();
    let m = cek.key_wrap_metadata();
    assert_eq!(
        (m.kind(), m.name(), m.value(), m.algorithm()),
        (
            AZURE_KEY_VAULT,
            "cosmos-cmk",
            url1.as_str(),
            WrapAlgorithm::RsaOaep
        )
    );
    assert_eq!(cek.wrapped_key().len(), 256, "RSA-2048 OAEP");

    // The allow-list: every version of cosmos-cmk, nothing else.
    let unversioned = format!("https://{VAULT_HOST}/keys/cosmos-cmk");
    let resolver = Arc::new(AzureKeyVaultResolver::new(kek(
        &server,
        &unversioned,
        WrapAlgorithm::RsaOaep,
    )));
    let keys = Arc::new(CekKeyring::new(resolver.clone(), CachePolicy::default()));
    keys.insert(cek.clone());
    let policy = ClientEncryptionPolicy::new(
        2,
        [
            IncludedPath::new("/id", "cek-kv", EncryptionType::Deterministic).unwrap(),
            IncludedPath::new("/secret", "cek-kv", EncryptionType::Randomized).unwrap(),
        ],
    )
    .unwrap();
    let items = ItemCipher::new(policy.clone(), keys.clone());
    let unwraps = || server.counters().unwraps.load(Ordering::SeqCst);
    let before = unwraps();
    let original = serde_json::json!({"id": "p-1", "secret": {"ssn": "078-05-1120"}});
    let mut item = original.clone();
    items.encrypt_item(&mut item).await.unwrap();
    for _ in 0..3 {
        let mut back = item.clone();
        items.decrypt_item(&mut back).await.unwrap();
        assert_eq!(back, original);
    }
    assert_eq!(unwraps() - before, 1, "one RSA-OAEP unwrap, then the cache");

    // A CEK naming a key outside the allow-list: refused, no request.
    let foreign = ClientEncryptionKey::create("cek-foreign", &k2)
        .await
        .unwrap();
    let keys2 = Arc::new(CekKeyring::new(resolver.clone(), CachePolicy::default()));
    keys2.insert(foreign.clone());
    let p2 = ClientEncryptionPolicy::new(
        1,
        [IncludedPath::new("/secret", "cek-foreign", EncryptionType::Randomized).unwrap()],
    )
    .unwrap();
    let requests = server.counters().requests.load(Ordering::SeqCst);
    let e = ItemCipher::new(p2, keys2)
        .encrypt_item(&mut serde_json::json!({"secret": 1}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownKek { kek_ids } if kek_ids == &vec![url2.clone()]),
        "{e}"
    );
    assert_eq!(server.counters().requests.load(Ordering::SeqCst), requests);

    // Rewrap within the vault; to the Managed HSM only with the opt-out
    // (and then readable only by this crate: A256KW).
    let both = cmk_envelope::StaticResolver::new().with(Arc::new(kek(
        &server,
        &url1,
        WrapAlgorithm::RsaOaep,
    )) as Arc<dyn KeyEncryptionKey>);
    let moved = cek
        .rewrap(&both, &k2, VaultRule::SameVaultOnly)
        .await
        .unwrap();
    assert_eq!(moved.key_wrap_metadata().value(), url2);
    let e = cek
        .rewrap(&both, &hsm, VaultRule::SameVaultOnly)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::KeyPolicy(m) if m.contains("within its vault")),
        "{e}"
    );
    let to_hsm = cek
        .rewrap(&both, &hsm, VaultRule::AllowOtherVault)
        .await
        .unwrap();
    assert_eq!(
        to_hsm.key_wrap_metadata().algorithm(),
        WrapAlgorithm::A256Kw
    );
    // Both rewrapped keys read the old item.
    for (c, k) in [(moved, k2), (to_hsm, hsm)] {
        let keys = Arc::new(CekKeyring::new(
            Arc::new(
                cmk_envelope::StaticResolver::new().with(Arc::new(k) as Arc<dyn KeyEncryptionKey>),
            ),
            CachePolicy::default(),
        ));
        keys.insert(c);
        let mut back = item.clone();
        ItemCipher::new(policy.clone(), keys)
            .decrypt_item(&mut back)
            .await
            .unwrap();
        assert_eq!(back, original);
    }
}
