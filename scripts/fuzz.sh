#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and runs each for a while (see
# docs/fuzzing.md).
#
#   scripts/fuzz.sh                        # short mode: 30 s per target, 2 targets at a time
#   FUZZ_SECONDS=10 scripts/fuzz.sh        # shorter (CI: .ci/run)
#   FUZZ_MODE=long scripts/fuzz.sh         # long mode: 1 h per target, one target at a
#                                          # time on every core (-jobs/-workers)
#   FUZZ_TARGETS="read_at jwk" scripts/fuzz.sh   # a subset
#
# Variables: FUZZ_SECONDS (per target), FUZZ_PARALLEL (targets run at once;
# short mode 2, long mode 1), FUZZ_JOBS (libFuzzer processes per target;
# short mode 1, long mode the number of cores), FUZZ_KEEP_CORPUS=1 (keep
# what the run discovered, and the logs), FUZZ_TOOLCHAIN (default nightly).
#
# Needs a nightly toolchain (for the sanitizer flags); installs cargo-fuzz
# when it is missing. Builds with debug assertions and overflow checks
# (`-a`) on top of AddressSanitizer.
#
# Each target starts from its committed seeds (fuzz/corpus/<t>/seed-*),
# read-only, with its dictionary (fuzz/dict/<t>.dict) if it has one; the
# units it discovers go to a scratch directory deleted afterwards, so the
# repository is left untouched apart from fuzz/artifacts/ (ignored), where
# libFuzzer writes crashing inputs. Every target runs with limits: a
# per-input timeout, an RSS limit and a largest single allocation (the
# table below): unbounded work or memory is a crash.
#
# Exits non-zero if any target crashes (panic, failed assertion, sanitizer
# report, timeout, OOM, an allocation over the limit) or fails to build.

set -euo pipefail

cd "$(dirname "$0")/.."

MODE="${FUZZ_MODE:-short}"
case "$MODE" in
short)
    SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
    PARALLEL="${FUZZ_PARALLEL:-2}"
    JOBS="${FUZZ_JOBS:-1}"
    ;;
long)
    SECONDS_PER_TARGET="${FUZZ_SECONDS:-3600}"
    PARALLEL="${FUZZ_PARALLEL:-1}"
    JOBS="${FUZZ_JOBS:-$(nproc)}"
    ;;
*)
    echo "fuzz.sh: FUZZ_MODE is short or long, not $MODE" >&2
    exit 2
    ;;
esac
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
ALL_TARGETS="header_parse open_envelope read_at chunk_open envelope_differential
cse_metadata cse_differential cse_decrypt document_fields document_cipher cosmos_ae_metadata
cosmos_ae_item jwk scope_record pkcs11_uri key_vault_url key_vault_response blob_metadata"
read -r -d '' -a TARGETS <<<"${FUZZ_TARGETS:-$ALL_TARGETS}" || true

# Per target: RSS limit and largest single allocation, in MB. The
# differential targets hold every decryption path's buffers at once (the
# async reader's 512 KiB ring, parallel windows of 2 MiB, a file); the
# parsers' inputs are at most a few hundred KiB. The RSS limits leave room
# for what a process holds anyway after minutes of fuzzing
# (AddressSanitizer's 256 MB quarantine, libFuzzer's corpus: about 500 MB
# after a minute); the allocation limits are what catches one input asking
# for unbounded memory.
limits() {
    case "$1" in
    envelope_differential | cse_differential | cse_decrypt | read_at | open_envelope) echo "2560 128" ;;
    *) echo "2048 64" ;;
    esac
}

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing the $TOOLCHAIN toolchain" >&2
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

echo "== [+${SECONDS}s] building ${#TARGETS[@]} fuzz targets (cargo +$TOOLCHAIN fuzz build -a)"
build_start=$SECONDS
cargo "+$TOOLCHAIN" fuzz build -a
echo "== [+${SECONDS}s] built in $((SECONDS - build_start))s"

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/cmk-envelope-fuzz.XXXXXX")"
if [[ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]]; then
    trap 'rm -rf "$scratch_root"' EXIT
fi

# Runs one target; its log is $scratch_root/<t>.log, its exit status
# $scratch_root/<t>.rc.
run_target() {
    local t="$1" seeds="fuzz/corpus/$1" work="$scratch_root/corpus/$1" log="$scratch_root/$1.log"
    local rss malloc dict=()
    read -r rss malloc <<<"$(limits "$t")"
    if [[ -f "fuzz/dict/$t.dict" ]]; then
        dict=("-dict=fuzz/dict/$t.dict")
    fi
    mkdir -p "$work" "$seeds" "fuzz/artifacts/$t"
    local parallel=()
    if [[ "$JOBS" -gt 1 ]]; then
        parallel=("-jobs=$JOBS" "-workers=$JOBS")
    fi
    # The first corpus directory receives new units; the seed directory
    # after it is only read.
    set +e
    cargo "+$TOOLCHAIN" fuzz run -a "$t" "$work" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
        -rss_limit_mb="$rss" -malloc_limit_mb="$malloc" \
        "${dict[@]}" "${parallel[@]}" -print_final_stats=1 >"$log" 2>&1
    echo $? >"$scratch_root/$t.rc"
    set -e
    # The 1-minute load average as the target ends (execs depend on it).
    cut -d' ' -f1 /proc/loadavg >"$scratch_root/$t.load"
    # With -jobs, each worker logs to fuzz-<n>.log in the working directory.
    if [[ "$JOBS" -gt 1 ]]; then
        cat fuzz-*.log >>"$log" 2>/dev/null || true
        rm -f fuzz-*.log
    fi
}

echo "== [+${SECONDS}s] fuzzing ${#TARGETS[@]} targets for ${SECONDS_PER_TARGET}s each," \
    "$PARALLEL at a time, $JOBS job(s) each ($MODE mode)"
running=0
for t in "${TARGETS[@]}"; do
    echo "== [+${SECONDS}s] $t (seeds: $(find "fuzz/corpus/$t" -name 'seed-*' 2>/dev/null | wc -l))"
    run_target "$t" &
    running=$((running + 1))
    if [[ $running -ge $PARALLEL ]]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    log="$scratch_root/$t.log"
    rc="$(cat "$scratch_root/$t.rc" 2>/dev/null || echo 1)"
    stat() { { sed -n "s/^stat::$1: *//p" "$log" || true; } | awk '{s += $1} END {print s + 0}'; }
    execs="$(stat number_of_executed_units)"
    rate=$((execs / (SECONDS_PER_TARGET > 0 ? SECONDS_PER_TARGET : 1)))
    units="$(stat new_units_added)"
    cov="$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -n 1 | cut -d' ' -f2)"
    if [[ "$rc" -ne 0 ]]; then
        failed+=("$t")
        summary+=("$(printf '%-22s FAILED (exit %s)' "$t" "$rc")")
        echo "-- $t FAILED (exit $rc); last lines of its log:" >&2
        tail -n 60 "$log" >&2
    else
        summary+=("$(printf '%-22s ok  execs=%-10s exec/s=%-8s cov=%-6s new_units=%-6s load=%s' \
            "$t" "$execs" "$rate" "${cov:-?}" "$units" "$(cat "$scratch_root/$t.load")")")
    fi
done

echo
echo "== [+${SECONDS}s] fuzz summary (${SECONDS_PER_TARGET}s per target, $MODE mode; load: $(cut -d' ' -f1-3 /proc/loadavg))"
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
