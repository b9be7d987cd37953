#!/usr/bin/env bash
# `docker run --rm` latency on a Calico network against Docker's own bridge driver, interleaved in one run so
# both see the same host load: each round runs one container on every network, rotating which goes first.
#
# Networks: a Calico network (created here), Docker's default `bridge`, and a user-defined bridge network
# (created here). The last one is the like-for-like comparison: Docker gives every user-defined network,
# whatever its driver, an embedded DNS server whose set-up (iptables inside the container) the default
# bridge skips.
#
# Needs root, dockerd, the test image, and a running calico-libnetwork (e.g. `make run-plugin` in another
# shell); when any of these is missing it says so and exits 0.
# Usage: bash bench/docker-run-latency.sh   (env: RUNS=20 per network, IMAGE, CALICO_LIBNETWORK_PLUGIN_DIR)
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "$0")/lib.bash"

RUNS=${RUNS:-20}
require_setup

tag="bench-latency-$$"
calico_net="$tag-calico"
bridge_net="$tag-bridge"
work=$(mktemp -d)
cleanup() {
  "$DOCKER" network rm "$calico_net" "$bridge_net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$DOCKER" network create -d calico --ipam-driver calico-ipam "$calico_net" >/dev/null
"$DOCKER" network create -d bridge "$bridge_net" >/dev/null
networks=("$calico_net" bridge "$bridge_net")
labels=("calico" "bridge (default)" "bridge (user-defined)")

# run_once NET prints how long `docker run --rm` of a no-op container takes, in ms.
run_once() {
  local t0 t1
  t0=$(now_ms)
  "$DOCKER" run --rm --net "$1" "$IMAGE" true >/dev/null
  t1=$(now_ms)
  echo $((t1 - t0))
}

describe_host
echo "# $RUNS runs per network, interleaved; warming up"
for net in "${networks[@]}"; do
  run_once "$net" >/dev/null
done

for ((round = 0; round < RUNS; round++)); do
  for ((k = 0; k < ${#networks[@]}; k++)); do
    i=$(((round + k) % ${#networks[@]}))
    run_once "${networks[$i]}" >>"$work/$i"
  done
done

echo
echo "\`docker run --rm --net NET $IMAGE true\`, wall time per run:"
echo
stats_header
for i in "${!networks[@]}"; do
  stats "${labels[$i]}" ms "$work/$i"
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
