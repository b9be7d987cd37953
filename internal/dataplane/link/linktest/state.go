package linktest

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// counters are what traffic changes in a listing.
var counters = regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+`)

// HostState is what a namespace's firewall, routes, permanent neighbours and interfaces are, as text, for
// tests that check something leaves a host as it found it. Counters are left out.
func HostState(t testing.TB, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"nft", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"ip", "neigh", "show", "nud", "permanent"}, {"ip", "-br", "link"},
	} {
		out, err := Exec(ns, cmd...)
		Must(t, err)
		b.WriteString("## " + strings.Join(cmd, " ") + "\n")
		for line := range strings.Lines(out) {
			if !strings.HasPrefix(line, "#") {
				b.WriteString(counters.ReplaceAllString(line, ""))
			}
		}
	}
	return b.String()
}

// StateDiff lists the lines only in a, then those only in b.
func StateDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range la {
		if !slices.Contains(lb, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range lb {
		if !slices.Contains(la, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}

// SettleLinkLocal waits until the interfaces in ns have their IPv6 link-local addresses, which the kernel
// gives them (and their routes) a moment after they come up, so that a HostState taken before and one
// taken after agree.
func SettleLinkLocal(t testing.TB, ns string, ifaces ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, iface := range ifaces {
		settleLinkLocal(t, ns, iface, deadline)
	}
}

func settleLinkLocal(t testing.TB, ns, iface string, deadline time.Time) {
	for {
		out, err := Exec(ns, "ip", "-6", "addr", "show", "dev", iface, "scope", "link")
		Must(t, err)
		if strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no usable link-local address after 10 s:\n%s", iface, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
