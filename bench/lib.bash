# Shared by the bench/*.sh scripts (sourced, not run: make bench runs only *.sh).
# They measure a running calico-libnetwork against Docker's own bridge driver on this host's dockerd.

DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=${IMAGE:-calico-test/busybox:latest}
PLUGIN_DIR=${CALICO_LIBNETWORK_PLUGIN_DIR:-/run/docker/plugins}

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# skip says why the benchmark cannot run here and exits 0, so that `make bench` on a host that is not set up
# for it still runs the others, as the tests skip themselves.
skip() {
  echo "$(basename "$0"): SKIPPED: $*" >&2
  exit 0
}

# require_setup [die] checks what every benchmark needs and says how to get what is missing: it skips the
# benchmark, or with die fails it (for those `make bench` does not run).
require_setup() {
  local missing=${1:-skip}
  [ "$(id -u)" -eq 0 ] || "$missing" "run as root (docker and the plugin sockets are root-only)"
  command -v curl >/dev/null || "$missing" "needs curl"
  "$DOCKER" info >/dev/null 2>&1 || "$missing" "no dockerd answers (start one: bash scripts/start-dockerd.sh)"
  curl -sf --max-time 5 --unix-socket "$PLUGIN_DIR/calico.sock" http://plugin/NetworkDriver.GetCapabilities \
    >/dev/null 2>&1 || "$missing" "no calico-libnetwork answers on $PLUGIN_DIR/calico.sock; start one first, e.g. in another shell: make run-plugin"
  "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || "$missing" "image $IMAGE missing (build it: bash scripts/test-image.sh)"
}

# plugin_pid prints the pid of the calico-libnetwork serving $PLUGIN_DIR/calico.sock.
plugin_pid() {
  local pid
  pid=$(ss -xlpn src "$PLUGIN_DIR/calico.sock" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] || die "cannot find the process listening on $PLUGIN_DIR/calico.sock"
  echo "$pid"
}

# describe_host prints what the numbers depend on.
describe_host() {
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname): $(nproc) CPUs, kernel $(uname -r)," \
    "docker $("$DOCKER" version --format '{{.Server.Version}}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# now_ms prints a monotonic-enough wall clock in milliseconds.
now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

# stats LABEL UNIT FILE prints a markdown table row: label, n, min, median, p90, max, mean of the numbers in
# FILE (one per line). Percentiles are nearest-rank.
stats() {
  sort -g "$3" | awk -v label="$1" -v unit="$2" '
    { v[NR] = $1; sum += $1 }
    END {
      if (NR == 0) { printf "| %s | 0 | | | | | |\n", label; exit }
      p50 = int(NR * 0.5); if (p50 < NR * 0.5) p50++
      p90 = int(NR * 0.9); if (p90 < NR * 0.9) p90++
      printf "| %s | %d | %g %s | %g %s | %g %s | %g %s | %.4g %s |\n", label, NR,
        v[1], unit, v[p50], unit, v[p90], unit, v[NR], unit, sum / NR, unit
    }'
}

stats_header() {
  echo "| network | runs | min | median | p90 | max | mean |"
  echo "|---|---|---|---|---|---|---|"
}
