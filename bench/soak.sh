#!/usr/bin/env bash
# Soak: TOTAL long-running containers on one Calico network of this host, then all removed.
#
# Measures, with Docker's bridge driver as the baseline where it means something:
# - per-container setup time (`docker run -d` of a sleeping container: create, connect, start), p50/p99 of
#   PROBES runs at BASE live containers and again at TOTAL live, alternating a Calico network and a
#   user-defined bridge network run by run. The bridge column shows what Docker itself does with that many
#   containers; the goal is a Calico column as flat as the bridge one.
# - bulk creation and removal rates (PARALLEL `docker` clients at a time) per segment of the run.
# - the daemon's resident memory (embedded etcd included when it runs one), goroutines (go_goroutines from
#   METRICS_URL, the daemon's CALICO_METRICS_ADDR /metrics, when given) and OS threads, sampled as containers
#   come and go.
# - leaks once everything is removed: host workload interfaces (cali*), and with CALICOCTL reaching the
#   plugin's datastore, IPAM allocations and workload endpoints, against their counts before the run.
#
# Needs root, dockerd, the test image and a running calico-libnetwork (e.g. `make run-plugin` in another
# shell, with the same CALICO_DATA_DIR or ETCD_ENDPOINTS in this shell for calicoctl); when any is missing
# it says so and exits 0. About 20 GB of RAM for 1,000 containers' shims is plenty; 24 GB hosts are fine.
# Usage: bash bench/soak.sh   (env: TOTAL=1000, PARALLEL=8, PROBES=30, BASE=10, METRICS_URL, CALICOCTL, IMAGE,
#                              CALICO_LIBNETWORK_PLUGIN_DIR)
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "$0")/lib.bash"

TOTAL=${TOTAL:-1000}
PARALLEL=${PARALLEL:-8}
PROBES=${PROBES:-30}
BASE=${BASE:-10}
SEGMENT=${SEGMENT:-100} # containers per creation/removal segment and memory sample
METRICS_URL=${METRICS_URL:-}
CALICOCTL=${CALICOCTL:-$(dirname "$0")/../bin/calicoctl}
require_setup
[ "$TOTAL" -gt "$BASE" ] || die "TOTAL ($TOTAL) must exceed BASE ($BASE)"

tag="bench-soak-$$"
calico_net="$tag-calico"
bridge_net="$tag-bridge"
work=$(mktemp -d)
cleanup() {
  "$DOCKER" ps -aq --filter "name=$tag" | xargs -r "$DOCKER" rm -f >/dev/null 2>&1 || true
  "$DOCKER" network rm "$calico_net" "$bridge_net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

plugin_pid=$(plugin_pid)

# workload_links counts the host's workload interfaces.
workload_links() {
  ip -o link show | grep -cE '^[0-9]+: cali[0-9a-f]{11}[@:]' || true
}

# datastore_counts prints "ALLOCATIONS ENDPOINTS" from calicoctl, or nothing when it cannot reach the datastore.
datastore_counts() {
  local check weps
  check=$("$CALICOCTL" ipam check 2>/dev/null) || return 0
  weps=$("$CALICOCTL" get workloadendpoints -n libnetwork -o json 2>/dev/null) || return 0
  echo "$(sed -n 's/.*Found \([0-9]*\) IPAM allocations.*/\1/p' <<<"$check") $(grep -c '"kind": *"WorkloadEndpoint"' <<<"$weps" || true)"
}

# sample LIVE appends a row on the daemon's memory, goroutines and threads with LIVE containers running.
sample() {
  local rss threads goroutines=-
  rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$plugin_pid/status")
  threads=$(awk '/^Threads:/ { print $2 }' "/proc/$plugin_pid/status")
  if [ -n "$METRICS_URL" ]; then
    goroutines=$(curl -sf --max-time 5 "$METRICS_URL" | awk '/^go_goroutines / { print $2 }') || goroutines=-
  fi
  echo "| $1 | ${rss} MiB | ${goroutines:--} | $threads | $(cut -d' ' -f1 /proc/loadavg) |" >>"$work/samples"
}

# create FROM TO starts containers FROM..TO-1 on the Calico network, PARALLEL at a time, and records the rate.
create() {
  local t0 t1
  t0=$(now_ms)
  seq "$1" $(($2 - 1)) | xargs -P "$PARALLEL" -I{} \
    "$DOCKER" run -d --name "$tag-c{}" --net "$calico_net" "$IMAGE" sleep 1d >/dev/null
  t1=$(now_ms)
  echo "| create | $1 to $2 | $(($2 - $1)) | $((t1 - t0)) ms | $(awk -v n=$(($2 - $1)) -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f", n * 1000 / ms }')/s |" >>"$work/rates"
}

