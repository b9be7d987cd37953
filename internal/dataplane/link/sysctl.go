package link

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// sysctlRoot shows the net sysctls of the namespace of the thread that opens a file under it.
const sysctlRoot = "/proc/sys"

// ConfigureHostInterface applies the sysctls a host-side workload interface needs (the set
// Calico's CNI plugin and Felix apply). Writing the same values again is harmless, so it is
// idempotent.
func ConfigureHostInterface(name string, ipv6 bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	conf4 := func(leaf string) []string { return []string{"net", "ipv4", "conf", name, leaf} }
	conf6 := func(leaf string) []string { return []string{"net", "ipv6", "conf", name, leaf} }
	settings := []sysctlSetting{
		{key: conf4("proxy_arp"), value: "1"},      // answer the workload's ARP for 169.254.1.1
		{key: conf4("forwarding"), value: "1"},     // route what the workload sends
		{key: conf4("route_localnet"), value: "1"}, // allow DNAT of workload traffic to 127/8
		{key: conf4("rp_filter"), value: "1"},      // strict: drop spoofed workload sources
		// A workload must never configure the host through router advertisements.
		{key: conf6("accept_ra"), value: "0", optional: !ipv6},
	}
	if ipv6 {
		settings = append(settings, []sysctlSetting{
			{key: conf6("disable_ipv6"), value: "0"},
			{key: conf6("accept_dad"), value: "0"}, // the link-local is usable at once
			{key: conf6("proxy_ndp"), value: "1"},
			{key: conf6("forwarding"), value: "1"},
			{key: conf6("addr_gen_mode"), value: "0"}, // EUI-64: see LinkLocalIPv6
		}...)
	}
	for _, s := range settings {
		err := writeSysctl(s.value, s.key...)
		if s.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("configuring interface %s: %w", name, err)
		}
	}
	// Without this the host delays proxy-ARP answers by up to 800ms; losing it only costs latency.
	if err := writeSysctl("0", "net", "ipv4", "neigh", name, "proxy_delay"); err != nil {
		slog.Warn("configuring workload interface", "interface", name, "err", err)
	}
	return nil
}

type sysctlSetting struct {
	key      []string // path components below /proc/sys
	value    string
	optional bool // skipped when the kernel lacks it (built without IPv6, or ipv6.disable=1)
}

// EnableForwarding turns on routing for the namespace. Note that IPv6 all.forwarding=1 makes the
// kernel ignore router advertisements on interfaces with accept_ra=1 (hosts relying on SLAAC
// need accept_ra=2 on their uplink), as with any Calico host.
func EnableForwarding(ipv6 bool) error {
	if err := writeSysctl("1", "net", "ipv4", "ip_forward"); err != nil {
		return err
	}
	if ipv6 {
		return writeSysctl("1", "net", "ipv6", "conf", "all", "forwarding")
	}
	return nil
}

// writeSysctl writes value to the sysctl whose path components under /proc/sys are key. Keeping
// components apart (rather than parsing a dotted name) keeps interface names with dots intact.
func writeSysctl(value string, key ...string) error {
	f, err := os.OpenFile(sysctlPath(key), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(value)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("setting %s=%s: %w", sysctlName(key), value, err)
	}
	return nil
}

func readSysctl(key ...string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", sysctlName(key), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func sysctlPath(key []string) string {
	return filepath.Join(append([]string{sysctlRoot}, key...)...)
}

// sysctlName spells key the way sysctl(8) does: dots inside a component (an interface name such
// as eth0.100) become slashes.
func sysctlName(key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = strings.ReplaceAll(k, ".", "/")
	}
	return strings.Join(parts, ".")
}
