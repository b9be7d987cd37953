#!/usr/bin/env bash
# The whole test suite: install test deps, start dockerd, build the test image,
# lint, unit tests (parallel), end-to-end tests (every package under ./test/,
# one package at a time, they share the host's dockerd) once per Docker engine,
# and a short fuzz pass (before the current engine's e2e run when its build is
# still going, else last). Run as root for the full suite; as another user the
# root-only setup and tests are skipped.
#
# The e2e suite runs on each engine in E2E_ENGINES (default "debian current
# current-nft"): Debian's docker.io 20.10, and the current engine (moby/moby/v2
# dockerd, Docker 29 line) built from Go modules by scripts/build-engine.sh, once
# with its default iptables firewall backend and once with
# --firewall-backend=nftables (without test/multihost, whose dockerds run with
# --iptables=false, which turns either backend off). The build takes minutes on
# a fresh machine, so it runs in the background while lint and unit tests run;
# later runs find it cached. See scripts/test-e2e.sh. So does the build of the
# Docker Compose CLI plugin (scripts/build-compose.sh), which the e2e tests of
# Compose files need on every engine.
#
# Usage: bash scripts/test.sh   (or: make test)
# Env: GOTEST_TIMEOUT (25m), FUZZTIME (20000x: executions, not seconds; see scripts/fuzz.sh), E2E_ENGINES ("debian current current-nft"),
# HARNESS_RACE=1 builds the daemon under test with -race for the e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: go not found (expected in /usr/local/go/bin)" >&2
  exit 1
fi
GOPATH_BIN="$(go env GOPATH)/bin"
export PATH="$GOPATH_BIN:$PATH"
# shellcheck source=scripts/engine-env.sh
. scripts/engine-env.sh

GOTEST_TIMEOUT=${GOTEST_TIMEOUT:-25m}
FUZZTIME=${FUZZTIME:-20000x}
E2E_ENGINES=${E2E_ENGINES:-debian current current-nft}
export GOTEST_TIMEOUT

declare -a SUMMARY=()
declare -a E2E_RESULTS=()
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
    SUMMARY+=("$(printf 'PASS  %-44s %4ds' "$name" $((SECONDS - t0)))")
  else
    SUMMARY+=("$(printf 'FAIL  %-44s %4ds' "$name" $((SECONDS - t0)))")
    failed=1
  fi
}

skip() {
  SUMMARY+=("$(printf 'SKIP  %-44s       (%s)' "$1" "$2")")
}

