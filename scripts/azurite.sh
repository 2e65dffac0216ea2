#!/usr/bin/env bash
# Azurite, the Azure Storage emulator, for the `blob` tests and
# benchmark.
#
#   source scripts/azurite.sh      start it for the calling shell; it is
#                                  stopped when that shell exits
#   scripts/azurite.sh CMD ARGS..  run CMD with Azurite up, then stop it
#                                  (e.g. scripts/azurite.sh cargo bench
#                                  --features blob --bench azure_blob)
#
# Installs azurite@3.35.0 with npm into .azurite/ (gitignored) when it is
# missing, starts node_modules/.bin/azurite-blob directly (not through npx)
# in memory on a free port, reads the port from its "listens on" line
# (printed even with --silent), checks the process is alive, and exports
#   AZURITE_BLOB_STORAGE_URL  http://127.0.0.1:PORT (account devstoreaccount1)
#   AZURITE_BLOB_BIN          the azurite-blob executable (the fault test
#                             starts its own, disk-backed instance)

AZURITE_VERSION=3.35.0
azurite_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZURITE_DIR="${AZURITE_DIR:-$azurite_repo/.azurite}"

azurite_install() {
    local pkg="$AZURITE_DIR/node_modules/azurite/package.json"
    if [ -f "$pkg" ] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$pkg" \
        && [ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "azurite.sh: npm is needed to install azurite@$AZURITE_VERSION (Node.js 18+)" >&2
        return 1
    fi
    echo "== installing azurite@$AZURITE_VERSION into $AZURITE_DIR" >&2
    mkdir -p "$AZURITE_DIR"
    npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2
}

azurite_stop() {
    if [ -n "${AZURITE_PID:-}" ]; then
        kill "$AZURITE_PID" 2>/dev/null || true
        wait "$AZURITE_PID" 2>/dev/null || true
        AZURITE_PID=""
    fi
    if [ -n "${AZURITE_WORK:-}" ]; then
        rm -rf "$AZURITE_WORK"
        AZURITE_WORK=""
    fi
}

azurite_start() {
    azurite_install || return 1
    AZURITE_BLOB_BIN="$AZURITE_DIR/node_modules/.bin/azurite-blob"
    AZURITE_WORK="$(mktemp -d)"
    # exec: $! is Azurite's own pid, so it can be stopped exactly.
    (cd "$AZURITE_WORK" && exec "$AZURITE_BLOB_BIN" --blobHost 127.0.0.1 --blobPort 0 \
        --inMemoryPersistence --silent --disableTelemetry --skipApiVersionCheck) \
        >"$AZURITE_WORK/azurite.log" 2>&1 &
    AZURITE_PID=$!
    trap azurite_stop EXIT
    trap 'azurite_stop; exit 130' INT
    trap 'azurite_stop; exit 143' TERM
    local url="" i
    for i in $(seq 1 300); do
        url="$(grep -o 'listens on http://127\.0\.0\.1:[0-9]*' "$AZURITE_WORK/azurite.log" 2>/dev/null \
            | head -n1 | sed 's/^listens on //' || true)"
        [ -n "$url" ] && break
        if ! kill -0 "$AZURITE_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$url" ] || ! kill -0 "$AZURITE_PID" 2>/dev/null; then
        echo "azurite.sh: Azurite did not start; its output:" >&2
        cat "$AZURITE_WORK/azurite.log" >&2 || true
        azurite_stop
        return 1
    fi
    export AZURITE_BLOB_STORAGE_URL="$url"
    export AZURITE_BLOB_BIN
    echo "== Azurite $AZURITE_VERSION (pid $AZURITE_PID) listens on $AZURITE_BLOB_STORAGE_URL" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed: run the given command with Azurite up.
    set -euo pipefail
    if [ "$#" -eq 0 ]; then
        echo "usage: scripts/azurite.sh CMD [ARGS...]   (or: source scripts/azurite.sh)" >&2
        exit 2
    fi
    azurite_start
    set +e
    "$@"
    status=$?
    set -e
    azurite_stop
    exit "$status"
else
    azurite_start
fi
