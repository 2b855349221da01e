package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/briskq/brisk"
)

// TestMain lets the test binary run as a child process of the process actuator's tests
// (BRISK_TEST_CHILD names the role).
func TestMain(m *testing.M) {
	if role := os.Getenv("BRISK_TEST_CHILD"); role != "" {
		os.Exit(child(role))
	}
	goleak.VerifyTestMain(m)
}

func child(role string) int {
	logf := func(format string, args ...any) {
		f, err := os.OpenFile(os.Getenv("BRISK_TEST_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return
		}
		fmt.Fprintf(f, format+"\n", args...)
		f.Close()
	}
	switch role {
	case "wait": // runs until SIGTERM
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		logf("start %d", os.Getpid())
		<-ch
		logf("term %d", os.Getpid())
		return 0
	case "ignore": // ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		logf("start %d", os.Getpid())
		time.Sleep(time.Minute)
		return 0
	case "burn": // keeps one core busy until SIGTERM
		logf("start %d", os.Getpid())
		//lint:ignore SA5002 the child burns a core on purpose, for the CPU policy's tests
		for {
		}
	case "crash":
		logf("start %d", os.Getpid())
		time.Sleep(20 * time.Millisecond)
		return 3
	case "worker":
		return liveWorker()
	}
	return 2
}

func childCommand(t *testing.T, role string) (ProcessConfig, string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "child.log")
	return ProcessConfig{
		Command: []string{os.Args[0], "-test.run=^$"},
		Env:     []string{"BRISK_TEST_CHILD=" + role, "BRISK_TEST_LOG=" + log},
		Stdout:  io.Discard, Stderr: io.Discard,
	}, log
}

func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "\n", " ; "))
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func logHas(t *testing.T, path, line string) bool {
	b, _ := os.ReadFile(path)
	return slices.Contains(strings.Split(string(b), "\n"), line)
}

