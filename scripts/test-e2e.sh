#!/usr/bin/env bash
# Run the end-to-end suite (every package under ./test/, one at a time) against one Docker engine.
#
#   ENGINE=debian   Debian's docker.io (20.10) on /var/run/docker.sock, through /usr/bin/docker.
#                   Started with scripts/start-dockerd.sh if none runs.
#   ENGINE=current  dockerd from github.com/moby/moby/v2 (Docker 29 line) with its own runc, built
#                   once by scripts/build-engine.sh. It runs in Debian's dockerd's place: Debian's is
#                   stopped, the current engine serves /var/run/docker.sock and writes /var/run/docker.pid
#                   (so the plugin, the tests and harness.RestartDockerd find it where they always look)
#                   but keeps its state in its own --data-root and --exec-root (emptied at each start: a
#                   run never inherits what a killed one left). The tests use the newer
#                   client (/usr/local/bin/docker). Afterwards, even on failure or Ctrl-C, the current
#                   engine is stopped, the firewall is put back as it was, and Debian's dockerd is
#                   started again with the command line it had. Docker's default firewall backend,
#                   iptables.
#   ENGINE=current-nft  The same engine with --firewall-backend=nftables: Docker's nftables tables and no
#                   iptables rules. Before it starts, FORWARD's DROP policy and DOCKER-USER (which Docker's
#                   iptables backend, Debian's included, leaves behind for the operator) are removed as
#                   Docker's migration notes say, so it runs on the firewall of a host that has only
#                   known nftables; Docker removes its other iptables chains itself.
#   ENGINE=external Whatever DOCKER_HOST, HARNESS_DOCKER and HARNESS_DOCKERD_PIDFILE point at; nothing is
#                   started or stopped. For an engine of your own: see README "Supported Docker versions".
#
# Usage: ENGINE=debian|current|current-nft|external bash scripts/test-e2e.sh [go test flags, e.g. -run TestIPv6]
# Env:   GOTEST_TIMEOUT (25m), E2E_PKGS (default: every package under ./test/), HARNESS_RACE,
#        ENGINE_VERSION / RUNC_VERSION / ENGINE_CACHE (scripts/engine-env.sh), E2E_RESULT_FILE (a file
#        to write the one-line result to, for scripts/test.sh's summary)
# Runs as root. One e2e run at a time per machine (they share dockerd and /run/docker/plugins): a second
# run waits for the first.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="/usr/local/go/bin:$PATH"
# shellcheck source=scripts/engine-env.sh
. scripts/engine-env.sh
# shellcheck source=scripts/dockerd-wait.sh
. scripts/dockerd-wait.sh

ENGINE=${ENGINE:-debian}
GOTEST_TIMEOUT=${GOTEST_TIMEOUT:-25m}
DOCKERD_LOG=/var/log/calico-test-dockerd.log
PIDFILE=/var/run/docker.pid
SOCKET=/var/run/docker.sock
STATE=/run/calico-ci
WAIT=60

T0=$SECONDS
log() { echo "test-e2e[$ENGINE] +$((SECONDS - T0))s: $*"; }
die() {
  echo "test-e2e[$ENGINE]: $*" >&2
  exit 1
}

case "$ENGINE" in
  debian | current | current-nft) unset DOCKER_HOST ;; # their daemon is the one on $SOCKET
  external) ;;
  *) die "ENGINE must be debian, current, current-nft or external, not '$ENGINE'" ;;
esac
if [ "$ENGINE" != external ] && [ "$(id -u)" -ne 0 ]; then
  die "must run as root (it starts and stops dockerd)"
fi

# Descriptors inherited from the caller (a `flock FILE command` wrapper holds its lock on one) would be
# held by every daemon this run starts, for as long as it runs: close them.
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-"; fi
done

# One run at a time. The lock is fd 8; everything that may start a long-lived daemon (dockerd, or go
# test, whose RestartDockerd does) runs with fd 8 closed, or that daemon would hold the lock forever.
mkdir -p "$STATE"
LOCK=$STATE/e2e-run.lock
exec 8>"$LOCK"
if ! flock -n 8; then
  log "another e2e run holds $LOCK; waiting for it"
  flock 8
fi

# ---- dockerd helpers ------------------------------------------------------------------------------

