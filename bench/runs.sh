#!/usr/bin/env bash
# Flow runs per second, Weir and Node-RED side by side: the two benchmarks alternate, three
# rounds each, on the same machine in the same run. Results go to docs/benchmarks.md by hand,
# with the machine they were measured on.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
cargo bench -q -j2 -p weir-runtime --bench runs --no-run
(cd bench/node-red && npm ci --silent --no-audit --no-fund)
for round in $(seq "$rounds"); do
  echo "== round $round: weir"
  cargo bench -q -p weir-runtime --bench runs 2>/dev/null | grep 'in flight'
  echo "== round $round: node-red"
  (cd bench/node-red && node runs.js 2>/dev/null | grep -E 'in flight')
done
