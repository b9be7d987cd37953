// Package firewall programs the host firewall for routed workload traffic: the nftables table
// "inet calico" (base chains, pool sets for natOutgoing, and Calico policy rendered from the policy
// package's model), always changed in one atomic transaction sent over netlink (no nft process), plus
// a jump from iptables' FORWARD chain to CALICO-FORWARD, kept right after Docker's jump to DOCKER-USER.
//
// Why nftables and not iptables for policy: named sets are updated element by element, verdict maps
// dispatch by interface in one lookup, and one transaction replaces any number of chains, sets and
// elements atomically, which is what "no window where traffic is wrongly allowed or dropped" needs.
//
// Finding (dockerd 20.10, iptables-nft 1.8.9, its FORWARD chain replicated in a netns): an nftables
// accept only ends its own base chain; Docker's "ip filter FORWARD" (policy drop) still dropped
// workload traffic our chain accepted. So we also accept it inside Docker's chain (iptables, and
// ip6tables, which Docker 27+ also sets to DROP); drops in our earlier chain stay final. The same
// holds the other way: what our chain accepts still meets the operator's DOCKER-USER rules, which
// come before our accept in Docker's chain.
package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// cmdTimeout keeps a wedged iptables (say, stuck on the xtables lock) from stalling the
// periodic reconciler for good.
const cmdTimeout = 30 * time.Second

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
	wrap   []string // prepended to every command; tests use it to run iptables in another namespace
	netns  int      // a network namespace to program nftables in instead of the caller's (InNetns)
	// transport, if set, sends transactions instead of sendNetlink: the benchmarks' baseline sends them
	// as nft scripts, tests record them.
	transport func(*batch) error

	mu          sync.Mutex         // serialises our writes and guards the state below
	want        map[string]*object // every object of the table we own, as it should be
	have        map[string]*object // what we last wrote; nil when unknown, and the next write is in full
	poolsKnown  bool               // SetPools ran: the pool sets' members are ours to manage
	policyKnown bool               // ApplyPolicy ran: the dispatch maps and policy objects are ours
	sweep       bool               // the next write also deletes what the table holds that we do not want
	fresh       bool               // the table was written in full since the last drift check
	// unverified: the kernel may hold objects of ours missing from have, written by an earlier process
	// or a failed write. The next commit reads them back and adopts those that are as wanted.
	unverified bool
	// verifiedGen is the nftables generation at which Ensure last found everything in place (valid if
	// verified): while it stays the same, nothing changed, and Ensure reads nothing back.
	verified    bool
	verifiedGen uint32
	onNFTables  map[string]bool // by iptables command: it is iptables-nft, whose changes the generation counts
	prefetch    *prefetch       // Prefetch's reading of the table, used while unverified
	plans       policyState
	refused     map[string]Refusal // objects the kernel refused, by name
}

// New returns a Firewall for workload interfaces named <ifacePrefix>*. An invalid prefix is
// reported by every method.
func New(ifacePrefix string, log *slog.Logger) *Firewall {
	if log == nil {
		log = slog.Default()
	}
	f := &Firewall{prefix: ifacePrefix, log: log, want: map[string]*object{}, refused: map[string]Refusal{},
		unverified: true, onNFTables: map[string]bool{}}
	if !validPrefix.MatchString(ifacePrefix) {
		f.err = fmt.Errorf("invalid interface prefix %q: want 1-12 of [a-zA-Z0-9_.-]", ifacePrefix)
	}
	return f
}

// InNetns makes f program the network namespace that fd (an open handle) refers to, whichever thread
// calls it; by default f programs the calling thread's.
func (f *Firewall) InNetns(fd int) { f.netns = fd }

