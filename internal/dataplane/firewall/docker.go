package firewall

import "strings"

// Whether workload traffic needs our accept in iptables' FORWARD depends on Docker's firewall backend,
// which only the kernel's state tells this daemon (it never asks Docker's API for its dataplane).
//
// Docker's iptables backend creates the filter chain DOCKER-USER with a jump to it from FORWARD at every
// start, and sets FORWARD's policy to DROP when it turns forwarding on. An nftables accept ends only its
// own base chain, so workload traffic our table accepts must be accepted in FORWARD too.
//
// Docker's nftables backend (--firewall-backend=nftables, Docker 29) makes no iptables rules and no drop
// policy: its tables ip and ip6 docker-bridges hook forward at priority filter with policy accept and
// send only packets of its own bridges (verdict maps by interface) to chains that may drop. It does
// not turn forwarding on either. There our accept has nothing to get past, and iptables is left alone.
//
// A host switched from the iptables backend keeps FORWARD's DROP policy and the DOCKER-USER chain and
// jump (Docker removes its other chains, and documents the rest as the operator's to remove): workload
// traffic needs the accept there until they go, and DOCKER-USER's rules still apply before it.

// dockerFilter is what one iptables family's filter table shows of Docker's use of iptables.
type dockerFilter struct {
	dropPolicy bool // FORWARD's policy is DROP
	userChain  bool // the chain DOCKER-USER exists
}

// readDockerFilter reads it from the output of `iptables -S` for the filter table.
func readDockerFilter(rules string) dockerFilter {
	var d dockerFilter
	for line := range strings.Lines(rules) {
		switch strings.TrimSpace(line) {
		case "-P FORWARD DROP":
			d.dropPolicy = true
		case "-N DOCKER-USER":
			d.userChain = true
		}
	}
	return d
}

// needsForwardAccept reports whether FORWARD should hold our jump: where it would drop what our table
// accepts, and where Docker's DOCKER-USER is, so that the jump keeps its place right after it.
func (d dockerFilter) needsForwardAccept() bool { return d.dropPolicy || d.userChain }
