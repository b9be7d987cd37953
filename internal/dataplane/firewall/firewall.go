// Package firewall programs the host firewall for routed workload traffic: the nftables table
// "inet calico", always written as one atomic `nft -f -` transaction, plus a jump from iptables'
// FORWARD chain to CALICO-FORWARD.
//
// Finding (dockerd 20.10, iptables-nft 1.8.9, its FORWARD chain replicated in a netns): an nftables
// accept only ends its own base chain; Docker's "ip filter FORWARD" (policy drop) still dropped
// workload traffic our chain accepted. So we also accept it inside Docker's chain (iptables, and
// ip6tables, which Docker 27+ also sets to DROP); drops in our earlier chain stay final.
package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// validPrefix keeps interface prefixes safe to embed in nft scripts and iptables rules.
var validPrefix = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,12}$`)

// cmdTimeout keeps a wedged nft or iptables (say, stuck on the xtables lock) from stalling the
// periodic reconciler for good.
const cmdTimeout = 30 * time.Second

// acceptMark is Felix's accept bit (the lowest bit of its default mark mask 0xffff0000), set on
// workload packets our forward chain accepts, so later rules can tell what Calico let through.
const acceptMark = "0x10000"

// setsScript declares the table and the pool sets. "add" keeps existing ones and their elements,
// so both Ensure and SetPools can start with it, in either order.
const setsScript = `add table inet calico
add set inet calico all-pools4 { type ipv4_addr; flags interval; }
add set inet calico masq-pools4 { type ipv4_addr; flags interval; }
add set inet calico all-pools6 { type ipv6_addr; flags interval; }
add set inet calico masq-pools6 { type ipv6_addr; flags interval; }
`

// chainsScript (re)writes our chains: %[1]s is the interface prefix, %[2]s the accept mark, %[3]s
// the verdict for workload-to-host traffic. Flushing and refilling in one transaction means the
// chains are never seen half-written.
const chainsScript = `add chain inet calico forward { type filter hook forward priority filter - 10; policy accept; }
flush chain inet calico forward
add rule inet calico forward ct state established,related accept
add rule inet calico forward iifname "%[1]s*" meta mark set meta mark | %[2]s accept
add rule inet calico forward oifname "%[1]s*" meta mark set meta mark | %[2]s accept
add chain inet calico input { type filter hook input priority filter - 10; policy accept; }
flush chain inet calico input
add rule inet calico input iifname "%[1]s*" %[3]s
add chain inet calico postrouting { type nat hook postrouting priority srcnat; policy accept; }
flush chain inet calico postrouting
add rule inet calico postrouting ip saddr @masq-pools4 ip daddr != @all-pools4 masquerade
add rule inet calico postrouting ip6 saddr @masq-pools6 ip6 daddr != @all-pools6 masquerade
`

// forwardChain is our iptables chain, jumped to from the filter table's FORWARD chain.
const (
	forwardChain = "CALICO-FORWARD"
	jumpRule     = "-A FORWARD -j " + forwardChain // as iptables -S prints it
)

// ipFamilies are the iptables front ends whose FORWARD chain Docker may set to DROP.
var ipFamilies = []struct{ iptables, restore string }{
	{"iptables", "iptables-restore"},
	{"ip6tables", "ip6tables-restore"},
}

// Options are the settings Ensure programs.
type Options struct {
	// EndpointToHostAction decides traffic from workloads to the host itself: "ACCEPT" (the
	// default when empty), "DROP" or "RETURN". An nftables accept cannot overrule other tables,
	// so ACCEPT and RETURN both leave such traffic to the host's other input chains; DROP is
	// final.
	EndpointToHostAction string
}

// Firewall owns the table "inet calico" and the iptables chain CALICO-FORWARD. It is safe for
// concurrent use.
type Firewall struct {
	prefix string
	err    error // the prefix's validation error, returned by every method
	log    *slog.Logger
	wrap   []string // prepended to every command; tests use it to run in another namespace

	mu          sync.Mutex // serialises our writes and guards the cache below
	lastScript  string     // the script Ensure last applied
	lastListing string     // `nft -t list table inet calico` right after that
}

// New returns a Firewall for workload interfaces named <ifacePrefix>*. An invalid prefix is
// reported by every method.
func New(ifacePrefix string, log *slog.Logger) *Firewall {
	if log == nil {
		log = slog.Default()
	}
	f := &Firewall{prefix: ifacePrefix, log: log}
	if !validPrefix.MatchString(ifacePrefix) {
		f.err = fmt.Errorf("invalid interface prefix %q: want 1-12 of [a-zA-Z0-9_.-]", ifacePrefix)
	}
	return f
}

// Ensure makes the firewall match opts. It is idempotent and meant to be called periodically
// (dockerd may rewrite its chains whenever it restarts): when nothing changed it only reads the
// current state, and it rewrites only what drifted.
func (f *Firewall) Ensure(opts Options) error {
	if f.err != nil {
		return f.err
	}
	verdict, err := hostVerdict(opts.EndpointToHostAction)
	if err != nil {
		return err
	}
	script := setsScript + fmt.Sprintf(chainsScript, f.prefix, acceptMark, verdict)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensureTable(script); err != nil {
		return err
	}
	for _, fam := range ipFamilies {
		if err := f.ensureForwardAccept(fam.iptables, fam.restore); err != nil {
			return err
		}
	}
	return nil
}

func hostVerdict(action string) (string, error) {
	switch strings.ToUpper(action) {
	case "", "ACCEPT":
		return "accept", nil
	case "DROP":
		return "drop", nil
	case "RETURN":
		return "return", nil
	}
	return "", fmt.Errorf("invalid EndpointToHostAction %q: want ACCEPT, DROP or RETURN", action)
}

// ensureTable applies script unless it was applied before and the table still lists the same.
// The terse listing leaves out set elements, which SetPools owns.
func (f *Firewall) ensureTable(script string) error {
	listing, err := f.run("", "nft", "-t", "list", "table", "inet", "calico")
	if err == nil && script == f.lastScript && listing == f.lastListing {
		return nil
	}
	if _, err := f.run(script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("programming nftables table inet calico: %w", err)
	}
	if listing, err = f.run("", "nft", "-t", "list", "table", "inet", "calico"); err != nil {
		return err
	}
	f.lastScript, f.lastListing = script, listing
	f.log.Info("programmed nftables table inet calico")
	return nil
}

// ensureForwardAccept makes FORWARD jump exactly once to our chain holding exactly our rules.
// A missing jump is inserted at the top; one that Docker's own rules have since been inserted
// above (as dockerd does with DOCKER-USER on restart) still works and is left in place.
func (f *Firewall) ensureForwardAccept(iptables, restore string) error {
	st, err := f.filterState(iptables)
	if err != nil {
		return err
	}
	want := f.forwardRules()
	if st.jumps == 1 && slices.Equal(st.rules, want) {
		return nil
	}
	var b strings.Builder
	// With --noflush, declaring the chain creates it or flushes just it.
	b.WriteString("*filter\n:" + forwardChain + " - [0:0]\n")
	for _, r := range want {
		b.WriteString(r + "\n")
	}
	if st.jumps == 0 {
		b.WriteString("-I FORWARD 1 -j " + forwardChain + "\n")
	}
	for range st.jumps - 1 {
		b.WriteString("-D FORWARD -j " + forwardChain + "\n")
	}
	b.WriteString("COMMIT\n")
	if _, err := f.run(b.String(), restore, "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("programming %s FORWARD accept for workloads: %w", iptables, err)
	}
	f.log.Info("programmed FORWARD accept for workload interfaces", "tool", iptables, "chain", forwardChain)
	return nil
}

func (f *Firewall) forwardRules() []string {
	return []string{
		"-A " + forwardChain + " -i " + f.prefix + "+ -j ACCEPT",
		"-A " + forwardChain + " -o " + f.prefix + "+ -j ACCEPT",
	}
}

// filterState is what of ours the filter table holds.
type filterState struct {
	exists bool     // our chain exists
	rules  []string // its rules, as iptables -S prints them
	jumps  int      // FORWARD rules jumping to it
}

func (f *Firewall) filterState(iptables string) (filterState, error) {
	var st filterState
	out, err := f.run("", iptables, "-w", "5", "-t", "filter", "-S")
	if err != nil {
		return st, err
	}
	for line := range strings.Lines(out) {
		switch line = strings.TrimSpace(line); {
		case line == "-N "+forwardChain:
			st.exists = true
		case line == jumpRule:
			st.jumps++
		case strings.HasPrefix(line, "-A "+forwardChain+" "):
			st.rules = append(st.rules, line)
		}
	}
	return st, nil
}

// SetPools replaces the members of the pool sets in one transaction: masq are the pools whose
// traffic leaving the pools is masqueraded (natOutgoing), all are every pool. Nested and
// duplicate prefixes are merged first, because nftables rejects overlapping intervals.
func (f *Firewall) SetPools(all, masq []netip.Prefix) error {
	if f.err != nil {
		return f.err
	}
	all4, all6, err := splitPools(all)
	if err != nil {
		return err
	}
	masq4, masq6, err := splitPools(masq)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(setsScript)
	for _, set := range []struct {
		name    string
		members []netip.Prefix
	}{{"all-pools4", all4}, {"masq-pools4", masq4}, {"all-pools6", all6}, {"masq-pools6", masq6}} {
		fmt.Fprintf(&b, "flush set inet calico %s\n", set.name)
		if len(set.members) > 0 {
			elems := make([]string, len(set.members))
			for i, p := range set.members {
				elems[i] = p.String()
			}
			fmt.Fprintf(&b, "add element inet calico %s { %s }\n", set.name, strings.Join(elems, ", "))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.run(b.String(), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("setting pool sets: %w", err)
	}
	return nil
}

// splitPools masks, sorts and splits prefixes by family, dropping any contained in another.
func splitPools(pools []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	sorted := make([]netip.Prefix, 0, len(pools))
	for _, p := range pools {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("invalid pool CIDR %q", p)
		}
		sorted = append(sorted, p.Masked())
	}
	slices.SortFunc(sorted, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	// Sorted this way a prefix's container, if any, is the last one kept.
	var kept []netip.Prefix
	for _, p := range sorted {
		if n := len(kept); n > 0 && kept[n-1].Bits() <= p.Bits() && kept[n-1].Contains(p.Addr()) {
			continue
		}
		kept = append(kept, p)
	}
	for _, p := range kept {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6, nil
}

// Remove deletes our table and, in both iptables families, the jumps to our chain and the chain.
// What is already gone is skipped, so it is idempotent.
func (f *Firewall) Remove() error {
	if f.err != nil {
		return f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastScript, f.lastListing = "", ""
	// Adding first makes the delete succeed when the table is already gone.
	if _, err := f.run("add table inet calico\ndelete table inet calico\n", "nft", "-f", "-"); err != nil {
		return fmt.Errorf("deleting nftables table inet calico: %w", err)
	}
	var errs []error
	for _, fam := range ipFamilies {
		errs = append(errs, f.removeForwardAccept(fam.iptables, fam.restore))
	}
	return errors.Join(errs...)
}

func (f *Firewall) removeForwardAccept(iptables, restore string) error {
	st, err := f.filterState(iptables)
	if err != nil || (st.jumps == 0 && !st.exists) {
		return err
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for range st.jumps {
		b.WriteString("-D FORWARD -j " + forwardChain + "\n")
	}
	if st.exists {
		b.WriteString("-F " + forwardChain + "\n-X " + forwardChain + "\n")
	}
	b.WriteString("COMMIT\n")
	if _, err := f.run(b.String(), restore, "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("removing %s chain %s: %w", iptables, forwardChain, err)
	}
	return nil
}

// run runs a command with stdin and returns its stdout; errors carry its stderr.
func (f *Firewall) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	argv := append(slices.Clone(f.wrap), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
