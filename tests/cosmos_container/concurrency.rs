//! Concurrent writers: ETag races, and `rewrap_container` while other
//! writers change the items.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cmk_envelope::cosmos::{rewrap_container, ItemOutcome, RewrapOptions};
use cmk_envelope::Error;
use serde_json::json;

use super::*;

/// A replace or delete under a stale ETag loses with a conflict and
/// changes nothing; of 8 writers replacing under one ETag, one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_etags_conflict_and_lose_nothing() {
    let s = doc_setup("race").await;
    let first = s.enc.create(patient(1, "t")).await.unwrap();
    let mut a = patient(1, "t");
    a["ssn"] = json!("writer A");
    let second = s.enc.replace(a.clone(), Some(&first)).await.unwrap();
    let mut b = patient(1, "t");
    b["ssn"] = json!("writer B");
    match s.enc.replace(b.clone(), Some(&first)).await {
        Err(Error::CosmosConflict {
            resource: "item",
            id,
        }) => assert_eq!(id.as_deref(), Some("p0001")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.enc.delete("p0001", &json!("t"), Some(&first)).await,
        Err(Error::CosmosConflict { .. })
    ));
    let (now, etag) = s.enc.read("p0001", &json!("t")).await.unwrap().unwrap();
    assert_eq!((now["ssn"].clone(), &etag), (json!("writer A"), &second));

    // Eight writers, one ETag: exactly one wins.
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (enc, etag) = (s.enc.clone(), etag.clone());
            tokio::spawn(async move {
                let mut item = patient(1, "t");
                item["ssn"] = json!(format!("writer {w}"));
                enc.replace(item, Some(&etag)).await.map(|_| w)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(Error::CosmosConflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (now, _) = s.enc.read("p0001", &json!("t")).await.unwrap().unwrap();
    assert_eq!(now["ssn"], json!(format!("writer {}", winners[0])));
    // Deleting under the current ETag works; a missing item is `false`.
    let (_, etag) = s.enc.read("p0001", &json!("t")).await.unwrap().unwrap();
    assert!(s
        .enc
        .delete("p0001", &json!("t"), Some(&etag))
        .await
        .unwrap());
    assert!(!s.enc.delete("p0001", &json!("t"), None).await.unwrap());
}

/// `rewrap_container` while four writers keep incrementing counters in
/// the items (read, change, replace under the ETag, retry on conflict):
/// no write of either side is lost, every item ends readable and under
/// the current key version, and the writers' items count as updated
/// concurrently or rewrapped after a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrap_container_against_concurrent_writers() {
    const ITEMS: usize = 60;
    let s = doc_setup("rewrap-race").await;
    for n in 0..ITEMS {
        s.enc.create(patient(n, "t")).await.unwrap();
    }
    s.scope.rotate_scope_key().await.unwrap();
    let increments: Vec<AtomicU64> = (0..ITEMS).map(|_| AtomicU64::new(0)).collect();
    let increments = Arc::new(increments);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (enc, inc, stop) = (s.enc.clone(), increments.clone(), stop.clone());
            tokio::spawn(async move {
                let mut k = w;
                while !stop.load(Ordering::Relaxed) {
                    let n = (k * 7) % ITEMS;
                    k += 1;
                    let id = format!("p{n:04}");
                    let (mut item, etag) = enc.read(&id, &json!("t")).await.unwrap().unwrap();
                    item["n"] = json!(item["n"].as_u64().unwrap() + 1000);
                    match enc.replace(item, Some(&etag)).await {
                        Ok(_) => {
                            inc[n].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::CosmosConflict { .. }) => {}
                        Err(e) => panic!("writer: {e}"),
                    }
                }
            })
        })
        .collect();
    let pages = Mutex::new(0);
    let report = rewrap_container(
        &s.enc,
        RewrapOptions::default()
            .page_size(NonZeroU32::new(10).unwrap())
            .concurrency(NonZeroUsize::new(4).unwrap())
            .max_attempts(NonZeroU32::new(20).unwrap()),
        &|p| {
            *pages.lock().unwrap() += 1;
            assert!(p
                .page
                .iter()
                .all(|r| !matches!(r.outcome, ItemOutcome::Failed(_))));
        },
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let t = report.totals;
    assert_eq!(t.scanned, ITEMS as u64, "{t:?}");
    assert_eq!(t.failed, 0, "{:?}", report.failures);
    assert_eq!(
        t.rewrapped + t.updated_concurrently + t.already_current,
        ITEMS as u64,
        "{t:?}"
    );
    assert!(*pages.lock().unwrap() >= ITEMS / 10);
    // Nothing lost: every item has its increments, and is readable.
    for (n, inc) in increments.iter().enumerate() {
        let (item, _) = s
            .enc
            .read(&format!("p{n:04}"), &json!("t"))
            .await
            .unwrap()
            .unwrap();
        let expected = n as u64 + 1000 * inc.load(Ordering::Relaxed);
        assert_eq!(item["n"].as_u64(), Some(expected), "item {n}");
    }
    // Every header is now current: a second run writes nothing.
    let again = rewrap_container(&s.enc, RewrapOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        again.totals.already_current, ITEMS as u64,
        "{:?}",
        again.totals
    );
    eprintln!(
        "rewrap against writers: {t:?}; writer increments: {}",
        increments
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum::<u64>()
    );
}
