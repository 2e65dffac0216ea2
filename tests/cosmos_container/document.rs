//! The crate's document format on Cosmos DB: round trips, what is stored,
//! queries.

use std::num::NonZeroU32;

use cmk_envelope::cosmos::{rewrap_container, EncryptedQuery, RewrapOptions};
use cmk_envelope::Error;
use serde_json::{json, Value};

use super::*;

/// Items with every JSON type, nested values, arrays, and numbers at the
/// edges of what JSON and `serde_json` hold.
fn edge_items() -> Vec<Value> {
    vec![
        json!({"id": "e1", "tenant": "t", "email": "a@example.com",
               "address": {"city": "Zürich — 你好 🎉", "zip": ""},
               "ssn": "PLAINTEXT-078-05-1120",
               "profile": {"i64min": i64::MIN, "i64max": i64::MAX, "u64max": u64::MAX,
                           "tiny": 5e-324, "huge": 1.797_693_134_862_315_7e308, "negzero": -0.0,
                           "tenth": 0.1, "deep": {"a": {"b": [1, [2, [3, {"c": null}]]]}},
                           "empty": {}, "none": [], "flag": false},
               "history": [null, true, "PLAINTEXT-x", 1.5, {"k": [{}]}],
               "clear": {"stays": [1, 2, 3]}}),
        json!({"id": "e2 with+odd chars", "tenant": "t", "email": "",
               "address": {"city": null}, "ssn": 0, "profile": null, "history": [],
               "n": -1}),
        json!({"id": "e3", "tenant": "t", "email": {"not": "a string"},
               "address": {"city": ["an", "array"]}, "ssn": [i64::MIN, u64::MAX],
               "profile": "PLAINTEXT-just a string", "history": {"an": "object"}}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_store_no_plaintext_and_fill_a_100_item_page() {
    let s = doc_setup("doc-rt").await;
    for item in edge_items() {
        s.enc.create(item.clone()).await.unwrap();
        let (back, etag) = s
            .enc
            .read(item["id"].as_str().unwrap(), &json!("t"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(without_system(back), item);
        assert!(!etag.0.is_empty());
        // As stored: every encrypted path holds a `cmke1:` string, the
        // header is there, and no plaintext is anywhere in the item.
        let raw = stored(&s.raw, json!("t"), item["id"].as_str().unwrap()).await;
        for path in ["/email", "/address/city", "/ssn", "/profile", "/history"] {
            let v = raw.pointer(path).unwrap().as_str().unwrap();
            assert!(v.starts_with("cmke1:"), "{path}: {v}");
        }
        assert!(raw["_cmk"].is_string());
        assert_eq!(raw["id"], item["id"]);
        assert_eq!(raw["tenant"], "t");
        let text = raw.to_string();
        for secret in [
            "PLAINTEXT",
            "Zürich",
            "a@example.com",
            "i64min",
            "deep",
            "u64max",
        ] {
            assert!(!text.contains(secret), "{secret} stored in clear: {text}");
        }
    }
    // The number edges come back exactly (bits, kinds).
    let (back, _) = s.enc.read("e1", &json!("t")).await.unwrap().unwrap();
    assert_eq!(back["profile"]["u64max"].as_u64(), Some(u64::MAX));
    assert_eq!(back["profile"]["i64min"].as_i64(), Some(i64::MIN));
    assert_eq!(
        back["profile"]["tiny"].as_f64().unwrap().to_bits(),
        5e-324f64.to_bits()
    );
    assert!(back["profile"]["negzero"]
        .as_f64()
        .unwrap()
        .is_sign_negative());

    let mut pages = full_page_of_100(&s.enc, patient).await;
    assert!(pages
        .next_page()
        .await
        .is_none_or(|p| p.unwrap().is_empty()));

    // Pages of 30, resumed in a fresh query from a continuation token:
    // every item once.
    let q = || {
        EncryptedQuery::new("SELECT * FROM c WHERE c.n >= @min")
            .with_parameter("@min", json!(0))
            .in_partition(json!("bulk"))
            .page_size(NonZeroU32::new(30).unwrap())
    };
    let mut pages = s.enc.query(q()).await.unwrap();
    let first = pages.next_page().await.unwrap().unwrap();
    assert_eq!(first.len(), 30);
    let token = pages.continuation().unwrap();
    drop(pages);
    let rest = s
        .enc
        .query(q().resume_from(token))
        .await
        .unwrap()
        .all()
        .await
        .unwrap();
    let mut all: Vec<Value> = first.into_iter().chain(rest).collect();
    all.sort_by_key(|i| i["n"].as_u64());
    assert_eq!(
        all.iter()
            .map(|i| i["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );

    // An item of another format is refused, not returned half-read.
    s.raw
        .create_item(
            "t",
            "foreign",
            json!({"id": "foreign", "tenant": "t", "email": "x"}),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        s.enc.read("foreign", &json!("t")).await,
        Err(Error::MalformedHeader(_))
    ));
    assert!(matches!(
        s.enc
            .query(EncryptedQuery::new("SELECT * FROM c"))
            .await
            .unwrap()
            .all()
            .await,
        Err(Error::MalformedHeader(_))
    ));
    // Missing items are `None`; bad items are refused before any request.
    assert!(s.enc.read("nope", &json!("t")).await.unwrap().is_none());
    for bad in [
        json!({"tenant": "t"}),
        json!({"id": 5, "tenant": "t"}),
        json!({"id": "x"}),
        json!([1]),
    ] {
        assert!(matches!(
            s.enc.create(bad).await,
            Err(Error::DocumentField { .. })
        ));
    }
}

/// Equality on deterministic paths returns what the same query returns on
/// a plain container holding the same items, also across a scope key
/// rotation (old items keep their deterministic version) and after
/// `rewrap_container`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equality_queries_match_a_plain_container_across_key_versions() {
    let s = doc_setup("doc-q").await;
    let put = |n: usize| {
        let (enc, plain) = (s.enc.clone(), s.plain.clone());
        async move {
            let tenant = if n.is_multiple_of(4) { "t1" } else { "t2" };
            enc.create(patient(n, tenant)).await.unwrap();
            plain
                .create_item(tenant, &format!("p{n:04}"), patient(n, tenant), None)
                .await
                .unwrap();
        }
    };
    for n in 0..30 {
        put(n).await;
    }
    let check = || async {
        for email in [
            "user0@example.com",
            "user3@example.com",
            "nobody@example.com",
        ] {
            let enc =
                enc_query(
                    &s.enc,
                    EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e")
                        .with_encrypted_parameter("@e", "/email", json!(email)),
                )
                .await;
            let plain = plain_query(
                &s.plain,
                "SELECT * FROM c WHERE c.email = @e",
                &[("@e", json!(email))],
            )
            .await;
            assert_eq!(ids(&enc), ids(&plain), "{email}");
        }
        // Reversed, IN, nested path, with clear filters and a partition.
        let enc = enc_query(
            &s.enc,
            EncryptedQuery::new(
                "SELECT * FROM c WHERE (@city = c.address.city OR c.email IN (@a, @b)) AND c.n >= @min",
            )
            .with_encrypted_parameter("@city", "/address/city", json!("Lima"))
            .with_encrypted_parameter("@a", "/email", json!("user1@example.com"))
            .with_encrypted_parameter("@b", "/email", json!("user2@example.com"))
            .with_parameter("@min", json!(5))
            .in_partition(json!("t2")),
        )
        .await;
        let plain = plain_query(
            &s.plain,
            "SELECT * FROM c WHERE (c.address.city = 'Lima' OR c.email IN ('user1@example.com', 'user2@example.com')) AND c.n >= 5 AND c.tenant = 't2'",
            &[],
        )
        .await;
        assert!(!plain.is_empty());
        assert_eq!(ids(&enc), ids(&plain));
        for item in &enc {
            let n = item["n"].as_u64().unwrap() as usize;
            assert_eq!(without_system(item.clone())["ssn"], patient(n, "")["ssn"]);
        }
    };
    check().await;
    // A new scope key version: new items' deterministic fields use it.
    assert_eq!(s.scope.rotate_scope_key().await.unwrap(), 2);
    for n in 30..45 {
        put(n).await;
    }
    check().await;
    // Headers moved to version 2; fields keep their version: still found.
    let report = rewrap_container(&s.enc, RewrapOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(report.totals.rewrapped, 30);
    assert_eq!(report.totals.already_current, 15);
    check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_that_would_leak_are_refused_before_sending() {
    let s = doc_setup("doc-refuse").await;
    s.enc.create(patient(1, "t")).await.unwrap();
    let refused = |q: EncryptedQuery| {
        let enc = s.enc.clone();
        async move {
            match enc.query(q).await {
                Err(Error::QueryRefused(why)) => why,
                Err(e) => panic!("another error: {e}"),
                Ok(_) => panic!("accepted"),
            }
        }
    };
    for sql in [
        "SELECT * FROM c WHERE c.ssn = 'PLAINTEXT-000000001'",
        "SELECT * FROM c ORDER BY c.ssn",
        "SELECT * FROM c WHERE c.profile.age > 30",
        "SELECT * FROM c WHERE CONTAINS(c.history, 'x')",
        "SELECT * FROM c JOIN h IN c.history WHERE h.visit = 1",
        "SELECT * FROM c WHERE c.email = 'user1@example.com'",
        "SELECT * FROM c ORDER BY c.email",
        "SELECT * FROM c WHERE c.address = {}",
    ] {
        let why = refused(EncryptedQuery::new(sql)).await;
        assert!(
            !why.contains("PLAINTEXT") && !why.contains("user1@"),
            "{sql}: {why}"
        );
    }
    // A parameter bound to a randomized or clear path.
    let why = refused(
        EncryptedQuery::new("SELECT * FROM c WHERE c.ssn = @s").with_encrypted_parameter(
            "@s",
            "/ssn",
            json!("PLAINTEXT-000000001"),
        ),
    )
    .await;
    assert!(why.contains("randomized"), "{why}");
    let why = refused(
        EncryptedQuery::new("SELECT * FROM c WHERE c.n = @n").with_encrypted_parameter(
            "@n",
            "/n",
            json!(1),
        ),
    )
    .await;
    assert!(why.contains("not encrypted"), "{why}");
    // A name the version expansion needs is taken.
    s.scope.rotate_scope_key().await.unwrap();
    let why = refused(
        EncryptedQuery::new("SELECT * FROM c WHERE c.email = @e AND c.n != @e__v1")
            .with_encrypted_parameter("@e", "/email", json!("x"))
            .with_parameter("@e__v1", json!(1)),
    )
    .await;
    assert!(why.contains("@e__v1"), "{why}");
    // Selecting an encrypted path is fine.
    let rows = enc_query(&s.enc, EncryptedQuery::new("SELECT * FROM c WHERE c.n = 1")).await;
    assert_eq!(rows.len(), 1);
}

/// Whoever can write the container (but holds no key) changes stored
/// items: a ciphertext replaced by plaintext or removed, the header
/// removed, an item's body copied under another id. Every such item is
/// refused by a read and fails the query page that returns it; nothing of
/// it is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_tampered_in_the_store_are_refused_on_read_and_in_queries() {
    let s = doc_setup("doc-tamper").await;
    s.enc.create(patient(1, "t")).await.unwrap();
    s.enc.create(patient(2, "t")).await.unwrap();
    let original = stored(&s.raw, json!("t"), "p0001").await;
    let victim = stored(&s.raw, json!("t"), "p0002").await;
    type Tamper = fn(&mut Value, &Value);
    let tampers: [(&str, Tamper); 7] = [
        ("randomized field in clear", |v, _| {
            v["ssn"] = json!("PLAINTEXT-000000001")
        }),
        ("deterministic field in clear", |v, _| {
            v["email"] = json!("user1@example.com")
        }),
        ("nested field as a number", |v, _| {
            v["address"]["city"] = json!(7)
        }),
        ("field removed", |v, _| {
            v.as_object_mut().unwrap().remove("profile");
        }),
        ("header removed", |v, _| {
            v.as_object_mut().unwrap().remove("_cmk");
        }),
        ("header of another item", |v, other| {
            v["_cmk"] = other["_cmk"].clone()
        }),
        ("randomized field of another item", |v, other| {
            v["ssn"] = other["ssn"].clone()
        }),
    ];
    for (what, tamper) in tampers {
        let mut bad = without_system(original.clone());
        tamper(&mut bad, &victim);
        s.raw.upsert_item("t", "p0001", &bad, None).await.unwrap();
        let read = s.enc.read("p0001", &json!("t")).await;
        assert!(read.is_err(), "{what}: read {read:?}");
        let page = s
            .enc
            .query(EncryptedQuery::new("SELECT * FROM c WHERE c.id = 'p0001'"))
            .await
            .unwrap()
            .all()
            .await;
        assert!(page.is_err(), "{what}: query {page:?}");
        let shown = read.unwrap_err().to_string();
        assert!(
            !shown.contains("PLAINTEXT") && !shown.contains("user1@"),
            "{what}: {shown}"
        );
    }
    // The whole body of p0001 (header and fields) copied as item p0003.
    let mut moved = without_system(original.clone());
    moved["id"] = json!("p0003");
    s.raw.create_item("t", "p0003", &moved, None).await.unwrap();
    assert!(s.enc.read("p0003", &json!("t")).await.is_err());
    // Put back, the item reads again.
    s.raw
        .upsert_item("t", "p0001", &without_system(original), None)
        .await
        .unwrap();
    let (back, _) = s.enc.read("p0001", &json!("t")).await.unwrap().unwrap();
    assert_eq!(without_system(back), patient(1, "t"));
}

/// A second opinion on the scan: 40,000 random queries (keywords as
/// aliases, numbers run into names, subqueries, bracket access, ...) go
/// through `EncryptedContainer::query`; the ones it accepts are parsed by
/// the test server's own Cosmos DB SQL parser, whose syntax trees must put
/// encrypted paths only where the scan's rules allow
/// (tests/fixtures/cosmos_query_scan.js).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_scan_agrees_with_an_independent_parser() {
    let s = doc_setup("doc-scan").await;
    let node_path = std::env::var("COSMOSDB_NODE_PATH").expect(
        "COSMOSDB_NODE_PATH is not set: run these tests through scripts/test.sh or scripts/cosmosdb.sh",
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cosmos_query_scan.js"
    );
    let node = |args: &[&str]| {
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .env("NODE_PATH", &node_path)
            .output()
            .expect("run node")
    };
    let generated = node(&["generate", "19", "40000"]);
    assert!(generated.status.success());
    let mut accepted = String::new();
    for line in String::from_utf8(generated.stdout).unwrap().lines() {
        let sql: String = serde_json::from_str(line).unwrap();
        let q = EncryptedQuery::new(sql)
            .with_encrypted_parameter("@e", "/email", json!("a@example.com"))
            .with_encrypted_parameter("@f", "/email", json!("b@example.com"))
            .with_encrypted_parameter("@a", "/address/city", json!("Oslo"))
            .with_parameter("@x", json!(1));
        // The scan runs first: any other outcome (the SDK's own query
        // planning may refuse what the scan let through) passed it.
        match s.enc.query(q).await {
            Err(Error::QueryRefused(_)) => {}
            Err(e @ Error::ApiMisuse(_)) => panic!("{line}: {e}"),
            _ => {
                accepted.push_str(line);
                accepted.push('\n');
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accepted.jsonl");
    std::fs::write(&file, accepted).unwrap();
    let checked = node(&["check", file.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    // Enough accepted queries parse for the check to mean something.
    let parsed: usize = report
        .rsplit("parsed ")
        .next()
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(parsed >= 1_000, "{report}");
}
