//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/`
//! (or into the directory given as the first argument):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! Envelopes are sealed under the fixed fuzz KEK with a fresh data key and
//! salt, so every run writes different (equally valid) bytes. File names
//! start with `seed-`: the only corpus files git keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::__private::{block_on, chunked_encrypt, fuzz_kek, fuzz_seed_envelope};
use cmk_envelope::{CryptoProvider, Header, KeyEncryptionKey, LocalKek, Profile, WrapAlgorithm};

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> usize {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    bytes.len()
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut total = 0;

    // header_parse: a lone header (one and two key entries), and a header
    // followed by the start of a body (for `parse_prefix`).
    let env0 = fuzz_seed_envelope(0);
    let (_, used) = Header::parse_prefix(&env0).expect("header");
    total += write(&root, "header_parse", "one-key", &env0[..used]);
    let second: Arc<dyn KeyEncryptionKey> = Arc::new(
        LocalKek::from_aes_key("fuzz-kwp", WrapAlgorithm::A256Kwp, &[0x24; 32]).expect("kek"),
    );
    let env2 = block_on(cmk_envelope::seal(
        &[fuzz_kek(), second],
        Profile::Blob,
        b"fuzz",
        b"two keys",
    ))
    .expect("seal");
    let (_, used2) = Header::parse_prefix(&env2).expect("header");
    total += write(&root, "header_parse", "two-keys", &env2[..used2]);
    total += write(&root, "header_parse", "with-body", &env0[..used + 56]);

    // open_envelope: whole envelopes around the chunk boundaries.
    for len in [0usize, 1, 16383, 16384, 16385, 40000] {
        total += write(
            &root,
            "open_envelope",
            &format!("len-{len}"),
            &fuzz_seed_envelope(len),
        );
    }

    // read_at: 2 control bytes (the LCG seed of the reads), then an envelope.
    for (len, ctl) in [
        (0usize, [0u8, 0]),
        (1, [1, 0]),
        (16384, [0x34, 0x12]),
        (40000, [0xff, 0x7f]),
    ] {
        let mut seed = ctl.to_vec();
        seed.extend_from_slice(&fuzz_seed_envelope(len));
        total += write(&root, "read_at", &format!("len-{len}"), &seed);
    }

    // chunk_open: raw chunk-layer ciphertexts under the key and context
    // `fuzz_chunk_open` uses.
    let p = CryptoProvider::default_provider();
    for len in [0usize, 1, 16384, 16390] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        total += write(
            &root,
            "chunk_open",
            &format!("len-{len}"),
            &chunked_encrypt(p, &[7u8; 32], b"fuzz", &msg),
        );
    }

    println!("wrote {total} bytes of seeds under {}", root.display());
}
