#!/usr/bin/env bash
# The project's test command (README, "Run it"). Installs what it
# needs (SoftHSM2, Azurite, the Azure Storage Python SDK, a Cosmos DB
# server, the Cosmos DB JavaScript SDK), then runs formatting, lints and
# every test, for both crypto providers. Exits non-zero on the first
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
# Section headers carry the seconds elapsed, to see where CI time goes.
say() { echo "== [+${SECONDS}s] $*"; }

# Toolchain components used below.
if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi

# SoftHSM2 for the PKCS#11 tests (tests/pkcs11.rs fails, never skips,
# without it).
if ! need softhsm2-util; then
    say "installing softhsm2"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2
fi

# openssl makes the Cosmos DB server's test certificates
# (scripts/cosmosdb.sh).
if ! need openssl; then
    say "installing openssl"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi

# The official Azure Storage Python SDK, for the client-side encryption
# interoperability tests (tests/azure_cse.rs fails, never skips, without
# it). A local virtual environment under target/, created once.
PYVENV="$PWD/target/pyvenv"
if ! "$PYVENV/bin/python" -c "import azure.storage.blob._encryption, cryptography" >/dev/null 2>&1; then
    say "installing azure-storage-blob into $PYVENV"
    mkdir -p target
    python3 -m venv "$PYVENV"
    "$PYVENV/bin/pip" install --quiet --disable-pip-version-check 'azure-storage-blob>=12.31,<13' cryptography
fi
export CMK_CSE_PYTHON="$PYVENV/bin/python"

# Azurite, the Azure Storage emulator, for tests/azure_blob.rs (which fails,
# never skips, without it): installed into .azurite/ with npm when missing,
# started in memory for the whole run, stopped on exit.
# shellcheck source=scripts/azurite.sh
source scripts/azurite.sh

# A Cosmos DB server (@vercel/cosmosdb-server with the extensions of
# tests/fixtures/cosmosdb_server.js) for tests/cosmos.rs, which fails, never
# skips, without it: installed into .cosmosdb/ with npm when missing,
# started with a fresh test CA for the whole run, stopped on exit. Sourced
# after azurite.sh: its exit trap stops both servers.
# shellcheck source=scripts/cosmosdb.sh
source scripts/cosmosdb.sh

# The official Azure Cosmos DB JavaScript SDK (@azure/cosmos, pinned), whose
# own client-side encryption code tests/cosmos_ae.rs and the cosmos-ae CLI
# tests run through Node (they fail, never skip, without it): installed
# into .cosmos-sdk/ with npm when missing; exports CMK_COSMOS_SDK_DIR.
# shellcheck source=scripts/cosmos-sdk.sh
source scripts/cosmos-sdk.sh

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (all targets, all features)"
cargo clippy --all-targets --all-features -- -D warnings

say "tests: all features (aws-lc-rs and rustcrypto providers, cross-provider, CLI)"
mkdir -p target
set +e
cargo test --all-features -- --nocapture 2>&1 | tee target/test-all-features.log \
    | grep -E "^(test result|wycheproof|conformance|tamper|scope)|FAILED|panicked|Running"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "tests failed (full log: target/test-all-features.log); the failures:"
    grep -E -B2 -A30 "^failures:|panicked" target/test-all-features.log | tail -200
    exit "$status"
fi

# Every test again with the RustCrypto provider as the only provider: all
# features but `aws-lc-rs`, so the tests of every backend (Key Vault,
# PKCS#11, Azure Blob, Cosmos DB, CSE, tantivy, CLI) run on it too.
# (aws-lc-rs is still compiled as a dev-dependency of the test TLS server;
# with the same features as above, the dependency graph is reused instead
# of rebuilt.)
RC_FEATURES=rustcrypto,azure-cse,blob,cosmos,cosmos-ae,pkcs11,document,index,cli,tokio
say "tests: pure-Rust provider only (--no-default-features --features $RC_FEATURES)"
cargo test --no-default-features --features "$RC_FEATURES"

say "check: the pure-Rust provider alone (--no-default-features --features rustcrypto)"
cargo check --no-default-features --features rustcrypto --lib

say "docs as docs.rs builds them (all features, --cfg docsrs), each feature's items marked"
scripts/docs-rs.sh
say "all tests passed"