// Ensure makes the base chains match opts and repairs drift. It is idempotent and meant to be called
// periodically (dockerd may rewrite its chains whenever it restarts, and anyone may flush ours): when
// nothing changed it only reads the current state, and it rewrites only what the kernel no longer holds
// as we last wrote it. Reading the table costs time in proportion to the policy, so it is skipped
// right after a full write (as at start-up), and while nftables' generation shows that no transaction
// has changed any table since the last Ensure found everything in place (with iptables-nft, that
// covers FORWARD too).
func (f *Firewall) Ensure(opts Options) error {
	if f.err != nil {
		return f.err
	}
	verdict, err := hostVerdict(opts.EndpointToHostAction)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	base := baseChains(f.prefix, verdict)
	maps.Copy(f.want, base)
	gen, genErr := f.generation()
	unchanged := genErr == nil && f.verified && gen == f.verifiedGen
	f.verified = false
	var drifted []string
	if !unchanged {
		if drifted, err = f.checkDrift(); err != nil {
			return err
		}
	}
	if err := f.commit(slices.Concat(slices.Sorted(maps.Keys(base)), drifted)); err != nil {
		return err
	}
	for _, fam := range ipFamilies {
		if unchanged && f.iptablesOnNFTables(fam.iptables) {
			continue
		}
		if err := f.ensureForwardAccept(fam.iptables, fam.restore); err != nil {
			return err
		}
	}
	f.verified, f.verifiedGen = genErr == nil, gen
	return nil
}

// iptablesOnNFTables reports whether an iptables command is iptables-nft (asked once).
func (f *Firewall) iptablesOnNFTables(iptables string) bool {
	nft, ok := f.onNFTables[iptables]
	if !ok {
		out, err := f.run("", iptables, "-V")
		nft = err == nil && strings.Contains(out, "(nf_tables)")
		f.onNFTables[iptables] = nft
	}
	return nft
}

func hostVerdict(action string) (match, error) {
	switch strings.ToUpper(action) {
	case "", "ACCEPT":
		return accept, nil
	case "DROP":
		return drop, nil
	case "RETURN":
		return ret, nil
	}
	return match{}, fmt.Errorf("invalid EndpointToHostAction %q: want ACCEPT, DROP or RETURN", action)
}

// ensureForwardAccept makes FORWARD jump exactly once to our chain holding exactly our rules, the jump
// where planJump puts it, where Docker's use of iptables needs it (docker.go); elsewhere it removes both.
// Called periodically, it moves a jump that dockerd's restart (or anyone) has put elsewhere.
func (f *Firewall) ensureForwardAccept(iptables, restore string) error {
	st, err := f.filterState(iptables)
	if notInstalled(err) {
		return nil // no iptables of this family: nothing of Docker's in it either
	}
	if err != nil {
		return err
	}
	if !st.docker.needsForwardAccept() {
		what, err := f.deleteForwardAccept(iptables, restore, st)
		if what != "" {
			f.log.Info("removed FORWARD accept for workload interfaces: FORWARD has no DROP policy and no DOCKER-USER",
				"tool", iptables, "removed", what)
		}
		return err
	}
	want := f.forwardRules()
	plan := planJump(st.forward)
	if plan == (jumpPlan{}) && slices.Equal(st.rules, want) {
		return nil
	}
	var b strings.Builder
	// With --noflush, declaring the chain creates it or flushes just it.
	b.WriteString("*filter\n:" + forwardChain + " - [0:0]\n")
	for _, r := range want {
		b.WriteString(r + "\n")
	}
	for range plan.remove {
		b.WriteString("-D FORWARD -j " + forwardChain + "\n")
	}
	if plan.insert > 0 {
		fmt.Fprintf(&b, "-I FORWARD %d -j %s\n", plan.insert, forwardChain)
	}
	b.WriteString("COMMIT\n")
	if _, err := f.run(b.String(), restore, "-w", "5", "--noflush"); err != nil {
		return fmt.Errorf("programming %s FORWARD accept for workloads: %w", iptables, err)
	}
	f.log.Info("programmed FORWARD accept for workload interfaces", "tool", iptables, "chain", forwardChain,
		"jumpsRemoved", plan.remove, "jumpInsertedAt", plan.insert)
	return nil
}

// userJump is Docker's jump to DOCKER-USER, the chain where operators filter forwarded traffic.
const userJump = "-A FORWARD -j DOCKER-USER"

// jumpPlan is how to bring FORWARD's jumps to our chain in place: delete remove of them, then insert
// one at position insert (1-based, counted without them); the zero plan when they are in place.
type jumpPlan struct{ remove, insert int }

// planJump places our one jump right after Docker's jump to DOCKER-USER (its last, should there be
// several), or at the top while there is none: operators' DOCKER-USER rules then apply to workload
// traffic before our chain accepts it, as they apply to Docker's bridges, and Docker's other rules
// come after. dockerd inserts its DOCKER-USER jump at the top whenever it starts, so a jump in place
// stays in place; one lost with a flushed FORWARD comes back below DOCKER-USER, not above it.
func planJump(forward []string) jumpPlan {
	var p jumpPlan
	at, place, others := -1, 0, 0
	for i, r := range forward {
		switch {
		case r == jumpRule:
			p.remove++
			at = i
		case r == userJump:
			others++
			place = others
		default:
			others++
		}
	}
	// With one jump, the rules before it are all others: it is in place if it comes right after place of them.
	if p.remove == 1 && at == place {
		return jumpPlan{}
	}
	p.insert = place + 1
	return p
}

