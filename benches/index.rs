//! The encrypting tantivy directory against a plain one, in the same run.
//!
//! * indexing: 20,000 documents (8–31 words each) into an `MmapDirectory`,
//!   plain and through `EncryptedDirectory`, single writer thread,
//!   including the commit; best of 3 runs each, interleaved.
//! * queries: a mix of term, phrase and range queries (top 10 by score)
//!   on each index; best of 7 rounds of 200 passes over the mix.
//!
//! Prints both figures and the ratios encrypted / plain (targets: ≤ 1.3×
//! for indexing, ≤ 1.5× for queries).

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::index::EncryptedDirectory;
use cmk_envelope::scope::{CachePolicy, Cmk, EncryptionScope, MemoryScopeStore, ScopeStore};
use cmk_envelope::{KeyEncryptionKey, LocalKek, WrapAlgorithm};
use futures::executor::block_on;
use tantivy::collector::TopDocs;
use tantivy::directory::{Directory, MmapDirectory};
use tantivy::query::{PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, FAST, INDEXED, STORED, TEXT};
use tantivy::{doc, Index, IndexSettings, IndexWriter, Searcher, Term};

const DOCS: u64 = 20_000;

fn vocabulary() -> Vec<String> {
    (0..2000).map(|i| format!("w{i:04}x")).collect()
}

fn corpus(vocab: &[String]) -> Vec<(u64, String)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
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
                    vocab[((r * r) / 500) as usize % vocab.len()].as_str()
                })
                .collect();
            (id, words.join(" "))
        })
        .collect()
}

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let id = b.add_u64_field("id", INDEXED | STORED | FAST);
    let body = b.add_text_field("body", TEXT);
    (b.build(), id, body)
}

fn build(dir: Box<dyn Directory>, docs: &[(u64, String)]) -> (Index, Duration) {
    let (schema, id, body) = schema();
    let t = Instant::now();
    let index = Index::create(dir, schema, IndexSettings::default()).unwrap();
    let mut w: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
    for (i, text) in docs {
        w.add_document(doc!(id => *i, body => text.as_str()))
            .unwrap();
    }
    w.commit().unwrap();
    w.wait_merging_threads().unwrap();
    (index, t.elapsed())
}

fn queries(vocab: &[String]) -> Vec<Box<dyn Query>> {
    let (_, id, body) = schema();
    let t = |w: &str| Term::from_field_text(body, w);
    let mut q: Vec<Box<dyn Query>> = Vec::new();
    for i in [0, 5, 50, 300, 1500] {
        q.push(Box::new(TermQuery::new(
            t(&vocab[i]),
            IndexRecordOption::WithFreqs,
        )));
    }
    q.push(Box::new(PhraseQuery::new(vec![t(&vocab[0]), t(&vocab[1])])));
    q.push(Box::new(PhraseQuery::new(vec![t(&vocab[3]), t(&vocab[7])])));
    q.push(Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_u64(id, 5_000)),
        Bound::Excluded(Term::from_field_u64(id, 5_200)),
    )));
    q
}

fn run_queries(searcher: &Searcher, qs: &[Box<dyn Query>]) -> usize {
    qs.iter()
        .map(|q| {
            searcher
                .search(q.as_ref(), &TopDocs::with_limit(10).order_by_score())
                .unwrap()
                .len()
        })
        .sum()
}

fn query_time(index: &Index, qs: &[Box<dyn Query>]) -> Duration {
    let searcher = index.reader().unwrap().searcher();
    run_queries(&searcher, qs); // warm
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..200 {
                std::hint::black_box(run_queries(&searcher, qs));
            }
            t.elapsed() / (200 * qs.len() as u32)
        })
        .min()
        .unwrap()
}

fn fresh(root: &Path, name: &str) -> MmapDirectory {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    MmapDirectory::open(&p).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore all arguments.
    let root = std::env::temp_dir().join(format!("cmk-bench-index-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let kek_path = root.join("cmk.jwk");
    LocalKek::generate(WrapAlgorithm::A256Kw, Some("cmk".into()), None)
        .unwrap()
        .save_jwk(&kek_path, false)
        .unwrap();
    let cmk: Arc<dyn KeyEncryptionKey> = Arc::new(LocalKek::from_jwk_file(&kek_path).unwrap());
    let store: Arc<dyn ScopeStore> = Arc::new(MemoryScopeStore::new());
    let scope = block_on(EncryptionScope::create(
        store,
        "bench",
        Cmk::CustomerManaged(cmk),
        CachePolicy::default(),
    ))
    .unwrap();

    let vocab = vocabulary();
    let docs = corpus(&vocab);
    let mut plain_best = Duration::MAX;
    let mut enc_best = Duration::MAX;
    let mut plain_index = None;
    let mut enc_index = None;
    for run in 0..3 {
        let (i, t) = build(Box::new(fresh(&root, &format!("plain-{run}"))), &docs);
        plain_best = plain_best.min(t);
        plain_index = Some(i);
        let dir = EncryptedDirectory::new(
            fresh(&root, &format!("enc-{run}")),
            scope.clone(),
            "bench-index",
        )
        .unwrap();
        block_on(dir.warm()).unwrap();
        let (i, t) = build(Box::new(dir), &docs);
        enc_best = enc_best.min(t);
        enc_index = Some(i);
    }
    let rate = |d: Duration| DOCS as f64 / d.as_secs_f64();
    println!(
        "indexing {DOCS} docs: plain {:.1} ms ({:.0} docs/s), encrypted {:.1} ms ({:.0} docs/s), ratio {:.2}x",
        plain_best.as_secs_f64() * 1e3,
        rate(plain_best),
        enc_best.as_secs_f64() * 1e3,
        rate(enc_best),
        enc_best.as_secs_f64() / plain_best.as_secs_f64()
    );

    let qs = queries(&vocab);
    let (plain_index, enc_index) = (plain_index.unwrap(), enc_index.unwrap());
    let plain_q = query_time(&plain_index, &qs);
    let enc_q = query_time(&enc_index, &qs);
    println!(
        "query (mean over {} term/phrase/range queries, top 10): plain {:.2} µs, encrypted {:.2} µs, ratio {:.2}x",
        qs.len(),
        plain_q.as_secs_f64() * 1e6,
        enc_q.as_secs_f64() * 1e6,
        enc_q.as_secs_f64() / plain_q.as_secs_f64()
    );
    // Cold: a fresh reader (segment files opened and decrypted again).
    let cold = |index: &Index| {
        let t = Instant::now();
        for _ in 0..20 {
            let reader = index.reader().unwrap();
            std::hint::black_box(run_queries(&reader.searcher(), &qs));
        }
        t.elapsed() / 20
    };
    let (pc, ec) = (cold(&plain_index), cold(&enc_index));
    println!(
        "cold (new reader + one pass of the mix; the chunk cache stays warm): plain {:.2} ms, encrypted {:.2} ms, ratio {:.2}x",
        pc.as_secs_f64() * 1e3,
        ec.as_secs_f64() * 1e3,
        ec.as_secs_f64() / pc.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&root);
}
