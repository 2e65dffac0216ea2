//! Scopes shared through Azure Cosmos DB (the test server of
//! scripts/cosmosdb.sh): two independent instances, each with its own
//! client and `CosmosScopeStore` on one container, see a destroy, a key
//! rotation and a CMK rotation within the TTL.

#![cfg(feature = "cosmos")]

mod common;
#[path = "common/cosmos.rs"]
mod cosmos;
#[path = "common/scope_suite.rs"]
mod scope_suite;

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::cosmos::CosmosScopeStore;
use cmk_envelope::scope::ScopeStore;
use serde_json::Value;

/// A fresh container of scope records, and `n` store objects on it, each
/// with its own client (as separate processes would have).
async fn stores(prefix: &str, n: usize) -> Vec<Arc<dyn ScopeStore>> {
    let first = cosmos::client().await;
    let db = cosmos::database(&first, prefix).await;
    cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let mut out = Vec::new();
    for _ in 0..n {
        let client = cosmos::client().await;
        let c = client
            .database_client(db.name().unwrap())
            .container_client("scopes", None)
            .await
            .unwrap();
        out.push(Arc::new(CosmosScopeStore::new(c).await.unwrap()) as Arc<dyn ScopeStore>);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_store_destroy_is_seen_by_the_other_instance_within_the_ttl() {
    let mut s = stores("destroy", 2).await;
    let ttl = Duration::from_millis(500);
    let t =
        scope_suite::destroy_is_seen_within_the_ttl(s.remove(0), s.remove(0), "co-d", ttl).await;
    println!("cosmos store: destroy → B's first refusal {t:?} (TTL {ttl:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_store_key_rotation_is_followed_within_the_ttl() {
    let mut s = stores("rotate", 2).await;
    let ttl = Duration::from_millis(500);
    scope_suite::key_rotation_is_followed(s.remove(0), s.remove(0), "co-r", ttl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_store_cmk_rotation_is_followed_by_who_can_reach_the_new_key() {
    let mut s = stores("cmk", 3).await;
    let ttl = Duration::from_millis(500);
    scope_suite::cmk_rotation_is_followed(s.remove(0), s.remove(0), s.remove(0), "co-c", ttl).await;
}
