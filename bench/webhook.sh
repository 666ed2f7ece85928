#!/usr/bin/env bash
# A webhook's round trip, Weir and Node-RED side by side in one run: Node-RED 4.1's http in →
# function → http response (bench/node-red/webhook.js) is started, and the Weir bench
# (modules/http/benches/webhook.rs) measures its own webhook → respond flow and that URL in
# turns, at 1, 2, 4 and 8 connections, three rounds. Then the idle RSS of each: `weir module
# http` (release) and the Node-RED process, after 5 s. Results go to docs/benchmarks.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -j2 -p weir-engine --bin weir
cargo bench -q -j2 -p weir-http --bench webhook --no-run
(cd bench/node-red && npm ci --silent --no-audit --no-fund)
log="$(mktemp)"
(cd bench/node-red && exec node webhook.js) >"$log" 2>&1 &
peer=$!
trap 'kill "$peer" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^url ' "$log" && break; sleep 0.2; done
url="$(sed -n 's/^url //p' "$log")"
PEER_URL="$url" cargo bench -q -p weir-http --bench webhook 2>/dev/null
kill "$peer"

echo "== idle RSS after 5 s"
data="$(mktemp -d)"
"$target/release/weir" --data-dir "$data" module http --listen 127.0.0.1:0 \
  --grpc-listen 127.0.0.1:0 --webhook-listen 127.0.0.1:0 >/dev/null 2>&1 &
weir=$!
sleep 5
echo "weir module http: $(awk '/VmRSS/ {printf "%.1f MB", $2 / 1000}' "/proc/$weir/status")"
kill "$weir"
echo "node-red: $(cd bench/node-red && IDLE_RSS=1 node webhook.js 2>/dev/null | sed -n 's/^idle RSS //p')"
