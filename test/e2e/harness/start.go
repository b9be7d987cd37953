package harness

import (
	"os/exec"
	"syscall"
)

// StartTied starts cmd so that it is killed when the test process dies (even on a go test timeout), for
// suites that run their own daemons (dockerd, etcd) beside the plugin.
func StartTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return startOnLockedThread(cmd)
}
