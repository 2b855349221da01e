//go:build !unix

package proc

// Alive reports whether a process with that pid exists; without a portable check it
// always answers true, so nothing is reaped early.
func Alive(pid int) bool { return true }
