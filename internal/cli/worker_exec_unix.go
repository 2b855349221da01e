//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// setChildAttr puts a child in its own process group, so that a Ctrl-C at the terminal
// reaches the worker only, which lets running tasks finish before it ends its children;
// on Linux the child is also killed if the worker dies (see worker_exec_linux.go).
func setChildAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// killChild kills a child and whatever it started in its process group.
func killChild(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
