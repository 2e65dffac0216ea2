//! The official Rust SDK (`azure_data_cosmos`) against the Cosmos DB test
//! server of scripts/cosmosdb.sh, and `CosmosScopeStore` on it.

#![cfg(feature = "cosmos")]

mod common;
#[path = "common/cosmos.rs"]
mod cosmos;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use azure_data_cosmos::clients::ContainerClient;
use azure_data_cosmos::feed::ContinuationToken;
use azure_data_cosmos::models::ContainerProperties;
use azure_data_cosmos::options::{ItemWriteOptions, MaxItemCountHint, Precondition, QueryOptions};
use azure_data_cosmos::{FeedScope, Query};
use cmk_envelope::conformance::store as store_conformance;
use cmk_envelope::cosmos::CosmosScopeStore;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::{open, seal, Error, Profile, StorageErrorKind};
use futures::TryStreamExt;
use reqwest::Method;
use serde_json::{json, Value};

/// Item `id` of partition `pk`, as stored.
async fn read_value(c: &ContainerClient, pk: &str, id: &str) -> Value {
    c.read_item(pk.to_owned(), id, None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
}

fn if_match(etag: &azure_core::http::Etag) -> Option<ItemWriteOptions> {
    Some(ItemWriteOptions::default().with_precondition(Precondition::if_match(etag.clone())))
}

/// Item operations with ETag preconditions, as the server and the SDK do
/// them together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_item_operations_with_etags() {
    let c = cosmos::container("items", "/pk").await;
    let item = json!({"id": "a", "pk": "p1", "n": 1});
    let created = c.create_item("p1", "a", &item, None).await.unwrap();
    let e1 = created
        .headers()
        .etag()
        .expect("create returns an ETag")
        .clone();

    let read = c.read_item("p1", "a", None).await.unwrap();
    assert_eq!(read.headers().etag(), Some(&e1));
    let v: Value = read.into_model().unwrap();
    assert_eq!(v["n"], 1);

    // a second create of the same id conflicts
    let e = c.create_item("p1", "a", &item, None).await.unwrap_err();
    assert!(e.status().is_conflict(), "{e}");

    // replace under the right ETag, then a stale one
    let r = c
        .replace_item(
            "p1",
            "a",
            json!({"id": "a", "pk": "p1", "n": 2}),
            if_match(&e1),
        )
        .await
        .unwrap();
    let e2 = r.headers().etag().unwrap().clone();
    assert_ne!(e1, e2);
    let e = c
        .replace_item(
            "p1",
            "a",
            json!({"id": "a", "pk": "p1", "n": 3}),
            if_match(&e1),
        )
        .await
        .unwrap_err();
    assert!(e.status().is_precondition_failed(), "{e}");

    // upsert creates and replaces
    c.upsert_item("p1", "b", json!({"id": "b", "pk": "p1", "n": 1}), None)
        .await
        .unwrap();
    c.upsert_item("p1", "b", json!({"id": "b", "pk": "p1", "n": 5}), None)
        .await
        .unwrap();
    let v = read_value(&c, "p1", "b").await;
    assert_eq!(v["n"], 5);

    // delete: stale ETag refused, right one accepted, then gone
    let e = c.delete_item("p1", "a", if_match(&e1)).await.unwrap_err();
    assert!(e.status().is_precondition_failed(), "{e}");
    c.delete_item("p1", "a", if_match(&e2)).await.unwrap();
    let e = c.read_item("p1", "a", None).await.unwrap_err();
    assert!(e.status().is_not_found(), "{e}");
    // the item of another partition with the same id is another item
    c.create_item("p2", "b", json!({"id": "b", "pk": "p2", "n": 9}), None)
        .await
        .unwrap();
    let v = read_value(&c, "p1", "b").await;
    assert_eq!(v["n"], 5);
}

