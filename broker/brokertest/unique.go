package brokertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// roleUnique is the child that enqueues one task with the uniqueness key BRISKTEST_KEY.
const (
	roleUnique = "uniqueenqueuer"
	envKey     = "BRISKTEST_KEY"
)

func init() { roles[roleUnique] = runUniqueEnqueuer }

// unique returns a task of queue with a uniqueness key held for window.
func unique(queue, key string, window time.Duration) *broker.Task {
	t := NewTask(queue, "t", nil)
	t.Unique = broker.Unique{Key: key, Until: t.EnqueuedAt.Add(window)}
	return t
}

// wantDuplicate checks that err is a *broker.DuplicateError naming holder and key.
func wantDuplicate(t *testing.T, what string, err error, queue, holder, key string) {
	t.Helper()
	var dup *broker.DuplicateError
	switch {
	case err == nil:
		t.Errorf("%s: no error, want a *broker.DuplicateError naming task %s", what, holder)
	case !errors.As(err, &dup):
		t.Errorf("%s: error %q is not a *broker.DuplicateError", what, err)
	case !errors.Is(err, broker.ErrDuplicate):
		t.Errorf("%s: error %q does not wrap ErrDuplicate", what, err)
	case dup.ID != holder || dup.Key != key || dup.Queue != queue:
		t.Errorf("%s: DuplicateError{Queue: %q, ID: %q, Key: %q}, want {%q, %q, %q}", what, dup.Queue, dup.ID, dup.Key, queue, holder, key)
	}
}

