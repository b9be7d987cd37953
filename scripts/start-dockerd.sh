#!/usr/bin/env bash
# Start dockerd in the background unless one already answers.
# Uses /usr/bin/docker, the client that matches Debian's dockerd.
# Usage: bash scripts/start-dockerd.sh
set -euo pipefail

DOCKER=/usr/bin/docker
LOG=/var/log/calico-test-dockerd.log
WAIT=60

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

for ((i = 0; i < WAIT * 2; i++)); do
  if "$DOCKER" info >/dev/null 2>&1; then
    echo "start-dockerd: dockerd (pid $pid) ready after $((i / 2))s"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start-dockerd: dockerd exited; last log lines:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done

echo "start-dockerd: dockerd did not answer within ${WAIT}s; last log lines:" >&2
tail -n 30 "$LOG" >&2
exit 1
