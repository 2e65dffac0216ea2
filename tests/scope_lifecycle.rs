//! Scopes follow the CMK's lifecycle across instances: two independent
//! instances over one `FsScopeStore` directory (destroy, key and CMK
//! rotation seen within the TTL), open handles (readers, writers, the
//! parallel and async engines, the document cipher) that stop with the
//! scope and keep working while it lives, the lifecycle figures of
//! docs/performance.md, and the edge cases (`Duration::MAX` TTLs, version
//! `u32::MAX`, untrusted versions).

mod common;
#[path = "common/scope_suite.rs"]
mod scope_suite;

use std::io::{Cursor, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, FsScopeStore, ScopeStore};
use cmk_envelope::{open, seal, Decryptor, Error, Header, KekErrorKind, Profile, WrapAlgorithm};
use common::open_reader;
use scope_suite::{data, file_kek, kid_of, policy, Switchable, CHUNK, SLACK};

/// Two store objects on one directory, as two processes would have.
fn fs_pair() -> (Arc<dyn ScopeStore>, Arc<dyn ScopeStore>) {
    let dir = common::tempdir();
    (
        Arc::new(FsScopeStore::new(&dir).unwrap()),
        Arc::new(FsScopeStore::new(&dir).unwrap()),
    )
}

#[tokio::test]
async fn file_store_destroy_is_seen_by_the_other_instance_within_the_ttl() {
    let (a, b) = fs_pair();
    let ttl = Duration::from_millis(400);
    let t = scope_suite::destroy_is_seen_within_the_ttl(a, b, "fs-destroy", ttl).await;
    println!("file store: destroy → B's first refusal {t:?} (TTL {ttl:?})");
}

#[tokio::test]
async fn file_store_key_rotation_is_followed_within_the_ttl() {
    let (a, b) = fs_pair();
    let ttl = Duration::from_millis(400);
    let t = scope_suite::key_rotation_is_followed(a, b, "fs-rotate", ttl).await;
    println!("file store: rotate_scope_key → B seals under it after {t:?} (TTL {ttl:?})");
}

#[tokio::test]
async fn file_store_cmk_rotation_is_followed_by_who_can_reach_the_new_key() {
    let dir = common::tempdir();
    let store = || Arc::new(FsScopeStore::new(&dir).unwrap()) as Arc<dyn ScopeStore>;
    scope_suite::cmk_rotation_is_followed(
        store(),
        store(),
        store(),
        "fs-cmk",
        Duration::from_millis(300),
    )
    .await;
}

/// Figure: the time from A's destroy to B's first refusal, against the TTL
/// (B busy sealing and opening, as a service instance is).
#[tokio::test]
async fn figure_time_from_destroy_to_refusal() {
    let ttl = Duration::from_millis(400);
    let mut times = Vec::new();
    for run in 0..5 {
        let (a, b) = fs_pair();
        let id = format!("fig-{run}");
        times.push(scope_suite::destroy_is_seen_within_the_ttl(a, b, &id, ttl).await);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "figure: destroy → first refusal over 5 runs: min {:.0} ms, median {:.0} ms, max {:.0} ms; TTL {:.0} ms (refresh at 0.8 TTL ± 5 %)",
        ms(times[0]),
        ms(times[2]),
        ms(times[4]),
        ms(ttl)
    );
    assert!(times[4] <= ttl + SLACK);
}

