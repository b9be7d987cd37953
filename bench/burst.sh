#!/usr/bin/env bash
# Bursts: N containers started at once on a Calico network against the same on a user-defined bridge network,
# then all removed at once, and what the calico-libnetwork daemon spends in CPU per container.
#
# Each round starts N containers with N `docker run -d --net NET IMAGE sleep 1d` clients in parallel, times
# the burst until the last returns, then times one `docker rm -f` of all N (the client removes up to 50 at a
# time). Rounds alternate the networks, rotating which goes first, so both see the same host load. Between
# bursts the script waits until the daemon is idle: its agent may still be programming a burst after Docker
# returned, and that belongs to the burst, not to the next one.
#
# CPU is read from /proc/PID/stat of the daemon around each burst (until it is idle again): utime+stime of the
# daemon (an embedded etcd included), and cutime+cstime of the children it has reaped (the firewall tools).
# Bridge bursts show what the daemon spends on containers it has nothing to do with.
#
# Needs root, dockerd, the test image and a running calico-libnetwork (e.g. `make run-plugin` in another
# shell); it fails when any is missing. Not run by `make bench`: with the defaults it takes about half an hour
# on 2 CPUs.
# Usage: bash bench/burst.sh   (env: SIZES="30 100" containers per burst, ROUNDS=5 per network and size,
#                               SETTLE=60 s at most to wait for an idle daemon, IMAGE, CALICO_LIBNETWORK_PLUGIN_DIR)
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "$0")/lib.bash"

read -r -a SIZES <<<"${SIZES:-30 100}"
ROUNDS=${ROUNDS:-5}
SETTLE=${SETTLE:-60}
IDLE_TICKS=1 # CPU ticks per second below which the daemon counts as idle
require_setup die
command -v ss >/dev/null || die "needs ss (iproute2) to find the daemon"
pid=$(plugin_pid)
hz=$(getconf CLK_TCK)

