#!/usr/bin/env bash
# The CLI against its baselines, measured as ratios in one run:
#   * file to file on tmpfs: encrypt and decrypt vs `cp` of the same file;
#   * peak RSS (`/usr/bin/time -v`, or /proc-based fallback) of each;
#   * 1 GiB encrypt to stdout redirected to /dev/null: --threads 2 vs 1.
#
# Usage: scripts/bench-cli-parallel.sh [SIZE_MIB (default 1024)]
# Needs a release build: cargo build --release --features cli --bin cmk-envelope
# (CARGO_TARGET_DIR is honoured). Uses /dev/shm (tmpfs).
set -euo pipefail

SIZE_MIB=${1:-1024}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/cmk-envelope}
DIR=$(mktemp -d /dev/shm/cmk-cli-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

now() { date +%s.%N; }
elapsed() { # seconds taken by "$@" (best of 3)
  local best=
  for _ in 1 2 3; do
    local t0 t1 d
    t0=$(now); "$@"; t1=$(now)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || (( $(echo "$d < $best" | bc -l) )); then best=$d; fi
  done
  echo "$best"
}
peak_rss_kib() { # max resident set size of "$@", KiB
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}'
  else
    python3 - "$@" <<'EOF'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF
  fi
}

"$BIN" keygen --alg A256KW --kid bench --out "$DIR/k.jwk"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$DIR/plain"
K=(--kek "$DIR/k.jwk" --context bench/obj)

enc() { "$BIN" encrypt "${K[@]}" --force --threads "$1" -o "$DIR/ct" "$DIR/plain"; }
dec() { "$BIN" decrypt "${K[@]}" --force --threads "$1" -o "$DIR/pt" "$DIR/ct"; }
cpf() { cp "$DIR/plain" "$DIR/copy"; rm -f "$DIR/copy"; }
enc_null() { "$BIN" encrypt "${K[@]}" --threads "$1" "$DIR/plain" >/dev/null; }

enc 2
t_cp=$(elapsed cpf)
t_enc2=$(elapsed enc 2)
t_dec2=$(elapsed dec 2)
t_enc1=$(elapsed enc 1)
t_dec1=$(elapsed dec 1)
cmp "$DIR/plain" "$DIR/pt"
t_null1=$(elapsed enc_null 1)
t_null2=$(elapsed enc_null 2)
rss_enc=$(peak_rss_kib "$BIN" encrypt "${K[@]}" --force --threads 2 -o "$DIR/ct" "$DIR/plain")
rss_dec=$(peak_rss_kib "$BIN" decrypt "${K[@]}" --force --threads 2 -o "$DIR/pt" "$DIR/ct")
rss_enc1=$(peak_rss_kib "$BIN" encrypt "${K[@]}" --force --threads 1 -o "$DIR/ct" "$DIR/plain")

r() { echo "scale=2; $1 / $2" | bc -l; }
cat <<EOF
object: ${SIZE_MIB} MiB on tmpfs, $(nproc) cores (best of 3 each)
cp                          ${t_cp}s
encrypt file->file  -t2     ${t_enc2}s   = $(r "$t_enc2" "$t_cp") x cp   (target <= 1.3)
decrypt file->file  -t2     ${t_dec2}s   = $(r "$t_dec2" "$t_cp") x cp   (target <= 1.3)
encrypt file->file  -t1     ${t_enc1}s   = $(r "$t_enc1" "$t_cp") x cp
decrypt file->file  -t1     ${t_dec1}s   = $(r "$t_dec1" "$t_cp") x cp
encrypt ->/dev/null -t1     ${t_null1}s
encrypt ->/dev/null -t2     ${t_null2}s   = $(r "$t_null2" "$t_null1") x -t1 (target <= 0.65)
peak RSS encrypt -t2        ${rss_enc} KiB (target <= 32768)
peak RSS decrypt -t2        ${rss_dec} KiB
peak RSS encrypt -t1        ${rss_enc1} KiB
EOF
