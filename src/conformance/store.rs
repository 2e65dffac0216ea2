//! The [`ScopeStore`] suite: [`run`] for all of it, or each check on its
//! own.
//!
//! What the backend must provide: a store in which the given scope ids do
//! not exist yet (each check creates, changes and, for
//! [`basic_semantics`], deletes its own record), and for
//! [`concurrent_rotation_one_winner`] a customer-managed key with a known
//! [`key_container`](KeyEncryptionKey::key_container).

use std::sync::Arc;
use std::time::Duration;

use crate::kek::KeyEncryptionKey;
use crate::scope::{CachePolicy, Cmk, EncryptionScope, Etag, ScopeStore};
use crate::Error;

/// Asserts that `result` is [`Error::ScopeConflict`] naming `scope_id`.
fn expect_conflict<T: std::fmt::Debug>(result: crate::Result<T>, scope_id: &str, what: &str) {
    match result {
        Err(Error::ScopeConflict { scope_id: s }) => {
            assert_eq!(s, scope_id, "{what}: ScopeConflict must name the scope")
        }
        other => panic!("{what}: expected Error::ScopeConflict, got {other:?}"),
    }
}

/// Runs every check of this module on scopes `conformance-basic`,
/// `conformance-race` and `conformance-rotation`, which must not exist in
/// `store`. `cmk` protects the rotated scope.
///
/// Cost: about 220 store calls (the race: 8 tasks at once, 20 rounds) and
/// 3 CMK wraps.
pub async fn run(store: Arc<dyn ScopeStore>, cmk: Arc<dyn KeyEncryptionKey>) {
    basic_semantics(store.as_ref(), "conformance-basic").await;
    many_writers_one_winner_per_round(&store, "conformance-race", 8, 20).await;
    concurrent_rotation_one_winner(&store, "conformance-rotation", cmk).await;
}

/// The trait's contract on one record `id` (which must not exist yet):
///
/// * `get` of a missing record is `None`;
/// * a create (`put` with `expected = None`) stores the bytes exactly
///   (all 256 byte values) and returns the tag `get` returns;
/// * a second create, an update with a stale tag, a delete with a stale tag
///   and an update of a deleted record give [`Error::ScopeConflict`] naming
///   `id`, and write nothing;
/// * an update with the current tag returns a new tag;
/// * a delete with the current tag removes the record; deleting again gives
///   [`Error::ScopeNotFound`] naming `id`.
///
/// Cost: 14 store calls; the record is deleted at the end.
pub async fn basic_semantics(store: &dyn ScopeStore, id: &str) {
    assert!(
        store.get(id).await.expect("get").is_none(),
        "`{id}` must not exist before the check"
    );
    let one: Vec<u8> = (0..=255u8).collect();
    let t1 = store.put(id, &one, None).await.expect("create");
    let (bytes, tag) = store.get(id).await.expect("get").expect("created record");
    assert!(bytes == one, "the record's bytes changed in the store");
    assert_eq!(tag, t1, "get returns the tag the create returned");
    expect_conflict(store.put(id, b"other", None).await, id, "a second create");
    let t2 = store.put(id, b"two", Some(&t1)).await.expect("update");
    assert_ne!(t1, t2, "an update returns a new tag");
    expect_conflict(
        store.put(id, b"stale", Some(&t1)).await,
        id,
        "an update with a stale tag",
    );
    expect_conflict(store.delete(id, &t1).await, id, "a delete with a stale tag");
    let (bytes, tag) = store.get(id).await.expect("get").expect("record");
    assert_eq!(
        (bytes.as_slice(), &tag),
        (&b"two"[..], &t2),
        "a refused write changed the record"
    );
    store.delete(id, &t2).await.expect("delete");
    assert!(
        store.get(id).await.expect("get").is_none(),
        "a deleted record is gone"
    );
    match store.delete(id, &t2).await {
        Err(Error::ScopeNotFound { scope_id }) => {
            assert_eq!(scope_id, id, "ScopeNotFound must name the scope")
        }
        other => panic!("deleting a deleted record: expected Error::ScopeNotFound, got {other:?}"),
    }
    expect_conflict(
        store
            .put(id, b"ghost", Some(&Etag("\"nope\"".into())))
            .await,
        id,
        "an update of a deleted record",
    );
    assert!(
        store.get(id).await.expect("get").is_none(),
        "a refused update created the record"
    );
}

