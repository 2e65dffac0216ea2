//! Cosmos DB against the test server, encrypted vs plain, in one run: the
//! figures of `cmk_envelope::cosmos`.
//!
//! * create and point read of 1 KiB items (benches/common/item.rs), 16 in
//!   flight: plain (the SDK alone), the document format, the SDK format;
//! * equality queries (one deterministic path, ~10 items per answer),
//!   through a bound parameter vs a plain parameter;
//! * `rewrap_container` over 10,000 items after a scope key rotation
//!   (default options: pages of 100, 8 items in flight), next to the time
//!   its query alone takes to page through them (the test server sorts the
//!   whole container for every page), and again with pages of 1,000.
//!
//! Prints items (or queries) per second and encrypted/plain ratios. Every
//! figure goes through the same server (Node, one core) and the same client:
//! it measures what the encryption adds on top of a real round trip, not
//! Cosmos DB's own latency. Run:
//! `scripts/cosmosdb.sh cargo bench --features cosmos --bench cosmos`
//! (`CMK_BENCH_COSMOS_ITEMS` changes the item count, default 400;
//! `CMK_BENCH_COSMOS_REWRAP` the rewrap's, default 10000).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/cosmos.rs"]
mod cosmos;
#[path = "../tests/common/cosmos_sdk.rs"]
mod cosmos_sdk;
#[path = "common/item.rs"]
mod item;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use azure_data_cosmos::clients::ContainerClient;
use cmk_envelope::cosmos::{
    rewrap_container, CosmosScopeStore, EncryptedContainer, EncryptedQuery, RewrapOptions,
};
use cmk_envelope::cosmos_ae::{CekKeyring, ClientEncryptionKey};
use cmk_envelope::document::DocumentPolicy;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::StaticResolver;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

const IN_FLIGHT: usize = 16;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Item `n`: the 1 KiB item with its own id, and one of `n / 10` emails
/// (ten items per email).
fn item(n: usize) -> Value {
    let mut v = item::item_1kib();
    v["id"] = json!(format!("order-{n:06}"));
    v["email"] = json!(format!("buyer{}@example.com", n / 10));
    v
}

/// Runs `f(n)` for `0..n` with `IN_FLIGHT` at once; returns per second.
async fn rate<F, Fut>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(&f)
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

struct Containers {
    plain: ContainerClient,
    doc: EncryptedContainer,
    sdk: EncryptedContainer,
    scope: EncryptionScope,
    rewrap: EncryptedContainer,
}

