#!/usr/bin/env bash
# The interop suite: this plugin next to upstream Calico's own binaries, built from source by
# scripts/build-upstream-calico.sh into the cache (README "Testing against upstream Calico").
#   - upstream calicoctl on the plugin's data, with a real dockerd (test/e2e TestUpstream*);
#   - upstream calico-felix as the dataplane, against ours on the same policies, NAT outgoing and
#     isolation (internal/dataplane TestFelixParity*, docs/felix-parity.md);
#   - mixed clusters: one lab host on this dataplane, one on Felix, over VXLAN (test/multihost
#     TestMixedCluster) and on one segment in both families with Docker containers, handing a host to
#     Felix and back (TestMixedDualStack).
# Without the binaries it names what is missing and fails; --check only says whether they are there.
#
# Usage: bash scripts/test-interop.sh [--check]   (or: make test-interop)
# Env:   CALICO_UPSTREAM_CALICOCTL, CALICO_FELIX (default: the cache's current build), UPSTREAM_CACHE
#        (/var/cache/calico-ci/upstream), ENGINE for the e2e part (debian)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

current=${UPSTREAM_CACHE:-/var/cache/calico-ci/upstream}/current
export CALICO_UPSTREAM_CALICOCTL=${CALICO_UPSTREAM_CALICOCTL:-$current/calicoctl}
export CALICO_FELIX=${CALICO_FELIX:-$current/calico-felix}
missing=()
for bin in "$CALICO_UPSTREAM_CALICOCTL" "$CALICO_FELIX"; do
  [ -x "$bin" ] || missing+=("$bin")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-interop: no upstream binary at ${missing[*]}: build them with scripts/build-upstream-calico.sh SRC (README: Testing against upstream Calico)"
  exit 1
fi
version=$("$CALICO_UPSTREAM_CALICOCTL" version 2>/dev/null | sed -n 's/^Git commit: *//p')
echo "test-interop: upstream calicoctl and calico-felix of commit ${version:-unknown} ($(dirname "$(readlink -f "$CALICO_UPSTREAM_CALICOCTL")"))"
[ "${1:-}" != --check ] || exit 0

# -v, so the log names each test that ran; with the binaries there, none may skip.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
{
  go test -count=1 -v -run '^TestFelixParity' ./internal/dataplane/
  E2E_PKGS=./test/e2e bash scripts/test-e2e.sh -v -run '^TestUpstream'
  E2E_PKGS=./test/multihost bash scripts/test-e2e.sh -v -run '^TestMixed'
} 2>&1 | tee "$log"
if grep -- '--- SKIP' "$log"; then
  echo "test-interop: the tests above skipped although the upstream binaries are there" >&2
  exit 1
fi