func TestProcessActuatorScalesNewestFirst(t *testing.T) {
	cfg, log := childCommand(t, "wait")
	a, err := NewProcessActuator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	if err := a.Scale(ctx, 3); err != nil {
		t.Fatal(err)
	}
	pids := a.PIDs()
	if len(pids) != 3 || a.Count() != 3 {
		t.Fatalf("pids %v, count %d; want 3", pids, a.Count())
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d to start", pid), 20*time.Second, func() bool { return logHas(t, log, fmt.Sprintf("start %d", pid)) })
	}
	if err := a.Apply(ctx, Decision{Desired: 1}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := a.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids[1:] {
		if !logHas(t, log, fmt.Sprintf("term %d", pid)) {
			t.Errorf("process %d was not stopped with SIGTERM; log %q", pid, readLog(t, log))
		}
	}
	if logHas(t, log, fmt.Sprintf("term %d", pids[0])) || !slices.Equal(a.PIDs(), pids[:1]) {
		t.Errorf("the oldest process %d was stopped; kept %v", pids[0], a.PIDs())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !logHas(t, log, fmt.Sprintf("term %d", pids[0])) {
		t.Errorf("Close did not stop process %d with SIGTERM", pids[0])
	}
	if err := a.Scale(ctx, 1); err == nil {
		t.Error("Scale after Close succeeded")
	}
}

func TestProcessActuatorKillsAfterGrace(t *testing.T) {
	cfg, log := childCommand(t, "ignore")
	cfg.Grace = 300 * time.Millisecond
	a, err := NewProcessActuator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Scale(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	pid := a.PIDs()[0]
	waitFor(t, "the child to start", 20*time.Second, func() bool { return logHas(t, log, fmt.Sprintf("start %d", pid)) })
	start := time.Now()
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not kill a process that ignores SIGTERM")
	}
	if took := time.Since(start); took < cfg.Grace {
		t.Errorf("killed after %s, before the grace period %s", took, cfg.Grace)
	}
}

func TestProcessActuatorRestarts(t *testing.T) {
	cfg, _ := childCommand(t, "crash")
	cfg.Backoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	a, err := NewProcessActuator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Scale(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restarts", 30*time.Second, func() bool { return a.Restarts() >= 3 })
	if a.Count() != 2 {
		t.Errorf("count %d after restarts, want 2", a.Count())
	}
}

func TestProcessActuatorStartFailure(t *testing.T) {
	_, err := NewProcessActuator(ProcessConfig{Command: []string{"/nonexistent/brisk-worker", "run"}})
	if err == nil || !strings.Contains(err.Error(), `worker command "/nonexistent/brisk-worker" cannot start`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewProcessActuator(ProcessConfig{}); !errors.Is(err, brisk.ErrInvalid) {
		t.Fatalf("no command: err = %v", err)
	}
	// A command that disappears after the check fails at Scale.
	dir := t.TempDir()
	prog := filepath.Join(dir, "worker.sh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nsleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := NewProcessActuator(ProcessConfig{Command: []string{prog}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	os.Remove(prog)
	if err := a.Scale(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("Scale: err = %v", err)
	}
	if a.Count() != 0 {
		t.Errorf("count %d after a failed start", a.Count())
	}
}

func TestCommandActuator(t *testing.T) {
	out := filepath.Join(t.TempDir(), "counts")
	h, err := NewCommandActuator(CommandConfig{Template: fmt.Sprintf(`sh -c 'echo scaled to {{count}}; echo {{count}} >> %s'`, out)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []int{2, 2, 3, 3, 1} {
		if err := h.Apply(ctx, Decision{Desired: n}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(out)
	if string(b) != "2\n3\n1\n" || h.Runs() != 3 {
		t.Errorf("ran %d times, wrote %q; want 3 runs, 2 3 1", h.Runs(), b)
	}

	fail, err := NewCommandActuator(CommandConfig{Template: `sh -c 'echo quota exceeded for {{count}}; exit 1'`})
	if err != nil {
		t.Fatal(err)
	}
	if err := fail.Scale(ctx, 4); err == nil || !strings.Contains(err.Error(), "quota exceeded for 4") {
		t.Errorf("failing hook: err = %v", err)
	}
	if err := fail.Scale(ctx, 4); err == nil || fail.Runs() != 2 {
		t.Errorf("a failed count is not retried: err %v, runs %d", err, fail.Runs())
	}

	slow, err := NewCommandActuator(CommandConfig{Template: "sleep {{count}}", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := slow.Scale(ctx, 30); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow hook: err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the timeout did not stop the hook")
	}

	for _, bad := range []string{"heroku ps:scale worker=3", `echo '{{count}}`, ""} {
		if _, err := NewCommandActuator(CommandConfig{Template: bad}); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("template %q: err = %v", bad, err)
		}
	}
	if got := h.Command(7); got[2] != fmt.Sprintf("echo scaled to 7; echo 7 >> %s", out) {
		t.Errorf("Command(7) = %q", got)
	}
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	now := time.Now()
	m.ObserveDecision("emails", Decision{At: now, Current: 1, Desired: 3, Sample: Sample{At: now, Latency: 1500 * time.Millisecond, Pending: 42, SLA: 5 * time.Second}})
	m.ObserveDecision("emails", Decision{At: now, Current: 3, Desired: 3, Sample: Sample{At: now, Latency: 2 * time.Second, Pending: 40, SLA: 5 * time.Second}})
	m.ObserveDecision("emails", Decision{At: now, Current: 3, Desired: 3}) // sample failed
	m.SetCurrentWorkers(3)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`brisk_queue_latency_seconds{queue="emails"} 2`,
		`brisk_queue_pending{queue="emails"} 40`,
		`brisk_queue_sla_seconds{queue="emails"} 5`,
		`brisk_autoscale_desired_workers{queue="emails"} 3`,
		`brisk_autoscale_current_workers 3`,
		`brisk_autoscale_decisions_total{direction="up",queue="emails"} 1`,
		`brisk_autoscale_decisions_total{direction="hold",queue="emails"} 2`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestPool(t *testing.T) {
	act := &fakeActuator{}
	p := NewPool(act, 1)
	ctx := context.Background()
	a, b := p.For("a"), p.For("b")
	steps := []struct {
		act  Actuator
		n    int
		want int
	}{{a, 3, 3}, {b, 2, 3}, {a, 1, 2}, {b, 1, 1}}
	for _, s := range steps {
		if err := s.act.Apply(ctx, Decision{Desired: s.n}); err != nil {
			t.Fatal(err)
		}
		if p.Current() != s.want {
			t.Errorf("after %d: pool at %d, want %d", s.n, p.Current(), s.want)
		}
	}
	if got := act.applied; !slices.Equal(got, []int{3, 2, 1}) {
		t.Errorf("applied %v, want [3 2 1]", got)
	}
}
