#!/usr/bin/env bash
# Build the Docker Compose v2 CLI plugin once per machine, from the github.com/docker/compose/v5 Go module,
# with `go install` into a cache folder, and install it as a docker CLI plugin, so that `docker compose`
# works with both Debian's client (/usr/bin/docker) and the current one (/usr/local/bin/docker). A later run
# finds the cached binary, checks the module version it was built from, and only installs it. Concurrent
# runs wait for each other (flock). v5.6.0 is the newest release that builds with this machine's Go 1.26;
# later ones need a newer toolchain.
#
# Usage: bash scripts/build-compose.sh          build if needed, install, print the version
#        bash scripts/build-compose.sh --check  exit 0 if the cached build is good and installed, 1 if not
# Env:   COMPOSE_VERSION (v5.6.0), COMPOSE_CACHE (/var/cache/calico-ci/compose-$COMPOSE_VERSION),
#        COMPOSE_PLUGIN_DIR (/usr/local/lib/docker/cli-plugins: both clients search it)
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"

COMPOSE_VERSION=${COMPOSE_VERSION:-v5.6.0}
COMPOSE_CACHE=${COMPOSE_CACHE:-/var/cache/calico-ci/compose-$COMPOSE_VERSION}
COMPOSE_PLUGIN_DIR=${COMPOSE_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
COMPOSE_MODULE=github.com/docker/compose/v5
COMPOSE_BIN=$COMPOSE_CACHE/docker-compose
PLUGIN=$COMPOSE_PLUGIN_DIR/docker-compose

log() { echo "build-compose: $*"; }

# built: the cached binary was built from the wanted module version and reports that version (a plain
# `go install` build calls itself "dev"; the version is stamped in below).
built() {
  [ -x "$COMPOSE_BIN" ] &&
    [ "$(go version -m "$COMPOSE_BIN" 2>/dev/null | awk -v m="$COMPOSE_MODULE" '($1 == "mod" || $1 == "dep") && $2 == m { print $3; exit }')" = "$COMPOSE_VERSION" ] &&
    "$COMPOSE_BIN" version 2>/dev/null | grep -qxF "Docker Compose version $COMPOSE_VERSION"
}

# installed: the plugin directory's docker-compose is the cached binary.
installed() { [ "$(readlink "$PLUGIN" 2>/dev/null)" = "$COMPOSE_BIN" ]; }

install_plugin() {
  if ! installed; then
    mkdir -p "$COMPOSE_PLUGIN_DIR"
    ln -sfn "$COMPOSE_BIN" "$PLUGIN"
  fi
  log "docker compose $COMPOSE_VERSION: $PLUGIN -> $COMPOSE_BIN ($(docker compose version 2>&1))"
}

case "${1:-}" in
  --check)
    built && installed
    exit
    ;;
  "") ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "build-compose: must run as root (writes $COMPOSE_CACHE and $COMPOSE_PLUGIN_DIR)" >&2
  exit 1
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-compose: go not found (expected in /usr/local/go/bin)" >&2
  exit 1
fi

mkdir -p "$COMPOSE_CACHE"
exec 9>"$COMPOSE_CACHE/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if built; then
  log "cached build is current, nothing to build"
  install_plugin
  exit 0
fi

t0=$SECONDS
tmp=$(mktemp -d "$COMPOSE_CACHE/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# In a throwaway module of its own, so this repository's go.mod plays no part. `go install module@version`
# refuses compose's go.mod (it has exclude directives), so the throwaway module takes compose's go.mod and
# go.sum as they are, renamed, and requires compose itself: the binary is built from the very dependency
# versions and exclusions upstream's is.
log "building $COMPOSE_MODULE@$COMPOSE_VERSION in $tmp"
src=$(cd "$tmp" && go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -f "$src/go.mod" ] || { echo "build-compose: go mod download gave no module folder for $COMPOSE_MODULE@$COMPOSE_VERSION" >&2; exit 1; }
install -m 0644 "$src/go.mod" "$src/go.sum" "$tmp/"
(
  cd "$tmp"
  go mod edit -module calico-ci/build-compose -require "$COMPOSE_MODULE@$COMPOSE_VERSION"
  CGO_ENABLED=0 go build -mod=mod -trimpath -o "$tmp/docker-compose" \
    -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" "$COMPOSE_MODULE/cmd"
)
mv -f "$tmp/docker-compose" "$COMPOSE_BIN"
if ! built; then
  echo "build-compose: the docker-compose just built does not report $COMPOSE_VERSION:" >&2
  go version -m "$COMPOSE_BIN" | head -n 3 >&2
  "$COMPOSE_BIN" version >&2 || true
  rm -f "$COMPOSE_BIN"
  exit 1
fi
log "built in $((SECONDS - t0))s"
install_plugin
