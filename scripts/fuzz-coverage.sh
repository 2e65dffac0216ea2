#!/usr/bin/env bash
# Line coverage of the crate's sources reached by each fuzz target's
# corpus (`cargo fuzz coverage`, then `llvm-cov report`), and by all
# targets together (see docs/fuzzing.md):
#
#   scripts/fuzz-coverage.sh                          # every target, committed seeds
#   FUZZ_TARGETS="jwk scope_record" scripts/fuzz-coverage.sh
#   FUZZ_COVERAGE_CORPUS=/tmp/kept scripts/fuzz-coverage.sh
#       # a corpus root with one directory per target, such as one kept by
#       # FUZZ_KEEP_CORPUS=1 scripts/fuzz.sh, read together with the seeds
#
# Prints, per target, the line coverage of each source file it reaches,
# then one table of every file of src/ over all targets (lines covered,
# lines, percent). Reports stay in fuzz/coverage/<target>/ (ignored by
# git): `llvm-cov show` on them shows which lines were never reached.
#
# Needs the nightly toolchain with its llvm-tools component (installed
# here when missing) and cargo-fuzz (as scripts/fuzz.sh).

set -euo pipefail
cd "$(dirname "$0")/.."

TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
ALL_TARGETS="header_parse open_envelope read_at chunk_open envelope_differential
cse_metadata cse_differential cse_decrypt document_fields document_cipher cosmos_ae_metadata
cosmos_ae_item jwk scope_record pkcs11_uri key_vault_url key_vault_response blob_metadata"
read -r -d '' -a TARGETS <<<"${FUZZ_TARGETS:-$ALL_TARGETS}" || true

if ! rustup component list --toolchain "$TOOLCHAIN" --installed | grep -q '^llvm-tools'; then
    echo "fuzz-coverage.sh: installing llvm-tools-preview for $TOOLCHAIN" >&2
    rustup component add llvm-tools-preview --toolchain "$TOOLCHAIN"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
host="$(rustc "+$TOOLCHAIN" -vV | sed -n 's/^host: //p')"
tools="$(rustc "+$TOOLCHAIN" --print sysroot)/lib/rustlib/$host/bin"
llvm_cov="$tools/llvm-cov"
llvm_profdata="$tools/llvm-profdata"
# Only the crate's own sources: not the standard library, the registry,
# or the fuzz targets.
# (Anchored: the checkout's own path may hold `/fuzz/`.)
ignore="(/\\.cargo/|/rustc/|/library/|^$PWD/fuzz/)"

# `llvm-cov report` rows as "src/<file> covered total". llvm-cov strips
# the prefix all its files share, so names come relative to src/ or not.
src_lines() {
    awk -v root="$PWD/src/" '
        $1 ~ /\.rs$/ && NF >= 10 {
            f = $1
            if (index(f, root) == 1) f = substr(f, length(root) + 1)
            sub(/^src\//, "", f)
            # Columns: regions, missed, cover, functions, missed, executed,
            # lines, missed, cover, ...
            lines = $8; missed = $9
            if (lines > 0) print "src/" f, lines - missed, lines
        }'
}

objects=()
profiles=()
for t in "${TARGETS[@]}"; do
    corpora=("fuzz/corpus/$t")
    if [[ -n "${FUZZ_COVERAGE_CORPUS:-}" && -d "$FUZZ_COVERAGE_CORPUS/$t" ]]; then
        corpora+=("$FUZZ_COVERAGE_CORPUS/$t")
    fi
    echo "== [+${SECONDS}s] $t: cargo fuzz coverage over ${corpora[*]}"
    cargo "+$TOOLCHAIN" fuzz coverage -a "$t" "${corpora[@]}" >"fuzz/coverage-$t.log" 2>&1 || {
        tail -n 40 "fuzz/coverage-$t.log" >&2
        exit 1
    }
    rm -f "fuzz/coverage-$t.log"
    # cargo-fuzz builds coverage binaries under the fuzz crate's target
    # directory or the crate's, depending on its version.
    bin=""
    for dir in fuzz/target target; do
        if [[ -x "$dir/$host/coverage/$host/release/$t" ]]; then
            bin="$dir/$host/coverage/$host/release/$t"
            break
        fi
    done
    if [[ -z "$bin" ]]; then
        echo "fuzz-coverage.sh: no coverage binary of $t" >&2
        exit 1
    fi
    prof="fuzz/coverage/$t/coverage.profdata"
    objects+=("-object" "$bin")
    profiles+=("$prof")
    "$llvm_cov" report "$bin" -instr-profile="$prof" -ignore-filename-regex="$ignore" |
        src_lines | awk '$2 > 0 { printf "   %-40s %5d/%-5d %5.1f%%\n", $1, $2, $3, 100 * $2 / $3 }'
done

echo
echo "== [+${SECONDS}s] all targets together: line coverage of every file of src/"
"$llvm_profdata" merge -sparse "${profiles[@]}" -o fuzz/coverage/all.profdata
"$llvm_cov" report "${objects[@]:1}" -instr-profile=fuzz/coverage/all.profdata \
    -ignore-filename-regex="$ignore" | src_lines | sort |
    awk '{ c += $2; n += $3; printf "%-42s %5d/%-5d %5.1f%%\n", $1, $2, $3, 100 * $2 / $3 }
         END { if (n) printf "%-42s %5d/%-5d %5.1f%%\n", "total (files compiled into the targets)", c, n, 100 * c / n }'
