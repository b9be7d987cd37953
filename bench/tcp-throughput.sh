#!/usr/bin/env bash
# TCP throughput between two containers on a Calico network against two on Docker's default bridge network,
# alternating networks run by run so both see the same host load. Each run sends MB MiB of zeros with
# `dd | nc` from one busybox container to a listener in the other and times it inside the client.
#
# busybox nc copies in small chunks, so on a small host the result is bound by nc's CPU as much as by the
# network path; compare the two networks with each other, not with other tools.
#
# Needs root, dockerd, the test image, and a running calico-libnetwork (e.g. `make run-plugin` in another
# shell); when any of these is missing it says so and exits 0.
# Usage: bash bench/tcp-throughput.sh   (env: RUNS=3 per network, MB=1000, IMAGE, CALICO_LIBNETWORK_PLUGIN_DIR)
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "$0")/lib.bash"

RUNS=${RUNS:-3}
MB=${MB:-1000}
PORT=5001
require_setup

tag="bench-tput-$$"
calico_net="$tag-calico"
work=$(mktemp -d)
containers=()
cleanup() {
  [ "${#containers[@]}" -eq 0 ] || "$DOCKER" rm -f "${containers[@]}" >/dev/null 2>&1 || true
  "$DOCKER" network rm "$calico_net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$DOCKER" network create -d calico --ipam-driver calico-ipam "$calico_net" >/dev/null
networks=("$calico_net" bridge)
labels=("calico" "bridge (default)")
servers=()
for i in "${!networks[@]}"; do
  server="$tag-server-$i" client="$tag-client-$i"
  containers+=("$server" "$client")
  # One listener per connection, restarted after each; the client's half-close ends the transfer.
  "$DOCKER" run -d --name "$server" --net "${networks[$i]}" "$IMAGE" \
    sh -c "while true; do nc -l -p $PORT -e sh -c 'cat >/dev/null'; done" >/dev/null
  "$DOCKER" run -d --name "$client" --net "${networks[$i]}" "$IMAGE" sleep 86400 >/dev/null
  servers+=("$("$DOCKER" inspect -f "{{(index .NetworkSettings.Networks \"${networks[$i]}\").IPAddress}}" "$server")")
done

# transfer I prints the seconds one transfer over network I takes, measured in the client.
transfer() {
  local secs
  sleep 1 # let the listener restart after the previous run
  secs=$("$DOCKER" exec "$tag-client-$1" sh -c \
    "time -p sh -c 'dd if=/dev/zero bs=1M count=$MB 2>/dev/null | nc ${servers[$1]} $PORT'" 2>&1 | awk '/^real/ {print $2}')
  [ -n "$secs" ] || die "transfer over ${labels[$1]} failed"
  echo "$secs"
}

describe_host
echo "# $RUNS transfers of $MB MiB per network, alternating"
for ((round = 0; round < RUNS; round++)); do
  for ((k = 0; k < ${#networks[@]}; k++)); do
    i=$(((round + k) % ${#networks[@]}))
    secs=$(transfer "$i")
    awk -v mb="$MB" -v s="$secs" 'BEGIN { printf "%.1f\n", mb * 8 * 1.048576 / s }' >>"$work/$i"
    echo "# ${labels[$i]}: $MB MiB in $secs s"
  done
done

echo
echo "\`dd if=/dev/zero bs=1M count=$MB | nc SERVER $PORT\` between two containers on one network, throughput per run:"
echo
stats_header
for i in "${!networks[@]}"; do
  stats "${labels[$i]}" Mbit/s "$work/$i"
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
