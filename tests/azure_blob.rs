//! `EncryptedBlobClient` and `BlobScopeStore` against a real Azure Blob
//! Storage server: Azurite (`scripts/azurite.sh` starts it and exports
//! `AZURITE_BLOB_STORAGE_URL`; without it these tests fail).

#![cfg(feature = "blob")]

#[path = "common/azurite.rs"]
mod azurite;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Url;
use azure_storage_blob::BlobContainerClient;
use cmk_envelope::blob::{
    BlobScopeStore, EncryptedBlobClient, WriteCondition, HEADER_METADATA_KEY,
};
use cmk_envelope::conformance::store as store_conformance;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, ScopeStore};
use cmk_envelope::stream::layout;
use cmk_envelope::{
    Error, KeyEncryptionKey, KeyResolver, LocalKek, RangePlan, RetryConfig, StaticResolver,
    StorageErrorKind, WrapAlgorithm,
};
use tokio::io::AsyncReadExt;

use azurite::{container_url, create_container, options_with, Recorder};

const CHUNK_CT: u64 = 16_400;

struct Fixture {
    url: String,
    client: EncryptedBlobClient,
    recorder: Arc<Recorder>,
    kek: Arc<dyn KeyEncryptionKey>,
}

fn resolver(keks: &[&Arc<dyn KeyEncryptionKey>]) -> Arc<dyn KeyResolver> {
    let r: StaticResolver = keks.iter().map(|k| (*k).clone()).collect();
    Arc::new(r)
}

async fn fixture(prefix: &str) -> Fixture {
    let url = container_url(&azurite::unique_container(prefix));
    create_container(&url).await;
    let kek = common::aes_kek("blob-kek", WrapAlgorithm::A256Kw);
    let recorder = Arc::new(Recorder::default());
    let client = EncryptedBlobClient::builder(&url, None)
        .unwrap()
        .keks(vec![kek.clone()], resolver(&[&kek]))
        .block_size(1024 * 1024)
        .client_options(options_with(recorder.clone()))
        .build()
        .unwrap();
    Fixture {
        url,
        client,
        recorder,
        kek,
    }
}

