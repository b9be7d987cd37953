#!/usr/bin/env bash
# Start dockerd in the background unless one already answers.
# Uses /usr/bin/docker, the client that matches Debian's dockerd.
# Usage: bash scripts/start-dockerd.sh
set -euo pipefail
# shellcheck source=scripts/dockerd-wait.sh
. "$(dirname "$0")/dockerd-wait.sh"

DOCKER=/usr/bin/docker
LOG=/var/log/calico-test-dockerd.log

mkdir -p /run/docker/plugins

if "$DOCKER" info >/dev/null 2>&1; then
  echo "start-dockerd: dockerd already running"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "start-dockerd: no dockerd answering and not root, cannot start one" >&2
  exit 1
fi

DOCKERD=/usr/sbin/dockerd
[ -x "$DOCKERD" ] || DOCKERD=$(command -v dockerd || true)
if [ -z "$DOCKERD" ]; then
  echo "start-dockerd: dockerd not found (install docker.io: bash scripts/install-deps.sh)" >&2
  exit 1
fi

echo "start-dockerd: starting $DOCKERD (log: $LOG)"
echo "=== $(date -Is) start-dockerd.sh: $DOCKERD" >>"$LOG"
setsid "$DOCKERD" </dev/null >>"$LOG" 2>&1 &
pid=$!

wait_dockerd start-dockerd "$DOCKER" "$pid" dockerd "$LOG"
echo "start-dockerd: dockerd (pid $pid) ready after ${SECONDS}s"
