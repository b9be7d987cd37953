#!/usr/bin/env bash
# Build the local test image calico-test/busybox:latest from the host's
# static busybox (package busybox-static), without any registry. Idempotent.
# Usage: bash scripts/test-image.sh
# Env: HARNESS_DOCKER picks the client (default /usr/bin/docker, Debian's); DOCKER_HOST the daemon.
set -euo pipefail

IMAGE=${TEST_IMAGE:-calico-test/busybox:latest}
DOCKER=${HARNESS_DOCKER:-/usr/bin/docker}
BUSYBOX=/bin/busybox

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "test-image: $IMAGE present"
  exit 0
fi

if [ ! -x "$BUSYBOX" ]; then
  echo "test-image: $BUSYBOX missing (install busybox-static)" >&2
  exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "test-image: $BUSYBOX is dynamically linked; install busybox-static" >&2
  exit 1
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

mkdir -p "$dir"/{bin,etc,root,dev,proc,sys,run,var/run,usr}
install -d -m 1777 "$dir/tmp"
cp "$BUSYBOX" "$dir/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
# Every applet under /bin; /sbin, /usr/bin and /usr/sbin point there too.
ln -s bin "$dir/sbin"
ln -s ../bin "$dir/usr/bin"
ln -s ../bin "$dir/usr/sbin"

cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$dir/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

tar -C "$dir" -c . | "$DOCKER" import \
  --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
  --change 'CMD ["/bin/sh"]' \
  - "$IMAGE" >/dev/null
echo "test-image: built $IMAGE"
