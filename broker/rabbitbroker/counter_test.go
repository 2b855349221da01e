package rabbitbroker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
)

// runCounter counts the runs of each task of a worker and closes done once n different
// tasks ran.
type runCounter struct {
	mu   sync.Mutex
	runs map[string]int
	n    int
	done chan struct{}
}

func newRunCounter(n int) *runCounter {
	return &runCounter{runs: map[string]int{}, n: n, done: make(chan struct{})}
}

// handler sleeps for d, then counts the task.
func (r *runCounter) handler(d time.Duration) func(context.Context, *brisk.Task) error {
	return func(_ context.Context, task *brisk.Task) error {
		time.Sleep(d)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.runs[task.ID]++
		if len(r.runs) == r.n && r.runs[task.ID] == 1 {
			close(r.done)
		}
		return nil
	}
}

// ran is how many different tasks ran.
func (r *runCounter) ran() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// waitFor waits until at least k different tasks ran.
func (r *runCounter) waitFor(k int) {
	for r.ran() < k {
		time.Sleep(time.Millisecond)
	}
}

// waitAll fails the test unless every task ran within d.
func (r *runCounter) waitAll(t *testing.T, d time.Duration, after string) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("%d of %d tasks ran within %s of %s", r.ran(), r.n, d, after)
	}
}

// check fails the test for every task of tasks that never ran and returns how many ran
// more than once.
func (r *runCounter) check(t *testing.T, tasks []*broker.Task) (twice int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, task := range tasks {
		switch c := r.runs[task.ID]; {
		case c == 0:
			t.Errorf("task %s never ran", task.ID)
		case c > 1:
			twice++
		}
	}
	return twice
}