async fn setup() -> Containers {
    let client = cosmos::client().await;
    let db = cosmos::database(&client, "bench").await;
    let db_name = db.name().unwrap().to_owned();
    let scopes = cosmos::container_with(&db, "scopes", "/id", Value::Null).await;
    let store: Arc<dyn ScopeStore> = Arc::new(CosmosScopeStore::new(scopes).await.unwrap());
    let cmk = common::file_kek("bench-cmk");
    let scope = EncryptionScope::create(
        store,
        "bench",
        Cmk::CustomerManaged(cmk),
        CachePolicy::default(),
    )
    .await
    .unwrap();
    let policy = || {
        DocumentPolicy::new("/tenant")
            .unwrap()
            .randomized("/patient")
            .unwrap()
            .randomized("/notes")
            .unwrap()
            .deterministic("/email")
            .unwrap()
    };
    let plain = cosmos::container_with(&db, "plain", "/tenant", Value::Null).await;
    let doc_raw = cosmos::container_with(&db, "doc", "/tenant", Value::Null).await;
    let doc = EncryptedContainer::with_document_format(doc_raw, scope.clone(), policy())
        .await
        .unwrap();
    let rewrap_raw = cosmos::container_with(&db, "rewrap", "/tenant", Value::Null).await;
    let rewrap = EncryptedContainer::with_document_format(rewrap_raw, scope.clone(), policy())
        .await
        .unwrap();

    let keks: Vec<cosmos_sdk::TestKek> = (0..2)
        .map(|i| {
            cosmos_sdk::TestKek::new(
                common::rsa_jwk(i),
                format!("https://bench.vault.azure.net/keys/k{i}/v1"),
            )
        })
        .collect();
    let keys = cosmos::cek_keys(&db_name);
    for (id, k) in [("cek1", &keks[0]), ("cek2", &keks[1])] {
        keys.create(
            &ClientEncryptionKey::create(id, k.kek.as_ref())
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    }
    let p = |path: &str, cek: &str, ty: &str| {
        json!({"path": path, "clientEncryptionKeyId": cek, "encryptionType": ty,
               "encryptionAlgorithm": "AEAD_AES_256_CBC_HMAC_SHA256"})
    };
    let sdk_policy = json!({"clientEncryptionPolicy": {"policyFormatVersion": 2, "includedPaths": [
        p("/patient", "cek1", "Randomized"), p("/notes", "cek1", "Randomized"),
        p("/email", "cek2", "Deterministic")]}});
    let sdk_raw = cosmos::container_with(&db, "sdk", "/tenant", sdk_policy).await;
    let resolver = StaticResolver::new()
        .with(keks[0].kek.clone())
        .with(keks[1].kek.clone());
    let keyring = Arc::new(CekKeyring::new(Arc::new(resolver), CachePolicy::default()));
    let sdk = EncryptedContainer::with_sdk_format(sdk_raw, keys, keyring)
        .await
        .unwrap();
    Containers {
        plain,
        doc,
        sdk,
        scope,
        rewrap,
    }
}

/// What a figure is measured on.
#[derive(Clone, Copy)]
enum Target {
    Plain,
    Document,
    Sdk,
}

const TARGETS: [Target; 3] = [Target::Plain, Target::Document, Target::Sdk];

/// Rounds per figure, the three targets taking turns; the median counts.
const ROUNDS: usize = 3;

impl Target {
    async fn create(self, c: &Containers, item: Value) {
        match self {
            Target::Plain => {
                let id = item["id"].as_str().unwrap().to_owned();
                c.plain
                    .create_item("contoso", &id, item, None)
                    .await
                    .unwrap();
            }
            Target::Document => {
                c.doc.create(item).await.unwrap();
            }
            Target::Sdk => {
                c.sdk.create(item).await.unwrap();
            }
        }
    }

    async fn read(self, c: &Containers, id: &str) {
        let found = match self {
            Target::Plain => {
                let v: Value = c
                    .plain
                    .read_item("contoso", id, None)
                    .await
                    .unwrap()
                    .into_model()
                    .unwrap();
                v["id"] == json!(id)
            }
            Target::Document => c.doc.read(id, &json!("contoso")).await.unwrap().is_some(),
            Target::Sdk => c.sdk.read(id, &json!("contoso")).await.unwrap().is_some(),
        };
        assert!(found);
    }

    /// The items whose email is `email`.
    async fn query(self, c: &Containers, email: String) -> usize {
        let enc = match self {
            Target::Plain => {
                let q = azure_data_cosmos::Query::from("SELECT * FROM c WHERE c.email = @e")
                    .with_parameter("@e", email)
                    .unwrap();
                let rows: Vec<Value> = c
                    .plain
                    .query_items(q, azure_data_cosmos::FeedScope::full_container(), None)
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                return rows.len();
            }
            Target::Document => &c.doc,
            Target::Sdk => &c.sdk,
        };
        let q = EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e").with_encrypted_parameter(
            "@e",
            "/email",
            json!(email),
        );
        enc.query(q).await.unwrap().all().await.unwrap().len()
    }
}

/// The median of `ROUNDS` rounds of `f(target, round)` per target, the
/// targets taking turns, each round starting with the next one.
async fn figure<F, Fut>(f: F) -> [f64; 3]
where
    F: Fn(Target, usize) -> Fut,
    Fut: Future<Output = f64>,
{
    let mut rates: [Vec<f64>; 3] = Default::default();
    for r in 0..ROUNDS {
        // Each round starts with another target: the first of a round
        // runs slower (the pool and the server warm up again).
        for k in 0..TARGETS.len() {
            let t = (r + k) % TARGETS.len();
            rates[t].push(f(TARGETS[t], r).await);
        }
    }
    rates.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
}

