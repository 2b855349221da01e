package settle

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestWait checks that a busy process keeps Wait from returning early and that an idle
// one settles at once.
func TestWait(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: Wait returns at once on this system")
	}
	busy := exec.Command("yes")
	if err := busy.Start(); err != nil {
		t.Skip("no yes(1):", err)
	}
	share, waited := Wait([]string{"yes"}, 250*time.Millisecond, time.Second)
	_ = busy.Process.Kill()
	_ = busy.Wait()
	if share < Idle || waited < time.Second {
		t.Errorf("busy: Wait = %.2f after %s; want the whole second above %.2f", share, waited, Idle)
	}
	idle := exec.Command("sleep", "30")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Process.Kill(); _ = idle.Wait() }()
	share, waited = Wait([]string{"sleep"}, 250*time.Millisecond, 5*time.Second)
	if share >= Idle || waited >= 5*time.Second {
		t.Errorf("idle: Wait = %.2f after %s; want settled early", share, waited)
	}
}
