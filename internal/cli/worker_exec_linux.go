//go:build linux

package cli

import "syscall"

// setDeathSignal has the kernel kill a child when the worker process dies (SIGKILL
// included), so that a crashed worker leaves no child running tasks whose leases are
// about to be given to another worker.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
