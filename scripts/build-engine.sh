#!/usr/bin/env bash
# Build the current Docker engine once per machine: dockerd from the moby/moby/v2 Go module and the
# runc it needs (with seccomp), with `go install` into a cache folder (see scripts/engine-env.sh).
# A later run finds both binaries, checks the module versions they were built from, and builds
# nothing. Concurrent runs wait for each other (flock). Installs libseccomp-dev, pkg-config and gcc
# through apt if they are missing (runc needs cgo and libseccomp).
#
# Usage: bash scripts/build-engine.sh          build if needed, print where the binaries are
#        bash scripts/build-engine.sh --check  exit 0 if the cached build is good, 1 if not; build nothing
# Env:   ENGINE_VERSION, RUNC_VERSION, ENGINE_CACHE (scripts/engine-env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"
# shellcheck source=scripts/engine-env.sh
. scripts/engine-env.sh

log() { echo "build-engine: $*"; }

report() {
  log "dockerd $ENGINE_VERSION: $ENGINE_DOCKERD ($("$ENGINE_DOCKERD" --version 2>&1 | head -n 1))"
  log "runc $RUNC_VERSION: $ENGINE_RUNC ($("$ENGINE_RUNC" --version 2>&1 | tr '\n' ' ' | sed 's/ *$//'))"
}

case "${1:-}" in
  --check)
    engine_built
    exit
    ;;
  "") ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if engine_built; then
  log "cached build is current, nothing to do"
  report
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "build-engine: must run as root (installs packages, writes $ENGINE_CACHE)" >&2
  exit 1
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-engine: go not found (expected in /usr/local/go/bin)" >&2
  exit 1
fi

mkdir -p "$ENGINE_CACHE"
exec 9>"$ENGINE_CACHE/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
# The build we waited for may have produced what we need.
if engine_built; then
  log "cached build is current (built by a concurrent run)"
  report
  exit 0
fi

t_all=$SECONDS

# runc's seccomp support needs cgo and libseccomp's headers.
need=()
for p in libseccomp-dev pkg-config gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || need+=("$p")
done
tmp=$(mktemp -d "$ENGINE_CACHE/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$ENGINE_DIR"

if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$tmp/apt.log" 2>&1; then
    echo "build-engine: apt-get failed:" >&2
    tail -n 30 "$tmp/apt.log" >&2
    exit 1
  fi
fi

# go_install NAME CHECK DEST [go install args...]: build one binary into $tmp/bin with GOBIN, outside
# any module (so this repository's go.mod plays no part), move it into place, and check it with the
# function CHECK (which looks at DEST).
go_install() {
  local name=$1 check=$2 dest=$3
  shift 3
  if "$check"; then
    log "$name already cached: $dest"
    return 0
  fi
  local t0=$SECONDS
  log "building $name: go install $*"
  (cd "$tmp" && GOBIN="$tmp/bin" go install "$@")
  mv -f "$tmp/bin/$name" "$dest"
  if ! "$check"; then
    echo "build-engine: the $name just built does not report the wanted version:" >&2
    go version -m "$dest" | head -n 3 >&2
    "$dest" --version >&2 || true
    rm -f "$dest"
    return 1
  fi
  log "built $name in $((SECONDS - t0))s"
}

go_install dockerd engine_dockerd_built "$ENGINE_DOCKERD" \
  -ldflags "$ENGINE_DOCKERD_LDFLAGS" "$ENGINE_DOCKERD_PKG@$ENGINE_VERSION"
CGO_ENABLED=1 go_install runc engine_runc_built "$ENGINE_RUNC" \
  -tags seccomp "$ENGINE_RUNC_MODULE@$RUNC_VERSION"

log "engine ready in $((SECONDS - t_all))s"
report
