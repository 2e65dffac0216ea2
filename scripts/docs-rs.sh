#!/usr/bin/env bash
# The API docs as docs.rs builds them ([package.metadata.docs.rs] in
# Cargo.toml): every feature, `--cfg docsrs` (which turns on `doc_cfg`, so
# each feature-gated item says which feature it needs), warnings as errors.
# Then checks, in the generated HTML, that the items of every optional
# backend are there and marked with their feature. Exits non-zero on any
# warning or missing mark.
#
# docs.rs runs nightly rustdoc. With a nightly toolchain installed this
# script does too (its first run checks every dependency with nightly:
# minutes). Without one (a machine of this project's kind has one toolchain
# and can fetch no other), or with DOCS_RS_TOOLCHAIN=installed, it runs the
# installed rustdoc with RUSTC_BOOTSTRAP=1 — set for rustdoc only, through
# a wrapper — which unlocks the same unstable `doc_cfg`; it prints which of
# the two it used.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=()
if [ "${DOCS_RS_TOOLCHAIN:-nightly}" = nightly ] \
    && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    echo "docs-rs.sh: nightly rustdoc, as on docs.rs: $(rustdoc +nightly --version)"
else
    mkdir -p target
    wrapper="$PWD/target/rustdoc-with-doc-cfg"
    printf '#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec rustdoc "$@"\n' >"$wrapper"
    chmod +x "$wrapper"
    export RUSTDOC="$wrapper"
    echo "docs-rs.sh: not nightly (none here, or DOCS_RS_TOOLCHAIN=installed): $(rustdoc --version) with RUSTC_BOOTSTRAP=1 for doc_cfg"
fi
RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo "${toolchain[@]}" doc --no-deps --all-features

doc=target/doc/cmk_envelope
missing=0
# file under target/doc/cmk_envelope, then the feature its mark must name
check() {
    local page="$doc/$1" feature="$2"
    if [ ! -f "$page" ]; then
        echo "docs-rs.sh: missing page $page (feature $feature)" >&2
        missing=1
    # an item's own page: "Available on <strong>crate feature <code>x</code>";
    # a listing: the badge's title "Available on crate feature `x` only"
    elif ! grep -q -e "Available on <strong>crate features\? [^.]*<code>$feature</code>" \
        -e "title=\"Available on crate features\? [^\"]*\`$feature\`" "$page"; then
        echo "docs-rs.sh: $page is not marked with feature \`$feature\`" >&2
        missing=1
    fi
}
check kek/azure/index.html azure
check kek/azure/struct.AzureKeyVaultKek.html azure
check kek/pkcs11/index.html pkcs11
check kek/pkcs11/struct.Pkcs11Kek.html pkcs11
check blob/index.html blob
check blob/struct.EncryptedBlobClient.html blob
check blob/struct.BlobScopeStore.html blob
check azure_cse/index.html azure-cse
check index/index.html index
check index/struct.EncryptedDirectory.html index
check document/index.html document
check document/struct.DocumentCipher.html document
check conformance/index.html conformance
check conformance/kek/fn.run.html conformance
check conformance/store/fn.run.html conformance
check struct.RetryConfig.html azure
check struct.RetryConfig.html pkcs11
check stream/struct.AsyncDecryptingReader.html tokio
# the crate root and `kek` list each optional module with its feature
for feature in azure-cse blob conformance cosmos cosmos-ae document index tokio; do
    check index.html "$feature"
done
check kek/index.html azure
check kek/index.html pkcs11
if [ "$missing" -ne 0 ]; then
    echo "docs-rs.sh: feature-gated items are missing or unmarked" >&2
    exit 1
fi
echo "docs-rs.sh: every feature's items are documented and marked with their feature"