# remove FROM TO removes containers FROM..TO-1, PARALLEL at a time, and records the rate.
remove() {
  local t0 t1
  t0=$(now_ms)
  seq "$1" $(($2 - 1)) | sed "s/^/$tag-c/" | xargs -P "$PARALLEL" -n 10 "$DOCKER" rm -f >/dev/null
  t1=$(now_ms)
  echo "| remove | $2 to $1 | $(($2 - $1)) | $((t1 - t0)) ms | $(awk -v n=$(($2 - $1)) -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f", n * 1000 / ms }')/s |" >>"$work/rates"
}

# probe LIVE times PROBES runs of `docker run -d` on each network, alternating, and removes each probe
# container again at once (untimed), so the number of live containers stays LIVE.
probe() {
  local n net t0 t1 name
  for ((n = 0; n < 2 * PROBES; n++)); do
    net=$calico_net
    [ $((n % 2)) -eq 0 ] || net=$bridge_net
    name="$tag-probe-$n"
    t0=$(now_ms)
    "$DOCKER" run -d --name "$name" --net "$net" "$IMAGE" sleep 1d >/dev/null
    t1=$(now_ms)
    echo $((t1 - t0)) >>"$work/probe-$1-$net"
    "$DOCKER" rm -f "$name" >/dev/null
  done
}

# percentiles LABEL FILE prints a row: label, n, p50, p90, p99, max (nearest rank) in ms.
percentiles() {
  sort -g "$2" | awk -v label="$1" '
    function rank(p) { r = int(NR * p); if (r < NR * p) r++; return v[r] }
    { v[NR] = $1 }
    END { printf "| %s | %d | %d ms | %d ms | %d ms | %d ms |\n", label, NR, rank(0.5), rank(0.9), rank(0.99), v[NR] }'
}

links_before=$(workload_links)
counts_before=$(datastore_counts)
"$DOCKER" network create -d calico --ipam-driver calico-ipam "$calico_net" >/dev/null
"$DOCKER" network create -d bridge "$bridge_net" >/dev/null

describe_host
echo "# $TOTAL containers, $PARALLEL docker clients at a time, $PROBES probes per network at $BASE and $TOTAL live;" \
  "plugin pid $plugin_pid"
sample 0
create 0 "$BASE"
sample "$BASE"
probe "$BASE"
for ((live = BASE; live < TOTAL; live = next)); do
  next=$(((live / SEGMENT + 1) * SEGMENT))
  next=$((next > TOTAL ? TOTAL : next))
  create "$live" "$next"
  sample "$next"
  echo "# $next live, load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
running=$("$DOCKER" ps -q --filter "name=$tag-c" | wc -l)
[ "$running" -eq "$TOTAL" ] || echo "# WARNING: $running of $TOTAL containers running" >&2
probe "$TOTAL"
sample "$TOTAL"
for ((live = TOTAL; live > 0; live = prev)); do
  prev=$(((live - 1) / SEGMENT * SEGMENT))
  remove "$prev" "$live"
  sample "$prev"
done

# Leaks: DeleteEndpoint removes interfaces synchronously; allow the agent a few seconds anyway.
leaks="none"
for _ in $(seq 30); do
  links_after=$(workload_links)
  counts_after=$(datastore_counts)
  [ "$links_after" -ne "$links_before" ] || [ "$counts_after" != "$counts_before" ] || break
  sleep 2
done
if [ "$links_after" -ne "$links_before" ] || [ "$counts_after" != "$counts_before" ]; then
  leaks="LEAKED: cali* interfaces $links_before → $links_after, IPAM allocations and endpoints ${counts_before:-?} → ${counts_after:-?}"
fi

echo
echo "Per-container setup time, \`docker run -d --net NET $IMAGE sleep 1d\`, runs alternating between networks:"
echo
echo "| live containers / network | runs | p50 | p90 | p99 | max |"
echo "|---|---|---|---|---|---|"
for live in "$BASE" "$TOTAL"; do
  percentiles "$live / calico" "$work/probe-$live-$calico_net"
  percentiles "$live / bridge (user-defined)" "$work/probe-$live-$bridge_net"
done
echo
echo "Bulk creation and removal ($PARALLEL clients at a time):"
echo
echo "| phase | containers | n | wall time | rate |"
echo "|---|---|---|---|---|"
cat "$work/rates"
echo
echo "Daemon (pid $plugin_pid) as containers come and go:"
echo
echo "| live containers | RSS | goroutines | threads | load average |"
echo "|---|---|---|---|---|"
cat "$work/samples"
echo
if [ -n "$counts_before" ]; then
  echo "Leaks after removal: $leaks (cali* interfaces $links_before → $links_after; IPAM allocations, endpoints: $counts_before → $counts_after)"
else
  echo "Leaks after removal: $leaks (cali* interfaces $links_before → $links_after; $CALICOCTL cannot reach the datastore, IPAM not checked)"
fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$leaks" = "none" ]
