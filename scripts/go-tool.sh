# scripts/go-tool.sh — sourced by the scripts that build Go tools from source once per machine
# into ${WEIR_CACHE:-$HOME/.cache/weir} (control-plane.sh, helm.sh). The sourcing script sets
# TOOL (for log lines), ROOT (its cache folder), BIN (where the tools end up) and have_all (true
# when they are there), then calls go_tool_start.

log() { printf '[%s] %s\n' "$TOOL" "$*" >&2; }

# Prints BIN and exits when the tools are built. Else takes the machine-wide lock of ROOT (a
# concurrent caller waits here, then finds the tools), clears what a killed build left, and
# sets GO and the environment for a static, reproducible build.
go_tool_start() {
  if have_all; then echo "$BIN"; exit 0; fi
  mkdir -p "$ROOT"
  exec 9>"$ROOT/.lock"
  flock 9
  if have_all; then echo "$BIN"; exit 0; fi
  rm -rf "$ROOT"/.build.* # leftovers of a killed build (we hold the lock, so none is running)
  GO="$(command -v go || true)"
  [[ -n $GO ]] || GO=/usr/local/go/bin/go
  [[ -x $GO ]] || { log "no go toolchain found (PATH or /usr/local/go/bin/go)"; exit 1; }
  export GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=on
  unset GOWORK GOOS GOARCH GOFLAGS || true
}
