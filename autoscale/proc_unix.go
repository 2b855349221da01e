//go:build unix

package autoscale

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the process in its own process group, so that a Ctrl-C at the terminal
// reaches the autoscaler only, which then stops its workers in order.
func setProcAttr(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func terminateProcess(cmd *exec.Cmd) error { return cmd.Process.Signal(syscall.SIGTERM) }