/// `tasks` tokio tasks race `rounds` times on record `id` (which must not
/// exist yet), each with the tag read at the start of the round: exactly
/// one write wins per round, every other gets [`Error::ScopeConflict`]
/// naming `id`, and the stored record and tag are the winner's. Needs a
/// tokio runtime (multi-threaded, for real parallelism).
///
/// Cost: `rounds · (tasks + 2) + 1` store calls.
pub async fn many_writers_one_winner_per_round(
    store: &Arc<dyn ScopeStore>,
    id: &str,
    tasks: usize,
    rounds: usize,
) {
    store.put(id, b"round-0", None).await.expect("create");
    for round in 1..=rounds {
        let (_, tag) = store.get(id).await.expect("get").expect("record");
        let mut handles = Vec::with_capacity(tasks);
        for t in 0..tasks {
            let (store, tag, id) = (Arc::clone(store), tag.clone(), id.to_owned());
            handles.push(tokio::spawn(async move {
                let body = format!("round-{round}-task-{t}");
                let r = store.put(&id, body.as_bytes(), Some(&tag)).await;
                (body, r)
            }));
        }
        let mut winners = Vec::new();
        for h in handles {
            let (body, r) = match h.await {
                Ok(v) => v,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("round {round}: a writer did not finish: {e}"),
            };
            match r {
                Ok(tag) => winners.push((body, tag)),
                other => expect_conflict(other, id, &format!("round {round}: a losing writer")),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one writer wins");
        let (bytes, tag) = store.get(id).await.expect("get").expect("record");
        assert_eq!(
            bytes,
            winners[0].0.as_bytes(),
            "round {round}: the record is the winner's"
        );
        assert_eq!(tag, winners[0].1, "round {round}: the tag is the winner's");
    }
}

/// Two service instances rotate the scope key of scope `scope_id` (which
/// must not exist yet) at the same moment through `store`: exactly one
/// wins, the other gets [`Error::ScopeConflict`] naming the scope; a third
/// instance that opens the scope afterwards rotates once more, and the
/// record then holds versions 1, 2 and 3 with 3 current: no version is
/// lost. `cmk` must have a key container.
///
/// Cost: 3 CMK wraps, about 8 store calls.
pub async fn concurrent_rotation_one_winner(
    store: &Arc<dyn ScopeStore>,
    scope_id: &str,
    cmk: Arc<dyn KeyEncryptionKey>,
) {
    let policy = CachePolicy {
        ttl: Duration::from_secs(60),
        failure_backoff: Duration::from_millis(20),
        ..CachePolicy::default()
    };
    let customer = || Cmk::CustomerManaged(Arc::clone(&cmk));
    let open = || EncryptionScope::open(Arc::clone(store), scope_id, customer(), policy.clone());
    let a = EncryptionScope::create(Arc::clone(store), scope_id, customer(), policy.clone())
        .await
        .expect("create the scope");
    let b = open().await.expect("open the scope");
    let (ra, rb) = futures_util::future::join(a.rotate_scope_key(), b.rotate_scope_key()).await;
    let (winner, loser) = match (ra, rb) {
        (Ok(v), other) | (other, Ok(v)) => (v, other),
        (ra, rb) => panic!("no concurrent rotation won: {ra:?} {rb:?}"),
    };
    assert_eq!(winner, 2, "the winning rotation makes version 2");
    expect_conflict(loser, scope_id, "the losing concurrent rotation");
    let c = open().await.expect("re-open the scope");
    assert_eq!(
        c.rotate_scope_key().await.expect("rotate after re-opening"),
        3
    );
    let rec = open().await.expect("re-open the scope").record();
    let versions: Vec<u32> = rec.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2, 3], "no scope key version is lost");
    assert_eq!(rec.current, 3, "the last rotation is current");
}
