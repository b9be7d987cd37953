#!/usr/bin/env bash
# Assembles the root filesystem of the calico-libnetwork image in OUT (emptied first), offline, from the
# binaries `make build` made and this host's iptables tools: the daemon programs nftables through netlink
# (no nftables tools go in), and runs `iptables`, `iptables-restore`, `ip6tables` and `ip6tables-restore`
# for its jump in Docker's iptables FORWARD chain, so those go in with every shared library they load (ldd)
# and iptables' extension modules. Use the same iptables flavour (nft or legacy) as the hosts that run the
# image: it is whatever `iptables` resolves to here.
#
# Usage: packaging/image-rootfs.sh BIN_DIR OUT
set -euo pipefail

bin=${1:?usage: $0 BIN_DIR OUT}
out=${2:?usage: $0 BIN_DIR OUT}
tools=(iptables iptables-restore ip6tables ip6tables-restore)

for b in calico-libnetwork calicoctl; do
	[[ -x $bin/$b ]] || { echo "image-rootfs: $bin/$b is missing: run make build" >&2; exit 1; }
done
for t in "${tools[@]}"; do
	command -v "$t" >/dev/null || { echo "image-rootfs: $t is not installed (apt-get install iptables)" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out"/{usr/bin,usr/sbin,run/docker/plugins,var/lib/calico,tmp}
# Mirror a merged /usr (/lib -> usr/lib, ...), so that library paths as ldd reports them and as the
# programs have them compiled in (/usr/lib/.../xtables) name the same files.
for d in bin sbin lib lib64; do
	if [[ -L /$d ]]; then mkdir -p "$out/$(readlink "/$d")" && ln -s "$(readlink "/$d")" "$out/$d"; fi
done
chmod 1777 "$out/tmp"
install -m 0755 "$bin/calico-libnetwork" "$bin/calicoctl" "$out/usr/bin/"
# The original image's command was /calico.
ln -s usr/bin/calico-libnetwork "$out/calico"

# copy_file PATH: PATH (symlinks resolved) at the same place in the image.
copy_file() {
	mkdir -p "$out$(dirname "$1")"
	cp -L "$1" "$out$1"
}
# copy_libs FILE...: every library the dynamic loader resolves for FILE, and the loader itself.
copy_libs() {
	local lib
	for lib in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u); do
		[[ -e $out$lib ]] || copy_file "$lib"
	done
}

for t in "${tools[@]}"; do
	real=$(readlink -f "$(command -v "$t")")
	[[ -e $out/usr/sbin/$(basename "$real") ]] || install -m 0755 "$real" "$out/usr/sbin/"
	copy_libs "$real"
	# Multi-call binaries (xtables-nft-multi) pick the tool from the name they are run by.
	[[ $(basename "$real") == "$t" ]] || ln -s "$(basename "$real")" "$out/usr/sbin/$t"
done

# iptables loads its matches and targets (even -j of a chain) from this directory at run time.
xtables=$(grep -aom1 '/[a-z0-9_/.-]*/xtables' "$(ldd "$(readlink -f "$(command -v iptables)")" | awk '/libxtables/ {print $3}')" || true)
if [[ -d $xtables ]]; then
	mkdir -p "$out$xtables"
	cp -L "$xtables"/*.so "$out$xtables/"
	copy_libs "$xtables"/*.so
fi
# Protocol names in iptables rules (the daemon reads all of FORWARD, other tools' rules too) resolve through
# this file.
[[ -e /etc/protocols ]] && copy_file /etc/protocols
echo "image-rootfs: $out ($(du -sh "$out" | cut -f1))"
