//! The key hierarchy: cache and single flight, revocation within the TTL,
//! the customer-managed-key rules, crypto-shredding, compare-and-swap, and
//! header rewrap.

mod common;
#[path = "common/scope_suite.rs"]
mod scope_suite;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::conformance::{kek as kek_conformance, store as store_conformance};
use cmk_envelope::scope::{
    CachePolicy, Cmk, EncryptionScope, FsScopeStore, MemoryScopeStore, ScopeMode, ScopeStore,
};
use cmk_envelope::{
    open, rewrap, rewrap_batch, seal, Error, Header, KekErrorKind, Profile, StaticResolver,
    WrapAlgorithm,
};
use scope_suite::{file_kek, Switchable};

fn policy(ttl_ms: u64) -> CachePolicy {
    CachePolicy {
        ttl: Duration::from_millis(ttl_ms),
        failure_backoff: Duration::from_millis(20),
        ..CachePolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_scope_thousand_concurrent_opens_make_one_cmk_unwrap() {
    let dir = common::tempdir();
    let cmk = Switchable::slow(
        file_kek(&dir, "cmk", WrapAlgorithm::A256Kw),
        Duration::from_millis(50),
    );
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = EncryptionScope::create(
        store.clone(),
        "res-1",
        Cmk::CustomerManaged(cmk.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    // seal 1000 objects (this warms *that* instance's cache: 1 unwrap)
    let kek = scope.kek();
    let mut envs = Vec::new();
    for i in 0..1000 {
        envs.push(
            seal(
                std::slice::from_ref(&kek),
                Profile::Document,
                format!("doc-{i}").as_bytes(),
                b"{}",
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(
        cmk.unwraps.load(Ordering::SeqCst),
        1,
        "sealing 1000 objects: one CMK unwrap"
    );
    // a new process: cold cache
    let cold = EncryptionScope::open(
        store,
        "res-1",
        Cmk::CustomerManaged(cmk.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    let resolver = Arc::new(cold.resolver());
    let mut tasks = Vec::new();
    for (i, env) in envs.into_iter().enumerate() {
        let r = resolver.clone();
        tasks.push(tokio::spawn(async move {
            open(
                r.as_ref(),
                Profile::Document,
                format!("doc-{i}").as_bytes(),
                &env,
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), b"{}");
    }
    assert_eq!(
        cmk.unwraps.load(Ordering::SeqCst),
        2,
        "1000 concurrent cold opens: exactly one more CMK unwrap"
    );
    let stats = cold.cache_stats();
    println!("scope cache after 1000 cold opens: {stats:?}");
    assert_eq!(stats.kms_calls, 1);
    assert_eq!(stats.misses, 1);
}

#[tokio::test]
async fn revocation_takes_effect_at_the_ttl_and_not_before() {
    let dir = common::tempdir();
    let cmk = Switchable::new(file_kek(&dir, "cmk", WrapAlgorithm::A256Kw));
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let ttl = 400;
    let scope = EncryptionScope::create(
        store,
        "res-2",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let env = seal(&[scope.kek()], Profile::Blob, b"b", b"data")
        .await
        .unwrap();
    let resolver = scope.resolver();
    let start = std::time::Instant::now();
    cmk.off.store(true, Ordering::SeqCst); // the customer disables the key
                                           // before the TTL: still served from the cache
    assert_eq!(
        open(&resolver, Profile::Blob, b"b", &env).await.unwrap(),
        b"data"
    );
    assert!(start.elapsed() < Duration::from_millis(ttl));
    tokio::time::sleep(Duration::from_millis(ttl + 50)).await;
    // after the TTL: the revocation error, for reads and writes
    for _ in 0..3 {
        match open(&resolver, Profile::Blob, b"b", &env).await {
            Err(Error::Kek(e)) => assert_eq!(e.kind(), KekErrorKind::KeyUnavailable, "{e}"),
            other => panic!("expected KeyUnavailable, got {other:?}"),
        }
        match seal(&[scope.kek()], Profile::Blob, b"c", b"x").await {
            Err(Error::Kek(e)) => assert_eq!(e.kind(), KekErrorKind::KeyUnavailable),
            other => panic!("expected KeyUnavailable, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // the customer re-enables the key: service resumes after the back-off
    cmk.off.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        open(&resolver, Profile::Blob, b"b", &env).await.unwrap(),
        b"data"
    );
}

#[tokio::test]
async fn refresh_ahead_keeps_a_hot_scope_serving() {
    let dir = common::tempdir();
    let cmk = Switchable::new(file_kek(&dir, "cmk", WrapAlgorithm::A256Kw));
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let p = CachePolicy {
        ttl: Duration::from_millis(200),
        refresh_fraction: 0.5,
        ..policy(200)
    };
    let scope = EncryptionScope::create(store, "res-3", Cmk::CustomerManaged(cmk.clone()), p)
        .await
        .unwrap();
    let kek = scope.kek();
    for _ in 0..40 {
        seal(std::slice::from_ref(&kek), Profile::Blob, b"x", b"y")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = scope.cache_stats();
    println!("hot scope over 2 TTLs: {s:?}");
    assert!(s.kms_calls >= 2, "refreshed ahead of expiry");
    assert_eq!(s.misses, 1, "never missed after the first fetch");
}

#[tokio::test]
async fn same_vault_rotation_is_header_only_and_keeps_objects_readable() {
    let vault = common::tempdir();
    let other_vault = common::tempdir();
    let old = Switchable::new(file_kek(&vault, "cmk-v1", WrapAlgorithm::A256Kw));
    let new = Switchable::new(file_kek(&vault, "cmk-v2", WrapAlgorithm::A256Kwp));
    let foreign = file_kek(&other_vault, "cmk-elsewhere", WrapAlgorithm::A256Kw);
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = EncryptionScope::create(
        store.clone(),
        "res-4",
        Cmk::CustomerManaged(old.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    let env1 = seal(&[scope.kek()], Profile::Blob, b"o1", b"one")
        .await
        .unwrap();
    let v2 = scope.rotate_scope_key().await.unwrap();
    assert_eq!(v2, 2);
    let env2 = seal(&[scope.kek()], Profile::Blob, b"o2", b"two")
        .await
        .unwrap();
    assert_eq!(
        Header::parse_prefix(&env2).unwrap().0.keys()[0].kek_id,
        "scope:res-4/2"
    );

    // another vault: refused, record unchanged
    match scope.rotate_cmk(Cmk::CustomerManaged(foreign)).await {
        Err(Error::KeyPolicy(m)) => assert!(m.contains("same key vault"), "{m}"),
        other => panic!("{other:?}"),
    }
    // same vault: O(versions) CMK calls, no object touched
    let (u0, w0) = (
        old.unwraps.load(Ordering::SeqCst),
        new.wraps.load(Ordering::SeqCst),
    );
    let rotated = scope
        .rotate_cmk(Cmk::CustomerManaged(new.clone()))
        .await
        .unwrap();
    assert_eq!(old.unwraps.load(Ordering::SeqCst) - u0, 2);
    assert_eq!(new.wraps.load(Ordering::SeqCst) - w0, 2);
    let rec = rotated.record();
    assert!(rec.versions.iter().all(|v| v.wrapped.kek_id == "cmk-v2"));

    // a fresh process with only the new CMK reads both old objects
    let reopened = EncryptionScope::open(
        store.clone(),
        "res-4",
        Cmk::CustomerManaged(new.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    let r = reopened.resolver();
    assert_eq!(open(&r, Profile::Blob, b"o1", &env1).await.unwrap(), b"one");
    assert_eq!(open(&r, Profile::Blob, b"o2", &env2).await.unwrap(), b"two");
    // and the old CMK no longer opens the scope (its record names the new key)
    old.off.store(true, Ordering::SeqCst);
    let stale = EncryptionScope::open(
        store,
        "res-4",
        Cmk::CustomerManaged(old.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    assert!(open(&stale.resolver(), Profile::Blob, b"o1", &env1)
        .await
        .is_err());
}

#[tokio::test]
async fn modes_never_switch() {
    let vault = common::tempdir();
    let k = file_kek(&vault, "k", WrapAlgorithm::A256Kw);
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = EncryptionScope::create(
        store.clone(),
        "res-5",
        Cmk::CustomerManaged(k.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    assert_eq!(scope.record().mode, ScopeMode::CustomerManaged);
    let refused = |r: cmk_envelope::Result<EncryptionScope>, what: &str| match r {
        Err(Error::KeyPolicy(m)) => assert!(
            m.contains("switch") || m.contains("already exists"),
            "{what}: {m}"
        ),
        other => panic!("{what}: {other:?}"),
    };
    refused(
        scope.rotate_cmk(Cmk::ServiceManaged(k.clone())).await,
        "rotate to service-managed",
    );
    refused(
        EncryptionScope::open(
            store.clone(),
            "res-5",
            Cmk::ServiceManaged(k.clone()),
            policy(60_000),
        )
        .await,
        "open as service-managed",
    );
    refused(
        EncryptionScope::create(
            store.clone(),
            "res-5",
            Cmk::ServiceManaged(k.clone()),
            policy(60_000),
        )
        .await,
        "re-create as service-managed",
    );
    refused(
        EncryptionScope::create(
            store.clone(),
            "res-5",
            Cmk::CustomerManaged(k.clone()),
            policy(60_000),
        )
        .await,
        "re-create",
    );
    // and the reverse direction
    let sm = EncryptionScope::create(
        store.clone(),
        "res-6",
        Cmk::ServiceManaged(k.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    refused(
        sm.rotate_cmk(Cmk::CustomerManaged(k)).await,
        "rotate to customer-managed",
    );
}

#[tokio::test]
async fn crypto_shredding_makes_objects_unreadable() {
    let vault = common::tempdir();
    let k = file_kek(&vault, "k", WrapAlgorithm::A256Kw);
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(common::tempdir()).unwrap());
    let scope = EncryptionScope::create(
        store.clone(),
        "res-7",
        Cmk::CustomerManaged(k.clone()),
        policy(60_000),
    )
    .await
    .unwrap();
    let env = seal(&[scope.kek()], Profile::Index, b"idx/seg", b"postings")
        .await
        .unwrap();
    assert_eq!(
        open(&scope.resolver(), Profile::Index, b"idx/seg", &env)
            .await
            .unwrap(),
        b"postings"
    );
    assert!(
        matches!(scope.destroy("res-8").await, Err(Error::KeyPolicy(_))),
        "confirmation must match"
    );
    scope.destroy("res-7").await.unwrap();
    // this instance: at once, despite its warm cache
    assert!(matches!(
        open(&scope.resolver(), Profile::Index, b"idx/seg", &env).await,
        Err(Error::ScopeNotFound { .. }) | Err(Error::UnknownKek { .. })
    ));
    // any other process: the record is gone
    assert!(matches!(
        EncryptionScope::open(
            store.clone(),
            "res-7",
            Cmk::CustomerManaged(k.clone()),
            policy(60_000)
        )
        .await,
        Err(Error::ScopeNotFound { .. })
    ));
    // even with the CMK, the object's header names only the shredded scope key
    let cmk_only: StaticResolver = [k].into_iter().collect();
    assert!(matches!(
        open(&cmk_only, Profile::Index, b"idx/seg", &env).await,
        Err(Error::UnknownKek { .. })
    ));
}

async fn cas_race(store: Arc<dyn ScopeStore>) {
    let vault = common::tempdir();
    let k = file_kek(&vault, "k", WrapAlgorithm::A256Kw);
    store_conformance::concurrent_rotation_one_winner(&store, "res-cas", k).await;
}

#[tokio::test]
async fn compare_and_swap_memory_store() {
    cas_race(Arc::new(MemoryScopeStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_file_store() {
    cas_race(Arc::new(FsScopeStore::new(common::tempdir()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_many_writers_one_winner_per_round() {
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(common::tempdir()).unwrap());
    store_conformance::many_writers_one_winner_per_round(&store, "s", 8, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_many_writers_one_winner_per_round() {
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    store_conformance::many_writers_one_winner_per_round(&store, "s", 8, 20).await;
}

#[tokio::test]
async fn store_semantics_memory_and_file() {
    store_conformance::basic_semantics(&MemoryScopeStore::new(), "s").await;
    let fs = FsScopeStore::new(common::tempdir()).unwrap();
    store_conformance::basic_semantics(&fs, "s").await;
}

#[tokio::test]
async fn header_rewrap_leaves_the_body_alone() {
    let old = common::aes_kek("old", WrapAlgorithm::A256Kw);
    let new = common::rsa_kek(
        0,
        WrapAlgorithm::RsaOaep256,
        cmk_envelope::CryptoProvider::default_provider(),
    );
    let msg = common::data(50_000, 1);
    let env = seal(std::slice::from_ref(&old), Profile::Blob, b"x", &msg)
        .await
        .unwrap();
    let (h, n) = Header::parse_prefix(&env).unwrap();
    let r_old: StaticResolver = [old.clone()].into_iter().collect();
    let h2 = rewrap(&h, &r_old, std::slice::from_ref(&new))
        .await
        .unwrap();
    assert_eq!(h2.keys().len(), 1);
    assert_eq!(h2.keys()[0].kek_id, new.key_id());
    let mut env2 = h2.to_bytes();
    env2.extend_from_slice(&env[n..]);
    let r_new: StaticResolver = [new.clone()].into_iter().collect();
    assert_eq!(open(&r_new, Profile::Blob, b"x", &env2).await.unwrap(), msg);
    assert!(
        open(&r_old, Profile::Blob, b"x", &env2).await.is_err(),
        "the old key is gone from the header"
    );

    // batch: one bad header in the middle does not stop the rest
    let mut headers = Vec::new();
    for i in 0..20 {
        let e = seal(std::slice::from_ref(&old), Profile::Blob, b"x", &[i as u8])
            .await
            .unwrap();
        headers.push(Header::parse_prefix(&e).unwrap().0);
    }
    headers[7] = h2.clone(); // wrapped for `new`, unknown to r_old
    let progress = std::sync::Mutex::new(Vec::new());
    let results = rewrap_batch(&headers, &r_old, std::slice::from_ref(&new), 4, &|d, t| {
        progress.lock().unwrap().push((d, t));
    })
    .await;
    assert_eq!(results.len(), 20);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_ok(), i != 7, "header {i}");
    }
    assert!(matches!(results[7], Err(Error::UnknownKek { .. })));
    assert_eq!(progress.lock().unwrap().len(), 20);
    assert_eq!(progress.lock().unwrap().last(), Some(&(20, 20)));
}

/// The KEK suite on a scope's KEK (A256KW under the cached scope key), with
/// another scope's KEK as the wrong key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scope_kek_conformance() {
    let vault = common::tempdir();
    let cmk = file_kek(&vault, "cmk", WrapAlgorithm::A256Kw);
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let mut keks = Vec::new();
    for id in ["conf-a", "conf-b"] {
        let scope = EncryptionScope::create(
            store.clone(),
            id,
            Cmk::CustomerManaged(cmk.clone()),
            policy(60_000),
        )
        .await
        .unwrap();
        keks.push(scope.kek());
    }
    let r = kek_conformance::run(keks[0].clone(), keks[1].clone()).await;
    println!("conformance scope KEK: {r:?}");
    assert_eq!(r.modifications_rejected, 40 * 2);
    assert_eq!(r.material_round_trips, 4);
    assert_eq!(r.lengths_refused, 2);
}