async fn read_all(client: &EncryptedBlobClient, name: &str) -> cmk_envelope::Result<Vec<u8>> {
    let mut r = client.download(name).await?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

fn plain_container(url: &str) -> BlobContainerClient {
    BlobContainerClient::new(Url::parse(url).unwrap(), None, None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_0_1_16k_and_64_mib() {
    let f = fixture("rt").await;
    for len in [0usize, 1, 16_383, 16_384, 16_385, 64 * 1024 * 1024] {
        let data = common::data(len, len as u8);
        let name = format!("dir/obj-{len}");
        f.recorder.take();
        let out = f
            .client
            .upload(&name, &data[..], WriteCondition::IfNotExists)
            .await
            .unwrap();
        assert_eq!(out.plaintext_len, len as u64);
        assert_eq!(out.body_len, layout::body_len(len as u64));
        let sent = f.recorder.take();
        let blocks = sent
            .iter()
            .filter(|r| r.comp.as_deref() == Some("block"))
            .count();
        if len >= 1024 * 1024 {
            // staged in 1 MiB blocks, committed once
            assert_eq!(blocks as u64, out.body_len.div_ceil(1024 * 1024), "{len}");
            assert_eq!(
                sent.iter()
                    .filter(|r| r.comp.as_deref() == Some("blocklist"))
                    .count(),
                1
            );
        } else {
            assert_eq!((blocks, sent.len()), (0, 1), "one Put Blob for {len}");
        }

        // the stored form: the body is the blob, the header its metadata
        let props = plain_container(&f.url)
            .blob_client(&name)
            .get_properties(None)
            .await
            .unwrap();
        use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders as _;
        assert_eq!(props.content_length().unwrap(), Some(out.body_len));
        assert!(props.metadata().unwrap().contains_key(HEADER_METADATA_KEY));

        let mut r = f.client.download(&name).await.unwrap();
        assert_eq!(r.plaintext_len(), len as u64);
        assert_eq!(r.etag(), &out.etag);
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert!(back == data, "round trip of {len} bytes");
    }
    // IfNotExists refuses to replace
    assert!(matches!(
        f.client
            .upload("dir/obj-1", &b"x"[..], WriteCondition::IfNotExists)
            .await,
        Err(Error::BlobConflict { .. })
    ));
}

/// xorshift for reproducible random offsets.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_are_one_get_of_exactly_the_needed_chunks() {
    let f = fixture("range").await;
    let len = 3 * 1024 * 1024 + 12_345;
    let data = common::data(len, 7);
    f.client
        .upload("big", &data[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    f.recorder.take();
    let blob = f.client.open("big").await.unwrap();
    let opened = f.recorder.take();
    assert_eq!(opened.len(), 1, "open is one GET: {opened:?}");
    assert_eq!(opened[0].range, Some((0, 56)), "of the body prefix");
    assert_eq!(blob.plaintext_len(), len as u64);

    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut ranges: Vec<(u64, u64)> = (0..60)
        .map(|_| {
            let start = next(&mut seed) % len as u64;
            let span = next(&mut seed) % 70_000;
            (start, start + span)
        })
        .collect();
    // edges: empty, past the end, the whole object, one byte at a chunk edge
    ranges.extend([
        (0, 0),
        (len as u64 - 5, len as u64 + 100),
        (0, len as u64),
        (16_383, 16_385),
        (len as u64 + 10, len as u64 + 20),
    ]);
    for (start, end) in ranges {
        let got = blob.read_range(start..end).await.unwrap();
        let (s, e) = (
            (start as usize).min(len),
            (end as usize).min(len).max((start as usize).min(len)),
        );
        assert!(got == data[s..e], "range {start}..{end}");
        let sent = f.recorder.take();
        assert_eq!(sent.len(), 1, "one request for {start}..{end}: {sent:?}");
        assert_eq!(sent[0].method, "GET");
        let (lo, hi) = sent[0].range.expect("a ranged GET");
        let plan = RangePlan::new(start..end, blob.body_len()).unwrap();
        assert_eq!(lo..hi, plan.ciphertext(), "exactly the planned chunks");
        // and no more than the chunks the plaintext range touches (plus
        // the final chunk when the range was clipped or empty: it proves
        // where the object ends)
        let (s, e, final_chunk) = (s as u64, e as u64, len as u64 / 16_384);
        let first = if s == e { final_chunk } else { s / 16_384 };
        let last = if s == e || end > len as u64 {
            final_chunk
        } else {
            (e - 1) / 16_384
        };
        let chunks = last - first + 1;
        assert!(
            hi - lo <= chunks * CHUNK_CT,
            "{start}..{end}: fetched {} bytes for {chunks} chunks",
            hi - lo
        );
    }
    // download_range: open + one GET
    f.recorder.take();
    let got = f.client.download_range("big", 100..200).await.unwrap();
    assert_eq!(got, &data[100..200]);
    assert_eq!(f.recorder.take().len(), 2);

    // a replaced blob is noticed, not mixed with the old header
    f.client
        .upload("big", &data[..10], WriteCondition::Overwrite)
        .await
        .unwrap();
    assert!(matches!(
        blob.read_range(0..10).await,
        Err(Error::BlobConflict { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_under_a_concurrent_writer_conflicts_and_loses_nothing() {
    let f = fixture("rewrap").await;
    let old = common::data(100_000, 1);
    let new = common::data(50_000, 2);
    f.client
        .upload("obj", &old[..], WriteCondition::Overwrite)
        .await
        .unwrap();

    // Another writer replaces the blob between the rewrap's read of the
    // ETag and its metadata write.
    let writer = EncryptedBlobClient::builder(&f.url, None)
        .unwrap()
        .keks(vec![f.kek.clone()], resolver(&[&f.kek]))
        .build()
        .unwrap();
    let writer = Arc::new(writer);
    let (w, new2) = (writer.clone(), new.clone());
    f.recorder.before_next("metadata", move || {
        let (w, new2) = (w.clone(), new2.clone());
        Box::pin(async move {
            w.upload("obj", &new2[..], WriteCondition::Overwrite)
                .await
                .unwrap();
        })
    });
    let kek2 = common::aes_kek("blob-kek-2", WrapAlgorithm::A256Kw);
    let r = f.client.rewrap("obj", std::slice::from_ref(&kek2)).await;
    assert!(
        matches!(&r, Err(Error::BlobConflict { blob }) if blob == "obj"),
        "{r:?}"
    );
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("changed concurrently"), "{msg}");
    // the concurrent writer's object is intact
    assert_eq!(read_all(&f.client, "obj").await.unwrap(), new);

    // a rewrap without interference replaces only the header
    let before = f.client.open("obj").await.unwrap().body_len();
    let etag = f
        .client
        .rewrap("obj", std::slice::from_ref(&kek2))
        .await
        .unwrap();
    let both = EncryptedBlobClient::builder(&f.url, None)
        .unwrap()
        .keks(vec![kek2.clone()], resolver(&[&kek2]))
        .build()
        .unwrap();
    let mut r = both.download("obj").await.unwrap();
    assert_eq!(r.etag(), &etag);
    let mut back = Vec::new();
    r.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, new);
    assert_eq!(both.open("obj").await.unwrap().body_len(), before);
    // the old KEK no longer opens it
    assert!(matches!(
        f.client.download("obj").await,
        Err(Error::UnknownKek { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_swapped_between_blobs_fails_to_decrypt() {
    let f = fixture("swap").await;
    let a = common::data(40_000, 3);
    let b = common::data(40_000, 4);
    f.client
        .upload("a", &a[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    f.client
        .upload("b", &b[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders as _;
    let plain = plain_container(&f.url);
    let meta = |m: HashMap<String, String>| m;
    let ma = meta(
        plain
            .blob_client("a")
            .get_properties(None)
            .await
            .unwrap()
            .metadata()
            .unwrap(),
    );
    let mb = plain
        .blob_client("b")
        .get_properties(None)
        .await
        .unwrap()
        .metadata()
        .unwrap();
    plain
        .blob_client("a")
        .set_metadata(&mb, None)
        .await
        .unwrap();
    plain
        .blob_client("b")
        .set_metadata(&ma, None)
        .await
        .unwrap();
    for name in ["a", "b"] {
        assert!(
            matches!(
                f.client.download(name).await,
                Err(Error::CommitmentMismatch)
            ),
            "stream of {name}"
        );
        assert!(
            matches!(f.client.open(name).await, Err(Error::CommitmentMismatch)),
            "ranges of {name}"
        );
    }
    // a blob copied (body and header) to another name does not open either
    let body = plain
        .blob_client("b")
        .download(None)
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    let options = azure_storage_blob::models::BlobClientUploadOptions {
        metadata: Some(mb),
        ..Default::default()
    };
    plain
        .blob_client("b-copy")
        .upload(body.into(), Some(options))
        .await
        .unwrap();
    assert!(matches!(
        f.client.download("b-copy").await,
        Err(Error::CommitmentMismatch)
    ));
    // a blob without the header is refused before any KEK is called
    plain
        .blob_client("plain")
        .upload(azure_core::Bytes::from_static(b"hello").into(), None)
        .await
        .unwrap();
    match f.client.download("plain").await {
        Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotAnEnvelope),
        other => panic!("{other:?}"),
    }
    match f.client.download("missing").await {
        Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_never_appears_in_debug_or_errors() {
    let f = fixture("secret").await;
    let sig = f
        .url
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .unwrap()
        .to_owned();
    assert!(!format!("{:?}", f.client).contains(&sig));
    // a wrong signature: refused, and the error does not echo the SAS
    let bad = f.url.replace(&sig, "AAAA");
    let c = EncryptedBlobClient::builder(&bad, None)
        .unwrap()
        .keks(vec![f.kek.clone()], resolver(&[&f.kek]))
        .build()
        .unwrap();
    let e = c
        .upload("x", &b"data"[..], WriteCondition::Overwrite)
        .await
        .unwrap_err();
    match &e {
        Error::Storage(s) => assert_eq!(s.kind(), StorageErrorKind::PermissionDenied),
        other => panic!("{other:?}"),
    }
    let text = format!("{e} {e:?}");
    assert!(!text.contains("AAAA") && !text.contains(&sig), "{text}");
    let store = BlobScopeStore::new(&f.url, None, "", None).unwrap();
    assert!(!format!("{store:?}").contains(&sig));
    // a token credential is never sent over plain http
    let cred = cmk_envelope::kek::azure::CredentialChain::from_env();
    assert!(matches!(
        EncryptedBlobClient::builder(&f.url, Some(cred))
            .unwrap()
            .keks(vec![f.kek.clone()], resolver(&[&f.kek]))
            .build(),
        Err(Error::ApiMisuse(_))
    ));
}

/// A CMK with a key container (its directory), as scopes require.
fn file_kek(kid: &str) -> Arc<dyn KeyEncryptionKey> {
    let path = common::tempdir().join(format!("{kid}.jwk"));
    LocalKek::generate(WrapAlgorithm::A256Kw, Some(kid.into()), None)
        .unwrap()
        .save_jwk(&path, false)
        .unwrap();
    Arc::new(LocalKek::from_jwk_file(&path).unwrap())
}

async fn store(prefix: &str) -> Arc<dyn ScopeStore> {
    let url = container_url(&azurite::unique_container(prefix));
    create_container(&url).await;
    Arc::new(BlobScopeStore::new(&url, None, "scopes/", None).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_scope_store_semantics() {
    store_conformance::basic_semantics(store("ss").await.as_ref(), "res-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_scope_store_cas_race_8_tasks_20_rounds() {
    store_conformance::many_writers_one_winner_per_round(&store("race").await, "res-race", 8, 20)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_rotating_one_scope_one_wins() {
    let kek = file_kek("cmk");
    store_conformance::concurrent_rotation_one_winner(&store("rot").await, "res-rot", kek).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_sealed_under_a_scope_kept_in_blob_storage() {
    let url = container_url(&azurite::unique_container("scoped"));
    create_container(&url).await;
    let store: Arc<dyn ScopeStore> = Arc::new(BlobScopeStore::new(&url, None, "", None).unwrap());
    let cmk = file_kek("cmk");
    let scope = EncryptionScope::create(
        store.clone(),
        "tenant-a",
        Cmk::CustomerManaged(cmk.clone()),
        CachePolicy::default(),
    )
    .await
    .unwrap();
    let client = EncryptedBlobClient::builder(&url, None)
        .unwrap()
        .scope(&scope)
        .build()
        .unwrap();
    client
        .upload("v1", &b"first"[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    // another machine opens the scope from the shared store and rotates
    let other = EncryptionScope::open(
        store.clone(),
        "tenant-a",
        Cmk::CustomerManaged(cmk.clone()),
        CachePolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(other.rotate_scope_key().await.unwrap(), 2);
    let client2 = EncryptedBlobClient::builder(&url, None)
        .unwrap()
        .scope(&other)
        .build()
        .unwrap();
    client2
        .upload("v2", &b"second"[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    assert_eq!(read_all(&client2, "v1").await.unwrap(), b"first");
    assert_eq!(read_all(&client2, "v2").await.unwrap(), b"second");
}

/// A client on `endpoint` that does not retry (so a dead server fails
/// fast), with `recorder` in its pipeline.
fn no_retry_client(
    endpoint: &str,
    container: &str,
    kek: &Arc<dyn KeyEncryptionKey>,
    recorder: Arc<Recorder>,
) -> EncryptedBlobClient {
    EncryptedBlobClient::builder(&azurite::container_url_at(endpoint, container), None)
        .unwrap()
        .keks(vec![kek.clone()], resolver(&[kek]))
        .block_size(256 * 1024)
        .concurrency(2)
        .client_options(options_with(recorder))
        .retry(RetryConfig::default().max_retries(0))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn azurite_killed_mid_upload_leaves_no_half_object() {
    let dir = common::tempdir();
    let kek = common::aes_kek("fault", WrapAlgorithm::A256Kw);
    let container = "faults";
    let old = common::data(300_000, 9);

    // Set up on disk, then stop gracefully so the setup is persisted.
    let az = azurite::OwnAzurite::start(&dir);
    create_container(&azurite::container_url_at(&az.endpoint, container)).await;
    let c = no_retry_client(&az.endpoint, container, &kek, Arc::new(Recorder::default()));
    c.upload("existing", &old[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    az.stop();

    // Two uploads in flight — one replacing "existing", one creating
    // "fresh" — and Azurite is killed once both have staged blocks.
    let az = azurite::OwnAzurite::start(&dir);
    let recorder = Arc::new(Recorder::default());
    let c = Arc::new(no_retry_client(
        &az.endpoint,
        container,
        &kek,
        recorder.clone(),
    ));
    let big = Arc::new(common::data(24 * 1024 * 1024, 10));
    let mut tasks = Vec::new();
    for name in ["existing", "fresh"] {
        let (c, big) = (c.clone(), big.clone());
        tasks.push(tokio::spawn(async move {
            c.upload(name, &big[..], WriteCondition::Overwrite).await
        }));
    }
    let staged = |name: &str| {
        recorder
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.comp.as_deref() == Some("block") && r.path.ends_with(name))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while staged("/existing") < 3 || staged("/fresh") < 3 {
        assert!(std::time::Instant::now() < deadline, "blocks never staged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    az.kill();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.is_err(), "an upload cannot succeed without its server");
    }
    let committed = recorder
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.comp.as_deref() == Some("blocklist"))
        .count();
    assert_eq!(committed, 0, "killed before any commit");

    // Restarted on the same data: the old version is whole, the new object
    // does not exist at all.
    let az = azurite::OwnAzurite::start(&dir);
    let c = no_retry_client(&az.endpoint, container, &kek, Arc::new(Recorder::default()));
    assert_eq!(read_all(&c, "existing").await.unwrap(), old);
    match c.download("fresh").await {
        Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotFound),
        other => panic!("a half-uploaded object is visible: {other:?}"),
    }
    match c.open("fresh").await {
        Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotFound),
        other => panic!("a half-uploaded object is visible: {other:?}"),
    }
    az.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_past_the_block_limit_is_refused_before_any_request() {
    let f = fixture("limit").await;
    let client = EncryptedBlobClient::builder(&f.url, None)
        .unwrap()
        .keks(vec![f.kek.clone()], resolver(&[&f.kek]))
        .block_size(64 * 1024)
        .client_options(options_with(f.recorder.clone()))
        .build()
        .unwrap();
    // 50,000 blocks of 64 KiB of plaintext need more than 50,000 blocks of
    // 64 KiB of body (every chunk adds a tag): refused before the reader
    // is read or any request is made.
    let len = 50_000 * 64 * 1024;
    f.recorder.take();
    let r = client
        .upload_with_len(
            "huge",
            tokio::io::repeat(0).take(len),
            len,
            WriteCondition::IfNotExists,
        )
        .await;
    assert!(
        matches!(&r, Err(Error::TooLarge(m)) if m.contains("50,000 blocks")),
        "{r:?}"
    );
    assert!(f.recorder.take().is_empty(), "no request was made");
    // Past the format's 2^38 chunks, too.
    let r = client
        .upload_with_len("huge", &b""[..], u64::MAX, WriteCondition::IfNotExists)
        .await;
    assert!(matches!(r, Err(Error::TooLarge(_))), "{r:?}");
    assert!(f.recorder.take().is_empty(), "no request was made");
    // Within the limit it uploads as `upload` does.
    let data = common::data(200_000, 5);
    let out = client
        .upload_with_len("fits", &data[..], 200_000, WriteCondition::IfNotExists)
        .await
        .unwrap();
    assert_eq!(out.body_len, layout::body_len(200_000));
    assert_eq!(read_all(&client, "fits").await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_with_len_refuses_a_reader_of_another_length_and_writes_nothing() {
    let f = fixture("exactlen").await;
    let data = common::data(300_000, 6);
    for (announced, name) in [(299_999u64, "longer"), (300_001, "shorter")] {
        let r = f
            .client
            .upload_with_len(name, &data[..], announced, WriteCondition::IfNotExists)
            .await;
        match &r {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}"),
            other => panic!("{name}: {other:?}"),
        }
        match f.client.download(name).await {
            Err(Error::Storage(e)) => assert_eq!(e.kind(), StorageErrorKind::NotFound),
            other => panic!("{name} was committed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_replaced_during_a_download_is_a_conflict() {
    let f = fixture("middl").await;
    // 64 KiB ranged GETs, one at a time: the download fetches the blob in
    // about 32 requests, a few ahead of the reader.
    let client = EncryptedBlobClient::builder(&f.url, None)
        .unwrap()
        .keks(vec![f.kek.clone()], resolver(&[&f.kek]))
        .block_size(64 * 1024)
        .concurrency(1)
        .build()
        .unwrap();
    let old = common::data(2 * 1024 * 1024, 7);
    client
        .upload("obj", &old[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    let mut reader = client.download("obj").await.unwrap();
    let mut first = vec![0u8; 64 * 1024];
    reader.read_exact(&mut first).await.unwrap();
    assert_eq!(first, old[..64 * 1024]);
    // another writer replaces the blob
    let new = common::data(2 * 1024 * 1024, 8);
    client
        .upload("obj", &new[..], WriteCondition::Overwrite)
        .await
        .unwrap();
    let mut rest = Vec::new();
    let e = reader.read_to_end(&mut rest).await.unwrap_err();
    let e = Error::from(e);
    assert!(
        matches!(&e, Error::BlobConflict { blob } if blob == "obj"),
        "{e:?}"
    );
    // nothing of the new version was released as the old one's
    assert!(
        old[64 * 1024..].starts_with(&rest),
        "released bytes not of the old version"
    );
    assert_eq!(read_all(&client, "obj").await.unwrap(), new);
}

/// A client and a scope store on a dead endpoint, retrying under `retry`,
/// with a recorder that sees every attempt (a per-try policy).
fn dead_endpoint_clients(
    endpoint: &str,
    kek: &Arc<dyn KeyEncryptionKey>,
    retry: RetryConfig,
) -> (EncryptedBlobClient, BlobScopeStore, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let mut options = azure_storage_blob::BlobContainerClientOptions::default();
    options
        .client_options
        .per_try_policies
        .push(recorder.clone());
    let url = azurite::container_url_at(endpoint, "gone");
    let client = EncryptedBlobClient::builder(&url, None)
        .unwrap()
        .keks(vec![kek.clone()], resolver(&[kek]))
        .client_options(options.clone())
        .retry(retry.clone())
        .build()
        .unwrap();
    let store = BlobScopeStore::with_retry(&url, None, "", Some(options), retry).unwrap();
    (client, store, recorder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_retried_under_the_crate_retry_config() {
    let dir = common::tempdir();
    let az = azurite::OwnAzurite::start(&dir);
    let endpoint = az.endpoint.clone();
    az.kill();
    let kek = common::aes_kek("retry", WrapAlgorithm::A256Kw);
    let fast = RetryConfig::default()
        .backoff(Duration::from_millis(1), Duration::from_millis(4))
        .seed(9);
    for retries in [0u32, 3] {
        let (client, store, recorder) =
            dead_endpoint_clients(&endpoint, &kek, fast.clone().max_retries(retries));
        match client.download("x").await {
            Err(Error::Storage(e)) => {
                assert_eq!(e.kind(), StorageErrorKind::Transient, "{e}");
                assert!(e.is_retryable());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            recorder.take().len() as u32,
            retries + 1,
            "one attempt plus max_retries = {retries}"
        );
        assert!(store.get("s").await.unwrap_err().is_retryable());
        assert_eq!(recorder.take().len() as u32, retries + 1);
    }
    // The budget bounds a call whatever the retry count.
    let (client, _, recorder) = dead_endpoint_clients(
        &endpoint,
        &kek,
        fast.max_retries(1_000)
            .backoff(Duration::from_millis(20), Duration::from_millis(40))
            .max_total_time(Duration::from_millis(300)),
    );
    let start = std::time::Instant::now();
    assert!(client.download("x").await.is_err());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let attempts = recorder.take().len();
    assert!((2..1_000).contains(&attempts), "{attempts}");
    let _ = std::fs::remove_dir_all(&dir);
}