/// Figure: store reads per scope per TTL in steady state, with one and with
/// two key versions in use (one read per refresh, not one per version).
#[tokio::test]
async fn figure_store_reads_per_ttl_in_steady_state() {
    let ttl = Duration::from_millis(200);
    let (a_store, b_store) = fs_pair();
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(
        a_store,
        "reads",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let old = seal(&[a.kek()], Profile::Blob, b"old", b"v1")
        .await
        .unwrap();
    let b = EncryptionScope::open(b_store, "reads", Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let kek = b.kek();
    let rb = b.resolver();
    for versions in [1u32, 2] {
        if versions == 2 {
            b.rotate_scope_key().await.unwrap();
        }
        // warm up (the same work), then measure 10 TTLs of it
        let warm = Instant::now();
        while warm.elapsed() < ttl {
            seal(std::slice::from_ref(&kek), Profile::Blob, b"x", b"y")
                .await
                .unwrap();
            if versions == 2 {
                open(&rb, Profile::Blob, b"old", &old).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (s0, t0) = (b.cache_stats(), Instant::now());
        while t0.elapsed() < ttl * 10 {
            let env = seal(std::slice::from_ref(&kek), Profile::Blob, b"x", b"y")
                .await
                .unwrap();
            assert_eq!(kid_of(&env), format!("scope:reads/{versions}"));
            if versions == 2 {
                open(&rb, Profile::Blob, b"old", &old).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let s1 = b.cache_stats();
        let ttls = t0.elapsed().as_secs_f64() / ttl.as_secs_f64();
        let reads = (s1.store_reads - s0.store_reads) as f64 / ttls;
        let kms = (s1.kms_calls - s0.kms_calls) as f64 / ttls;
        println!(
            "figure: {versions} key version(s) in use: {reads:.2} store reads and {kms:.2} CMK calls per TTL \
             ({} hits, {} misses over {ttls:.1} TTLs; refresh at 0.8 TTL, so 1/0.8 = 1.25 expected)",
            s1.hits - s0.hits,
            s1.misses - s0.misses
        );
        assert!((0.9..=1.6).contains(&reads), "{reads} store reads per TTL");
        assert!(
            (0.9 * versions as f64..=1.6 * versions as f64).contains(&kms),
            "{kms} CMK calls per TTL"
        );
        assert_eq!(s1.misses, s0.misses, "a hot scope never misses");
    }
}

/// An open reader is the scope's only user: it keeps reading across many
/// TTLs while the store and CMK are reachable (its lease renews on the
/// reading thread), and stops within the TTL once the CMK is disabled.
#[tokio::test]
async fn a_long_running_reader_lives_with_the_cmk_and_stops_with_it() {
    let ttl = Duration::from_millis(300);
    let (a_store, b_store) = fs_pair();
    let cmk = Switchable::new(file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw));
    let a = EncryptionScope::create(
        a_store,
        "long",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let big = data(128 * CHUNK, 3);
    let env = seal(&[a.kek()], Profile::Blob, b"big", &big).await.unwrap();
    drop(a);
    let b = EncryptionScope::open(
        b_store,
        "long",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let mut r = open_reader(Cursor::new(env), &b.resolver(), Profile::Blob, b"big")
        .await
        .unwrap();
    let mut chunk = vec![0u8; CHUNK];
    let mut read = 0;
    let start = Instant::now();
    while start.elapsed() < ttl * 3 {
        r.read_exact(&mut chunk).unwrap();
        assert_eq!(chunk, big[read..read + CHUNK]);
        read += CHUNK;
        std::thread::sleep(Duration::from_millis(15));
    }
    let s = b.cache_stats();
    println!("long-running reader over 3 TTLs: {s:?}");
    assert!(s.store_reads >= 3, "the lease renewed through the store");

    cmk.off.store(true, Ordering::SeqCst);
    let off = Instant::now();
    let failed = loop {
        match r.read_exact(&mut chunk) {
            Ok(()) => read += CHUNK,
            Err(e) => break (off.elapsed(), Error::from(e)),
        }
        assert!(off.elapsed() < ttl + SLACK, "still reading past the TTL");
        std::thread::sleep(Duration::from_millis(15));
    };
    match &failed.1 {
        Error::Kek(k) => assert_eq!(k.kind(), KekErrorKind::KeyUnavailable, "{k}"),
        other => panic!("{other:?}"),
    }
    println!(
        "CMK disabled → the open reader stopped after {:?}: {}",
        failed.0, failed.1
    );
    // the customer re-enables the key: the reader goes on
    cmk.off.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    r.read_exact(&mut chunk).unwrap();
    assert_eq!(chunk, big[read..read + CHUNK]);
}

/// The parallel engines (whole-object and streaming) of a decryptor made
/// before the destroy refuse once the other instance learned of it.
#[tokio::test]
async fn parallel_decryptors_made_before_a_destroy_stop() {
    let ttl = Duration::from_millis(200);
    let (a_store, b_store) = fs_pair();
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(
        a_store,
        "par",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let b = EncryptionScope::open(b_store, "par", Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let msg = data(40 * CHUNK, 4);
    let env = seal(&[a.kek()], Profile::Blob, b"p", &msg).await.unwrap();
    let mut src = Cursor::new(&env[..]);
    let header = Header::read_from(&mut src).unwrap();
    let body = &env[src.position() as usize..];
    let rb = b.resolver();
    let dec = || Decryptor::new(&header, &rb, Profile::Blob, b"p");
    let (d1, d2, d3) = (
        dec().await.unwrap(),
        dec().await.unwrap(),
        dec().await.unwrap(),
    );
    assert_eq!(d1.threads(two()).open(body).unwrap(), msg);

    a.destroy("par").await.unwrap();
    // B learns of it at its next refresh (within the TTL): keep it busy
    let start = Instant::now();
    while open(&rb, Profile::Blob, b"p", &env).await.is_ok() {
        assert!(start.elapsed() < ttl + SLACK);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        d2.threads(two()).open(body),
        Err(Error::ScopeNotFound { .. })
    ));
    let mut out = Vec::new();
    let e = d3
        .threads(two())
        .decrypt_stream(body, &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::ScopeNotFound { .. }), "{e}");
    assert!(out.is_empty(), "nothing released");
}

/// The async reader renews its lease by polling, and stops with the scope.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn an_async_reader_renews_by_polling_and_stops_with_the_scope() {
    use tokio::io::AsyncReadExt;
    let ttl = Duration::from_millis(200);
    let (a_store, b_store) = fs_pair();
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(
        a_store,
        "async",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let big = data(256 * CHUNK, 5);
    let env = seal(&[a.kek()], Profile::Blob, b"a", &big).await.unwrap();
    let b = EncryptionScope::open(b_store, "async", Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let mut src = &env[..];
    let header = Header::read_from_async(&mut src).await.unwrap();
    let mut r = Decryptor::new(&header, &b.resolver(), Profile::Blob, b"a")
        .await
        .unwrap()
        .decrypt_async(src)
        .await
        .unwrap();
    let mut chunk = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut read = 0;
    while start.elapsed() < ttl * 3 {
        r.read_exact(&mut chunk).await.unwrap();
        assert_eq!(chunk, big[read..read + CHUNK]);
        read += CHUNK;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.destroy("async").await.unwrap();
    let gone = Instant::now();
    // The ring may hold read-ahead chunks opened before; past them, refused.
    let e = loop {
        match r.read_exact(&mut chunk).await {
            Ok(_) => assert!(gone.elapsed() < ttl + SLACK),
            Err(e) => break Error::from(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(matches!(e, Error::ScopeNotFound { .. }), "{e}");
}

/// The document cipher stops with the scope (and drops its derived keys).
#[cfg(feature = "document")]
#[tokio::test]
async fn the_document_cipher_stops_with_the_scope() {
    use cmk_envelope::document::{DocumentCipher, DocumentPolicy};
    let ttl = Duration::from_millis(200);
    let (a_store, b_store) = fs_pair();
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let a = EncryptionScope::create(
        a_store,
        "docs",
        Cmk::CustomerManaged(cmk.clone()),
        policy(ttl),
    )
    .await
    .unwrap();
    let b = EncryptionScope::open(b_store, "docs", Cmk::CustomerManaged(cmk), policy(ttl))
        .await
        .unwrap();
    let policy = DocumentPolicy::without_partition_key()
        .randomized("/ssn")
        .unwrap()
        .deterministic("/email")
        .unwrap();
    let cipher = DocumentCipher::new(b, policy);
    let mut doc = serde_json::json!({"id": "d1", "ssn": "078-05-1120", "email": "a@b"});
    cipher.encrypt(&mut doc).await.unwrap();
    let sealed = doc.clone();
    cipher.decrypt(&mut doc).await.unwrap();
    a.destroy("docs").await.unwrap();
    let start = Instant::now();
    let e = loop {
        let mut d = sealed.clone();
        match cipher.decrypt(&mut d).await {
            Ok(()) => assert!(start.elapsed() < ttl + SLACK),
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(matches!(e, Error::ScopeNotFound { .. }), "{e}");
    let mut fresh = serde_json::json!({"id": "d2", "ssn": "1", "email": "c@d"});
    assert!(cipher.encrypt(&mut fresh).await.is_err());
    assert!(cipher
        .equality_token("/email", &serde_json::json!("a@b"))
        .await
        .is_err());
}

/// A header naming a version the cached record lacks causes one store
/// read, at most once per `unknown_version_reread`; nothing else is
/// fetched, and the error is `UnknownKek`.
#[tokio::test]
async fn unknown_versions_cause_rate_limited_rereads() {
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(common::tempdir()).unwrap());
    let cmk = Switchable::new(file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw));
    let p = CachePolicy {
        unknown_version_reread: Duration::from_millis(300),
        ..policy(Duration::from_secs(60))
    };
    let s = EncryptionScope::create(store, "unk", Cmk::CustomerManaged(cmk.clone()), p)
        .await
        .unwrap();
    let env = seal(&[s.kek()], Profile::Blob, b"o", b"x").await.unwrap();
    let forged = {
        let mut h = Header::read_from(&mut Cursor::new(&env)).unwrap();
        let mut keys = h.keys().to_vec();
        keys[0].kek_id = "scope:unk/9".into();
        h = cmk_envelope::Header::new(h.suite(), h.profile(), keys).unwrap();
        let mut e = h.to_bytes();
        e.extend_from_slice(
            &env[Header::read_from(&mut Cursor::new(&env))
                .unwrap()
                .encoded_len()..],
        );
        e
    };
    let (reads, unwraps) = (
        s.cache_stats().store_reads,
        cmk.unwraps.load(Ordering::SeqCst),
    );
    for _ in 0..20 {
        let e = open(&s.resolver(), Profile::Blob, b"o", &forged)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::UnknownKek { kek_ids } if kek_ids == &["scope:unk/9"]),
            "{e}"
        );
    }
    assert_eq!(
        s.cache_stats().store_reads,
        reads + 1,
        "one re-read for 20 headers"
    );
    assert_eq!(cmk.unwraps.load(Ordering::SeqCst), unwraps, "no CMK call");
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert!(open(&s.resolver(), Profile::Blob, b"o", &forged)
        .await
        .is_err());
    assert_eq!(s.cache_stats().store_reads, reads + 2);
}

/// `Duration::MAX` (and zero) in every bound of the policy: no overflow,
/// no panic; a zero TTL caches nothing.
#[tokio::test]
async fn extreme_durations_do_not_panic() {
    for d in [Duration::MAX, Duration::ZERO] {
        let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(common::tempdir()).unwrap());
        let cmk = Switchable::new(file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw));
        let p = CachePolicy {
            ttl: d,
            refresh_fraction: 1.0,
            failure_backoff: d,
            max_entries: 0,
            unknown_version_reread: d,
            rotation_check_interval: d,
        };
        let s = EncryptionScope::create(
            store.clone(),
            "x",
            Cmk::CustomerManaged(cmk.clone()),
            p.clone(),
        )
        .await
        .unwrap();
        for _ in 0..3 {
            let env = seal(&[s.kek()], Profile::Blob, b"o", b"v").await.unwrap();
            assert_eq!(
                open(&s.resolver(), Profile::Blob, b"o", &env)
                    .await
                    .unwrap(),
                b"v"
            );
        }
        s.refresh().await.unwrap();
        assert_eq!(s.rotate_scope_key().await.unwrap(), 2);
        let other = EncryptionScope::open(store, "x", Cmk::CustomerManaged(cmk.clone()), p)
            .await
            .unwrap();
        let env = seal(&[other.kek()], Profile::Blob, b"o", b"w")
            .await
            .unwrap();
        assert_eq!(kid_of(&env), "scope:x/2");
        s.destroy("x").await.unwrap();
        assert!(seal(&[s.kek()], Profile::Blob, b"o", b"v").await.is_err());
        let unwraps = cmk.unwraps.load(Ordering::SeqCst);
        println!("TTL {d:?}: {unwraps} CMK unwraps for 8 operations");
        if d.is_zero() {
            assert!(unwraps >= 7, "a zero TTL caches nothing");
        }
    }
}

/// Rotating a scope that holds version `u32::MAX` is a clear error; the
/// record is not written and stays readable.
#[tokio::test]
async fn rotation_at_the_last_version_is_a_clear_error() {
    let dir = common::tempdir();
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(&dir).unwrap());
    let cmk = file_kek(&common::tempdir(), "cmk", WrapAlgorithm::A256Kw);
    let s = EncryptionScope::create(
        store.clone(),
        "last",
        Cmk::CustomerManaged(cmk.clone()),
        policy(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    // The record as a long-lived scope would have it: version 1 and the
    // last version (the same key material, relabelled), current.
    let mut rec = s.record();
    let mut last = rec.versions[0].clone();
    last.version = u32::MAX;
    rec.versions.push(last);
    rec.current = u32::MAX;
    let (_, tag) = store.get("last").await.unwrap().unwrap();
    store.put("last", &rec.to_json(), Some(&tag)).await.unwrap();
    let before = std::fs::read(dir.join("last.json")).unwrap();

    let s = EncryptionScope::open(
        store,
        "last",
        Cmk::CustomerManaged(cmk),
        policy(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let env = seal(&[s.kek()], Profile::Blob, b"o", b"x").await.unwrap();
    assert_eq!(kid_of(&env), format!("scope:last/{}", u32::MAX));
    match s.rotate_scope_key().await {
        Err(Error::KeyPolicy(m)) => {
            assert!(m.contains("4294967295") && m.contains("unchanged"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.join("last.json")).unwrap(), before);
    assert_eq!(
        open(&s.resolver(), Profile::Blob, b"o", &env)
            .await
            .unwrap(),
        b"x"
    );
}

fn two() -> cmk_envelope::Threads {
    cmk_envelope::Threads::Fixed(std::num::NonZeroUsize::new(2).unwrap())
}
