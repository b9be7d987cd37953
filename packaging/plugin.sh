#!/usr/bin/env bash
# Turns the calico-libnetwork image into a managed (v2) Docker plugin: the image's filesystem (exported
# from a container that is never started) plus packaging/plugin/config.json, given to
# `docker plugin create`. The plugin is left disabled; enable it with `docker plugin enable NAME`.
#
# Usage: packaging/plugin.sh IMAGE PLUGIN_NAME WORK_DIR   (DOCKER selects the client, default docker)
set -euo pipefail

image=${1:?usage: $0 IMAGE PLUGIN_NAME WORK_DIR}
name=${2:?usage: $0 IMAGE PLUGIN_NAME WORK_DIR}
work=${3:?usage: $0 IMAGE PLUGIN_NAME WORK_DIR}
docker=${DOCKER:-docker}
here=$(cd "$(dirname "$0")" && pwd)

if "$docker" plugin inspect "$name" >/dev/null 2>&1; then
	echo "plugin: $name already exists; remove it first: $docker plugin disable $name && $docker plugin rm $name" >&2
	exit 1
fi

rm -rf "$work"
mkdir -p "$work/rootfs"
cid=$("$docker" create "$image")
trap '"$docker" rm -f "$cid" >/dev/null; rm -rf "$work"' EXIT
"$docker" export "$cid" | tar -x -C "$work/rootfs"
cp "$here/plugin/config.json" "$work/config.json"
"$docker" plugin create "$name" "$work"
echo "plugin: created $name (disabled). Next: mkdir -p /var/lib/calico && $docker plugin enable $name"
