//go:build unix

// Package proc answers questions about local processes.
package proc

import (
	"errors"
	"os"
	"syscall"
)

// Alive reports whether a process with that pid exists on this host. It errs on the side of
// "alive": only a definite "no such process" answer returns false.
func Alive(pid int) bool {
	if pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return !errors.Is(err, syscall.ESRCH)
}
