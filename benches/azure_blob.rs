//! Blob storage throughput against Azurite, encrypted vs plain, in one run.
//!
//! * group `azure_blob_upload` (16 MiB): `EncryptedBlobClient::upload`
//!   (sealed into 4 MiB blocks, 4 staged at once, committed with the
//!   header) against the SDK's own `BlobClient::upload` of the plaintext
//!   with the same partition size and parallelism.
//! * group `azure_blob_download` (16 MiB): `EncryptedBlobClient::download`
//!   read to the authenticated end against the SDK's `BlobClient::download`
//!   collected.
//!
//! After the groups it prints encrypted/plain throughput ratios (medians,
//! from criterion's `estimates.json`). Needs Azurite:
//! `scripts/azurite.sh cargo bench --features blob --bench azure_blob`.

#[path = "../tests/common/azurite.rs"]
mod azurite;

use std::hint::black_box;
use std::num::NonZero;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::Url;
use azure_core::Bytes;
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobClientUploadOptions};
use azure_storage_blob::BlobContainerClient;
use cmk_envelope::blob::{EncryptedBlobClient, WriteCondition};
use cmk_envelope::{KeyEncryptionKey, LocalKek, StaticResolver, WrapAlgorithm};
use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::io::AsyncReadExt;

const MIB: usize = 1024 * 1024;
const SIZE: usize = 16 * MIB;
const BLOCK: usize = 4 * MIB;
const PARALLEL: usize = 4;

struct Setup {
    rt: tokio::runtime::Runtime,
    encrypted: EncryptedBlobClient,
    plain: BlobContainerClient,
    data: Vec<u8>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = azurite::container_url(&azurite::unique_container("bench"));
    rt.block_on(azurite::create_container(&url));
    let kek: Arc<dyn KeyEncryptionKey> = Arc::new(
        LocalKek::from_aes_key("bench-kek", WrapAlgorithm::A256Kw, &[0x5a; 32]).expect("kek"),
    );
    let resolver = StaticResolver::new().with(kek.clone());
    let encrypted = EncryptedBlobClient::builder(&url, None)
        .expect("url")
        .keks(vec![kek], Arc::new(resolver))
        .block_size(BLOCK)
        .concurrency(PARALLEL)
        .build()
        .expect("client");
    let plain = BlobContainerClient::new(Url::parse(&url).expect("url"), None, None).expect("sdk");
    let data = (0..SIZE).map(|i| (i * 31 + 7) as u8).collect();
    Setup {
        rt,
        encrypted,
        plain,
        data,
    }
}

fn upload(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("azure_blob_upload");
    g.throughput(Throughput::Bytes(SIZE as u64)).sample_size(10);
    g.bench_function(BenchmarkId::new("encrypted", "16MiB"), |b| {
        b.iter(|| {
            s.rt.block_on(
                s.encrypted
                    .upload("up-enc", &s.data[..], WriteCondition::Overwrite),
            )
            .expect("upload")
        })
    });
    let blob = s.plain.blob_client("up-plain");
    g.bench_function(BenchmarkId::new("plain", "16MiB"), |b| {
        b.iter(|| {
            let options = BlobClientUploadOptions {
                partition_size: NonZero::new(BLOCK as u64),
                parallel: NonZero::new(PARALLEL),
                ..Default::default()
            };
            s.rt.block_on(blob.upload(Bytes::copy_from_slice(&s.data).into(), Some(options)))
                .expect("upload")
        })
    });
    g.finish();
}

fn download(c: &mut Criterion, s: &Setup) {
    s.rt.block_on(async {
        s.encrypted
            .upload("down-enc", &s.data[..], WriteCondition::Overwrite)
            .await
            .expect("upload");
        s.plain
            .blob_client("down-plain")
            .upload(Bytes::copy_from_slice(&s.data).into(), None)
            .await
            .expect("upload");
    });
    let mut g = c.benchmark_group("azure_blob_download");
    g.throughput(Throughput::Bytes(SIZE as u64)).sample_size(10);
    g.bench_function(BenchmarkId::new("encrypted", "16MiB"), |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let mut r = s.encrypted.download("down-enc").await.expect("download");
                let mut out = Vec::with_capacity(SIZE);
                r.read_to_end(&mut out).await.expect("read");
                black_box(out)
            })
        })
    });
    let blob = s.plain.blob_client("down-plain");
    g.bench_function(BenchmarkId::new("plain", "16MiB"), |b| {
        b.iter(|| {
            s.rt.block_on(async {
                let r = blob
                    .download(Some(BlobClientDownloadOptions::default()))
                    .await
                    .expect("download");
                black_box(r.body.collect().await.expect("body"))
            })
        })
    });
    g.finish();
}

/// The median time of one benchmark of this run, from criterion's output.
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(id)
        .join("16MiB/new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn report() {
    println!("\nencrypted / plain throughput (16 MiB, medians):");
    for group in ["azure_blob_upload", "azure_blob_download"] {
        match (median_ns(group, "encrypted"), median_ns(group, "plain")) {
            (Some(e), Some(p)) => {
                let mibs = |ns: f64| SIZE as f64 / MIB as f64 / (ns / 1e9);
                println!(
                    "  {group}: encrypted {:.0} MiB/s, plain {:.0} MiB/s, ratio {:.2}",
                    mibs(e),
                    mibs(p),
                    p / e
                );
            }
            _ => println!("  {group}: no estimates found (filtered out?)"),
        }
    }
}

fn main() {
    let s = setup();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    upload(&mut c, &s);
    download(&mut c, &s);
    c.final_summary();
    report();
}
