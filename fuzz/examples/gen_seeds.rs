//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/`
//! (or into the directory given as the first argument):
//!
//! ```text
//! RUSTFLAGS="--cfg fuzzing" cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds
//! ```
//!
//! (`--cfg fuzzing` opens `cmk_envelope::fuzzing`, as `cargo fuzz` does
//! for the targets.) Envelopes are sealed under the fixed fuzz KEK with a
//! fresh data key and salt, so every run writes different (equally valid)
//! bytes. File names start with `seed-`: the only corpus files git keeps.

use std::path::{Path, PathBuf};

use cmk_envelope::fuzzing::{seed_chunk_ciphertext, seed_envelope};
use cmk_envelope::Header;

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
    let env0 = seed_envelope(0, false);
    let (_, used) = Header::parse_prefix(&env0).expect("header");
    total += write(&root, "header_parse", "one-key", &env0[..used]);
    let env2 = seed_envelope(8, true);
    let (_, used2) = Header::parse_prefix(&env2).expect("header");
    total += write(&root, "header_parse", "two-keys", &env2[..used2]);
    total += write(&root, "header_parse", "with-body", &env0[..used + 56]);

    // open_envelope: whole envelopes around the chunk boundaries.
    for len in [0usize, 1, 16383, 16384, 16385, 40000] {
        total += write(
            &root,
            "open_envelope",
            &format!("len-{len}"),
            &seed_envelope(len, false),
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
        seed.extend_from_slice(&seed_envelope(len, false));
        total += write(&root, "read_at", &format!("len-{len}"), &seed);
    }

    // chunk_open: raw chunk-layer ciphertexts under the fixed key and
    // context `fuzzing::chunk_open` uses.
    for len in [0usize, 1, 16384, 16390] {
        total += write(
            &root,
            "chunk_open",
            &format!("len-{len}"),
            &seed_chunk_ciphertext(len),
        );
    }

    println!("wrote {total} bytes of seeds under {}", root.display());
}
