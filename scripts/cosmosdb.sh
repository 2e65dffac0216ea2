#!/usr/bin/env bash
# A Cosmos DB server for the `cosmos` tests: @vercel/cosmosdb-server,
# started through tests/fixtures/cosmosdb_server.js (its library API plus
# the extensions the official Rust SDK needs; that file lists them).
#
#   source scripts/cosmosdb.sh     start it for the calling shell; it is
#                                  stopped when that shell exits
#   scripts/cosmosdb.sh CMD ARGS.. run CMD with the server up, then stop it
#                                  (e.g. scripts/cosmosdb.sh cargo test
#                                  --features cosmos --test cosmos)
#
# Installs @vercel/cosmosdb-server@1.0.1 with npm into .cosmosdb/
# (gitignored) when it is missing. Each start makes a fresh test CA and a
# server certificate for 127.0.0.1 and localhost (openssl, EC P-256, valid
# for two days), starts the server on a free loopback port, waits until it
# has answered a request over TLS validated against that CA, and exports
#   COSMOS_ENDPOINT     https://127.0.0.1:PORT/
#   COSMOS_KEY          the account key (random for each start; the server
#                       checks every request's signature with it)
#   COSMOS_AAD_TOKEN    the one Entra ID bearer token the server accepts
#                       (random for each start; what the tests' token
#                       credential hands out)
#   COSMOS_CA_CERT      the test CA certificate (PEM)
#   SSL_CERT_FILE       the system's CA bundle plus the test CA: the Rust
#                       SDK's TLS stack (reqwest's rustls platform verifier,
#                       through rustls-native-certs) reads its trust anchors
#                       from this file, so the tests keep certificate
#                       validation on instead of the SDK's emulator bypass.
#                       Every public root stays trusted.
#   COSMOSDB_SERVER_JS  the fixture script, COSMOSDB_NODE_PATH its
#                       node_modules, COSMOSDB_SERVER_CERT and
#                       COSMOSDB_SERVER_KEY the server's certificate and key
#                       (for tests that start their own server, e.g. with
#                       --state FILE to kill and restart it)

COSMOSDB_VERSION=1.0.1
cosmosdb_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COSMOSDB_DIR="${COSMOSDB_DIR:-$cosmosdb_repo/.cosmosdb}"

cosmosdb_install() {
    local pkg="$COSMOSDB_DIR/node_modules/@vercel/cosmosdb-server/package.json"
    if [ -f "$pkg" ] && grep -q "\"version\": \"$COSMOSDB_VERSION\"" "$pkg"; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "cosmosdb.sh: npm is needed to install @vercel/cosmosdb-server@$COSMOSDB_VERSION (Node.js 20+)" >&2
        return 1
    fi
    echo "== installing @vercel/cosmosdb-server@$COSMOSDB_VERSION into $COSMOSDB_DIR" >&2
    mkdir -p "$COSMOSDB_DIR"
    npm install --prefix "$COSMOSDB_DIR" --no-audit --no-fund --loglevel=error \
        "@vercel/cosmosdb-server@$COSMOSDB_VERSION" >&2
}

