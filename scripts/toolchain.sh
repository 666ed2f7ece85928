#!/usr/bin/env bash
# Makes sure this machine has what the Rust build needs: the pinned toolchain with rustfmt and
# clippy, and a way to build for wasm32 (rustup's target, or Debian's rustc-web with build-std
# when rustup's servers cannot be reached). Idempotent; prints what it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "toolchain: cargo is missing; this project's machines come with rustup" >&2
  exit 1
fi
# rust-toolchain.toml names the version; rustup installs it on first use.
rustup show active-toolchain >/dev/null

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "toolchain: adding the wasm32 target" >&2
  if ! rustup target add wasm32-unknown-unknown; then
    echo "toolchain: rustup could not add wasm32; falling back to Debian's rustc-web" >&2
    scripts/apt-install.sh rustc-web cargo-web rust-web-src rust-web-llvm lld-22
  fi
fi