/// Parameterized queries, scoped to one partition or across the container,
/// paged, and resumed from a continuation token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_queries_with_parameters_and_continuations() {
    let c = cosmos::container("query", "/pk").await;
    for i in 0..25 {
        let pk = if i % 5 == 0 { "other" } else { "main" };
        c.create_item(
            pk,
            &format!("i{i:02}"),
            json!({"id": format!("i{i:02}"), "pk": pk, "n": i}),
            None,
        )
        .await
        .unwrap();
    }
    // one partition, with a parameter
    let q = Query::from("SELECT * FROM c WHERE c.n >= @min")
        .with_parameter("@min", 10)
        .unwrap();
    let rows: Vec<Value> = c
        .query_items(q, FeedScope::partition("main"), None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut ns: Vec<i64> = rows.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, vec![11, 12, 13, 14, 16, 17, 18, 19, 21, 22, 23, 24]);

    // across the container, equality on a parameter
    let q = Query::from("SELECT * FROM c WHERE c.pk = @pk")
        .with_parameter("@pk", "other")
        .unwrap();
    let rows: Vec<Value> = c
        .query_items(q, FeedScope::full_container(), None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);

    // pages of 7 in one partition; stop after the first page, resume
    let limit = MaxItemCountHint::Limit(NonZeroU32::new(7).unwrap());
    let query = || Query::from("SELECT * FROM c ORDER BY c.n");
    let mut pages = c
        .query_items::<Value>(
            query(),
            FeedScope::partition("main"),
            Some(QueryOptions::default().with_max_item_count(limit)),
        )
        .await
        .unwrap()
        .into_pages();
    let first = pages.try_next().await.unwrap().unwrap();
    assert_eq!(first.items().len(), 7);
    let token: String = pages.to_continuation_token().unwrap().as_str().to_owned();
    drop(pages);
    let rest: Vec<Value> = c
        .query_items(
            query(),
            FeedScope::partition("main"),
            Some(
                QueryOptions::default()
                    .with_max_item_count(limit)
                    .with_continuation_token(ContinuationToken::from_string(token)),
            ),
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let all: Vec<i64> = first
        .items()
        .iter()
        .chain(rest.iter())
        .map(|r| r["n"].as_i64().unwrap())
        .collect();
    assert_eq!(all, (0..25).filter(|i| i % 5 != 0).collect::<Vec<_>>());
}

// ----- CosmosScopeStore ------------------------------------------------------