fn ratio_line(what: &str, unit: &str, [plain, doc, sdk]: [f64; 3]) {
    println!(
        "{what:<16} plain {plain:>7.0} {unit}/s | document {doc:>7.0} {unit}/s ({:.2}× plain) | SDK format {sdk:>7.0} {unit}/s ({:.2}× plain)",
        doc / plain,
        sdk / plain
    );
}

async fn run() {
    let n = count("CMK_BENCH_COSMOS_ITEMS", 400);
    let c = &setup().await;

    // Warm up the connection pool and the key caches.
    for t in TARGETS {
        let mut warm = item(0);
        warm["id"] = json!("warm");
        warm["email"] = json!("warm@example.com");
        t.create(c, warm).await;
        t.read(c, "warm").await;
    }

    let create = figure(|t, r| {
        rate(n, move |i| {
            let mut it = item(i);
            it["id"] = json!(format!("r{r}-{i:06}"));
            t.create(c, it)
        })
    })
    .await;
    let read = figure(|t, r| {
        rate(n, move |i| async move {
            t.read(c, &format!("r{r}-{i:06}")).await
        })
    })
    .await;
    let (queries, emails) = (n / 4, n / 10);
    let query = figure(|t, _| {
        rate(queries, move |i| async move {
            // Ten items per email in each of the rounds of creates.
            let found = t.query(c, format!("buyer{}@example.com", i % emails)).await;
            assert_eq!(found, 10 * ROUNDS);
        })
    })
    .await;

    println!(
        "\n1 KiB items, {n} per round, {IN_FLIGHT} in flight, median of {ROUNDS} rounds (load: {}):",
        load()
    );
    ratio_line("create", "items", create);
    ratio_line("point read", "items", read);
    ratio_line("equality query", "queries", query);

    // 10,000 items rewrapped after a scope key rotation.
    let m = count("CMK_BENCH_COSMOS_REWRAP", 10_000);
    let fill = rate(m, |i| async move {
        c.rewrap.create(item(i)).await.unwrap();
    })
    .await;
    c.scope.rotate_scope_key().await.unwrap();
    // What the rewrap's query alone costs: every page, no writes.
    let t = Instant::now();
    let mut pages = c
        .rewrap
        .query(
            EncryptedQuery::new("SELECT * FROM c")
                .page_size(std::num::NonZeroU32::new(100).unwrap()),
        )
        .await
        .unwrap();
    let mut read = 0;
    while let Some(page) = pages.next_page().await {
        read += page.unwrap().len();
    }
    assert_eq!(read, m);
    let paging = t.elapsed();
    let t = Instant::now();
    let report = rewrap_container(&c.rewrap, RewrapOptions::default(), &|_| {})
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(report.totals.rewrapped, m as u64);
    println!(
        "rewrap_container, pages of 100: {m} items in {:.1} s ({:.0} items/s; paging through them alone, decrypting: {:.1} s; the {m} creates ran at {fill:.0} items/s), load: {}",
        took.as_secs_f64(),
        m as f64 / took.as_secs_f64(),
        paging.as_secs_f64(),
        load()
    );
    // The test server sorts the whole container for every page: larger
    // pages show what the rewrap itself costs.
    c.scope.rotate_scope_key().await.unwrap();
    let t = Instant::now();
    let options = RewrapOptions::default().page_size(std::num::NonZeroU32::new(1000).unwrap());
    let report = rewrap_container(&c.rewrap, options, &|_| {}).await.unwrap();
    let took = t.elapsed();
    assert_eq!(report.totals.rewrapped, m as u64);
    println!(
        "rewrap_container, pages of 1000: {m} items in {:.1} s ({:.0} items/s), load: {}",
        took.as_secs_f64(),
        m as f64 / took.as_secs_f64(),
        load()
    );
}

/// The 1-minute load average, as `uptime` prints it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; this timed run takes no options.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}
