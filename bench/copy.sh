#!/usr/bin/env bash
# The registry copier beside skopeo in one run (modules/distribution/benches/copy.rs), after
# installing what the comparison needs from Debian: the registry it copies between, htpasswd for
# the registries that take logins, skopeo, and GNU time, which measures skopeo's CPU and memory.
# Results go to docs/benchmarks.md by hand, with the machine they were measured on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-install.sh docker-registry apache2-utils skopeo time
cargo bench -j2 -p weir-distribution --bench copy