summary() {
  echo
  echo "================ summary ================"
  printf '%s\n' "${SUMMARY[@]}"
  for f in "${E2E_RESULTS[@]}"; do
    [ -s "$f" ] && cat "$f"
  done
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

# Builds that take minutes on a fresh machine and a second when cached run in the background, at the lowest
# CPU priority (they take only what lint and the tests leave idle), and are waited for only when needed.
declare -A build_pid=() build_log=() build_t0=()

# build_in_background NAME SCRIPT: start bash SCRIPT in the background, its output in a log file.
build_in_background() {
  build_log[$1]=$(mktemp "/tmp/build-$1.XXXXXX.log")
  build_t0[$1]=$SECONDS
  echo "test.sh: building $1 in the background (log: ${build_log[$1]})"
  nice -n 19 bash "$2" >"${build_log[$1]}" 2>&1 &
  build_pid[$1]=$!
}

# building NAME: whether NAME's background build was started and not waited for yet.
building() { [ -n "${build_pid[$1]:-}" ]; }

# shellcheck disable=SC2317 # called through step
# wait_build NAME: wait for NAME's background build, show its log, return its status.
wait_build() {
  local rc=0
  echo "test.sh: waiting for the $1 build started $((SECONDS - build_t0[$1]))s ago"
  wait "${build_pid[$1]}" || rc=$?
  unset "build_pid[$1]"
  cat "${build_log[$1]}"
  return "$rc"
}

# step_build NAME LABEL SUMMARY_RE: wait for NAME's build as a step; the step's time is only the wait, so
# its summary line adds what the build itself said (the first match of SUMMARY_RE in its log).
step_build() {
  step "$2" wait_build "$1"
  local said
  said=$(grep -o -m1 -E "$3" "${build_log[$1]}" || true)
  SUMMARY[-1]="${SUMMARY[-1]} (waited; ${said:-see log above})"
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup() {
  # Never leave a half-written build behind a finished run.
  local name
  for name in "${!build_pid[@]}"; do
    wait "${build_pid[$name]}" || true
  done
  rm -f "${build_log[@]}" "${E2E_RESULTS[@]}"
}
trap cleanup EXIT

if [ "$(id -u)" -eq 0 ]; then
  setup "install test deps" bash scripts/install-deps.sh
  setup "start dockerd" bash scripts/start-dockerd.sh
  setup "build test image" bash scripts/test-image.sh
  # The Compose CLI plugin, for the e2e tests of Compose files: needed from the first e2e run on.
  build_in_background compose scripts/build-compose.sh
  if [[ " $E2E_ENGINES " == *" current"* ]]; then
    # Needed only from the current engine's e2e run on: overlaps lint, unit tests and the first e2e run.
    build_in_background engine scripts/build-engine.sh
  fi
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
    */test/*) e2e_pkgs+=("$p") ;; # test/e2e/..., test/multihost: need dockerd, one at a time
    *) unit_pkgs+=("$p") ;;
  esac
done

if [ "${#unit_pkgs[@]}" -gt 0 ]; then
  step "unit tests (${#unit_pkgs[@]} pkgs)" \
    go test -race -count=1 -timeout "$GOTEST_TIMEOUT" "${unit_pkgs[@]}"
else
  skip "unit tests" "no packages"
fi

fuzzed=0
fuzz() {
  step "fuzz (${FUZZTIME} per target)" make --no-print-directory fuzz FUZZTIME="$FUZZTIME"
  fuzzed=1
}

if [ "${#e2e_pkgs[@]}" -eq 0 ]; then
  skip "e2e tests" "no packages"
elif [ "$(id -u)" -ne 0 ]; then
  # Without root nothing can switch engines; the tests skip what needs root or dockerd.
  step "e2e tests (${#e2e_pkgs[@]} pkgs, -p 1)" \
    go test -race -count=1 -timeout "$GOTEST_TIMEOUT" -p 1 "${e2e_pkgs[@]}"
else
  if building compose; then
    step_build compose "build docker compose plugin" 'built in [0-9]+s|cached build is current'
  fi
  engine_failed=0
  for engine in $E2E_ENGINES; do
    pkgs=("${e2e_pkgs[@]}")
    case "$engine" in
      debian)
        v=$(dpkg-query -W -f='${Version}' docker.io 2>/dev/null || echo '?')
        label="e2e on debian docker.io ${v%%-*}, iptables"
        ;;
      current) label="e2e on current dockerd $ENGINE_VERSION, iptables" ;;
      current-nft)
        label="e2e on current dockerd $ENGINE_VERSION, nftables"
        # test/multihost's dockerds run with --iptables=false, which turns off either backend: it would
        # repeat the iptables run.
        mapfile -t pkgs < <(printf '%s\n' "${e2e_pkgs[@]}" | grep -v '/test/multihost$')
        ;;
      *) label="e2e on $engine" ;;
    esac
    if [[ "$engine" == current* ]] && building engine; then
      if [ "$fuzzed" -eq 0 ] && kill -0 "${build_pid[engine]}" 2>/dev/null; then
        echo "test.sh: the engine build is still running; fuzzing meanwhile"
        fuzz
      fi
      step_build engine "build current engine $ENGINE_VERSION" 'engine ready in [0-9]+s|cached build is current'
      [[ "${SUMMARY[-1]}" != FAIL* ]] || engine_failed=1
    fi
    if [[ "$engine" == current* ]] && [ "$engine_failed" -eq 1 ]; then
      skip "$label" "engine build failed"
      continue
    fi
    result=$(mktemp /tmp/e2e-result.XXXXXX)
    E2E_RESULTS+=("$result")
    step "$label (${#pkgs[@]} pkgs)" env ENGINE="$engine" E2E_PKGS="${pkgs[*]}" E2E_RESULT_FILE="$result" bash scripts/test-e2e.sh
  done
fi

# The interop suite needs upstream Calico's binaries, built once per machine from sources obtained by
# hand (scripts/build-upstream-calico.sh); without them it is skipped with the line that says what is
# missing. Its tests skip themselves in the unit and e2e runs above.
if [ "$(id -u)" -ne 0 ]; then
  skip "interop (upstream Calico)" "not root"
elif interop=$(bash scripts/test-interop.sh --check); then
  echo "$interop"
  step "interop (upstream calicoctl, calico-felix)" bash scripts/test-interop.sh
else
  echo "test.sh: $interop"
  skip "interop (upstream Calico)" "no upstream binaries: scripts/build-upstream-calico.sh"
fi

[ "$fuzzed" -eq 1 ] || fuzz

summary
exit "$failed"
