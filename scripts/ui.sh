#!/usr/bin/env bash
# Builds the editor: ui/ (Leptos) for wasm32 with the size profile, then wasm-bindgen into
# ui/dist/, which `weir up` serves. Installs wasm-bindgen-cli (matching Cargo.lock) into
# ~/.cargo/bin the first time. Debian's wasm-opt (binaryen 108) corrupts wasm-bindgen output and
# is never used; dropping the name section gives most of its gain.
# Usage: scripts/ui.sh            (WEIR_UI_PROFILE=dev for a faster, larger debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile="${WEIR_UI_PROFILE:-wasm-release}"
jobs="${WEIR_JOBS:-2}"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  echo "ui: installing wasm-bindgen-cli $version (a few minutes, once per machine)" >&2
  # Its packaged lockfile wants a webpki-roots this registry may not serve; unlocked works.
  cargo install -j"$jobs" --locked wasm-bindgen-cli --version "$version" ||
    cargo install -j"$jobs" wasm-bindgen-cli --version "$version"
fi

scripts/wasm.sh build -j"$jobs" --locked --profile "$profile" -p weir-ui
target="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/${profile/#dev/debug}/weir-ui.wasm"
dist=ui/dist
rm -rf "$dist.new" && mkdir -p "$dist.new"
wasm-bindgen --target web --no-typescript --remove-name-section --out-dir "$dist.new" --out-name app "$target"
sed 's#</head>#  <script type="module">import init from "./app.js"; init();</script>\n</head>#' \
  ui/index.html > "$dist.new/index.html"
rm -rf "$dist" && mv "$dist.new" "$dist"
echo "ui: built $dist/ ($(du -b "$dist/app_bg.wasm" | cut -f1) bytes of wasm, $(gzip -9c "$dist/app_bg.wasm" | wc -c) gzipped)" >&2
