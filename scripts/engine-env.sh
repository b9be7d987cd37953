# shellcheck shell=bash disable=SC2034 # sourced; the including scripts use these
# Settings shared by scripts/build-engine.sh and scripts/test-e2e.sh; source it, do not run it.
#
# The "current" Docker engine is dockerd from the moby/moby/v2 Go module plus a runc new enough for
# it (Debian's runc 1.1 fails its containers), both built with `go install` into a cache folder
# that survives between CI runs on one machine. Override any of these from the environment.
#
#   ENGINE_VERSION  moby/moby/v2 module version of dockerd   (v2.0.0-beta.24, API 1.5x, Docker 29 line)
#   RUNC_VERSION    opencontainers/runc module version        (v1.5.2)
#   ENGINE_CACHE    cache root                                (/var/cache/calico-ci/engine)
#   ENGINE_DATA_ROOT, ENGINE_EXEC_ROOT  the engine's --data-root and --exec-root
#                   (/var/lib/calico-ci/engine/<version>, /run/calico-ci/engine); test-e2e.sh empties
#                   both before each run, so they must be the tests' alone

ENGINE_VERSION=${ENGINE_VERSION:-v2.0.0-beta.24}
RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
ENGINE_CACHE=${ENGINE_CACHE:-/var/cache/calico-ci/engine}

ENGINE_DOCKERD_MODULE=github.com/moby/moby/v2
ENGINE_DOCKERD_PKG=$ENGINE_DOCKERD_MODULE/cmd/dockerd
ENGINE_RUNC_MODULE=github.com/opencontainers/runc

# One folder per version pair, so switching versions never overwrites a good build.
ENGINE_DIR=$ENGINE_CACHE/dockerd-$ENGINE_VERSION+runc-$RUNC_VERSION
ENGINE_DOCKERD=$ENGINE_DIR/dockerd
ENGINE_RUNC=$ENGINE_DIR/runc

# Where the current engine keeps its state: never Debian's /var/lib/docker or /var/run/docker, which
# fresh_engine_state in test-e2e.sh would empty.
ENGINE_DATA_ROOT=${ENGINE_DATA_ROOT:-/var/lib/calico-ci/engine/$ENGINE_VERSION}
ENGINE_EXEC_ROOT=${ENGINE_EXEC_ROOT:-/run/calico-ci/engine}

# The clients: Debian's own (API 1.41) for Debian's daemon, the newer one on PATH for the current engine.
DEBIAN_DOCKER=/usr/bin/docker
CURRENT_DOCKER=${CURRENT_DOCKER:-/usr/local/bin/docker}

# engine_module_version BINARY MODULE: the version of MODULE that BINARY was built from ("" if none).
engine_module_version() {
  local bin=$1 module=$2
  [ -x "$bin" ] || return 0
  go version -m "$bin" 2>/dev/null | awk -v m="$module" '($1 == "mod" || $1 == "dep") && $2 == m { print $3; exit }'
}

# A dockerd built with plain `go install` calls itself "library-import"; build-engine.sh stamps the
# module version in, so `docker version` shows which engine answered.
ENGINE_DOCKERD_LDFLAGS="-X $ENGINE_DOCKERD_MODULE/dockerversion.Version=${ENGINE_VERSION#v} -X $ENGINE_DOCKERD_MODULE/dockerversion.GitCommit=module-$ENGINE_VERSION"

# engine_dockerd_built / engine_runc_built: the cached binary exists, was built from the wanted module
# version, and (dockerd) reports that version.
engine_dockerd_built() {
  [ "$(engine_module_version "$ENGINE_DOCKERD" "$ENGINE_DOCKERD_MODULE")" = "$ENGINE_VERSION" ] &&
    "$ENGINE_DOCKERD" --version 2>/dev/null | grep -qF "version ${ENGINE_VERSION#v},"
}
engine_runc_built() {
  [ "$(engine_module_version "$ENGINE_RUNC" "$ENGINE_RUNC_MODULE")" = "$RUNC_VERSION" ] &&
    "$ENGINE_RUNC" --version 2>/dev/null | grep -q '^libseccomp:'
}

# engine_built: both cached binaries are good.
engine_built() { engine_dockerd_built && engine_runc_built; }
