package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// claimSocket is the abstract unix socket whose holder programs the dataplane of the network namespace
// it lives in. Abstract sockets belong to the network namespace, not to the file system, so a managed
// plugin (a mount namespace of its own) and a daemon on the host meet on the same name; and the kernel
// frees the name however the holder ends, kill -9 included.
const claimSocket = "@calico-libnetwork/dataplane"

// Claim makes this process the only calico-libnetwork programming the dataplane of its network
// namespace until the returned Closer is closed. Two would fight over table inet calico, each removing
// the other's rules and sets, and containers would lose traffic at random.
func Claim() (io.Closer, error) {
	l, err := net.Listen("unix", claimSocket)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("claiming this host's dataplane: %w", err)
	}
	return nil, fmt.Errorf("another calico-libnetwork%s already programs this host's dataplane (routes, "+
		"interfaces, nftables table inet calico); run one per host: stop the other (a managed plugin: "+
		"docker plugin disable; the systemd unit: systemctl stop calico-libnetwork), or set "+
		"CALICO_DATAPLANE=none on this one", describeHolder())
}

// describeHolder names the process holding the claim, " (pid N: command line)", or "" if it cannot tell.
func describeHolder() string {
	c, err := net.Dial("unix", claimSocket)
	if err != nil {
		return ""
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	var credErr error
	ctlErr := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if ctlErr != nil || credErr != nil || cred.Pid == 0 {
		// Pid 0: the holder is in a PID namespace we cannot see into.
		return ""
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cred.Pid))
	if args := strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " ")); len(args) > 0 {
		return fmt.Sprintf(" (pid %d: %s)", cred.Pid, strings.Join(args, " "))
	}
	return fmt.Sprintf(" (pid %d)", cred.Pid)
}
