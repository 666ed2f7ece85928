#!/usr/bin/env bash
# scripts/node.sh — build a node's Kubernetes binaries (kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy) from source through the Go module proxy, once per machine, for the
# tests that run pods (engine/testenv's Cluster). The apiserver, etcd and kubectl come from
# scripts/control-plane.sh, whose Kubernetes version this follows; containerd, runc and the CNI
# plugins are Debian packages (scripts/apt-install.sh containerd runc containernetworking-plugins
# iptables). Notes: ../shared/reference/real-cluster.md's recipe, scripts/control-plane.md.
#
# Usage: scripts/node.sh        -> last stdout line is the bin dir holding the four binaries
# Cache: ${WEIR_CACHE:-$HOME/.cache/weir}/node/<k8s>/bin/ (outside the clone).
# A cached run exits at once; a build with the Go caches warm from control-plane.sh takes ~5 min
# on 2 cores (kubelet most of it). Progress goes to stderr. Needs: go >= 1.26, a C compiler
# (the kubelet links cgo as upstream builds it), flock.
set -euo pipefail

# The node must run the apiserver's version: read the one pin there is.
K8S_VERSION="$(sed -n 's/^K8S_VERSION=//p' "$(dirname "$0")/control-plane.sh")"
[[ -n $K8S_VERSION ]] || { echo "[node] no K8S_VERSION= line in scripts/control-plane.sh" >&2; exit 1; }

ROOT="${WEIR_CACHE:-$HOME/.cache/weir}/node"
OUT="$ROOT/$K8S_VERSION"
BIN="$OUT/bin"
COMMANDS=(kubelet kube-controller-manager kube-scheduler kube-proxy)

have_all() {
  local c
  for c in "${COMMANDS[@]}"; do [[ -x $BIN/$c ]] || return 1; done
}
TOOL=node
# shellcheck source=scripts/go-tool.sh
source "$(dirname "$0")/go-tool.sh"
go_tool_start
log "building ${COMMANDS[*]} $K8S_VERSION with $("$GO" version)"
log "into $BIN (module cache $("$GO" env GOMODCACHE), build cache $("$GO" env GOCACHE))"
start=$SECONDS

# Built in a temp dir next to the cache dir and renamed at the end, so a half build never looks
# done.
tmp="$(mktemp -d "$ROOT/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out/bin"
stage="$tmp/out/bin"

k8s_wrapper "$tmp/k8s" "$K8S_VERSION" "${COMMANDS[@]/#/k8s.io/kubernetes/cmd/}"
for c in "${COMMANDS[@]}"; do
  log "go build $c ($((SECONDS - start))s so far)"
  # Upstream links the kubelet with cgo (hack/lib/golang.sh leaves it out of its static list);
  # the others are static.
  cgo=0
  [[ $c == kubelet ]] && cgo=1
  CGO_ENABLED=$cgo gobuild -tags="$K8S_TAGS" -ldflags="$K8S_LDFLAGS" -o "$stage/$c" "k8s.io/kubernetes/cmd/$c" >&2
done

# ---- smoke check, then publish atomically ------------------------------------------------------
for c in "${COMMANDS[@]}"; do "$stage/$c" --version >&2; done
cd "$ROOT"
rm -rf "$OUT"
mv "$tmp/out" "$OUT"
log "done in $((SECONDS - start))s: $(du -sh "$BIN" | cut -f1) in $BIN"
echo "$BIN"
