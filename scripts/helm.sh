#!/usr/bin/env bash
# scripts/helm.sh — build helm from source through the Go module proxy, once per machine, for the
# chart checks (helm lint, helm template). helm's go.mod has no replace/exclude lines, so a plain
# `go install` of its cmd/helm works. Helm 4 reads the client-go version from the build info, so
# `helm template`'s default Kubernetes version needs no -X ldflags (only the version string does).
#
# Usage: scripts/helm.sh        -> last stdout line is the bin dir holding helm
# Cache: ${WEIR_CACHE:-$HOME/.cache/weir}/helm/<version>/bin/ (outside the clone).
# A cached run exits at once (~3 ms). A cold build (helm's ~170 modules not yet in the Go module
# cache, downloads included) took 214 s wall here (2 cores, a cargo build running alongside; peak
# 0.9 GB RSS); with the Go caches warm it takes ~5 s. Progress goes to stderr. Needs: go >= 1.26
# (helm's go.mod says go 1.26.0), flock.
set -euo pipefail

# ---- the only place the version is pinned -----------------------------------------------------
HELM_VERSION=v4.2.4
# -----------------------------------------------------------------------------------------------

ROOT="${WEIR_CACHE:-$HOME/.cache/weir}/helm"
OUT="$ROOT/$HELM_VERSION"
BIN="$OUT/bin"

have_all() { [[ -x $BIN/helm ]]; }
TOOL=helm
# shellcheck source=scripts/go-tool.sh
source "$(dirname "$0")/go-tool.sh"
go_tool_start
log "building helm $HELM_VERSION with $("$GO" version)"
log "into $BIN (module cache $("$GO" env GOMODCACHE), build cache $("$GO" env GOCACHE))"
start=$SECONDS

# Built into a temp dir next to the cache dir and renamed at the end, so a half build never looks
# done. `go install pkg@version` ignores any go.mod around it, so the working directory is moot.
tmp="$(mktemp -d "$ROOT/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out/bin"
cd "$tmp"
# The -X is what upstream's Makefile sets: without it `helm version` says only "v4.2".
GOBIN="$tmp/out/bin" nice -n 10 "$GO" install -trimpath \
  -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2

# ---- smoke check, then publish atomically ------------------------------------------------------
got="$("$tmp/out/bin/helm" version --template '{{.Version}}')"
[[ $got == "$HELM_VERSION" ]] || { log "built helm says $got, wanted $HELM_VERSION"; exit 1; }
cd "$ROOT"
rm -rf "$OUT"
mv "$tmp/out" "$OUT"
log "done in $((SECONDS - start))s: $(du -sh "$BIN" | cut -f1) in $BIN"
echo "$BIN"
