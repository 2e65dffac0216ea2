//! Automatic key-version rotation: scopes bound to a Key Vault key named
//! without a version (the in-process HTTPS Key Vault server) move to the
//! key's new version within one check interval — eight instances at once,
//! one winning write, no user call failing — after which the old version
//! can be disabled and every object stays readable. Versioned keys never
//! move.

#![cfg(feature = "azure")]

mod common;
#[path = "common/keyvault_client.rs"]
mod keyvault_client;
#[path = "common/keyvault_server.rs"]
mod keyvault_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::kek::azure::AzureKeyVaultResolver;
use cmk_envelope::scope::{
    CachePolicy, Cmk, EncryptionScope, FsScopeStore, ScopeRecord, ScopeStore,
};
use cmk_envelope::{open, seal, KeyResolver, Profile, WrapAlgorithm};
use keyvault_client::kek;
use keyvault_server::{KeySpec, KeyVaultServer, VAULT_HOST};

const INSTANCES: usize = 8;

fn policy(check: Duration) -> CachePolicy {
    CachePolicy {
        ttl: Duration::from_secs(30),
        failure_backoff: Duration::from_millis(50),
        rotation_check_interval: check,
        ..CachePolicy::default()
    }
}

/// One service instance: its own store object, its own KEK objects (as a
/// process of its own would have), bound to `url`.
async fn instance(
    server: &KeyVaultServer,
    dir: &std::path::Path,
    url: &str,
    check: Duration,
    create: bool,
) -> EncryptionScope {
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(dir).unwrap());
    let cmk = Cmk::CustomerManaged(Arc::new(kek(server, url, WrapAlgorithm::RsaOaep256)));
    let versions: Arc<dyn KeyResolver> = Arc::new(AzureKeyVaultResolver::new(kek(
        server,
        url,
        WrapAlgorithm::RsaOaep256,
    )));
    if create {
        EncryptionScope::create_with_resolver(store, "kv", cmk, Some(versions), policy(check)).await
    } else {
        EncryptionScope::open_with_resolver(store, "kv", cmk, Some(versions), policy(check)).await
    }
    .unwrap()
}

fn stored(dir: &std::path::Path) -> ScopeRecord {
    ScopeRecord::from_json(&std::fs::read(dir.join("kv.json")).unwrap()).unwrap()
}

fn all_under(r: &ScopeRecord, kid: &str) -> bool {
    r.versions.iter().all(|v| v.wrapped.kek_id == kid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_instances_move_to_a_new_key_version_with_one_write() {
    let server = KeyVaultServer::start().await;
    let v1 = server.add_key(KeySpec::rsa("cmk"));
    let url = format!("https://{VAULT_HOST}/keys/cmk");
    let (kid1, check) = (
        KeyVaultServer::kid(VAULT_HOST, "cmk", &v1),
        Duration::from_millis(400),
    );
    let dir = common::tempdir();
    let first = instance(&server, &dir, &url, check, true).await;
    assert!(all_under(&first.record(), &kid1));
    let mut scopes = vec![first];
    for _ in 1..INSTANCES {
        scopes.push(instance(&server, &dir, &url, check, false).await);
    }
    let early = seal(&[scopes[0].kek()], Profile::Blob, b"early", b"before")
        .await
        .unwrap();

    // Every instance serves users throughout: seal, open its own object and
    // the early one. None of these calls may fail.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, s) in scopes.iter().enumerate() {
        let (s, stop, early) = (s.clone(), stop.clone(), early.clone());
        tasks.push(tokio::spawn(async move {
            let mut sealed = Vec::new();
            let r = s.resolver();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ctx = format!("i{i}-{}", sealed.len());
                let env = seal(&[s.kek()], Profile::Blob, ctx.as_bytes(), b"v")
                    .await
                    .unwrap();
                assert_eq!(
                    open(&r, Profile::Blob, ctx.as_bytes(), &env).await.unwrap(),
                    b"v"
                );
                assert_eq!(
                    open(&r, Profile::Blob, b"early", &early).await.unwrap(),
                    b"before"
                );
                sealed.push((ctx, env));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sealed
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let v2 = server.new_version(VAULT_HOST, "cmk");
    let kid2 = KeyVaultServer::kid(VAULT_HOST, "cmk", &v2);
    let created = Instant::now();
    let moved = loop {
        if all_under(&stored(&dir), &kid2) {
            break created.elapsed();
        }
        assert!(
            created.elapsed() < check * 3,
            "the record never moved to the new version"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Let every instance adopt it, then stop the users.
    tokio::time::sleep(check * 2).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut sealed = Vec::new();
    for t in tasks {
        sealed.extend(t.await.unwrap());
    }
    let stats: Vec<_> = scopes.iter().map(|s| s.cache_stats()).collect();
    let writes: u64 = stats.iter().map(|s| s.rotations).sum();
    let conflicts: u64 = stats.iter().map(|s| s.rotation_conflicts).sum();
    println!(
        "auto-rotation: record under the new version {moved:?} after it was created (check interval {check:?}); \
         {writes} winning write, {conflicts} lost races; {} objects sealed meanwhile",
        sealed.len()
    );
    assert_eq!(writes, 1, "exactly one instance wrote the rotation");
    assert!(moved <= check + Duration::from_millis(300));
    for s in &scopes {
        assert!(
            all_under(&s.record(), &kid2),
            "an instance did not adopt it"
        );
    }

    // The old version can now be disabled: every object stays readable, by
    // the instances that ran and by a fresh one.
    server.disable(VAULT_HOST, "cmk", &v1);
    let fresh = instance(&server, &dir, &url, check, false).await;
    for s in scopes.iter().chain([&fresh]) {
        s.refresh().await.unwrap();
        let r = s.resolver();
        assert_eq!(
            open(&r, Profile::Blob, b"early", &early).await.unwrap(),
            b"before"
        );
        for (ctx, env) in sealed.iter().step_by(7) {
            assert_eq!(
                open(&r, Profile::Blob, ctx.as_bytes(), env).await.unwrap(),
                b"v"
            );
        }
    }
    let env = seal(&[fresh.kek()], Profile::Blob, b"after", b"x")
        .await
        .unwrap();
    assert_eq!(
        open(&scopes[3].resolver(), Profile::Blob, b"after", &env)
            .await
            .unwrap(),
        b"x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_bound_to_a_versioned_key_never_moves() {
    let server = KeyVaultServer::start().await;
    let v1 = server.add_key(KeySpec::rsa("pinned"));
    let kid1 = KeyVaultServer::kid(VAULT_HOST, "pinned", &v1);
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(common::tempdir()).unwrap());
    let check = Duration::from_millis(100);
    let s = EncryptionScope::create(
        store,
        "pin",
        Cmk::CustomerManaged(Arc::new(kek(&server, &kid1, WrapAlgorithm::RsaOaep256))),
        policy(check),
    )
    .await
    .unwrap();
    server.new_version(VAULT_HOST, "pinned");
    let start = Instant::now();
    while start.elapsed() < check * 5 {
        seal(&[s.kek()], Profile::Blob, b"o", b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.refresh().await.unwrap();
    assert!(all_under(&s.record(), &kid1));
    assert_eq!(s.cache_stats().rotations, 0);
}
