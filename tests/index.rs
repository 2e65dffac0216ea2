//! The encrypting tantivy directory: same hits and scores as a plain
//! index, nothing in clear on disk, files bound to their index and name,
//! and re-opening from only the CMK and the scope store.

#![cfg(feature = "index")]

mod common;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::index::{EncryptedDirectory, EncryptedFileError};
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, FsScopeStore, ScopeStore};
use cmk_envelope::{Error, KeyEncryptionKey, LocalKek, WrapAlgorithm};
use tantivy::collector::TopDocs;
use tantivy::directory::error::OpenReadError;
use tantivy::directory::{Directory, MmapDirectory, RamDirectory};
use tantivy::query::{PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value as _, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::{doc, HasLen, Index, IndexSettings, IndexWriter, TantivyDocument, Term};

const DOCS: u64 = 20_000;

/// Vocabulary words: 8 to 11 letters, never a substring of each other's
/// neighbours by construction (`vq` + syllables).
fn vocabulary() -> Vec<String> {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bo", "da", "fi", "gu", "he",
        "jo",
    ];
    (0..400)
        .map(|i: usize| {
            let mut w = String::from("vq");
            let mut x = i * 7919 + 13;
            for _ in 0..3 + i % 2 {
                w.push_str(SYL[x % 16]);
                x /= 16;
                x += i;
            }
            format!("{w}{}", i % 10)
        })
        .collect()
}

struct Fields {
    id: Field,
    body: Field,
    tag: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | STORED | FAST);
    let body = b.add_text_field("body", TEXT | STORED);
    let tag = b.add_text_field("tag", STRING);
    (b.build(), Fields { id, body, tag })
}

/// A deterministic corpus with a skewed word distribution.
fn corpus(vocab: &[String]) -> Vec<(u64, String, String)> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..DOCS)
        .map(|id| {
            let n = 8 + next() % 24;
            let words: Vec<&str> = (0..n)
                .map(|_| {
                    let r = next() % 1000;
                    // skewed: low indices are frequent
                    let i = ((r * r) / 2500) as usize % vocab.len();
                    vocab[i].as_str()
                })
                .collect();
            (id, words.join(" "), vocab[(id % 7) as usize].clone())
        })
        .collect()
}

fn build(dir: impl Into<Box<dyn Directory>>, docs: &[(u64, String, String)]) -> Index {
    let (schema, f) = schema();
    let index = Index::create(dir, schema, IndexSettings::default()).unwrap();
    let mut w: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for (i, (id, body, tag)) in docs.iter().enumerate() {
        w.add_document(doc!(f.id => *id, f.body => body.as_str(), f.tag => tag.as_str()))
            .unwrap();
        if i as u64 == DOCS / 2 {
            w.commit().unwrap(); // two segments, and a merge candidate
        }
    }
    w.commit().unwrap();
    w.wait_merging_threads().unwrap();
    index
}

fn queries(vocab: &[String]) -> Vec<Box<dyn Query>> {
    let (_, f) = schema();
    let term = |w: &str| Term::from_field_text(f.body, w);
    let mut q: Vec<Box<dyn Query>> = Vec::new();
    for w in [&vocab[0], &vocab[3], &vocab[40], &vocab[200], &vocab[399]] {
        q.push(Box::new(TermQuery::new(
            term(w),
            IndexRecordOption::WithFreqs,
        )));
    }
    q.push(Box::new(TermQuery::new(
        Term::from_field_text(f.tag, &vocab[2]),
        IndexRecordOption::Basic,
    )));
    for (a, b) in [(0, 1), (1, 0), (2, 5), (0, 0)] {
        q.push(Box::new(PhraseQuery::new(vec![
            term(&vocab[a]),
            term(&vocab[b]),
        ])));
    }
    q.push(Box::new(PhraseQuery::new(vec![
        term(&vocab[0]),
        term(&vocab[1]),
        term(&vocab[2]),
    ])));
    q.push(Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_u64(f.id, 1_000)),
        Bound::Excluded(Term::from_field_u64(f.id, 1_500)),
    )));
    q.push(Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_u64(f.id, 19_990)),
        Bound::Unbounded,
    )));
    q
}

