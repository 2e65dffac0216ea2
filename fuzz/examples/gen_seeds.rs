//! Writes the seed corpus of every fuzz target into `<dir>/<target>/`
//! (default `fuzz/corpus/`), from real objects made by the crate's own
//! API: envelopes of several sizes and forms, raw chunk-layer ciphertexts,
//! `encryptiondata` values, documents and Cosmos DB items encrypted by the
//! targets' fixtures, JWK files of every kind, scope records, key ids,
//! service responses and blob metadata. `scripts/fuzz-corpus.sh` runs it
//! (with the Azure Storage Python SDK's own blobs added), then minimizes.
//!
//! ```text
//! RUSTFLAGS="--cfg fuzzing" cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds [dir]
//! ```
//!
//! (`--cfg fuzzing` opens `cmk_envelope::fuzzing`, as `cargo fuzz` does
//! for the targets.) Data keys, salts and nonces are fresh, so every run
//! writes different (equally valid) bytes. File names start with `seed-`:
//! the only corpus files git keeps.

use std::path::{Path, PathBuf};

use cmk_envelope::fuzzing::{azure_cse, cosmos_ae, document, envelope, keys};
use cmk_envelope::Header;

struct Corpus {
    root: PathBuf,
    bytes: usize,
    files: usize,
}

impl Corpus {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.bytes += bytes.len();
        self.files += 1;
    }
}

/// Inputs for the structured (`arbitrary`) targets: byte strings of a few
/// lengths from a fixed generator; each decodes to some edits and reads,
/// and the empty one to the unedited object.
fn structured_seeds() -> Vec<Vec<u8>> {
    let mut x = 0x2545_f491_u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    };
    let mut out = vec![Vec::new()];
    for len in [8usize, 16, 32, 64, 128, 256] {
        for _ in 0..3 {
            out.push((0..len).map(|_| next()).collect());
        }
    }
    out
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut c = Corpus {
        root,
        bytes: 0,
        files: 0,
    };

    // header_parse: a lone header (one and two key entries), and a header
    // followed by the start of a body (for `parse_prefix`).
    let env0 = envelope::seed_envelope(0, false);
    let (_, used) = Header::parse_prefix(&env0).expect("header");
    c.write("header_parse", "one-key", &env0[..used]);
    let env2 = envelope::seed_envelope(8, true);
    let (_, used2) = Header::parse_prefix(&env2).expect("header");
    c.write("header_parse", "two-keys", &env2[..used2]);
    c.write("header_parse", "with-body", &env0[..used + 56]);

    // open_envelope: whole envelopes around the chunk boundaries, one or
    // two key entries.
    for len in [0usize, 1, 16383, 16384, 16385, 40000] {
        let env = envelope::seed_envelope(len, false);
        c.write("open_envelope", &format!("len-{len}"), &env);
    }
    c.write("open_envelope", "two-keys", &env2);

    // read_at: 2 control bytes (the seed of the reads), then an envelope.
    for (len, ctl) in [
        (0usize, [0u8, 0]),
        (1, [1, 0]),
        (16384, [0x34, 0x12]),
        (40000, [0xff, 0x7f]),
    ] {
        let mut seed = ctl.to_vec();
        seed.extend_from_slice(&envelope::seed_envelope(len, false));
        c.write("read_at", &format!("len-{len}"), &seed);
    }

    // chunk_open: raw chunk-layer ciphertexts under the fixed key.
    for len in [0usize, 1, 16384, 16390] {
        c.write(
            "chunk_open",
            &format!("len-{len}"),
            &envelope::seed_chunk_ciphertext(len),
        );
    }

    // The structured targets build their objects in process.
    for (i, s) in structured_seeds().iter().enumerate() {
        c.write("envelope_differential", &format!("{i:02}"), s);
        c.write("cse_differential", &format!("{i:02}"), s);
    }

    // cse_metadata: `encryptiondata`; cse_decrypt: the same, a newline,
    // then the body.
    for (name, json, body) in azure_cse::seed_blobs() {
        c.write("cse_metadata", &name, json.as_bytes());
        let mut blob = json.into_bytes();
        blob.push(b'\n');
        blob.extend_from_slice(&body);
        c.write("cse_decrypt", &name, &blob);
    }

    // document_fields: `_cmk` values and field values of real documents;
    // document_cipher: the documents, clear and encrypted.
    for (name, doc) in document::seed_documents() {
        let v: serde_json::Value = serde_json::from_slice(&doc).expect("json");
        for (field, value) in v.as_object().expect("object") {
            if let Some(text) = value.as_str().filter(|t| t.starts_with("cmke1:") || field == "_cmk") {
                c.write("document_fields", &format!("{name}-{}", field.trim_start_matches('_')), text.as_bytes());
            }
        }
        c.write("document_cipher", &name, &doc);
    }

    for (name, json) in cosmos_ae::seed_objects() {
        let target = if name.starts_with("item-") {
            "cosmos_ae_item"
        } else {
            "cosmos_ae_metadata"
        };
        c.write(target, &name, &json);
    }

    for (name, jwk) in keys::seed_jwks() {
        c.write("jwk", &name, &jwk);
    }
    for (name, record) in keys::seed_scope_records() {
        c.write("scope_record", &name, &record);
    }
    for (target, name, text) in keys::seed_texts() {
        c.write(target, &name, text.as_bytes());
    }

    println!(
        "wrote {} seeds, {} bytes, under {}",
        c.files,
        c.bytes,
        c.root.display()
    );
}
