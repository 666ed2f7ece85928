#!/usr/bin/env bash
# Runs a cargo command for wasm32-unknown-unknown: with rustup's target when it is installed,
# otherwise with Debian's rustc-web building std from source (see scripts/toolchain.sh).
# Usage: scripts/wasm.sh check -p weir-model   (WEIR_WASM_ROUTE=debian forces the fallback)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${WEIR_WASM_ROUTE:-}" != debian ] && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  exec cargo "$@" --target wasm32-unknown-unknown
fi
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 exec /usr/bin/cargo "$@" --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort
