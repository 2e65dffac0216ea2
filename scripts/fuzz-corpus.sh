#!/usr/bin/env bash
# Regenerates the committed seed corpus of every fuzz target
# (fuzz/corpus/<target>/seed-*) from real objects, then minimizes it with
# `cargo fuzz cmin` (see docs/fuzzing.md):
#
#   scripts/fuzz-corpus.sh
#
# 1. fuzz/examples/gen_seeds.rs writes objects made by the crate's own API
#    (envelopes, chunk-layer ciphertexts, `encryptiondata`, documents and
#    Cosmos DB items encrypted by the targets' fixtures, JWKs of every kind,
#    scope records, key ids, Key Vault responses, blob metadata);
# 2. the official Azure Storage Python SDK (installed into target/pyvenv
#    as scripts/test.sh does) writes client-side encrypted blobs through
#    tests/fixtures/azure_cse_sdk.py: protocols 1.0, 2.0 and 2.1, the
#    Python, Java and .NET nonce encodings, under the `cse_decrypt`
#    target's fixed key;
# 3. for each target, `cargo fuzz cmin` keeps the seeds that add coverage;
#    they replace the committed ones, under their descriptive names.
#    Seeds named `seed-regress-*` (inputs that once crashed a target) are
#    kept as they are, always.
#
# Data keys, salts and nonces are fresh, so every run writes different
# (equally valid) bytes. Needs the nightly toolchain and cargo-fuzz, as
# scripts/fuzz.sh does.

set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cmk-envelope-corpus.XXXXXX")"
trap 'rm -rf "$work"' EXIT
raw="$work/raw"

echo "== [+${SECONDS}s] objects from the crate (fuzz/examples/gen_seeds.rs)"
RUSTFLAGS="--cfg fuzzing" cargo run --quiet --release --manifest-path fuzz/Cargo.toml \
    --example gen_seeds -- "$raw"

echo "== [+${SECONDS}s] blobs from the Azure Storage Python SDK"
PYVENV="$PWD/target/pyvenv"
if ! "$PYVENV/bin/python" -c "import azure.storage.blob._encryption, cryptography" >/dev/null 2>&1; then
    echo "installing azure-storage-blob into $PYVENV"
    mkdir -p target
    python3 -m venv "$PYVENV"
    "$PYVENV/bin/pip" install --quiet --disable-pip-version-check 'azure-storage-blob>=12.31,<13' cryptography
fi
sdk="$work/sdk"
mkdir -p "$sdk"
# The key and key id of cmk_envelope::fuzzing::azure_cse (cse_decrypt).
CSE_KEY="$(printf '43%.0s' $(seq 32))"
CSE_KID="fuzz-cse"
python3 - "$sdk" >"$sdk/jobs.json" <<'EOF'
import json, sys
d = sys.argv[1]
jobs = []
for name, job in [
    ("v2.0-empty", {"op": "encrypt", "size": 0}),
    ("v2.0-small", {"op": "encrypt", "size": 100}),
    ("v1.0-small", {"op": "encrypt", "size": 100, "version": "1.0"}),
    ("v1.0-blocks", {"op": "encrypt", "size": 64, "version": "1.0"}),
    ("v2.1-java", {"op": "encrypt-nonces", "style": "java", "size": 100, "region": 16}),
    ("v2.1-dotnet", {"op": "encrypt-nonces", "style": "dotnet", "size": 100, "region": 16}),
]:
    job.update(plain=f"{d}/{name}.plain", blob=f"{d}/{name}.blob", metadata=f"{d}/{name}.json")
    jobs.append(job)
json.dump(jobs, sys.stdout)
EOF
echo "$CSE_KEY" | "$PYVENV/bin/python" tests/fixtures/azure_cse_sdk.py "$CSE_KID" "$sdk/jobs.json"
mkdir -p "$raw/cse_metadata" "$raw/cse_decrypt"
for m in "$sdk"/*.json; do
    [[ "$m" == "$sdk/jobs.json" ]] && continue
    name="$(basename "$m" .json)"
    cp "$m" "$raw/cse_metadata/seed-sdk-$name"
    # cse_decrypt reads the metadata, a newline, then the body.
    { cat "$m"; printf '\n'; cat "$sdk/$name.blob"; } >"$raw/cse_decrypt/seed-sdk-$name"
done

echo "== [+${SECONDS}s] minimizing (cargo +$TOOLCHAIN fuzz cmin -a)"
cargo "+$TOOLCHAIN" fuzz build -a
for dir in "$raw"/*/; do
    t="$(basename "$dir")"
    min="$work/min/$t"
    mkdir -p "$min"
    cp "$dir"/seed-* "$min/"
    cargo "+$TOOLCHAIN" fuzz cmin -a "$t" "$min" >"$work/$t.cmin.log" 2>&1 || {
        cat "$work/$t.cmin.log" >&2
        exit 1
    }
    # cmin names what it keeps by content hash: keep those seeds under
    # their own names.
    kept="$(cd "$min" && sha1sum -- * | cut -d' ' -f1 | sort -u)"
    mkdir -p "fuzz/corpus/$t"
    find "fuzz/corpus/$t" -name 'seed-*' ! -name 'seed-regress-*' -delete
    for f in "$dir"/seed-*; do
        if grep -qx "$(sha1sum "$f" | cut -d' ' -f1)" <<<"$kept"; then
            cp "$f" "fuzz/corpus/$t/"
        fi
    done
    printf '%-22s %3d of %3d seeds kept, %s\n' "$t" \
        "$(find "fuzz/corpus/$t" -name 'seed-*' | wc -l)" \
        "$(find "$dir" -name 'seed-*' | wc -l)" \
        "$(du -sh "fuzz/corpus/$t" | cut -f1)"
done
echo "== [+${SECONDS}s] corpus: $(du -sh fuzz/corpus | cut -f1) in fuzz/corpus/"
