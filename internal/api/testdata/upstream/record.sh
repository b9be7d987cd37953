#!/usr/bin/env bash
# Records this folder's documents from upstream calicoctl: each input/NN-<name>.yaml is created, in order,
# with upstream calicoctl on a throwaway etcd, and the value it stored there is written to <name>.json.
# RECORDED names the calicoctl (version and commit) the documents came from. Run it again after building
# another upstream commit (scripts/build-upstream-calico.sh), and check what changed.
#
# Usage: bash internal/api/testdata/upstream/record.sh [CALICOCTL]
#        (default: /var/cache/calico-ci/upstream/current/calicoctl; needs Debian's etcd-server and jq)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
calicoctl=${1:-/var/cache/calico-ci/upstream/current/calicoctl}
[ -x "$calicoctl" ] || { echo "record.sh: no calicoctl at $calicoctl" >&2; exit 1; }

tmp=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
etcd --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$port" \
  --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
  >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
trap 'kill $etcd_pid; wait $etcd_pid 2>/dev/null; rm -rf "$tmp"' EXIT
export DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://127.0.0.1:$port ETCDCTL_API=3
for _ in $(seq 50); do
  etcdctl --endpoints "$ETCD_ENDPOINTS" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

keys() { etcdctl --endpoints "$ETCD_ENDPOINTS" get --prefix --keys-only /calico/resources/ | sed '/^$/d' | sort; }
record() { # KEY FILE
  etcdctl --endpoints "$ETCD_ENDPOINTS" get --print-value-only "$1" | jq . >"$here/$2"
  echo "record.sh: $2 <- $1"
}

# calicoctl's first write initialises the datastore (ClusterInformation, its default tiers): recorded
# as init-<kind>-<name>.json, with the throwaway profile that triggers it removed.
printf 'apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: record-init}\n' | "$calicoctl" create -f - >/dev/null
"$calicoctl" delete profile record-init >/dev/null
for key in $(keys); do
  path=${key#/calico/resources/v3/projectcalico.org/}
  record "$key" "init-${path%%s/*}-${path##*/}.json"
done

for input in "$here"/input/*.yaml; do
  name=$(basename "$input" .yaml)
  before=$(keys)
  "$calicoctl" create -f "$input" >/dev/null
  key=$(comm -13 <(echo "$before") <(keys))
  [ "$(echo "$key" | wc -l)" -eq 1 ] || { echo "record.sh: $input wrote keys: $key" >&2; exit 1; }
  record "$key" "${name#[0-9][0-9]-}.json"
done
"$calicoctl" version | sed -n 's/^Client Version: */upstream calicoctl /p; s/^Git commit: */commit /p' >"$here/RECORDED"
cat "$here/RECORDED"
