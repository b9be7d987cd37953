#!/usr/bin/env bash
# Build upstream Calico's calicoctl, calico-felix, CNI plugin and calico (calico/node's commands) from a
# projectcalico/calico source tree obtained by hand, into $UPSTREAM_CACHE/<commit>/, and point
# $UPSTREAM_CACHE/current at them. A later run for the same commit builds only what is missing. `make test-interop` (scripts/test-interop.sh) and
# `make test` use what `current` points to. README.md ("Testing against upstream Calico") says how to
# obtain the sources.
#
# Felix needs libbpf as a static library, from the libbpf tag projectcalico/calico's metadata.mk names
# (LIBBPF_VERSION): pass its source tree as LIBBPF, or unpack it into SRC/felix/bpf-gpl/libbpf first.
# Installs libelf-dev, libpcap-dev, zlib1g-dev and ipset (Felix's iptables mode execs it) through apt.
#
# Usage: bash scripts/build-upstream-calico.sh SRC [LIBBPF]
# Env:   CALICO_COMMIT (the commit SRC holds; default: `git -C SRC rev-parse HEAD`),
#        UPSTREAM_CACHE (/var/cache/calico-ci/upstream)
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"

log() { echo "build-upstream-calico: $*"; }
die() {
  log "$*" >&2
  exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 SRC [LIBBPF]"
src=$(cd "$1" && pwd) || die "$1: no such directory"
[ -f "$src/calicoctl/calicoctl/calicoctl.go" ] && [ -d "$src/felix/cmd/calico-felix" ] ||
  die "$src is not a projectcalico/calico source tree (no calicoctl/calicoctl or felix/cmd/calico-felix)"
commit=${CALICO_COMMIT:-$(git -C "$src" rev-parse HEAD 2>/dev/null || true)}
[[ $commit =~ ^[0-9a-f]{40}$ ]] ||
  die "cannot tell which commit $src holds: set CALICO_COMMIT to its 40-hex commit (a git archive has no .git)"
cache=${UPSTREAM_CACHE:-/var/cache/calico-ci/upstream}
out=$cache/$commit
mkdir -p "$cache"

# name, cgo, package: calicoctl and calico-felix for the interop suite; the CNI plugin (cni/calico, which
# acts by the name it runs under, so also cni/calico-ipam) and the calico binary (calico/node's
# `component node allocate-tunnel-addrs`) for recording fixtures (internal/interop/testdata/record.sh).
binaries=(
  "calicoctl 0 ./calicoctl/calicoctl"
  "calico-felix 1 ./felix/cmd/calico-felix"
  "cni/calico 0 ./cni-plugin/cmd/calico"
  "calico 1 ./cmd/calico"
)
todo=()
for b in "${binaries[@]}"; do
  read -r name _ _ <<<"$b"
  [ -x "$out/$name" ] || todo+=("$b")
done

if [ ${#todo[@]} -eq 0 ]; then
  log "$out holds every binary, nothing to build"
else
  [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages)"
  command -v go >/dev/null || die "go not found (expected in /usr/local/go/bin)"
  missing=()
  for pkg in libelf-dev libpcap-dev zlib1g-dev ipset make gcc; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi

  libbpf_dir=$src/felix/bpf-gpl/libbpf
  if [ $# -eq 2 ]; then
    [ -f "$2/src/Makefile" ] || die "$2 is not a libbpf source tree (no src/Makefile)"
    mkdir -p "$libbpf_dir"
    cp -a "$2/." "$libbpf_dir/"
  fi
  [ -f "$libbpf_dir/src/Makefile" ] ||
    die "no libbpf in $libbpf_dir: pass libbpf's source tree (tag $(sed -n 's/^LIBBPF_VERSION=//p' "$src/metadata.mk" 2>/dev/null || echo 'of metadata.mk')) as LIBBPF"
  log "building libbpf (static)"
  make -s -C "$libbpf_dir/src" BUILD_STATIC_ONLY=1 OBJDIR=amd64 EXTRA_CFLAGS=-fPIC >/dev/null

  version=$(git -C "$src" describe --tags 2>/dev/null || echo "${commit:0:12}")
  buildinfo=github.com/projectcalico/calico/pkg/buildinfo
  ldflags="-X $buildinfo.Version=$version -X $buildinfo.BuildDate=$(date -u +%FT%TZ) -X $buildinfo.GitRevision=$commit"
  mkdir -p "$out/cni"
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cd "$src"
  for b in "${todo[@]}"; do
    read -r name cgo pkg <<<"$b"
    log "building $name $version (minutes; calico-felix and calico the longest)"
    CGO_ENABLED=$cgo GOTOOLCHAIN=local go build -buildvcs=false -ldflags "$ldflags" -o "$tmp/bin" "$pkg"
    mv "$tmp/bin" "$out/$name"
  done
  ln -sfn calico "$out/cni/calico-ipam"
  {
    echo "Upstream Calico binaries built by scripts/build-upstream-calico.sh"
    echo "Commit:  $commit ($version)"
    echo "Built:   $(date -u +%FT%TZ) with $(go version | cut -d' ' -f3-)"
    echo "libbpf:  $(git -C "$libbpf_dir" describe --tags 2>/dev/null || echo "from $libbpf_dir")"
  } >>"$out/README.txt"
fi
ln -sfn "$out" "$cache/current"
log "calicoctl: $("$out/calicoctl" version 2>/dev/null | sed -n 's/^Client Version: *//p')"
log "calico-felix: $("$out/calico-felix" --version 2>/dev/null | sed -n 's/^Version: *//p')"
log "$cache/current -> $out"
