//! The behaviour every `ScopeStore` must have, run against each store:
//! the memory and file stores (tests/scope.rs) and the blob store on Azurite
//! (tests/azure_blob.rs).

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, Etag, ScopeStore};
use cmk_envelope::{Error, KeyEncryptionKey};

/// Create-only, compare-and-swap updates and deletes, with the errors the
/// trait documents. `id` must not exist yet.
pub async fn basic_semantics(store: Arc<dyn ScopeStore>, id: &str) {
    assert!(store.get(id).await.unwrap().is_none(), "fresh id");
    let t1 = store.put(id, b"one", None).await.unwrap();
    let (bytes, tag) = store.get(id).await.unwrap().unwrap();
    assert_eq!((bytes.as_slice(), &tag), (&b"one"[..], &t1));
    // a second create loses
    assert!(matches!(
        store.put(id, b"other", None).await,
        Err(Error::ScopeConflict { .. })
    ));
    let t2 = store.put(id, b"two", Some(&t1)).await.unwrap();
    assert_ne!(t1, t2);
    // a stale tag loses, and writes nothing
    assert!(matches!(
        store.put(id, b"stale", Some(&t1)).await,
        Err(Error::ScopeConflict { .. })
    ));
    assert!(matches!(
        store.delete(id, &t1).await,
        Err(Error::ScopeConflict { .. })
    ));
    assert_eq!(store.get(id).await.unwrap().unwrap().0, b"two");
    store.delete(id, &t2).await.unwrap();
    assert!(store.get(id).await.unwrap().is_none());
    assert!(matches!(
        store.delete(id, &t2).await,
        Err(Error::ScopeNotFound { .. })
    ));
    // an update of a deleted record loses too
    assert!(matches!(
        store
            .put(id, b"ghost", Some(&Etag("\"nope\"".into())))
            .await,
        Err(Error::ScopeConflict { .. })
    ));
}

/// `tasks` writers race `rounds` times on one record, each with the tag
/// read at the start of the round: exactly one wins per round, the others
/// get `ScopeConflict`, and the record is the winner's.
pub async fn many_writers_one_winner_per_round(
    store: Arc<dyn ScopeStore>,
    id: &str,
    tasks: usize,
    rounds: usize,
) {
    store.put(id, b"round-0", None).await.unwrap();
    for round in 1..=rounds {
        let (_, tag) = store.get(id).await.unwrap().unwrap();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            let tag = tag.clone();
            let id = id.to_owned();
            handles.push(tokio::spawn(async move {
                let body = format!("round-{round}-task-{t}");
                let r = store.put(&id, body.as_bytes(), Some(&tag)).await;
                (body, r)
            }));
        }
        let mut winners = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                (body, Ok(tag)) => winners.push((body, tag)),
                (_, Err(Error::ScopeConflict { .. })) => {}
                (_, Err(e)) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        let (bytes, tag) = store.get(id).await.unwrap().unwrap();
        assert_eq!(bytes, winners[0].0.as_bytes(), "round {round}");
        assert_eq!(tag, winners[0].1, "round {round}");
    }
}

fn policy() -> CachePolicy {
    CachePolicy {
        ttl: Duration::from_secs(60),
        failure_backoff: Duration::from_millis(20),
        ..CachePolicy::default()
    }
}

/// Two service instances rotate one scope's key at the same moment: one
/// wins, the other gets `ScopeConflict`, re-opens and retries; no version
/// is lost.
pub async fn concurrent_rotation_one_winner(
    store: Arc<dyn ScopeStore>,
    scope_id: &str,
    kek: Arc<dyn KeyEncryptionKey>,
) {
    let cmk = || Cmk::CustomerManaged(kek.clone());
    let a = EncryptionScope::create(store.clone(), scope_id, cmk(), policy())
        .await
        .unwrap();
    let b = EncryptionScope::open(store.clone(), scope_id, cmk(), policy())
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(a.rotate_scope_key(), b.rotate_scope_key());
    let wins = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
    assert_eq!(
        wins, 1,
        "exactly one concurrent rotation wins: {ra:?} {rb:?}"
    );
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(matches!(loser, Err(Error::ScopeConflict { .. })));
    let c = EncryptionScope::open(store.clone(), scope_id, cmk(), policy())
        .await
        .unwrap();
    assert_eq!(c.rotate_scope_key().await.unwrap(), 3);
    let rec = EncryptionScope::open(store, scope_id, cmk(), policy())
        .await
        .unwrap()
        .record();
    assert_eq!(
        rec.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(rec.current, 3);
}