func (f *Firewall) forwardRules() []string {
	return []string{
		"-A " + forwardChain + " -i " + f.prefix + "+ -j ACCEPT",
		"-A " + forwardChain + " -o " + f.prefix + "+ -j ACCEPT",
	}
}

// filterState is what of ours the filter table holds, and FORWARD.
type filterState struct {
	exists  bool     // our chain exists
	rules   []string // its rules, as iptables -S prints them
	forward []string // FORWARD's rules in order, ours among them
	docker  dockerFilter
}

// jumps counts FORWARD's jumps to our chain.
func (st filterState) jumps() int {
	n := 0
	for _, r := range st.forward {
		if r == jumpRule {
			n++
		}
	}
	return n
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
		case strings.HasPrefix(line, "-A FORWARD "):
			st.forward = append(st.forward, line)
		case strings.HasPrefix(line, "-A "+forwardChain+" "):
			st.rules = append(st.rules, line)
		}
	}
	st.docker = readDockerFilter(out)
	return st, nil
}

// Installed reports whether the host holds any of our firewall: the table, or in either iptables family
// our chain or a jump to it. Nothing else makes these, so they show that our dataplane ran here. A tool
// that is not installed has made nothing of ours (Ensure needs them all).
func (f *Firewall) Installed() (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if table, err := f.hasTable(); err != nil || table {
		return table, err
	}
	for _, fam := range ipFamilies {
		st, err := f.filterState(fam.iptables)
		if err != nil && !notInstalled(err) {
			return false, err
		}
		if st.exists || st.jumps() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// hasTable reports whether table inet calico exists.
func (f *Firewall) hasTable() (bool, error) {
	c, err := f.conn()
	if err != nil {
		return false, err
	}
	defer c.CloseLasting()
	l, err := list(c)
	return l.exists, err
}

func notInstalled(err error) bool { return errors.Is(err, exec.ErrNotFound) }

// Remove deletes our table and, in both iptables families, the jumps to our chain and the chain, and
// says what it removed. What is already gone is skipped, so it is idempotent. It touches nothing else:
// other tables (the dataplane claim's among them) and other chains stay as they are.
func (f *Firewall) Remove() ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.want, f.poolsKnown, f.policyKnown = map[string]*object{}, false, false
	f.forget()
	clear(f.refused)
	exists, err := f.hasTable()
	if err != nil {
		return nil, err
	}
	var removed []string
	if exists {
		c, err := f.conn()
		if err == nil {
			c.DelTable(table())
			err = c.Flush()
			c.CloseLasting()
		}
		if err != nil {
			return nil, fmt.Errorf("deleting nftables table inet calico: %w", err)
		}
		removed = append(removed, "nftables table inet calico")
	}
	var errs []error
	for _, fam := range ipFamilies {
		what, err := f.removeForwardAccept(fam.iptables, fam.restore)
		if what != "" {
			removed = append(removed, what)
		}
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

func (f *Firewall) removeForwardAccept(iptables, restore string) (string, error) {
	st, err := f.filterState(iptables)
	if notInstalled(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return f.deleteForwardAccept(iptables, restore, st)
}

// deleteForwardAccept deletes what st shows of ours, and says what.
func (f *Firewall) deleteForwardAccept(iptables, restore string, st filterState) (string, error) {
	if st.jumps() == 0 && !st.exists {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for range st.jumps() {
		b.WriteString("-D FORWARD -j " + forwardChain + "\n")
	}
	if st.exists {
		b.WriteString("-F " + forwardChain + "\n-X " + forwardChain + "\n")
	}
	b.WriteString("COMMIT\n")
	if _, err := f.run(b.String(), restore, "-w", "5", "--noflush"); err != nil {
		return "", fmt.Errorf("removing %s chain %s: %w", iptables, forwardChain, err)
	}
	return fmt.Sprintf("%s chain %s and %d jump(s) to it from FORWARD", iptables, forwardChain, st.jumps()), nil
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
