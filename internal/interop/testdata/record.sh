#!/usr/bin/env bash
# Records etcd-dump.json: the datastore of a three-node cluster as upstream Calico's own binaries write it.
# Upstream calicoctl creates cluster.yaml (tiers, policies, pools, nodes); the upstream CNI plugin (type
# calico, IPAM calico-ipam, as the container runtime on each node would run it) adds workloads on
# network "mynet", creating its profile, endpoints, blocks, affinities and handles, with two addresses
# borrowed from another node's block; calico-ipam alone leaves one allocation no endpoint uses (a leak);
# calico/node's allocate-tunnel-addrs gives each node its VXLAN tunnel address. The first workload is
# labelled role=web with calicoctl label, for the policies. Addresses are asked for
# explicitly, so blocks and their owners are the same on every recording. RECORDED names the commit.
#
# It runs everything inside a throwaway network namespace (etcd, and the CNI plugin's veths and routes),
# so the machine's own network is not touched. Run it again after building another upstream commit
# (scripts/build-upstream-calico.sh), then update the tests to what changed.
#
# Usage: bash internal/interop/testdata/record.sh [UPSTREAM_DIR]
#        (default: /var/cache/calico-ci/upstream/current, holding calicoctl, cni/calico, cni/calico-ipam
#        and calico; needs root, Debian's etcd-server and jq)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(readlink -f "${1:-/var/cache/calico-ci/upstream/current}")
for b in calicoctl cni/calico cni/calico-ipam calico; do
  [ -x "$bin/$b" ] || { echo "record.sh: no $b in $bin (scripts/build-upstream-calico.sh builds it)" >&2; exit 1; }
done

tmp=$(mktemp -d)
host=interop-record-$$ # the namespace playing every node's host
workloads=()
cleanup() {
  for w in "${workloads[@]}"; do ip netns del "$w" 2>/dev/null || true; done
  ip netns pids "$host" 2>/dev/null | xargs -r kill
  ip netns del "$host" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$host"
ip -n "$host" link set lo up
in_host() { ip netns exec "$host" "$@"; }

export DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://127.0.0.1:2379 ETCDCTL_API=3
in_host etcd --data-dir "$tmp/etcd" >"$tmp/etcd.log" 2>&1 &
for _ in $(seq 50); do
  in_host etcdctl endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

in_host "$bin/calicoctl" create -f "$here/cluster.yaml" >/dev/null

# cni NODE NETWORK POOL IP [ipam]: one container on NODE with address IP; with "ipam", calico-ipam alone.
cni() {
  local node=$1 network=$2 pool=$3 ip=$4 plugin=calico
  id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') # the container ID, kept for the caller
  [ "${5:-}" != ipam ] || plugin=calico-ipam
  local netns=interop-wl-${#workloads[@]}-$$
  ip netns add "$netns"
  workloads+=("$netns")
  printf '{"cniVersion":"0.3.1","name":"%s","type":"calico","nodename":"%s","nodename_file_optional":true,"datastore_type":"etcdv3","etcd_endpoints":"%s","log_level":"warning","log_file_path":"%s","ipam":{"type":"calico-ipam","ipv4_pools":["%s"]}}' \
    "$network" "$node" "$ETCD_ENDPOINTS" "$tmp/cni.log" "$pool" |
    in_host env CNI_COMMAND=ADD CNI_CONTAINERID="$id" CNI_NETNS="/var/run/netns/$netns" CNI_IFNAME=eth0 \
      CNI_PATH="$bin/cni" CNI_ARGS="IP=$ip" "$bin/cni/$plugin" >"$tmp/cni.out" 2>"$tmp/cni.err" ||
    { echo "record.sh: CNI ADD of $ip on $node failed:" >&2; cat "$tmp/cni.out" "$tmp/cni.err" >&2; exit 1; }
  echo "record.sh: $node $plugin $ip"
}
cni host-a mynet default-ipv4-ippool 192.168.0.1      # claims 192.168.0.0/26 for host-a
in_host "$bin/calicoctl" label workloadendpoint "host--a-cni-$id-eth0" --namespace default role=web >/dev/null
cni host-b mynet default-ipv4-ippool 192.168.0.66     # claims 192.168.0.64/26 for host-b
cni host-a mynet default-ipv4-ippool 192.168.0.65     # borrowed from host-b's block
cni host-a k8s-pod-network default-ipv4-ippool 192.168.0.2 ipam # allocated, never used: a leak
cni host-a mynet small-pool 10.10.0.1                 # the small pool's only block, host-a's
cni host-a mynet cross-subnet-pool 172.16.0.1         # claims 172.16.0.0/26 for host-a
cni host-b mynet cross-subnet-pool 172.16.0.65        # claims 172.16.0.64/26 for host-b
cni host-c mynet cross-subnet-pool 172.16.0.129       # claims 172.16.0.128/26 for host-c
cni host-c mynet cross-subnet-pool 172.16.0.2         # borrowed from host-a's block

for node in host-a host-b host-c; do
  in_host env NODENAME="$node" CALICO_NETWORKING_BACKEND=vxlan "$bin/calico" component node allocate-tunnel-addrs --run-once \
    >"$tmp/tunnel.log" 2>&1 || { cat "$tmp/tunnel.log" >&2; exit 1; }
done

# One key per line, each value verbatim as etcd holds it (a JSON tool would round IPAM's 64-bit
# sequence numbers).
in_host etcdctl get --prefix /calico/ | {
  echo "["
  sep=" "
  while read -r key && read -r value; do
    printf '%s{"key": %s, "value": %s}\n' "$sep" "$(jq -n --arg key "$key" '$key')" "$value"
    sep=","
  done
  echo "]"
} >"$here/etcd-dump.json"
in_host "$bin/calicoctl" version |
  sed -n 's/^Client Version: */upstream calicoctl, CNI plugin and calico\/node /p; s/^Git commit: */commit /p' >"$here/RECORDED"
echo "record.sh: $(jq length "$here/etcd-dump.json") keys in $here/etcd-dump.json"
cat "$here/RECORDED"