# pid_of_dockerd: the live pid in $PIDFILE, or nothing.
pid_of_dockerd() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ -e "/proc/$pid" ]; then
    echo "$pid"
  fi
}

# exe_of PID: the binary PID runs.
exe_of() { readlink "/proc/$1/exe" 2>/dev/null | sed 's/ (deleted)$//'; }

# is_current_engine PID: whether PID runs a dockerd from the engine cache.
is_current_engine() {
  case "$(exe_of "$1")" in
    "$ENGINE_CACHE"/*) return 0 ;;
  esac
  return 1
}

# stop_pid PID NAME: SIGTERM, wait up to $WAIT s for the process to go, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < WAIT * 10; i++)); do
    [ -e "/proc/$pid" ] || return 0
    # A zombie (its parent has not reaped it yet) has stopped.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running after ${WAIT}s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
}

# wait_ready CLIENT PID NAME: wait until CLIENT gets an answer from the dockerd PID runs.
wait_ready() { wait_dockerd "test-e2e[$ENGINE]" "$1" "$2" "$3" "$DOCKERD_LOG"; }

# start_detached NAME ARGV...: start a dockerd in its own session, logging to $DOCKERD_LOG; sets $started_pid.
start_detached() {
  local name=$1
  shift
  echo "=== $(date -Is) test-e2e.sh ($ENGINE): $*" >>"$DOCKERD_LOG"
  (cd / && exec setsid "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 8>&-) &
  started_pid=$!
  log "started $name (pid $started_pid): $*"
}

# stop_leftover_current_engine: a current engine left on the standard socket by a killed run would make
# Debian's dockerd fail to start; stop it.
stop_leftover_current_engine() {
  local pid
  pid=$(pid_of_dockerd)
  if [ -n "$pid" ] && is_current_engine "$pid"; then
    log "stopping a current engine left running by an earlier run (pid $pid)"
    stop_pid "$pid" "current engine"
    restore_firewall
  fi
}

# fresh_engine_state: the current engine's data and exec roots hold nothing but the tests' objects; each
# run starts from empty ones, so nothing a killed run left (an enabled test plugin, which would be a second
# calico-libnetwork on the host; containers; networks whose plugin has gone) comes back with the engine.
# Whatever is still mounted under them (a killed engine's container file systems, network namespaces) is
# unmounted first, deepest first, and rm stays on their file system.
fresh_engine_state() {
  local root mnt
  for root in "$ENGINE_DATA_ROOT" "$ENGINE_EXEC_ROOT"; do
    case "$(realpath -m "$root")" in
      / | /var | /var/lib | /run | /tmp | /var/lib/docker | /var/run/docker | /run/docker)
        die "refusing to empty $root as the current engine's state: set ENGINE_DATA_ROOT/ENGINE_EXEC_ROOT to folders of the tests' own" ;;
    esac
    while read -r mnt; do
      umount -l "$mnt" || die "cannot unmount $mnt, left by an earlier run"
    done < <(findmnt -rn -o TARGET | grep -E "^$root(/|\$)" | sort -r)
    rm -rf --one-file-system "$root"
  done
}

# ---- firewall snapshot ----------------------------------------------------------------------------
# The current engine rewrites Docker's iptables chains its own way (and ip6tables, which 20.10 leaves
# alone); Debian's dockerd expects its own layout back. Save both before, restore after.

save_firewall() {
  iptables-save >"$STATE/iptables.before"
  ip6tables-save >"$STATE/ip6tables.before"
}

restore_firewall() {
  local ok=0 family
  # Docker's nftables tables: only the current engine's nftables backend makes them, and Debian's dockerd
  # would leave them in force (its default bridge's chain drops what it does not publish).
  for family in ip ip6; do
    if nft list table "$family" docker-bridges >/dev/null 2>&1; then
      nft delete table "$family" docker-bridges || ok=1
    fi
  done
  if [ -s "$STATE/iptables.before" ]; then
    iptables-restore <"$STATE/iptables.before" || ok=1
  fi
  if [ -s "$STATE/ip6tables.before" ]; then
    ip6tables-restore <"$STATE/ip6tables.before" || ok=1
  fi
  rm -f "$STATE/iptables.before" "$STATE/ip6tables.before"
  [ "$ok" -eq 0 ] || echo "test-e2e[$ENGINE]: restoring the firewall snapshot failed" >&2
  return "$ok"
}

# ---- engine selection -----------------------------------------------------------------------------

debian_argv=()   # Debian's dockerd command line as it ran before (exe first), to start it again
restore_needed=0 # set once Debian's dockerd has been stopped

# shellcheck disable=SC2317 # reached through the EXIT trap
# restore_debian: stop the current engine, put the firewall back, start Debian's dockerd again.
restore_debian() {
  [ "$restore_needed" -eq 1 ] || return 0
  restore_needed=0
  local pid rc=0
  pid=$(pid_of_dockerd)
  if [ -n "$pid" ] && is_current_engine "$pid"; then
    log "stopping the current engine (pid $pid)"
    stop_pid "$pid" "current engine"
  fi
  restore_firewall || rc=1
  if [ "${#debian_argv[@]}" -gt 0 ]; then
    start_detached "Debian's dockerd" "${debian_argv[@]}"
    wait_ready "$DEBIAN_DOCKER" "$started_pid" "Debian's dockerd" || rc=1
  else
    bash scripts/start-dockerd.sh 8>&- || rc=1
  fi
  [ "$rc" -eq 0 ] && log "Debian's dockerd is back: $(server_version "$DEBIAN_DOCKER")"
  return "$rc"
}

# shellcheck disable=SC2317 # the EXIT trap
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ! restore_debian; then
    echo "test-e2e[$ENGINE]: could not restore Debian's dockerd; run scripts/start-dockerd.sh" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}

server_version() {
  "$1" version --format 'dockerd {{.Server.Version}} (API {{.Server.APIVersion}}, min {{.Server.MinAPIVersion}}) via client {{.Client.Version}} (API {{.Client.APIVersion}})' 2>&1
}

use_debian() {
  stop_leftover_current_engine
  bash scripts/start-dockerd.sh 8>&-
  export HARNESS_DOCKER=$DEBIAN_DOCKER
  export HARNESS_DOCKERD_PIDFILE=$PIDFILE
  export HARNESS_DOCKERD=/usr/sbin/dockerd
  export HARNESS_DOCKERD_ARGS=""
}

# forget_docker_iptables: what Docker's notes on migrating to nftables leave to the operator (FORWARD's
# DROP policy, the DOCKER-USER chain and its jump), removed in both families as they say. The engine then
# removes Docker's other iptables chains itself (and says so in its log), and runs on the firewall of a host
# that has only known Docker's nftables backend. save_firewall's snapshot puts them back afterwards.
forget_docker_iptables() {
  local ipt
  for ipt in iptables ip6tables; do
    "$ipt" -w 5 -P FORWARD ACCEPT
    while "$ipt" -w 5 -D FORWARD -j DOCKER-USER 2>/dev/null; do :; done
    if "$ipt" -w 5 -S DOCKER-USER >/dev/null 2>&1; then
      "$ipt" -w 5 -F DOCKER-USER
      "$ipt" -w 5 -X DOCKER-USER
    fi
  done
  # Docker's nftables backend does not turn forwarding on, and refuses to start without it (its default
  # bridge needs it); Debian's dockerd, which this run replaces, turns it on.
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    log "net.ipv4.ip_forward is 0; setting it to 1, as Debian's dockerd does"
    echo 1 >/proc/sys/net/ipv4/ip_forward
  fi
}

# firewall_backend: the firewall backend of the engine under test, as docker info reports it (API 1.49+;
# older engines, whose clients know no such field, have only iptables).
firewall_backend() {
  local backend
  backend=$("$HARNESS_DOCKER" info --format '{{with .FirewallBackend}}{{.Driver}}{{end}}' 2>/dev/null || true)
  echo "${backend:-iptables}"
}

# use_current BACKEND: the current engine with firewall backend BACKEND (iptables, its default, or nftables).
use_current() {
  local backend=$1
  bash scripts/build-engine.sh
  [ -x "$CURRENT_DOCKER" ] || die "$CURRENT_DOCKER (a client of API 1.44 or newer) not found"
  stop_leftover_current_engine

  local pid
  pid=$(pid_of_dockerd)
  if [ -n "$pid" ]; then
    local exe
    exe=$(exe_of "$pid")
    mapfile -d '' -t debian_argv <"/proc/$pid/cmdline"
    debian_argv[0]=$exe
    log "stopping Debian's dockerd (pid $pid): ${debian_argv[*]}"
  fi
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  restore_needed=1
  save_firewall
  if [ -n "$pid" ]; then
    stop_pid "$pid" "Debian's dockerd"
  fi
  if [ -e "$SOCKET" ] && "$DEBIAN_DOCKER" info >/dev/null 2>&1; then
    die "a dockerd not started through $PIDFILE still answers on $SOCKET; stop it first"
  fi

  fresh_engine_state
  mkdir -p "$ENGINE_DATA_ROOT" "$ENGINE_EXEC_ROOT" /run/docker/plugins
  local engine_args=(--add-runtime "newrunc=$ENGINE_RUNC" --default-runtime newrunc)
  if [ "$backend" = nftables ]; then
    forget_docker_iptables
    engine_args+=(--firewall-backend=nftables)
  fi
  start_detached "the current engine" "$ENGINE_DOCKERD" \
    --data-root "$ENGINE_DATA_ROOT" --exec-root "$ENGINE_EXEC_ROOT" \
    -H "unix://$SOCKET" --pidfile "$PIDFILE" "${engine_args[@]}"
  wait_ready "$CURRENT_DOCKER" "$started_pid" "the current engine"

  export HARNESS_DOCKER=$CURRENT_DOCKER
  export HARNESS_DOCKERD_PIDFILE=$PIDFILE
  export HARNESS_DOCKERD=$ENGINE_DOCKERD
  export HARNESS_DOCKERD_ARGS="${engine_args[*]}"
  local got
  got=$(firewall_backend)
  [ "$got" = "$backend" ] || die "the current engine reports firewall backend '$got', not $backend"
  if [ "$backend" = nftables ]; then
    log "iptables: $(iptables -S FORWARD | head -n 1), ip6tables: $(ip6tables -S FORWARD | head -n 1);" \
      "Docker's iptables chains left: $( (iptables -S; ip6tables -S) | sed -n 's/^-N \(DOCKER.*\)/\1/p' | tr '\n' ' ');" \
      "nftables: $(nft list tables | grep -F docker | tr '\n' ' ')"
  fi
}

case "$ENGINE" in
  debian) use_debian ;;
  current) use_current iptables ;;
  current-nft) use_current nftables ;;
  external) export HARNESS_DOCKER=${HARNESS_DOCKER:-$DEBIAN_DOCKER} ;;
esac

# The image is per engine: the current engine, starting from an empty data root, imports it each run.
bash scripts/test-image.sh

version=$("$HARNESS_DOCKER" version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>&1) ||
  die "cannot ask the engine its version: $version"
backend=$(firewall_backend)
log "ENGINE=$ENGINE: $(server_version "$HARNESS_DOCKER"), firewall backend $backend"
[[ "$ENGINE" != current* ]] || log "engine binaries: $ENGINE_DOCKERD ($ENGINE_VERSION), $ENGINE_RUNC ($RUNC_VERSION)"
# Calico networks left by earlier runs cost every dockerd start about 15 s each (Docker retries the absent
# plugin). The e2e package removes its own (e2e*) once its first plugin is up; others are named here.
stale=$("$HARNESS_DOCKER" network ls --filter driver=calico --format '{{.Name}}' 2>/dev/null | tr '\n' ' ')
if [ -n "$stale" ]; then
  log "note: calico networks left from earlier runs slow every dockerd start: $stale"
fi

if [ -n "${E2E_PKGS:-}" ]; then
  read -r -a pkgs <<<"$E2E_PKGS"
else
  mapfile -t pkgs < <(go list -e ./test/...)
fi
[ "${#pkgs[@]}" -gt 0 ] || die "no e2e packages"

t0=$SECONDS
rc=0
go test -race -count=1 -timeout "$GOTEST_TIMEOUT" -p 1 "$@" "${pkgs[@]}" 8>&- || rc=$?
if [ "$rc" -eq 0 ]; then
  result="PASS in $((SECONDS - t0))s"
else
  result="FAIL (exit $rc) after $((SECONDS - t0))s"
fi
line="e2e ENGINE=$ENGINE: dockerd $version, $backend firewall backend, through $HARNESS_DOCKER: $result"
log "$line"
if [ -n "${E2E_RESULT_FILE:-}" ]; then
  echo "$line" >"$E2E_RESULT_FILE"
fi
exit "$rc"
