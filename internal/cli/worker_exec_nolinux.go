//go:build unix && !linux

package cli

import "syscall"

// setDeathSignal does nothing where the kernel has no parent-death signal: a child whose
// worker died exits when its standard input ends.
func setDeathSignal(*syscall.SysProcAttr) {}
