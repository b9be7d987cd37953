#!/usr/bin/env bash
# The whole test suite: install test deps, start dockerd, build the test image,
# lint, unit tests (parallel), end-to-end tests (one package at a time, they
# share the host's dockerd), then a short fuzz pass. Run as root for the full
# suite; as another user the root-only setup and tests are skipped.
# Usage: bash scripts/test.sh   (or: make test)
# Env: GOTEST_TIMEOUT (25m), FUZZTIME (5s), HARNESS_RACE=1 builds the daemon
# under test with -race for the e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: go not found (expected in /usr/local/go/bin)" >&2
  exit 1
fi
export PATH="$(go env GOPATH)/bin:$PATH"

GOTEST_TIMEOUT=${GOTEST_TIMEOUT:-25m}
FUZZTIME=${FUZZTIME:-5s}

declare -a SUMMARY=()
failed=0
start_all=$SECONDS

# step NAME CMD...: run CMD, record PASS/FAIL and the time it took.
step() {
  local name=$1
  shift
  local t0=$SECONDS
  echo
  echo "================ $name ================"
  if "$@"; then
    SUMMARY+=("$(printf 'PASS  %-28s %4ds' "$name" $((SECONDS - t0)))")
  else
    SUMMARY+=("$(printf 'FAIL  %-28s %4ds' "$name" $((SECONDS - t0)))")
    failed=1
  fi
}

skip() {
  SUMMARY+=("$(printf 'SKIP  %-28s       (%s)' "$1" "$2")")
}

summary() {
  echo
  echo "================ summary ================"
  printf '%s\n' "${SUMMARY[@]}"
  echo "total: $((SECONDS - start_all))s"
  if [ "$failed" -ne 0 ]; then
    echo "RESULT: FAILED"
  else
    echo "RESULT: OK"
  fi
}

# Setup: when one of these fails the tests cannot run meaningfully; stop.
setup() {
  step "$@"
  if [ "$failed" -ne 0 ]; then
    summary
    exit 1
  fi
}

if [ "$(id -u)" -eq 0 ]; then
  setup "install test deps" bash scripts/install-deps.sh
  setup "start dockerd" bash scripts/start-dockerd.sh
  setup "build test image" bash scripts/test-image.sh
else
  echo "test.sh: not running as root: skipping dependency install and dockerd;"
  echo "test.sh: tests that need root or dockerd will skip themselves."
  skip "install test deps" "not root"
  skip "start dockerd" "not root"
  if /usr/bin/docker info >/dev/null 2>&1; then
    setup "build test image" bash scripts/test-image.sh
  else
    skip "build test image" "no dockerd reachable"
  fi
fi

step "lint" make --no-print-directory lint

mapfile -t all_pkgs < <(go list -e ./...)
unit_pkgs=()
e2e_pkgs=()
for p in "${all_pkgs[@]}"; do
  case "$p" in
    # End-to-end packages share the host's dockerd and plugin directory, or run whole
    # hosts of their own: one package at a time, and not beside the unit tests.
    */test/* | */test) e2e_pkgs+=("$p") ;;
    *) unit_pkgs+=("$p") ;;
  esac
done

if [ "${#unit_pkgs[@]}" -gt 0 ]; then
  step "unit tests (${#unit_pkgs[@]} pkgs)" \
    go test -race -count=1 -timeout "$GOTEST_TIMEOUT" "${unit_pkgs[@]}"
else
  skip "unit tests" "no packages"
fi

if [ "${#e2e_pkgs[@]}" -gt 0 ]; then
  step "e2e tests (${#e2e_pkgs[@]} pkgs, -p 1)" \
    go test -race -count=1 -timeout "$GOTEST_TIMEOUT" -p 1 "${e2e_pkgs[@]}"
else
  skip "e2e tests" "no packages"
fi

step "fuzz (${FUZZTIME} per target)" make --no-print-directory fuzz FUZZTIME="$FUZZTIME"

summary
exit "$failed"