// testUnique checks Capabilities.Unique: a task whose uniqueness key a task of its queue
// holds is refused with a *DuplicateError naming the holder, atomically with the rest of
// its batch; the lock lasts the window whatever becomes of the holder, is per queue, ends
// with the window, holds across processes racing for it; bad keys and windows are refused.
func (s *suite) testUnique(t *testing.T) {
	need := func(e *env) {
		e.t.Helper()
		e.requires(func(c broker.Capabilities) bool { return c.Unique }, "Unique",
			"it keeps no uniqueness locks; brisk.Client refuses unique tasks for it (ErrUnsupported)")
	}

	s.test(t, "SecondRefusedWithHolder", func(e *env) {
		need(e)
		first := unique("u", "k1", time.Minute)
		e.enqueue(first)
		second := unique("u", "k1", time.Minute)
		err := e.b.Enqueue(e.ctx, []*broker.Task{second})
		wantDuplicate(e.t, "Enqueue of a second task with a held key", err, "u", first.ID, "k1")
		e.wantGone("refused duplicate", second.ID)
		e.wantCounts("u", counts{pending: 1})
		other := unique("u", "k2", time.Minute)
		e.enqueue(other) // another key is free
	})

	s.test(t, "HeldAfterTheTaskEnds", func(e *env) {
		need(e)
		first := unique("u", "k", time.Minute)
		e.enqueue(first)
		got := e.reserveOne("u", longLease)
		if err := e.b.Ack(e.ctx, []broker.Lease{got.Lease}); err != nil {
			e.t.Fatalf("Ack: %v", err)
		}
		err := e.b.Enqueue(e.ctx, []*broker.Task{unique("u", "k", time.Minute)})
		wantDuplicate(e.t, "Enqueue within the window after the holder was acked", err, "u", first.ID, "k")
	})

	s.test(t, "PerQueue", func(e *env) {
		need(e)
		e.enqueue(unique("a", "k", time.Minute))
		e.enqueue(unique("b", "k", time.Minute))
		e.wantCounts("a", counts{pending: 1})
		e.wantCounts("b", counts{pending: 1})
	})

	s.test(t, "WindowEnds", func(e *env) {
		need(e)
		first := unique("u", "k", shortDelay)
		e.enqueue(first)
		sleepUntil(first.Unique.Until)
		e.enqueue(unique("u", "k", time.Minute))
		e.wantCounts("u", counts{pending: 2})
	})

	s.test(t, "BatchAllOrNothing", func(e *env) {
		need(e)
		first := unique("u", "held", time.Minute)
		e.enqueue(first)
		fresh := unique("u", "fresh", time.Minute)
		plain := NewTask("other", "t", nil)
		err := e.b.Enqueue(e.ctx, []*broker.Task{fresh, plain, unique("u", "held", time.Minute)})
		wantDuplicate(e.t, "Enqueue of a batch with one held key", err, "u", first.ID, "held")
		e.wantGone("the rest of a refused batch", fresh.ID, plain.ID)
		e.enqueue(unique("u", "fresh", time.Minute)) // its key was not taken
		a, b := unique("u", "twice", time.Minute), unique("u", "twice", time.Minute)
		err = e.b.Enqueue(e.ctx, []*broker.Task{a, b})
		wantDuplicate(e.t, "Enqueue of a batch with one key twice", err, "u", a.ID, "twice")
		e.wantGone("a batch with one key twice", a.ID, b.ID)
	})

	s.test(t, "BadInput", func(e *env) {
		need(e)
		long := unique("u", strings.Repeat("k", 257), time.Minute)
		zero := unique("u", "k", 0)
		noKey := NewTask("u", "t", nil)
		noKey.Unique.Until = noKey.EnqueuedAt.Add(time.Minute)
		for what, task := range map[string]*broker.Task{"a 257-byte key": long, "a zero window": zero, "a window without a key": noKey} {
			err := e.b.Enqueue(e.ctx, []*broker.Task{task})
			wantErr(e.t, "Enqueue with "+what, err, broker.ErrInvalid)
			e.wantGone("refused", task.ID)
		}
		e.enqueue(unique("u", "k", time.Minute)) // nothing was locked
	})

	s.test(t, "AcrossProcesses", func(e *env) {
		need(e)
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts 4 processes")
		}
		const procs = 4
		ctx, cancel := context.WithTimeout(e.ctx, childTimeout(e.t))
		defer cancel()
		children := make([]*child, procs)
		for i := range children {
			children[i] = s.startChild(e.t, ctx, roleUnique, e.url, envQueue+"=u", envKey+"=race")
		}
		for i, c := range children {
			if err := c.waitReady(ctx); err != nil {
				e.t.Fatalf("process %d did not start: %v%s", i, err, c.output())
			}
		}
		for _, c := range children {
			c.start()
		}
		stored, holders := 0, map[string]int{}
		var storedID string
		for i, c := range children {
			if err := c.finish(); err != nil {
				e.t.Errorf("process %d: %v%s", i, err, c.output())
			}
			for _, line := range c.got {
				f := strings.Fields(line) // brisktest-got <id> stored|dup <holder>
				switch {
				case len(f) == 3 && f[2] == "stored":
					stored++
					storedID = f[1]
				case len(f) == 4 && f[2] == "dup":
					holders[f[3]]++
				default:
					e.t.Errorf("process %d wrote %q", i, line)
				}
			}
		}
		if stored != 1 {
			e.t.Fatalf("%d of %d processes racing for one key stored their task, want exactly 1", stored, procs)
		}
		if holders[storedID] != procs-1 || len(holders) != 1 {
			e.t.Errorf("the refused processes were told holders %v, want %s for all %d", holders, storedID, procs-1)
		}
		e.wantCounts("u", counts{pending: 1})
	})
}

// runUniqueEnqueuer is the child that enqueues one task of BRISKTEST_QUEUE with the key
// BRISKTEST_KEY when told to go, and writes "brisktest-got <id> stored" or
// "brisktest-got <id> dup <holder>".
func runUniqueEnqueuer(t *testing.T, h Harness, url string) {
	ctx := t.Context()
	b, err := h.Open(ctx, url)
	if err != nil {
		t.Fatalf("unique enqueuer: Open(%q): %v", url, err)
	}
	defer b.Close()
	fmt.Println(lineReady)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("unique enqueuer: no go from the parent: %v", err)
	}
	task := unique(os.Getenv(envQueue), os.Getenv(envKey), time.Minute)
	err = b.Enqueue(ctx, []*broker.Task{task})
	var dup *broker.DuplicateError
	switch {
	case err == nil:
		fmt.Println(lineGot, task.ID, "stored")
	case errors.As(err, &dup):
		fmt.Println(lineGot, task.ID, "dup", dup.ID)
	default:
		t.Fatalf("unique enqueuer: Enqueue: %v", err)
	}
}
