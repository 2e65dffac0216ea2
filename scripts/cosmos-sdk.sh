#!/usr/bin/env bash
# The official Azure Cosmos DB JavaScript SDK, whose client-side encryption
# code tests/cosmos_ae.rs and benches/cosmos_ae.rs run (through
# tests/fixtures/cosmos_ae_sdk.js) to check interoperability.
#
#   source scripts/cosmos-sdk.sh      install it if needed and export
#                                     CMK_COSMOS_SDK_DIR for the calling shell
#   scripts/cosmos-sdk.sh CMD ARGS..  run CMD with it (e.g.
#                                     scripts/cosmos-sdk.sh cargo test
#                                     --features cosmos-ae --test cosmos_ae)
#
# Installs @azure/cosmos@4.10.1 (pinned: the fixture refuses any other
# version) with npm into .cosmos-sdk/ (gitignored) when it is missing, and
# exports
#   CMK_COSMOS_SDK_DIR   the install prefix (node_modules/@azure/cosmos below it)

COSMOS_SDK_VERSION=4.10.1
cosmos_sdk_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COSMOS_SDK_DIR="${COSMOS_SDK_DIR:-$cosmos_sdk_repo/.cosmos-sdk}"

cosmos_sdk_install() {
    local pkg="$COSMOS_SDK_DIR/node_modules/@azure/cosmos/package.json"
    if [ -f "$pkg" ] && grep -q "\"version\": \"$COSMOS_SDK_VERSION\"" "$pkg"; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "cosmos-sdk.sh: npm is needed to install @azure/cosmos@$COSMOS_SDK_VERSION (Node.js 20+)" >&2
        return 1
    fi
    echo "== installing @azure/cosmos@$COSMOS_SDK_VERSION into $COSMOS_SDK_DIR" >&2
    mkdir -p "$COSMOS_SDK_DIR"
    npm install --prefix "$COSMOS_SDK_DIR" --no-audit --no-fund --loglevel=error \
        --save-exact "@azure/cosmos@$COSMOS_SDK_VERSION" >&2
}

if cosmos_sdk_install; then
    export CMK_COSMOS_SDK_DIR="$COSMOS_SDK_DIR"
    echo "== @azure/cosmos $COSMOS_SDK_VERSION in $CMK_COSMOS_SDK_DIR (node $(node --version))" >&2
else
    if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 1; fi
    exit 1
fi

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed: run the given command with the SDK in place.
    set -euo pipefail
    if [ "$#" -eq 0 ]; then
        echo "usage: scripts/cosmos-sdk.sh CMD [ARGS...]   (or: source scripts/cosmos-sdk.sh)" >&2
        exit 2
    fi
    exec "$@"
fi
