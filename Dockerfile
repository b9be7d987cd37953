# The calico-libnetwork image: the static daemon and calicoctl, plus the iptables tools the daemon runs for
# its jump in Docker's iptables chains, on an empty base (no nftables tools: the daemon programs nftables
# through netlink). Nothing is downloaded: `make image` builds the binaries on this host, assembles
# the root filesystem with packaging/image-rootfs.sh and uses it as the build context.
#
#   make image                      # IMAGE=calico/node-libnetwork:latest
#   docker run --rm --net=host --privileged \
#     -v /run/docker/plugins:/run/docker/plugins -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/calico:/var/lib/calico calico/node-libnetwork /calico
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/sbin:/usr/bin
# No ENTRYPOINT, so that the original `docker run ... calico/node-libnetwork /calico` keeps working.
CMD ["/calico"]