/// Every hit of `q` as (stored id, score bits), sorted by id.
fn hits(index: &Index, q: &dyn Query) -> Vec<(u64, u32)> {
    let (_, f) = schema();
    let searcher = index.reader().unwrap().searcher();
    let top = searcher
        .search(q, &TopDocs::with_limit(DOCS as usize).order_by_score())
        .unwrap();
    let mut out: Vec<(u64, u32)> = top
        .into_iter()
        .map(|(score, addr)| {
            let d: TantivyDocument = searcher.doc(addr).unwrap();
            (
                d.get_first(f.id).unwrap().as_u64().unwrap(),
                score.to_bits(),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

fn file_kek(dir: &Path) -> Arc<dyn KeyEncryptionKey> {
    let path = dir.join("cmk.jwk");
    if !path.exists() {
        LocalKek::generate(WrapAlgorithm::A256Kw, Some("cmk".into()), None)
            .unwrap()
            .save_jwk(&path, false)
            .unwrap();
    }
    Arc::new(LocalKek::from_jwk_file(&path).unwrap())
}

async fn open_scope(root: &Path, create: bool) -> EncryptionScope {
    let store: Arc<dyn ScopeStore> = Arc::new(FsScopeStore::new(root.join("scopes")).unwrap());
    let cmk = Cmk::CustomerManaged(file_kek(root));
    if create {
        EncryptionScope::create(store, "search", cmk, CachePolicy::default())
            .await
            .unwrap()
    } else {
        EncryptionScope::open(store, "search", cmk, CachePolicy::default())
            .await
            .unwrap()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn commitment_error(e: &OpenReadError) -> bool {
    let OpenReadError::IoError { io_error, .. } = e else {
        return false;
    };
    io_error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<EncryptedFileError>())
        .is_some_and(|f| matches!(f.source, Error::CommitmentMismatch))
}

#[tokio::test]
async fn encrypted_index_matches_plain_hides_terms_binds_files_and_reopens() {
    let root = common::tempdir();
    let vocab = vocabulary();
    let docs = corpus(&vocab);
    let idx_path = root.join("idx-a");
    std::fs::create_dir_all(&idx_path).unwrap();

    let scope = open_scope(&root, true).await;
    let plain = build(RamDirectory::create(), &docs);
    let enc_dir = EncryptedDirectory::new(
        MmapDirectory::open(&idx_path).unwrap(),
        scope.clone(),
        "idx-a",
    )
    .unwrap();
    enc_dir.warm().await.unwrap();
    let encrypted = build(enc_dir.clone(), &docs);

    // 1. same hits, same scores (bit for bit)
    let qs = queries(&vocab);
    let mut total = 0;
    for q in &qs {
        let (a, b) = (hits(&plain, q.as_ref()), hits(&encrypted, q.as_ref()));
        assert_eq!(a, b, "{q:?}");
        total += a.len();
    }
    assert!(total > 1_000, "the queries hit something ({total})");
    assert!(
        enc_dir.cache_stats().hits > 0,
        "{:?}",
        enc_dir.cache_stats()
    );
    let reference: Vec<_> = qs.iter().map(|q| hits(&plain, q.as_ref())).collect();

    // 2. no indexed term in clear on disk (while a plain copy shows them)
    let plain_disk = root.join("plain");
    std::fs::create_dir_all(&plain_disk).unwrap();
    drop(build(MmapDirectory::open(&plain_disk).unwrap(), &docs));
    let blob = |dir: &Path| -> Vec<u8> {
        files(dir)
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    let (plain_bytes, enc_bytes) = (blob(&plain_disk), blob(&idx_path));
    let visible = vocab
        .iter()
        .filter(|w| contains(&plain_bytes, String::as_bytes(w)))
        .count();
    assert!(visible > 100, "the plain index shows its terms ({visible})");
    for w in &vocab {
        assert!(!contains(&enc_bytes, String::as_bytes(w)), "`{w}` in clear");
    }
    for needle in [&b"\"segments\""[..], &b"\"schema\""[..]] {
        assert!(!contains(&enc_bytes, needle), "meta data in clear");
    }

    // 3. a segment file from another index fails to open, clearly
    let other_path = root.join("idx-b");
    std::fs::create_dir_all(&other_path).unwrap();
    let other_dir = EncryptedDirectory::new(
        MmapDirectory::open(&other_path).unwrap(),
        scope.clone(),
        "idx-b",
    )
    .unwrap();
    drop(build(other_dir.clone(), &docs[..500]));
    let seg_file = files(&idx_path)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a postings file");
    let name = PathBuf::from(seg_file.file_name().unwrap());
    assert!(enc_dir.open_read(&name).is_ok());
    std::fs::copy(&seg_file, other_path.join(&name)).unwrap();
    let e = other_dir.open_read(&name).unwrap_err();
    assert!(commitment_error(&e), "{e}");
    assert!(e.to_string().contains("commitment"), "{e}");
    // renamed within its own index
    let renamed = PathBuf::from("renamed.idx");
    std::fs::copy(&seg_file, idx_path.join(&renamed)).unwrap();
    let e = enc_dir.open_read(&renamed).unwrap_err();
    assert!(commitment_error(&e), "{e}");
    std::fs::remove_file(idx_path.join(&renamed)).unwrap();
    // a whole index whose segment was swapped fails to search
    let victim = files(&other_path)
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "idx") && p.file_name() != Some(name.as_os_str())
        })
        .unwrap();
    std::fs::copy(&seg_file, &victim).unwrap();
    let broken = Index::open(other_dir.clone()).and_then(|i| {
        let s = i.reader()?.searcher();
        s.search(qs[0].as_ref(), &TopDocs::with_limit(10).order_by_score())
    });
    assert!(broken.is_err(), "a swapped segment is refused");
    // meta.json is sealed too: a plain one is refused
    assert!(other_dir.atomic_read(Path::new("meta.json")).is_ok());
    std::fs::write(other_path.join("meta.json"), b"{}").unwrap();
    assert!(Index::open(other_dir).is_err());

    // 4. restart: drop everything; re-open from the CMK file and the
    //    scope store on disk only
    drop((encrypted, enc_dir, scope));
    let scope = open_scope(&root, false).await;
    let dir =
        EncryptedDirectory::new(MmapDirectory::open(&idx_path).unwrap(), scope, "idx-a").unwrap();
    let reopened = Index::open(dir).unwrap();
    for (q, want) in qs.iter().zip(&reference) {
        assert_eq!(&hits(&reopened, q.as_ref()), want, "{q:?}");
    }
    // the same files under another index name do not open
    let scope = open_scope(&root, false).await;
    let wrong =
        EncryptedDirectory::new(MmapDirectory::open(&idx_path).unwrap(), scope, "idx-x").unwrap();
    assert!(Index::open(wrong).is_err());
}

#[tokio::test]
async fn random_access_reads_match_the_plaintext() {
    let root = common::tempdir();
    let scope = open_scope(&root, true).await;
    let dir =
        EncryptedDirectory::with_cache_chunks(RamDirectory::create(), scope, "ra", 3).unwrap();
    let data = common::data(5 * 16_384 + 777, 9);
    let mut w = dir.open_write(Path::new("f.bin")).unwrap();
    use std::io::Write;
    w.write_all(&data).unwrap();
    tantivy::directory::TerminatingWrite::terminate(w).unwrap();
    let slice = dir.open_read(Path::new("f.bin")).unwrap();
    assert_eq!(slice.len(), data.len());
    let mut x = 7usize;
    for _ in 0..400 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (x >> 11) % (data.len() + 1);
        let b = a + (x >> 40) % (data.len() + 1 - a);
        let got = slice.read_bytes_slice(a..b).unwrap();
        assert_eq!(got.as_slice(), &data[a..b], "{a}..{b}");
    }
    assert_eq!(slice.read_bytes().unwrap().as_slice(), &data[..]);
    assert!(dir.cache_stats().chunks <= 3);
    // empty file
    let w = dir.open_write(Path::new("empty")).unwrap();
    tantivy::directory::TerminatingWrite::terminate(w).unwrap();
    assert_eq!(dir.open_read(Path::new("empty")).unwrap().len(), 0);
    // atomic files
    dir.atomic_write(Path::new("meta.json"), b"{\"x\":1}")
        .unwrap();
    assert_eq!(
        dir.atomic_read(Path::new("meta.json")).unwrap(),
        b"{\"x\":1}"
    );
}

/// Two instances of one scope over one scope store: B has an index file
/// open (with chunks in its cache) when A destroys the scope. B's reads
/// keep working for as long as the scope lives (across several TTLs: the
/// file's lease renews on tantivy's thread), and fail once B learns of the
/// destroy, within the TTL — served from the chunk cache or not — and the
/// cache is wiped.
#[tokio::test]
async fn an_open_index_file_stops_within_the_ttl_of_a_destroy() {
    use std::io::Write as _;
    use tantivy::directory::TerminatingWrite as _;

    let root = common::tempdir();
    let ttl = std::time::Duration::from_millis(300);
    let policy = CachePolicy {
        ttl,
        failure_backoff: std::time::Duration::from_millis(20),
        ..CachePolicy::default()
    };
    let store =
        || -> Arc<dyn ScopeStore> { Arc::new(FsScopeStore::new(root.join("scopes")).unwrap()) };
    let cmk = || Cmk::CustomerManaged(file_kek(&root));
    let a = EncryptionScope::create(store(), "ix", cmk(), policy.clone())
        .await
        .unwrap();
    let b = EncryptionScope::open(store(), "ix", cmk(), policy)
        .await
        .unwrap();
    let idx = root.join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    let chunk = 16 * 1024;
    let data = common::data(40 * chunk, 8);
    let a_dir =
        EncryptedDirectory::new(MmapDirectory::open(&idx).unwrap(), a.clone(), "ix").unwrap();
    let mut w = a_dir.open_write(Path::new("seg.idx")).unwrap();
    w.write_all(&data).unwrap();
    w.terminate().unwrap();

    let b_dir =
        EncryptedDirectory::new(MmapDirectory::open(&idx).unwrap(), b.clone(), "ix").unwrap();
    let file = b_dir.get_file_handle(Path::new("seg.idx")).unwrap();
    let read = |i: usize| file.read_bytes(i * chunk..i * chunk + 100);
    // the scope lives: reads go on across three TTLs
    let start = std::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < ttl * 3 {
        assert_eq!(
            read(i % 40).unwrap().as_slice(),
            &data[(i % 40) * chunk..][..100]
        );
        assert_eq!(read(0).unwrap().as_slice(), &data[..100]); // from the cache
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(b_dir.cache_stats().chunks > 0);

    a.destroy("ix").await.unwrap();
    let destroyed = std::time::Instant::now();
    let e = loop {
        match read(0) {
            Ok(_) => assert!(destroyed.elapsed() < ttl + std::time::Duration::from_millis(250)),
            Err(e) => break e,
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    println!(
        "index: an open file failed {:?} after the destroy (TTL {ttl:?}): {e}",
        destroyed.elapsed()
    );
    let inner = e
        .get_ref()
        .and_then(|x| x.downcast_ref::<EncryptedFileError>())
        .expect("an EncryptedFileError");
    assert!(matches!(inner.source, Error::ScopeNotFound { .. }), "{e}");
    assert_eq!(b_dir.cache_stats().chunks, 0, "cached plaintext wiped");
    assert!(read(7).is_err());
    assert!(read(0).is_err());
}
