#!/usr/bin/env bash
# The main job: a short CLI session on a local key.
#   keygen -> encrypt -> inspect -> decrypt (whole and a byte range)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --features cli --bin cmk-envelope
bin="$PWD/target/release/cmk-envelope"

work="$(mktemp -d "${TMPDIR:-/tmp}/cmk-envelope-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

set -x
"$bin" keygen --alg A256KW --kid demo-cmk --out cmk.jwk
head -c 1000000 /dev/urandom > model.bin
"$bin" encrypt --kek cmk.jwk --context "models/ft-0042.bin" -o model.cmke model.bin
"$bin" inspect model.cmke
"$bin" decrypt --kek cmk.jwk --context "models/ft-0042.bin" -o model.out model.cmke
cmp model.bin model.out
"$bin" decrypt --kek cmk.jwk --context "models/ft-0042.bin" --range 500000:500016 model.cmke | od -An -tx1
# the same envelope under another object's name is refused
if "$bin" decrypt --kek cmk.jwk --context "models/other.bin" -o wrong.out model.cmke; then exit 1; fi
test ! -e wrong.out
set +x
echo "demo: round trip, range read and wrong-context refusal all behaved"
