package sqlitebroker

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/briskq/brisk/broker"
)

// A hub wakes the Wait calls of every Broker on one file in this process. Each wake-up
// closes the current channel and replaces it, so a waiter that took the channel before it
// looked at the database cannot miss a change committed after it looked.
type hub struct {
	key  string
	mu   sync.Mutex
	ch   chan struct{}
	refs int // guarded by hubs.mu
}

var hubs = struct {
	mu sync.Mutex
	m  map[string]*hub
}{m: map[string]*hub{}}

// acquireHub returns the hub of the file key (a cleaned absolute path), creating it.
func acquireHub(key string) *hub {
	hubs.mu.Lock()
	defer hubs.mu.Unlock()
	h := hubs.m[key]
	if h == nil {
		h = &hub{key: key, ch: make(chan struct{})}
		hubs.m[key] = h
	}
	h.refs++
	return h
}

// release drops one reference; the last one removes the hub.
func (h *hub) release() {
	hubs.mu.Lock()
	defer hubs.mu.Unlock()
	h.refs--
	if h.refs == 0 {
		delete(hubs.m, h.key)
	}
}

// wait returns a channel that is closed at the next notify.
func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

// notify wakes every current waiter.
func (h *hub) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.ch)
	h.ch = make(chan struct{})
}

// A watcher notices commits made by other processes: while anyone waits, it reads
// PRAGMA data_version on a dedicated connection every interval and notifies the hub when
// the value changes (which it does after any other connection commits).
type watcher struct {
	interval time.Duration
	conn     *sql.Conn
	stmt     *sql.Stmt
	hub      *hub

	mu      sync.Mutex
	waiters int
	version int64
	closed  bool
	kick    chan struct{} // a first waiter arrived
	quit    chan struct{}
	done    chan struct{}
}

func (w *watcher) open(ctx context.Context, db *sql.DB, interval time.Duration) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	stmt, err := conn.PrepareContext(ctx, "PRAGMA data_version")
	if err != nil {
		conn.Close()
		return err
	}
	w.interval, w.conn, w.stmt = interval, conn, stmt
	w.kick = make(chan struct{}, 1)
	w.quit = make(chan struct{})
	w.done = make(chan struct{})
	return nil
}

func (w *watcher) start(h *hub) {
	w.hub = h
	go w.run()
}

// stop ends the polling goroutine and closes the connection.
func (w *watcher) stop() {
	close(w.quit)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.stmt.Close()
	w.conn.Close()
}

// enter registers a waiter. The first one reads the current data_version before the waiter
// looks at the database, so that a commit after its look is seen by the next poll.
func (w *watcher) enter(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return broker.ErrClosed
	}
	if w.waiters == 0 {
		v, err := w.read(ctx)
		if err != nil {
			return err
		}
		w.version = v
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.waiters++
	return nil
}

func (w *watcher) leave() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waiters--
}

// read returns PRAGMA data_version; w.mu must be held.
func (w *watcher) read(ctx context.Context) (int64, error) {
	var v int64
	err := w.stmt.QueryRowContext(ctx).Scan(&v)
	return v, err
}

func (w *watcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	t.Stop() // ticks only while someone waits
	for {
		select {
		case <-w.quit:
			return
		case <-w.kick:
		}
		t.Reset(w.interval)
	poll:
		for {
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
			w.mu.Lock()
			if w.waiters == 0 {
				w.mu.Unlock()
				break poll
			}
			v, err := w.read(context.Background())
			changed := err == nil && v != w.version
			if changed {
				w.version = v
			}
			w.mu.Unlock()
			if changed || err != nil {
				// On an error, wake the waiters too: they will find it on their next call.
				w.hub.notify()
			}
		}
		t.Stop()
	}
}

// Wait blocks until a task may be ready in one of queues, max has passed, ctx is done or
// the broker is closed. It returns at once when a task is already ready; early when a
// task is enqueued, released or retried through any Broker on the same file in this
// process (at once) or in another process (within PollInterval); and when the earliest
// scheduled task or lease expiry in those queues falls due. Spurious returns are allowed.
// It returns ctx.Err() when ctx is done and an error wrapping broker.ErrClosed after Close.
func (b *Broker) Wait(ctx context.Context, queues []string, max time.Duration) error {
	if err := b.checkOpen("wait"); err != nil {
		return err
	}
	for _, q := range queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("brisk: sqlite: wait: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if max <= 0 {
		return nil
	}
	if err := b.watch.enter(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return b.fail(ctx, "wait", err)
	}
	defer b.watch.leave()
	woken := b.hub.wait() // before looking, so that no notify is missed
	start := b.now()
	due, err := b.nextDue(ctx, queues, start)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return b.fail(ctx, "wait", err)
	}
	d := max
	if !due.IsZero() {
		if !due.After(start) {
			return nil
		}
		d = min(d, due.Sub(start))
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closed:
		return fmt.Errorf("brisk: sqlite: wait: %w", broker.ErrClosed)
	case <-woken:
	case <-timer.C:
	}
	return nil
}

const (
	qNextReady = `SELECT ready_at FROM tasks WHERE state = 'pending' AND queue = ? AND ready_at IS NOT NULL ORDER BY ready_at, seq LIMIT 1`
	qNextLease = `SELECT lease_until FROM tasks WHERE state = 'running' AND queue = ? AND lease_until IS NOT NULL ORDER BY lease_until LIMIT 1`
	qPausedRd  = `SELECT paused FROM queues WHERE name = ?`
)

// nextDue returns the earliest ready_at of a pending task or lease expiry of a running
// one in queues (zero when there is none): one indexed lookup each per queue. Paused
// queues have nothing due (resuming one notifies the hub).
func (b *Broker) nextDue(ctx context.Context, queues []string, now time.Time) (time.Time, error) {
	var due time.Time
	ps, err := b.rs(ctx, qPausedRd)
	if err != nil {
		return time.Time{}, err
	}
	for _, q := range queues {
		var paused bool
		if err := ps.QueryRowContext(ctx, q).Scan(&paused); err != nil && err != sql.ErrNoRows {
			return time.Time{}, err
		}
		if paused {
			continue
		}
		for _, query := range []string{qNextReady, qNextLease} {
			s, err := b.rs(ctx, query)
			if err != nil {
				return time.Time{}, err
			}
			var v any
			err = s.QueryRowContext(ctx, q).Scan(&v)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return time.Time{}, err
			}
			n, ok := v.(int64)
			if !ok {
				continue // a corrupt row; Reserve deals with it
			}
			t := time.Unix(0, n)
			if query == qNextReady {
				t = b.hints.Later(q, t, now) // limits may hold the ready tasks back
			}
			if due.IsZero() || t.Before(due) {
				due = t
			}
			if !due.After(now) {
				return due, nil
			}
		}
	}
	return due, nil
}
