// Package testenv decides what a test does when something it needs from the machine (a
// server, a command) is missing: it fails under CI and is skipped out loud elsewhere, never
// passed silently.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Missing stops t because something it needs is missing: under CI ($CI set) the test
// fails with the message; elsewhere it is skipped with "SKIPPED: " and the message.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED: " + msg)
}
