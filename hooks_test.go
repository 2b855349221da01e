package brisk_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

// hookLog records what hooks were told.
type hookLog struct {
	mu       sync.Mutex
	starts   map[string]int
	outcomes map[string][]brisk.Outcome // by payload
}

func (l *hookLog) hooks() brisk.Hooks {
	return brisk.Hooks{
		Start: func(_ context.Context, t *brisk.Task) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.starts[string(t.Payload)]++
		},
		Finish: func(_ context.Context, t *brisk.Task, o brisk.Outcome) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.outcomes[string(t.Payload)] = append(l.outcomes[string(t.Payload)], o)
		},
	}
}

func (l *hookLog) kinds(payload string) []brisk.OutcomeKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []brisk.OutcomeKind
	for _, o := range l.outcomes[payload] {
		ks = append(ks, o.Kind)
	}
	return ks
}

func TestHooksSeeEveryOutcome(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	log := &hookLog{starts: map[string]int{}, outcomes: map[string][]brisk.Outcome{}}
	var enqueued []string
	c.AddHooks(brisk.Hooks{Enqueue: func(_ context.Context, task *brisk.Task) error {
		if task.ID == "" {
			return errors.New("the hook saw no ID")
		}
		if string(task.Payload) == "refuse" {
			return errors.New("refused by the hook")
		}
		enqueued = append(enqueued, task.ID)
		return nil
	}})
	if _, err := c.Enqueue(t.Context(), brisk.NewTask("t", []byte("refuse"))); err == nil || !strings.Contains(err.Error(), "refused by the hook") {
		t.Fatalf("Enqueue refused by a hook: %v", err)
	}
	ids := map[string]string{}
	for _, p := range []string{"ok", "flaky", "doomed"} {
		id, err := c.Enqueue(t.Context(), brisk.NewTask("t", []byte(p), brisk.MaxAttempts(2)))
		if err != nil {
			t.Fatal(err)
		}
		ids[p] = id
	}
	if len(enqueued) != 3 || enqueued[0] != ids["ok"] {
		t.Errorf("Enqueue hook saw %v, want the three stored IDs %v", enqueued, ids)
	}
	var mu sync.Mutex
	tries := map[string]int{}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Backoff: func(int, error) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	w.AddHooks(log.hooks())
	w.HandleFunc("t", func(_ context.Context, task *brisk.Task) error {
		mu.Lock()
		defer mu.Unlock()
		tries[string(task.Payload)]++
		switch {
		case string(task.Payload) == "flaky" && tries["flaky"] == 1:
			return errors.New("first try fails")
		case string(task.Payload) == "doomed":
			return errors.New("always fails")
		}
		return nil
	})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for len(log.kinds("ok")) < 1 || len(log.kinds("flaky")) < 2 || len(log.kinds("doomed")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("hooks saw %v %v %v", log.kinds("ok"), log.kinds("flaky"), log.kinds("doomed"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for p, want := range map[string][]brisk.OutcomeKind{
		"ok":     {brisk.OutcomeDone},
		"flaky":  {brisk.OutcomeRetry, brisk.OutcomeDone},
		"doomed": {brisk.OutcomeRetry, brisk.OutcomeDead},
	} {
		got := log.kinds(p)
		if len(got) != len(want) {
			t.Errorf("%s: outcomes %v, want %v", p, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: outcomes %v, want %v", p, got, want)
			}
		}
		log.mu.Lock()
		if log.starts[p] != len(want) {
			t.Errorf("%s: %d starts for %d outcomes", p, log.starts[p], len(want))
		}
		for _, o := range log.outcomes[p] {
			if (o.Kind == brisk.OutcomeDone) != (o.Err == nil) || (o.Kind == brisk.OutcomeRetry) == o.NextAttempt.IsZero() {
				t.Errorf("%s: outcome %+v", p, o)
			}
		}
		log.mu.Unlock()
	}
}

// A worker that stops before its handler returns hands the task back: the outcome is
// "released", and a hook that panics does not stop the worker.
func TestHooksReleasedAtShutdown(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	if _, err := c.Enqueue(t.Context(), brisk.NewTask("slow", []byte("s"))); err != nil {
		t.Fatal(err)
	}
	log := &hookLog{starts: map[string]int{}, outcomes: map[string][]brisk.Outcome{}}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{ShutdownTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.AddHooks(brisk.Hooks{Start: func(context.Context, *brisk.Task) { panic("a broken hook") }})
	w.AddHooks(log.hooks())
	started := make(chan struct{})
	w.HandleFunc("slow", func(ctx context.Context, _ *brisk.Task) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := log.kinds("s"); len(got) != 1 || got[0] != brisk.OutcomeReleased {
		t.Errorf("outcomes %v, want [released]", got)
	}
}

// One task's Finish hooks come in the order of its attempts, even when a slow hook on the
// first attempt is still running as the retry becomes ready at once.
func TestHooksFinishInAttemptOrder(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	if _, err := c.Enqueue(t.Context(), brisk.NewTask("fail", []byte("f"), brisk.MaxAttempts(3))); err != nil {
		t.Fatal(err)
	}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Concurrency: 4, Backoff: func(int, error) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var attempts []int
	dead := make(chan struct{})
	w.AddHooks(brisk.Hooks{Finish: func(_ context.Context, task *brisk.Task, o brisk.Outcome) {
		if o.Kind == brisk.OutcomeRetry {
			time.Sleep(50 * time.Millisecond) // the next attempt would finish meanwhile
		}
		mu.Lock()
		attempts = append(attempts, task.Attempt)
		mu.Unlock()
		if o.Kind == brisk.OutcomeDead {
			close(dead)
		}
	}})
	w.HandleFunc("fail", func(context.Context, *brisk.Task) error { return errors.New("no") })
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-dead
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("Finish hooks saw attempts %v, want [1 2 3]", attempts)
	}
}

// Headers travel from the enqueue (an option, and an Enqueue hook adding one) to the
// handler, and the caller's map is never written.
func TestHeadersReachTheHandler(t *testing.T) {
	t.Parallel()
	b, c := setup(t)
	c.AddHooks(brisk.Hooks{Enqueue: func(_ context.Context, task *brisk.Task) error {
		if task.Headers == nil {
			task.Headers = map[string]string{}
		}
		task.Headers["traceparent"] = "00-trace-span-01"
		return nil
	}})
	mine := map[string]string{"tenant": "acme"}
	task := brisk.NewTask("h", nil, brisk.WithHeader("request", "r-1"))
	task.Headers["tenant"] = mine["tenant"]
	shared := brisk.NewTask("h", nil)
	shared.Headers = mine
	if _, err := c.EnqueueBatch(t.Context(), []*brisk.Task{task, shared}); err != nil {
		t.Fatal(err)
	}
	if len(mine) != 1 {
		t.Errorf("the caller's headers map was written: %v", mine)
	}
	got := make(chan map[string]string, 2)
	startWorker(t, b, brisk.WorkerConfig{}, map[string]brisk.HandlerFunc{
		"h": func(_ context.Context, task *brisk.Task) error { got <- task.Headers; return nil },
	})
	want := []map[string]string{
		{"request": "r-1", "tenant": "acme", "traceparent": "00-trace-span-01"},
		{"tenant": "acme", "traceparent": "00-trace-span-01"},
	}
	var seen []map[string]string
	for range 2 {
		select {
		case h := <-got:
			seen = append(seen, h)
		case <-time.After(10 * time.Second):
			t.Fatalf("handlers saw %v", seen)
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(seen, func(h map[string]string) bool { return maps.Equal(h, w) }) {
			t.Errorf("no handler saw %v (saw %v)", w, seen)
		}
	}
}
