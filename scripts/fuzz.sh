#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each for a while.
#
#   scripts/fuzz.sh                        # 30 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh       # longer
#   FUZZ_TARGETS="read_at" scripts/fuzz.sh # a subset
#
# Needs a nightly toolchain (for the sanitizer flags); installs cargo-fuzz
# when it is missing. Builds with debug assertions and overflow checks
# (`-a`) on top of AddressSanitizer.
#
# Each target starts from its committed seeds (fuzz/corpus/<t>/seed-*),
# read-only; the units it discovers go to a scratch directory that is
# deleted afterwards (FUZZ_KEEP_CORPUS=1 keeps it and prints its path), so
# the repository is left untouched apart from fuzz/artifacts/ (ignored),
# where libFuzzer writes crashing inputs.
#
# Exits non-zero if any target crashes (panic, failed assertion, sanitizer
# report, timeout or OOM) or fails to build.

set -euo pipefail

cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-header_parse open_envelope read_at chunk_open}"

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing the $TOOLCHAIN toolchain" >&2
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

echo "== [+${SECONDS}s] building ${#TARGETS[@]} fuzz targets (cargo +$TOOLCHAIN fuzz build -a)"
cargo "+$TOOLCHAIN" fuzz build -a

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/cmk-envelope-fuzz.XXXXXX")"
if [[ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]]; then
    trap 'rm -rf "$scratch_root"' EXIT
fi

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    seeds="fuzz/corpus/$t"
    work="$scratch_root/corpus/$t"
    log="$scratch_root/$t.log"
    mkdir -p "$work" "fuzz/artifacts/$t"
    echo "== [+${SECONDS}s] fuzzing $t for ${SECONDS_PER_TARGET}s (seeds: $(ls "$seeds" 2>/dev/null | wc -l))"
    # The first corpus directory receives new units; the seed directory
    # after it is only read.
    set +e
    cargo "+$TOOLCHAIN" fuzz run -a "$t" "$work" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1 || true; }
    execs="$(stat number_of_executed_units)"
    rate="$(stat average_exec_per_sec)"
    units="$(stat new_units_added)"
    cov="$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -n 1 | cut -d' ' -f2)"
    if [[ $rc -ne 0 ]]; then
        failed+=("$t")
        summary+=("$(printf '%-14s FAILED (exit %s)' "$t" "$rc")")
        echo "-- $t FAILED (exit $rc); last lines of its log:" >&2
        tail -n 60 "$log" >&2
    else
        summary+=("$(printf '%-14s ok  execs=%-10s exec/s=%-8s cov=%-6s new_units=%s' \
            "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${units:-?}")")
    fi
done

echo
echo "== [+${SECONDS}s] fuzz summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [[ "${FUZZ_KEEP_CORPUS:-0}" == 1 ]]; then
    echo "corpus and logs kept in $scratch_root"
fi
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashing inputs are in fuzz/artifacts/<target>/; reproduce with" >&2
    echo "  cargo +$TOOLCHAIN fuzz run -a <target> fuzz/artifacts/<target>/<file>" >&2
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
