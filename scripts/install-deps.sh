#!/usr/bin/env bash
# Install the Debian packages the test suite needs (only the missing ones). These are test dependencies:
# besides Docker, the daemon needs only iptables, for its jump in Docker's iptables FORWARD chain (docker.io
# depends on it), and `make image` copies this host's iptables tools.
# Idempotent; must run as root. Usage: bash scripts/install-deps.sh
set -euo pipefail

PACKAGES=(
  docker.io etcd-server etcd-client iptables busybox-static iproute2
  curl netcat-openbsd iputils-ping procps kmod
  # nft, for the tests only: they and the benchmarks read the kernel's rules with `nft list`; the daemon
  # programs nftables through netlink (test/e2e TestBareHostRunPlugin runs it where no nft exists)
  nftables
  # the race detector (go test -race) needs cgo: a C compiler and libc headers
  gcc libc6-dev
  # upstream calico-felix, for TestFelixParity when its binary is cached: iptables mode execs ipset;
  # the binary links libelf and libpcap
  ipset libelf1 libpcap0.8
  # BIRD, as the top-of-rack router the BGP tests peer with (test/multihost); its own service is not
  # wanted on the host, so services are kept from starting while packages install (policy-rc.d below)
  bird2
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root" >&2
  exit 1
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/install-deps.XXXXXX.log)

if ! apt-get update -qq >"$log" 2>&1; then
  echo "install-deps: apt-get update failed:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

# A policy-rc.d answering 101 keeps packages from starting their services (bird2's; dockerd and etcd are
# started by the test scripts as they need them), unless the machine has one of its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
  # Find out which package is to blame, one by one.
  for p in "${missing[@]}"; do
    installed "$p" && continue
    if ! apt-get install -y -qq --no-install-recommends "$p" >>"$log" 2>&1; then
      echo "install-deps: FAILED to install Debian package '$p'; apt output:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
  done
fi

for p in "${missing[@]}"; do
  if ! installed "$p"; then
    echo "install-deps: package '$p' is still not installed; see $log" >&2
    exit 1
  fi
done
rm -f "$log"
echo "install-deps: done"
