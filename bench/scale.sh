#!/usr/bin/env bash
# Cluster scale, by simulation (bench/scale, results in docs/benchmarks-scale.md): what a large cluster's
# endpoints and policies cost one host running calico-libnetwork. It needs no Docker and no running plugin:
# each phase runs its own etcd and daemon in a throwaway network namespace.
#
# SCALE=smoke (default, what `make bench` runs: about a minute) or SCALE=full (issue 14's sizes: 1,000
# nodes, 100,000 endpoints, 2,000 policies, a 60 s churn; several minutes of both CPUs). Further arguments
# go to the Go program (go run ./bench/scale -h), e.g. -json FILE or -profile DIR.
# Usage: bash bench/scale.sh [flags]   or   SCALE=full bash bench/scale.sh
set -euo pipefail
# shellcheck source=bench/lib.bash
source "$(dirname "$0")/lib.bash"

[ "$(id -u)" -eq 0 ] || skip "run as root (network namespaces, nftables)"
[ -x /usr/bin/etcd ] || skip "needs /usr/bin/etcd (apt-get install etcd-server)"
command -v nft >/dev/null || skip "needs nft"

cd "$(dirname "$0")/.."
make --no-print-directory build >/dev/null
case ${SCALE:-smoke} in
smoke) args=(-nodes 50 -endpoints 2000 -policies 100 -small-nodes 5 -small-endpoints 50 -small-policies 10
  -idle 5s -probes 5 -churn-duration 10s) ;;
full) args=() ;;
*) die "SCALE must be smoke or full, not $SCALE" ;;
esac
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
exec "$GO" run ./bench/scale "${args[@]}" "$@"
