//! The server killed (SIGKILL) in the middle of `rewrap_container`: a
//! resumed run finishes and every item stays readable.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cmk_envelope::cosmos::{rewrap_container, RewrapOptions};
use serde_json::json;

use super::cosmos::OwnServer;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_killed_mid_rewrap_then_a_resumed_run_finishes() {
    const ITEMS: usize = 240;
    let dir = common::tempdir();
    let state = dir.join("cosmos-state.jsonl");
    let mut server = OwnServer::start(&state, 0);
    let port = server.port;
    let client = server.client().await;
    let db = cosmos::database(&client, "fault").await;
    let scopes = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let raw = cosmos::container_with(&db, "items", "/tenant", Value::Null).await;
    let (scope, _) = new_scope(&scopes, "tenant-fault", Duration::from_secs(300)).await;
    let enc = EncryptedContainer::with_document_format(raw, scope.clone(), doc_policy())
        .await
        .unwrap();
    for n in 0..ITEMS {
        enc.create(patient(n, if n.is_multiple_of(2) { "a" } else { "b" }))
            .await
            .unwrap();
    }
    scope.rotate_scope_key().await.unwrap();

    // Kill the server once about a third of the items were written back:
    // the journal has one line per acknowledged change.
    let lines = || std::fs::read_to_string(&state).unwrap().lines().count();
    let base = lines();
    let killed = Arc::new(AtomicBool::new(false));
    let last_token: Arc<Mutex<Option<String>>> = Arc::default();
    let rewrapped_before = Arc::new(AtomicU64::new(0));
    let run = {
        let (enc, last_token, rewrapped) =
            (enc.clone(), last_token.clone(), rewrapped_before.clone());
        tokio::spawn(async move {
            rewrap_container(
                &enc,
                RewrapOptions::default()
                    .page_size(NonZeroU32::new(20).unwrap())
                    .concurrency(NonZeroUsize::new(4).unwrap()),
                &move |p| {
                    rewrapped.store(p.totals.rewrapped, Ordering::Relaxed);
                    if let Some(t) = p.resume_token {
                        *last_token.lock().unwrap() = Some(t.to_owned());
                    }
                },
            )
            .await
        })
    };
    let t0 = Instant::now();
    while !run.is_finished() {
        if lines() >= base + ITEMS / 3 {
            server.kill();
            killed.store(true, Ordering::Relaxed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        killed.load(Ordering::Relaxed),
        "the run finished before the kill"
    );
    let stopped = run.await.unwrap();
    let e = stopped.expect_err("a run whose server died must stop with an error");
    eprintln!("the killed run stopped after {:?}: {e}", t0.elapsed());
    assert!(e.is_retryable(), "{e}");
    let token = last_token.lock().unwrap().clone();
    assert!(token.is_some(), "no page completed before the kill");
    let done_before = rewrapped_before.load(Ordering::Relaxed);
    assert!(
        done_before > 0 && done_before < ITEMS as u64,
        "{done_before}"
    );

    // The server comes back on the same port and journal; the same
    // clients carry on, and a run resumed from the last token finishes.
    let _server = OwnServer::start(&state, port);
    let resumed = rewrap_container(
        &enc,
        RewrapOptions::default()
            .page_size(NonZeroU32::new(20).unwrap())
            .resume_from(token.unwrap()),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(resumed.totals.failed, 0, "{:?}", resumed.failures);
    assert!(resumed.totals.rewrapped > 0);
    // Every item is readable, and current: a full run writes nothing.
    for n in 0..ITEMS {
        let tenant = if n.is_multiple_of(2) { "a" } else { "b" };
        let (item, _) = enc
            .read(&format!("p{n:04}"), &json!(tenant))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(without_system(item), patient(n, tenant));
    }
    let full = rewrap_container(&enc, RewrapOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        full.totals.already_current, ITEMS as u64,
        "{:?}",
        full.totals
    );
}
