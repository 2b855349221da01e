package sqlitebroker

import (
	"context"
	"fmt"
	"os"
	"time"
)

// writeLock serialises write transactions: first among the goroutines of one Broker (a
// context-aware mutex), then among every Broker and process on the file (an exclusive
// flock on the database file, which SQLite itself never flocks: it uses POSIX record locks).
//
// Why: SQLite's own busy handler sleeps between tries (up to 100 ms at a time), so under
// steady writes from several processes one writer can lose the race again and again for
// seconds, long enough for its leases to lapse and its tasks to go to another worker. A
// blocking flock wakes a waiter as soon as the holder unlocks, so no writer starves.
type writeLock struct {
	sem     chan struct{} // holds one token while a goroutine of this Broker writes
	f       *os.File      // nil where the platform has no flock: the mutex alone then
	timeout time.Duration // how long to wait for another process before giving up
}

func newWriteLock(path string, timeout time.Duration) (*writeLock, error) {
	l := &writeLock{sem: make(chan struct{}, 1), timeout: timeout}
	if !haveFlock {
		return l, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open for the write lock: %w", err)
	}
	l.f = f
	return l, nil
}

// lock waits for the lock until ctx is done or the timeout passes.
func (l *writeLock) lock(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if l.f == nil || tryFlock(l.f) {
		return nil
	}
	got := make(chan error, 1)
	go func() { got <- flock(l.f) }()
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	var why error
	select {
	case err := <-got:
		if err == nil {
			return nil
		}
		why = fmt.Errorf("lock for writing: %w", err)
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("database is locked: another process held the write lock for over %s", l.timeout)
	}
	// Give up, but keep this Broker's token until the pending flock returns, so that the
	// lock is never held without its owner knowing.
	go func() {
		if <-got == nil {
			funlock(l.f)
		}
		<-l.sem
	}()
	return why
}

func (l *writeLock) unlock() {
	if l.f != nil {
		funlock(l.f)
	}
	<-l.sem
}

// close waits for the write under way, if any (at most the lock's timeout), and closes
// the file under the lock, so that no unlock uses a closed descriptor; writers after it
// find no file (and a closed database).
func (l *writeLock) close() {
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
	case <-timer.C:
		return // a writer is stuck in the kernel's flock: leave the file to it
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