tag="bench-burst-$$"
calico_net="$tag-calico"
bridge_net="$tag-bridge"
work=$(mktemp -d)
# cleanup removes the containers and networks; after an interrupted burst Docker may still be creating some
# containers, which keep their network from going: retry until the networks are gone, for 30 s at most.
cleanup() {
  local i left
  for ((i = 0; i < 30; i++)); do
    "$DOCKER" ps -aq --filter "name=$tag-" | xargs -r "$DOCKER" rm -f >/dev/null 2>&1 || true
    left=$("$DOCKER" network ls -q --filter "name=$tag-")
    [ -n "$left" ] || break
    xargs "$DOCKER" network rm <<<"$left" >/dev/null 2>&1 || sleep 1
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu prints the daemon's CPU ticks: its own (utime+stime) and its reaped children's (cutime+cstime).
cpu() {
  local stat
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || die "the daemon (pid $pid) has exited"
  # Fields after "pid (comm) ": state is 1, utime 12, stime 13, cutime 14, cstime 15.
  awk '{ print $12 + $13, $14 + $15 }' <<<"${stat##*) }"
}

# settle waits until the daemon and its children use less than IDLE_TICKS a second, at most SETTLE s.
settle() {
  local c last total i
  c=$(cpu)
  last=$((${c% *} + ${c#* }))
  for ((i = 0; i < SETTLE; i++)); do
    sleep 1
    c=$(cpu)
    total=$((${c% *} + ${c#* }))
    [ $((total - last)) -ge "$IDLE_TICKS" ] || return 0
    last=$total
  done
  echo "# WARNING: the daemon was still busy ${SETTLE}s after a burst" >&2
}

# burst KIND NET N times a burst (KIND run: start N containers on NET; rm: remove them) and adds its wall
# time (s) to $work/KIND-N-NET and the daemon's CPU ticks until it is idle again to $work/cpu-KIND-N-NET.
burst() {
  local kind=$1 net=$2 n=$3 t0 t1 cpu0 cpu1 ok=true
  cpu0=$(cpu)
  t0=$(now_ms)
  if [ "$kind" = run ]; then
    seq "$n" | xargs -P "$n" -I{} "$DOCKER" run -d --name "$tag-$net-{}" --net "$tag-$net" "$IMAGE" sleep 1d \
      >/dev/null 2>"$work/errors" || ok=false
  else
    seq "$n" | sed "s/^/$tag-$net-/" | xargs "$DOCKER" rm -f >/dev/null 2>"$work/errors" || ok=false
  fi
  t1=$(now_ms)
  $ok || die "docker $kind failed on network $tag-$net: $(head -c 2000 "$work/errors")"
  settle
  cpu1=$(cpu)
  awk -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f\n", ms / 1000 }' >>"$work/$kind-$n-$net"
  echo "$cpu0 $cpu1" | awk '{ print $3 - $1, $4 - $2 }' >>"$work/cpu-$kind-$n-$net"
  echo "#   $net: $kind $n in $((t1 - t0)) ms" >&2
}

# median FILE prints the median (nearest rank) of the numbers in FILE, one a line.
median() {
  sort -g "$1" | awk '{ v[NR] = $1 } END { r = int(NR * 0.5); if (r < NR * 0.5) r++; print v[r] }'
}

# ratio A B prints A/B.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# cpu_per N KIND NET prints the daemon's CPU per container over all rounds, and its children's: "| ms | ms".
cpu_per() {
  awk -v n=$(($1 * ROUNDS)) -v hz="$hz" '{ self += $1; kids += $2 }
    END { printf "| %.1f ms | %.1f ms", (self + kids) * 1000 / hz / n, kids * 1000 / hz / n }' "$work/cpu-$2-$1-$3"
}

etcd=embedded
if grep -qzE '^(CALICO_)?ETCD_(ENDPOINTS|AUTHORITY)=' "/proc/$pid/environ"; then
  etcd=external
fi
"$DOCKER" network create -d calico --ipam-driver calico-ipam "$calico_net" >/dev/null
"$DOCKER" network create -d bridge "$bridge_net" >/dev/null
networks=(calico bridge)

describe_host
echo "# daemon pid $pid: $(readlink "/proc/$pid/exe") $("/proc/$pid/exe" --version 2>/dev/null), etcd $etcd;" \
  "bursts of ${SIZES[*]} containers, $ROUNDS rounds per network and size; warming up"
for net in "${networks[@]}"; do
  "$DOCKER" run -d --name "$tag-$net-warmup" --net "$tag-$net" "$IMAGE" sleep 1d >/dev/null
  "$DOCKER" rm -f "$tag-$net-warmup" >/dev/null
done
settle

for n in "${SIZES[@]}"; do
  for ((round = 0; round < ROUNDS; round++)); do
    echo "# N=$n, round $((round + 1)) of $ROUNDS, load average $(cut -d' ' -f1 /proc/loadavg)" >&2
    for ((k = 0; k < ${#networks[@]}; k++)); do
      net=${networks[$(((round + k) % ${#networks[@]}))]}
      burst run "$net" "$n"
      burst rm "$net" "$n"
    done
  done
done

echo
echo "Wall time of a burst: N parallel \`docker run -d --net NET $IMAGE sleep 1d\` (run), then one" \
  "\`docker rm -f\` of all N (rm):"
echo
stats_header
for n in "${SIZES[@]}"; do
  for kind in run rm; do
    for net in "${networks[@]}"; do
      stats "$net, N=$n, $kind" s "$work/$kind-$n-$net"
    done
  done
done
echo
echo "Summary: medians of $ROUNDS rounds; calico/bridge is their ratio:"
echo
echo "| N | run: calico | bridge | calico/bridge | rm: calico | bridge | calico/bridge |"
echo "|---|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
  row="| $n"
  for kind in run rm; do
    c=$(median "$work/$kind-$n-calico") b=$(median "$work/$kind-$n-bridge")
    row+=" | $c s | $b s | $(ratio "$c" "$b")"
  done
  echo "$row |"
done
echo
echo "Daemon CPU (pid $pid) per container, over all rounds: its own and its children's (firewall tools)" \
  "together, and the children's alone; on a bridge network it is work unrelated to the containers:"
echo
echo "| N | network | per start | children | per removal | children |"
echo "|---|---|---|---|---|---|"
for n in "${SIZES[@]}"; do
  for net in "${networks[@]}"; do
    echo "| $n | $net $(cpu_per "$n" run "$net") $(cpu_per "$n" rm "$net") |"
  done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
