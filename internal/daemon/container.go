package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/config"
	"github.com/projectcalico/calico-libnetwork/internal/dataplane/link"
	"github.com/projectcalico/calico-libnetwork/internal/driver"
)

// Adjustments for running in a container, as a managed plugin does.

// procSys holds the sysctls; the plugin writes net.* ones for the host and for every workload interface.
const procSys = "/proc/sys"

// makeSysctlsWritable remounts /proc/sys read-write when it is mounted read-only, as container runtimes
// mount it by default. A managed (v2) plugin runs that way: Docker cannot make it privileged, only grant it
// capabilities, and refuses mounts inside /proc. The remount needs CAP_SYS_ADMIN and changes only this
// process's mount namespace (a container's own); on a host /proc/sys is writable and nothing happens.
func makeSysctlsWritable(log *slog.Logger) error {
	var st unix.Statfs_t
	if err := unix.Statfs(procSys, &st); err != nil {
		return fmt.Errorf("checking %s: %w", procSys, err)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		return nil
	}
	// A bind remount must repeat the locked flags it keeps; statfs reports them with the mount flags' values.
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", procSys, "", unix.MS_REMOUNT|unix.MS_BIND|keep, ""); err != nil {
		return fmt.Errorf("%s is read-only and cannot be remounted read-write (the plugin sets the net sysctls of "+
			"workload interfaces; in a container give it CAP_SYS_ADMIN or --privileged): %w", procSys, err)
	}
	log.Info("remounted read-only " + procSys + " read-write for net sysctls")
	return nil
}

// hostRootLinks opens Docker's container namespace paths (sandbox keys) through the directory where the
// host's root appears. A managed plugin has a mount namespace of its own, into which the namespace files
// Docker creates later do not propagate (unless the host's mounts are shared); with the host's PIDs
// (pidhost) and CAP_SYS_PTRACE it reaches them through /proc/<PID>/root of a host process.
type hostRootLinks struct {
	link.Ops
	root string
}

func (h hostRootLinks) SandboxRoutes(sandboxKey string) ([]netip.Prefix, error) {
	path, err := resolveUnder(h.root, sandboxKey)
	if err != nil {
		return nil, err
	}
	return h.Ops.SandboxRoutes(path)
}

// resolveUnder returns the path of name as the process whose root is root sees it: the kernel would resolve
// an absolute symbolic link met on the way (Docker's /var/run -> /run) from our own root instead.
func resolveUnder(root, name string) (string, error) {
	const maxLinks = 40 // as the kernel's limit
	resolved, rest := "/", strings.Split(strings.TrimPrefix(filepath.Clean("/"+name), "/"), "/")
	for links := 0; len(rest) > 0; {
		next := filepath.Join(resolved, rest[0])
		rest = rest[1:]
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			// Not a link (or missing: the caller's open reports that).
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %s under %s: too many symbolic links", name, root)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(resolved, target)
		}
		resolved = "/"
		rest = append(strings.Split(strings.TrimPrefix(filepath.Clean(target), "/"), "/"), rest...)
	}
	return filepath.Join(root, resolved), nil
}

// links returns the kernel operations the driver uses, reading sandboxes under hostRoot when it is set.
func links(hostRoot string) driver.Links {
	switch hostRoot {
	case "":
		return link.Ops{}
	case config.HostRootParent:
		// The shim outlives the plugin process, so its PID stays valid.
		hostRoot = fmt.Sprintf("/proc/%d/root", os.Getppid())
	}
	return hostRootLinks{root: hostRoot}
}
