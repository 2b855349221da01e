package autoscale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "4242 (my (worker) x) S 1 4240 4240 0 -1 4194560 100 0 0 0 1500 250 30 20 20 0 5 0 12345 0 0\n"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.pgrp != 4240 || st.utime != 1500 || st.stime != 250 || st.cutime != 30 || st.cstime != 20 {
		t.Errorf("parseStat = %+v", st)
	}
	for _, bad := range []string{"", "12 (x) S 1 2", "12 (x) S 1 two 3 4 5 6 7 8 9 10 11 12 13 14 15"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) = nil error", bad)
		}
	}
}

// TestProcessCPU fakes /proc: two groups, one with a child; a process that appears within
// the interval does not count.
func TestProcessCPU(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(pid, pgrp int, utime, stime, cutime int) {
		d := filepath.Join(dir, fmt.Sprint(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%d (w) S 1 %d %d 0 -1 0 0 0 0 0 %d %d %d 0 20 0 1 0 1 0 0\n", pid, pgrp, pgrp, utime, stime, cutime)
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Unix(1000, 0)
	pids := []int{10, 20}
	p := &ProcessCPU{pids: func() []int { return pids }, proc: dir, now: func() time.Time { return now }, last: map[string]cpuMark{}}
	write(10, 10, 100, 0, 0)
	write(11, 10, 50, 0, 0) // a child of 10 in its group
	write(20, 20, 0, 0, 0)
	write(99, 99, 500, 0, 0) // not a worker
	if u, err := p.Utilisation("q"); err != nil || u != -1 {
		t.Fatalf("first call: %v, %v; want -1 (unknown)", u, err)
	}
	// 10 s later: group 10 used 8 s (6 s own, 1 s its child, 1 s a reaped child), group 20
	// 2 s: 10 s of CPU over 2 processes × 10 s = 0.5; process 30 started meanwhile.
	now = now.Add(10 * time.Second)
	write(10, 10, 700, 0, 100)
	write(11, 10, 150, 0, 0)
	write(20, 20, 150, 50, 0)
	write(30, 30, 900, 0, 0)
	write(99, 99, 5000, 0, 0)
	pids = []int{10, 20, 30, 0}
	if u, err := p.Utilisation("q"); err != nil || u < 0.4999 || u > 0.5001 {
		t.Fatalf("utilisation %v, %v; want 0.5", u, err)
	}
	// Another key has its own interval.
	if u, _ := p.Utilisation("other"); u != -1 {
		t.Errorf("first call of another key: %v, want -1", u)
	}
	pids = nil
	now = now.Add(10 * time.Second)
	if u, err := p.Utilisation("q"); err != nil || u != -1 {
		t.Errorf("no process: %v, %v; want -1", u, err)
	}
}

// TestProcessCPULive measures real processes: one that keeps a core busy and one that
// waits, over the same two seconds. The bounds are loose (a loaded machine gives the busy
// one less than a core), and the test does not run in parallel with the package's others.
func TestProcessCPULive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	type child struct {
		cpu *ProcessCPU
		src Source
	}
	start := func(role string) child {
		cfg, log := childCommand(t, role)
		a, err := NewProcessActuator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if err := a.Scale(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		pid := a.PIDs()[0]
		waitFor(t, role+" to start", 20*time.Second, func() bool { return logHas(t, log, fmt.Sprintf("start %d", pid)) })
		cpu, err := NewProcessCPU(a.PIDs)
		if err != nil {
			t.Fatal(err)
		}
		return child{cpu, WithCPU(sourceFunc(func(context.Context, string) (Sample, error) { return Sample{CPU: -1}, nil }), cpu)}
	}
	burn, wait := start("burn"), start("wait")
	sample := func(c child) float64 {
		s, err := c.src.Sample(context.Background(), "q")
		if err != nil {
			t.Fatal(err)
		}
		return s.CPU
	}
	if b, w := sample(burn), sample(wait); b != -1 || w != -1 {
		t.Fatalf("first samples: CPU %v and %v, want -1 (unknown)", b, w)
	}
	time.Sleep(2 * time.Second)
	b, w := sample(burn), sample(wait)
	t.Logf("busy process: %.2f cores, waiting process: %.2f", b, w)
	if b < 0.1 || b > 1.5 || w < 0 || w > 0.1 || b < w+0.1 {
		t.Errorf("busy process: CPU %.2f, want about 1; waiting process: %.2f, want about 0", b, w)
	}
}

type sourceFunc func(ctx context.Context, queue string) (Sample, error)

func (f sourceFunc) Sample(ctx context.Context, queue string) (Sample, error) { return f(ctx, queue) }
