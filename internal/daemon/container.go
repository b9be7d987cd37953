package daemon

import (
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/projectcalico/calico-libnetwork/internal/config"
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

// hostRoot is where the host's / appears to the daemon (CALICO_LIBNETWORK_HOST_ROOT), for link.Ops.
func hostRoot(setting string) string {
	if setting == config.HostRootParent {
		// A managed plugin's parent is its containerd shim, on the host; it outlives the plugin process,
		// so its PID stays valid.
		return fmt.Sprintf("/proc/%d/root", os.Getppid())
	}
	return setting
}
