//! `cosmos::EncryptedContainer` (the crate's document format and the
//! official SDKs' Always Encrypted format) and `rewrap_container`, against
//! the Cosmos DB test server of scripts/cosmosdb.sh (which every run
//! starts; these tests fail, never skip, without it), and against the
//! official JavaScript SDK's client with its encryption on, talking to the
//! same server.

#![cfg(feature = "cosmos")]

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/cosmos.rs"]
mod cosmos;
#[path = "../common/cosmos_sdk.rs"]
mod cosmos_sdk;

mod concurrency;
mod document;
mod faults;
mod interop;
mod rules;
mod sdk_format;

use std::sync::Arc;
use std::time::Duration;

use azure_data_cosmos::clients::ContainerClient;
use cmk_envelope::cosmos::{CosmosScopeStore, EncryptedContainer, EncryptedQuery};
use cmk_envelope::document::DocumentPolicy;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::KeyEncryptionKey;
use serde_json::{json, Value};

/// A customer-managed scope `id`, its record kept in `scopes` (a
/// `CosmosScopeStore`), its CMK a fresh file KEK; cached keys live `ttl`.
async fn new_scope(
    scopes: &ContainerClient,
    id: &str,
    ttl: Duration,
) -> (EncryptionScope, Arc<dyn KeyEncryptionKey>) {
    let store: Arc<dyn ScopeStore> = Arc::new(CosmosScopeStore::new(scopes.clone()).await.unwrap());
    let cmk = common::file_kek("cmk");
    let scope = EncryptionScope::create(store, id, Cmk::CustomerManaged(cmk.clone()), cache(ttl))
        .await
        .unwrap();
    (scope, cmk)
}

fn cache(ttl: Duration) -> CachePolicy {
    CachePolicy {
        ttl,
        ..CachePolicy::default()
    }
}

/// The document policy of the tests' items, partitioned on `/tenant`.
fn doc_policy() -> DocumentPolicy {
    DocumentPolicy::new("/tenant")
        .unwrap()
        .deterministic("/email")
        .unwrap()
        .deterministic("/address/city")
        .unwrap()
        .randomized("/ssn")
        .unwrap()
        .randomized("/profile")
        .unwrap()
        .randomized("/history")
        .unwrap()
}

/// A document-format container partitioned on `/tenant` in a fresh
/// database, with its scope, and a plain container of the same shape.
struct DocSetup {
    scopes: ContainerClient,
    raw: ContainerClient,
    plain: ContainerClient,
    enc: EncryptedContainer,
    scope: EncryptionScope,
}

async fn doc_setup(prefix: &str) -> DocSetup {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, prefix).await;
    let scopes = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let raw = cosmos::container_with(&db, "items", "/tenant", Value::Null).await;
    let plain = cosmos::container_with(&db, "plain", "/tenant", Value::Null).await;
    let (scope, _) = new_scope(&scopes, "tenant-scope", Duration::from_secs(300)).await;
    let enc = EncryptedContainer::with_document_format(raw.clone(), scope.clone(), doc_policy())
        .await
        .unwrap();
    DocSetup {
        scopes,
        raw,
        plain,
        enc,
        scope,
    }
}

/// `v` without the properties the service adds.
fn without_system(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        for k in ["_rid", "_self", "_etag", "_ts", "_attachments", "_lsn"] {
            m.remove(k);
        }
    }
    v
}

/// Reads item `id` of partition `pk` as stored.
async fn stored(c: &ContainerClient, pk: Value, id: &str) -> Value {
    let pk = match pk {
        Value::String(s) => azure_data_cosmos::PartitionKey::from(s),
        other => panic!("a string partition key, not {other}"),
    };
    c.read_item(pk, id, None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
}

/// The ids of `items`, sorted.
fn ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Every item of a query on the plain container.
async fn plain_query(c: &ContainerClient, sql: &str, params: &[(&str, Value)]) -> Vec<Value> {
    use futures::TryStreamExt;
    let mut q = azure_data_cosmos::Query::from(sql);
    for (n, v) in params {
        q = q.with_parameter(*n, v).unwrap();
    }
    c.query_items::<Value>(q, azure_data_cosmos::FeedScope::full_container(), None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Every item of a query on the encrypted container.
async fn enc_query(c: &EncryptedContainer, q: EncryptedQuery) -> Vec<Value> {
    c.query(q).await.unwrap().all().await.unwrap()
}

/// Creates items `item(n, "bulk")` for `n` in 0..100 and checks that a
/// query of that partition returns them in one page of 100, decrypted;
/// returns the pages, after that one.
async fn full_page_of_100(
    enc: &EncryptedContainer,
    item: fn(usize, &str) -> Value,
) -> cmk_envelope::cosmos::ItemPages {
    for n in 0..100 {
        enc.create(item(n, "bulk")).await.unwrap();
    }
    let mut pages = enc
        .query(
            EncryptedQuery::new("SELECT * FROM c")
                .in_partition(json!("bulk"))
                .page_size(std::num::NonZeroU32::new(100).unwrap()),
        )
        .await
        .unwrap();
    let page = pages.next_page().await.unwrap().unwrap();
    assert_eq!(page.len(), 100);
    for row in &page {
        let n = row["n"].as_u64().unwrap() as usize;
        assert_eq!(without_system(row.clone()), item(n, "bulk"));
    }
    pages
}

/// An item of the tests: `n` picks its values (emails and cities repeat).
fn patient(n: usize, tenant: &str) -> Value {
    let city = ["Oslo", "Lima", "Pune"][n % 3];
    json!({
        "id": format!("p{n:04}"),
        "tenant": tenant,
        "email": format!("user{}@example.com", n % 7),
        "address": {"city": city, "zip": format!("{:05}", n)},
        "ssn": format!("PLAINTEXT-{n:09}"),
        "profile": {"age": 20 + n % 50, "tags": ["a", "b"], "score": n as f64 / 3.0},
        "history": [{"visit": n, "note": "PLAINTEXT-note"}],
        "n": n,
    })
}