# The system CA bundle the test CA is appended to (the first that exists).
cosmosdb_system_bundle() {
    local f
    for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt \
        /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        if [ -n "$f" ] && [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
}

# A test CA and a server certificate for 127.0.0.1 and localhost, in $1.
cosmosdb_certs() {
    local dir="$1"
    if ! command -v openssl >/dev/null 2>&1; then
        echo "cosmosdb.sh: openssl is needed to make the test certificates" >&2
        return 1
    fi
    (
        cd "$dir" || exit 1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout ca.key -out ca.pem -days 2 -subj "/CN=cmk-envelope test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 2 -extfile server.ext -out server.pem
    ) >"$dir/openssl.log" 2>&1 || {
        echo "cosmosdb.sh: making the test certificates failed:" >&2
        cat "$dir/openssl.log" >&2
        return 1
    }
    local system
    system="$(cosmosdb_system_bundle)"
    { [ -n "$system" ] && cat "$system"; cat "$dir/ca.pem"; } >"$dir/trust.pem"
}

cosmosdb_stop() {
    if [ -n "${COSMOSDB_PID:-}" ]; then
        kill "$COSMOSDB_PID" 2>/dev/null || true
        wait "$COSMOSDB_PID" 2>/dev/null || true
        COSMOSDB_PID=""
    fi
    if [ -n "${COSMOSDB_WORK:-}" ]; then
        rm -rf "$COSMOSDB_WORK"
        COSMOSDB_WORK=""
    fi
}

cosmosdb_start() {
    cosmosdb_install || return 1
    if ! command -v node >/dev/null 2>&1; then
        echo "cosmosdb.sh: node (20+) is needed to run the Cosmos DB server" >&2
        return 1
    fi
    COSMOSDB_WORK="$(mktemp -d)"
    cosmosdb_certs "$COSMOSDB_WORK" || { cosmosdb_stop; return 1; }
    COSMOSDB_SERVER_JS="$cosmosdb_repo/tests/fixtures/cosmosdb_server.js"
    COSMOSDB_NODE_PATH="$COSMOSDB_DIR/node_modules"
    local key token
    key="$(openssl rand -base64 64 | tr -d '\n')"
    token="$(openssl rand -hex 32)"
    # exec: $! is node's own pid, so it can be stopped exactly. The key
    # and token go through the environment, not the command line.
    (exec env NODE_PATH="$COSMOSDB_NODE_PATH" COSMOS_KEY="$key" COSMOS_AAD_TOKEN="$token" \
        node "$COSMOSDB_SERVER_JS" \
        --cert "$COSMOSDB_WORK/server.pem" --key "$COSMOSDB_WORK/server.key" \
        --ca "$COSMOSDB_WORK/ca.pem") >"$COSMOSDB_WORK/server.log" 2>&1 &
    COSMOSDB_PID=$!
    # Chain onto traps already set (by scripts/azurite.sh when both are
    # sourced), so each server is stopped on exit.
    local prev_exit
    prev_exit="$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")"
    trap "cosmosdb_stop; ${prev_exit:-:}" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local url="" i
    for i in $(seq 1 300); do
        url="$(grep -o 'listens on https://127\.0\.0\.1:[0-9]*/' "$COSMOSDB_WORK/server.log" 2>/dev/null \
            | head -n1 | sed 's/^listens on //' || true)"
        [ -n "$url" ] && break
        if ! kill -0 "$COSMOSDB_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$url" ] || ! kill -0 "$COSMOSDB_PID" 2>/dev/null; then
        echo "cosmosdb.sh: the Cosmos DB server did not start; its output:" >&2
        cat "$COSMOSDB_WORK/server.log" >&2 || true
        cosmosdb_stop
        return 1
    fi
    export COSMOS_ENDPOINT="$url"
    export COSMOS_KEY="$key"
    export COSMOS_AAD_TOKEN="$token"
    export COSMOS_CA_CERT="$COSMOSDB_WORK/ca.pem"
    export COSMOSDB_SERVER_CERT="$COSMOSDB_WORK/server.pem"
    export COSMOSDB_SERVER_KEY="$COSMOSDB_WORK/server.key"
    export SSL_CERT_FILE="$COSMOSDB_WORK/trust.pem"
    export COSMOSDB_SERVER_JS COSMOSDB_NODE_PATH
    echo "== cosmosdb-server $COSMOSDB_VERSION (pid $COSMOSDB_PID) listens on $COSMOS_ENDPOINT" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed: run the given command with the server up.
    set -euo pipefail
    if [ "$#" -eq 0 ]; then
        echo "usage: scripts/cosmosdb.sh CMD [ARGS...]   (or: source scripts/cosmosdb.sh)" >&2
        exit 2
    fi
    cosmosdb_start
    set +e
    "$@"
    status=$?
    set -e
    cosmosdb_stop
    exit "$status"
else
    cosmosdb_start
fi