async fn store(prefix: &str, pk_path: &str) -> Arc<dyn ScopeStore> {
    let c = cosmos::container(prefix, pk_path).await;
    Arc::new(CosmosScopeStore::new(c).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_scope_store_semantics() {
    store_conformance::basic_semantics(store("ss", "/id").await.as_ref(), "res-1").await;
}

/// A container shared with other metadata, partitioned on `/pk`: the
/// record items carry the scope id there too, and other items are left
/// alone (and refused as records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_scope_store_on_a_container_partitioned_on_another_path() {
    let c = cosmos::container("shared", "/pk").await;
    let store = Arc::new(CosmosScopeStore::new(c.clone()).await.unwrap());
    store_conformance::basic_semantics(store.as_ref(), "res-1").await;
    store.put("res-2", b"two", None).await.unwrap();
    let raw = read_value(&c, "res-2", "res-2").await;
    assert_eq!(raw["pk"], "res-2");
    assert_eq!(raw["type"], "cmk-envelope.scope-record");
    // another application's item under a scope's id is not a record
    c.create_item(
        "res-3",
        "res-3",
        json!({"id": "res-3", "pk": "res-3", "name": "x"}),
        None,
    )
    .await
    .unwrap();
    match store.get("res-3").await {
        Err(Error::Storage(e)) => {
            assert_eq!(e.kind(), StorageErrorKind::NotAnEnvelope);
            assert!(e.to_string().starts_with("Cosmos DB: "), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchical_partition_keys_are_refused() {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, "hpk").await;
    let props: ContainerProperties = serde_json::from_value(json!({
        "id": "scopes",
        "partitionKey": {"paths": ["/tenant", "/id"], "kind": "MultiHash", "version": 2}
    }))
    .unwrap();
    db.create_container(props, None).await.unwrap();
    let c = db.container_client("scopes", None).await.unwrap();
    match CosmosScopeStore::new(c).await {
        Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotAnEnvelope, "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cosmos_scope_store_cas_race_8_tasks_20_rounds() {
    store_conformance::many_writers_one_winner_per_round(
        &store("race", "/id").await,
        "res-race",
        8,
        20,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_rotating_one_scope_one_wins() {
    let kek = common::file_kek("cmk");
    store_conformance::concurrent_rotation_one_winner(&store("rot", "/id").await, "res-rot", kek)
        .await;
}

/// Two service instances, each with its own client and store object on
/// one container: what one seals under a scope, the other opens, also
/// after the other rotated the scope key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_scope_kept_in_cosmos() {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, "scoped").await;
    let c = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let a_store: Arc<dyn ScopeStore> = Arc::new(CosmosScopeStore::new(c).await.unwrap());
    let other_client = cosmos::client().await;
    let c2 = other_client
        .database_client(db.name().unwrap())
        .container_client("scopes", None)
        .await
        .unwrap();
    let b_store: Arc<dyn ScopeStore> = Arc::new(CosmosScopeStore::new(c2).await.unwrap());
    let cmk = common::file_kek("cmk");
    let policy = CachePolicy {
        ttl: Duration::from_secs(60),
        ..CachePolicy::default()
    };
    let a = EncryptionScope::create(
        a_store,
        "tenant-a",
        Cmk::CustomerManaged(cmk.clone()),
        policy.clone(),
    )
    .await
    .unwrap();
    let env1 = seal(&[a.kek()], Profile::Blob, b"o1", b"one")
        .await
        .unwrap();
    let b = EncryptionScope::open(
        b_store.clone(),
        "tenant-a",
        Cmk::CustomerManaged(cmk.clone()),
        policy.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        open(&b.resolver(), Profile::Blob, b"o1", &env1)
            .await
            .unwrap(),
        b"one"
    );
    assert_eq!(b.rotate_scope_key().await.unwrap(), 2);
    let env2 = seal(&[b.kek()], Profile::Blob, b"o2", b"two")
        .await
        .unwrap();
    let a2 = EncryptionScope::open(b_store, "tenant-a", Cmk::CustomerManaged(cmk), policy)
        .await
        .unwrap();
    let r = a2.resolver();
    assert_eq!(open(&r, Profile::Blob, b"o1", &env1).await.unwrap(), b"one");
    assert_eq!(open(&r, Profile::Blob, b"o2", &env2).await.unwrap(), b"two");
}

/// The account key is a secret: the store's `Debug` and the errors of
/// failed requests never show it; errors name the service, the operation
/// and the status. (The server checks the key: a wrong one is refused.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_key_never_appears_in_debug_or_errors() {
    let e = match cosmos::try_client_with_key(&cosmos::random_key()).await {
        Err(e) => e,
        Ok(_) => panic!("the server accepted a wrong account key"),
    };
    assert!(e.to_string().contains("401"), "{e}");
    let key = cosmos::account_key();
    let client = cosmos::client_with_key(&key).await;
    let db = cosmos::database(&client, "secret").await;
    let c = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let store = CosmosScopeStore::new(c).await.unwrap();
    let debug = format!("{store:?}");
    assert_eq!(
        debug,
        r#"CosmosScopeStore { container: "scopes", partition_key: "/id" }"#
    );
    store.put("s", b"r", None).await.unwrap();
    // the database goes away under the store: its writes fail
    db.delete(None).await.unwrap();
    let e = store.put("s2", b"r", None).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains(&key), "{text}");
    assert!(
        text.contains("Cosmos DB: ") && text.contains("write scope record"),
        "{text}"
    );
    // a missing container is not a missing record
    match store.get("s").await {
        Err(Error::Storage(e)) => {
            assert_eq!(
                (e.kind(), e.status()),
                (StorageErrorKind::NotFound, Some(404)),
                "{e}"
            );
            assert!(!format!("{e} {e:?}").contains(&key));
        }
        other => panic!("a record read in a deleted container: {other:?}"),
    }
}

// ----- what the server offers for client-side encryption ----------------------

/// Sends `req` (with `body` as JSON when given): the status and the JSON
/// body of the answer.
async fn call(req: reqwest::RequestBuilder, body: Option<&Value>) -> (u16, Value) {
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(serde_json::to_vec(b).unwrap()),
        None => req,
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The properties of container `c` as JSON (with those the SDK does not
/// model).
async fn properties(c: &ContainerClient) -> Value {
    let props: ContainerProperties = c.read(None).await.unwrap().into_model().unwrap();
    serde_json::to_value(props).unwrap()
}

/// Client encryption keys are database resources with ETags: create (once),
/// read, list, and replace under `If-Match`, as the official SDKs use them.
/// A container's client encryption policy is kept, refused when it names a
/// key the database lacks, and survives a container replace, which keeps
/// the items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_encryption_keys_and_policies_on_the_server() {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, "cek").await;
    let base = format!("dbs/{}/clientencryptionkeys", db.name().unwrap());
    let keys = format!("{base}/cek1");
    let cek = json!({
        "id": "cek1",
        "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256",
        "wrappedDataEncryptionKey": "AAEC",
        "encryptionKeyWrapMetadata": {"type": "AZURE_KEY_VAULT", "name": "k", "value": "https://v.vault.azure.net/keys/k/1", "algorithm": "RSA-OAEP"}
    });
    let (s, created) = call(cosmos::rest(Method::POST, &base), Some(&cek)).await;
    assert_eq!(s, 201, "{created}");
    let etag = created["_etag"].as_str().unwrap().to_owned();
    assert_eq!(
        call(cosmos::rest(Method::POST, &base), Some(&cek)).await.0,
        409
    );
    let (s, read) = call(cosmos::rest(Method::GET, &keys), None).await;
    assert_eq!(
        (s, &read["_etag"], &read["wrappedDataEncryptionKey"]),
        (200, &json!(etag), &json!("AAEC"))
    );
    assert_eq!(
        call(cosmos::rest(Method::GET, &format!("{base}/nope")), None)
            .await
            .0,
        404
    );
    // unsigned: refused
    let unsigned = reqwest::Client::new().get(format!("{}{base}", cosmos::endpoint()));
    assert_eq!(call(unsigned, None).await.0, 401);
    let (s, list) = call(cosmos::rest(Method::GET, &base), None).await;
    assert_eq!((s, list["_count"].as_u64()), (200, Some(1)));
    // rewrap: replace under If-Match; a stale ETag loses
    let mut rewrapped = cek.clone();
    rewrapped["wrappedDataEncryptionKey"] = json!("AwQF");
    let (s, replaced) = call(
        cosmos::rest(Method::PUT, &keys).header("if-match", &etag),
        Some(&rewrapped),
    )
    .await;
    assert_eq!(s, 200, "{replaced}");
    assert_ne!(replaced["_etag"], json!(etag));
    let (s, _) = call(
        cosmos::rest(Method::PUT, &keys).header("if-match", &etag),
        Some(&cek),
    )
    .await;
    assert_eq!(s, 412);

    // a policy naming the key is kept; one naming a missing key is refused
    let policy = |key: &str| {
        json!({"clientEncryptionPolicy": {"policyFormatVersion": 2, "includedPaths": [
            {"path": "/ssn", "clientEncryptionKeyId": key, "encryptionType": "Deterministic", "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256"}
        ]}})
    };
    let c = cosmos::container_with(&db, "enc", "/pk", policy("cek1")).await;
    let props = properties(&c).await;
    assert_eq!(
        props["clientEncryptionPolicy"],
        policy("cek1")["clientEncryptionPolicy"]
    );
    let bad: ContainerProperties = serde_json::from_value(json!({
        "id": "bad", "partitionKey": {"paths": ["/pk"], "kind": "Hash", "version": 2},
        "clientEncryptionPolicy": policy("missing")["clientEncryptionPolicy"]
    }))
    .unwrap();
    let e = db.create_container(bad, None).await.unwrap_err();
    assert!(e.status().is_bad_request(), "{e}");

    // a container replace keeps the items and the policy
    c.create_item(
        "p",
        "x",
        json!({"id": "x", "pk": "p", "ssn": "stored"}),
        None,
    )
    .await
    .unwrap();
    let mut props: ContainerProperties = c.read(None).await.unwrap().into_model().unwrap();
    props.default_ttl = azure_data_cosmos::models::TimeToLive::from(3600u32);
    c.replace(props, None).await.unwrap();
    let props = properties(&c).await;
    assert_eq!(props["defaultTtl"], 3600);
    assert_eq!(
        props["clientEncryptionPolicy"],
        policy("cek1")["clientEncryptionPolicy"]
    );
    let item = read_value(&c, "p", "x").await;
    assert_eq!(item["ssn"], "stored");
}
