package brokertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// Timing of the suite. Delays and leases are short so that the suite is fast; upper bounds
// are loose because the machines that run it are noisy (a 2-core CI box under -race).
const (
	// shortDelay is how far in the future delayed and retried tasks are scheduled.
	shortDelay = 300 * time.Millisecond
	// shortLease is the lease of tests that let a lease expire.
	shortLease = 250 * time.Millisecond
	// longLease is the lease of tests that must keep their tasks.
	longLease = 30 * time.Second
	// slack is the longest the suite waits for something that should happen "at once" or
	// "when due" before it calls it a failure.
	slack = 5 * time.Second
	// timeTolerance is how far a stored time may be from the one given (brokers may store
	// milliseconds).
	timeTolerance = time.Millisecond
)

// env is one test's fresh store and a broker opened on it.
type env struct {
	t   *testing.T
	s   *suite
	ctx context.Context
	b   broker.Broker
	url string
}

// test runs f as a parallel subtest of t with a fresh store.
func (s *suite) test(t *testing.T, name string, f func(e *env)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		f(s.newEnv(t))
	})
}

// newEnv makes a fresh store and opens a broker on it, closed when t ends.
func (s *suite) newEnv(t *testing.T) *env {
	t.Helper()
	url := s.h.NewURL(t)
	e := &env{t: t, s: s, ctx: t.Context(), url: url}
	e.b = e.open()
	return e
}

// optional returns b as the optional interface T, or skips the test out loud, naming what
// a broker without T does instead.
func optional[T any](e *env, b broker.Broker, name, without string) T {
	e.t.Helper()
	v, ok := b.(T)
	if !ok {
		e.t.Skipf("SKIPPED: %T does not implement %s (optional): %s", b, name, without)
	}
	return v
}

// requires skips the test out loud unless the broker declares the capability that pick
// selects from its Capabilities, naming it and what a broker without it does instead.
func (e *env) requires(pick func(broker.Capabilities) bool, name, without string) {
	e.t.Helper()
	if !pick(e.b.Capabilities()) {
		e.t.Skipf("SKIPPED: %T does not declare capability %s: %s", e.b, name, without)
	}
}

// Capabilities as pickers for requires and can.
var (
	readyAtOrder   = func(c broker.Capabilities) bool { return c.ReadyAtOrder }
	detachedLeases = func(c broker.Capabilities) bool { return c.DetachedLeases }
	listAll        = func(c broker.Capabilities) bool { return c.ListAll }
	deleteQueued   = func(c broker.Capabilities) bool { return c.DeleteQueued }
	exactRunning   = func(c broker.Capabilities) bool { return c.ExactRunning }
	uniqueIDs      = func(c broker.Capabilities) bool { return c.UniqueIDs }
	exactLatency   = func(c broker.Capabilities) bool { return c.ExactLatency }
)

// can reports whether the broker declares the capability that pick selects. When it does
// not, the one check that needs it is skipped out loud (the rest of the test goes on): it
// logs the capability and what is not checked.
func (e *env) can(pick func(broker.Capabilities) bool, name, check string) bool {
	e.t.Helper()
	if pick(e.b.Capabilities()) {
		return true
	}
	e.t.Logf("SKIPPED CHECK: %T does not declare capability %s: not checked: %s", e.b, name, check)
	return false
}

// open opens another broker on the test's store, as another process would; it is closed when
// the test ends.
func (e *env) open() broker.Broker {
	e.t.Helper()
	b, err := e.s.h.Open(e.ctx, e.url)
	if err != nil {
		e.t.Fatalf("Open(%q): %v", e.url, err)
	}
	if b == nil {
		e.t.Fatalf("Open(%q) returned a nil broker and no error", e.url)
	}
	e.t.Cleanup(func() {
		if err := b.Close(); err != nil {
			e.t.Errorf("Close at the end of the test (possibly a second Close, which must be a no-op): %v", err)
		}
	})
	return b
}

// enqueue enqueues tasks in one call and fails the test on error.
func (e *env) enqueue(tasks ...*broker.Task) {
	e.t.Helper()
	if err := e.b.Enqueue(e.ctx, tasks); err != nil {
		e.t.Fatalf("Enqueue of %d task(s): %v", len(tasks), err)
	}
}

// enqueueEach enqueues tasks one call per task.
func (e *env) enqueueEach(tasks ...*broker.Task) {
	e.t.Helper()
	for _, task := range tasks {
		e.enqueue(task)
	}
}

// reserve calls Reserve and fails the test on error.
func (e *env) reserve(p broker.ReserveParams) []*broker.Task {
	e.t.Helper()
	got, err := e.b.Reserve(e.ctx, p)
	if err != nil {
		e.t.Fatalf("Reserve(%s): %v", fmtParams(p), err)
	}
	for _, task := range got {
		if task == nil {
			e.t.Fatalf("Reserve(%s) returned a nil task", fmtParams(p))
		}
	}
	return got
}

// reserveFrom reserves up to limit tasks from one queue.
func (e *env) reserveFrom(queue string, limit int, lease time.Duration) []*broker.Task {
	e.t.Helper()
	return e.reserve(broker.ReserveParams{Queues: queues(queue), Limit: limit, Lease: lease})
}

// reserveOne reserves exactly one task from queue and fails the test if there is none.
func (e *env) reserveOne(queue string, lease time.Duration) *broker.Task {
	e.t.Helper()
	got := e.reserveFrom(queue, 1, lease)
	if len(got) != 1 {
		e.t.Fatalf("Reserve from %q with Limit 1: got %d tasks, want 1", queue, len(got))
	}
	return got[0]
}

// reserveEventually reserves from queue until it gets a task or slack passes.
func (e *env) reserveEventually(queue string, lease time.Duration, what string) (*broker.Task, time.Time) {
	e.t.Helper()
	deadline := time.Now().Add(slack)
	for {
		got := e.reserveFrom(queue, 1, lease)
		now := time.Now()
		if len(got) == 1 {
			return got[0], now
		}
		if len(got) > 1 {
			e.t.Fatalf("Reserve with Limit 1 returned %d tasks", len(got))
		}
		if now.After(deadline) {
			e.t.Fatalf("%s: nothing reserved from %q within %s", what, queue, slack)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// task calls Task and fails the test on error.
func (e *env) task(id string) *broker.Task {
	e.t.Helper()
	task, err := e.b.Task(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Task(%q): %v", id, err)
	}
	if task == nil {
		e.t.Fatalf("Task(%q) returned nil and no error", id)
	}
	return task
}

// wantGone checks that the tasks are not stored (Task returns ErrNotFound), where the
// broker can look up any ID (ListAll).
func (e *env) wantGone(why string, ids ...string) {
	e.t.Helper()
	if !e.can(listAll, "ListAll", why+": Task of "+itoa(len(ids))+" id(s) returns ErrNotFound") {
		return
	}
	for _, id := range ids {
		task, err := e.b.Task(e.ctx, id)
		if !errors.Is(err, broker.ErrNotFound) {
			e.t.Errorf("%s: Task(%q) = %v, %v; want an error wrapping ErrNotFound", why, id, fmtTask(task), err)
		}
	}
}

// wantState checks a stored task's state and returns it. A broker without ListAll finds
// only dead tasks and the running tasks this broker value holds; for any other state the
// check is skipped out loud and wantState returns nil.
func (e *env) wantState(id string, want broker.State) *broker.Task {
	e.t.Helper()
	if want != broker.StateDead && want != broker.StateRunning && !e.can(listAll, "ListAll", "Task("+id+").State is "+string(want)) {
		return nil
	}
	task := e.task(id)
	if task.State != want {
		e.t.Errorf("Task(%q).State = %q, want %q", id, task.State, want)
	}
	return task
}

// stats returns the statistics of one queue and whether Stats listed it.
func (e *env) stats(queue string) (broker.QueueStats, bool) {
	e.t.Helper()
	all, err := e.b.Stats(e.ctx)
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	for _, st := range all {
		if st.Name == queue {
			return st, true
		}
	}
	return broker.QueueStats{Name: queue}, false
}

// mustStats returns the statistics of a queue that Stats must list.
func (e *env) mustStats(queue string) broker.QueueStats {
	e.t.Helper()
	st, ok := e.stats(queue)
	if !ok {
		e.t.Fatalf("Stats does not list queue %q", queue)
	}
	return st
}

// counts is the by-state part of QueueStats.
type counts struct{ pending, scheduled, running, dead int64 }

func (c counts) String() string {
	return fmt.Sprintf("pending=%d scheduled=%d running=%d dead=%d", c.pending, c.scheduled, c.running, c.dead)
}

func countsOf(st broker.QueueStats) counts {
	return counts{st.Pending, st.Scheduled, st.Running, st.Dead}
}

// wantCounts checks the counts by state of a queue; a queue that Stats does not list counts
// as empty. The running count is checked where the broker counts it exactly (ExactRunning).
func (e *env) wantCounts(queue string, want counts) {
	e.t.Helper()
	st, _ := e.stats(queue)
	got := countsOf(st)
	if got.running != want.running && !e.can(exactRunning, "ExactRunning", fmt.Sprintf("Stats of %q: running=%d (got %d)", queue, want.running, got.running)) {
		got.running = want.running
	}
	if got != want {
		e.t.Errorf("Stats of %q: %v, want %v", queue, got, want)
	}
}

// eventually calls cond until it is true or slack passes.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(slack)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %s", what, slack)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepUntil sleeps until t (plus a little, so that a broker's clock has passed it too).
func sleepUntil(t time.Time) {
	time.Sleep(time.Until(t) + 20*time.Millisecond)
}

// queues makes the Queues of ReserveParams without per-queue limits.
func queues(names ...string) []broker.QueueLimit {
	out := make([]broker.QueueLimit, len(names))
	for i, n := range names {
		out[i] = broker.QueueLimit{Name: n}
	}
	return out
}

// ids returns the IDs of tasks, in order.
func ids(tasks []*broker.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// leases returns the leases of tasks, in order.
func leases(tasks []*broker.Task) []broker.Lease {
	out := make([]broker.Lease, len(tasks))
	for i, t := range tasks {
		out[i] = t.Lease
	}
	return out
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// near reports whether two times are within tol of each other.
func near(a, b time.Time, tol time.Duration) bool {
	d := a.Sub(b)
	return d <= tol && d >= -tol
}

// wantTime checks that got is within tol of want.
func wantTime(t *testing.T, what string, got, want time.Time, tol time.Duration) {
	t.Helper()
	if !near(got, want, tol) {
		t.Errorf("%s = %s, want %s (±%s; off by %s)", what, fmtTime(got), fmtTime(want), tol, got.Sub(want))
	}
}

// wantErr checks that err wraps target and that its message mentions each of mention.
func wantErr(t *testing.T, what string, err, target error, mention ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one wrapping %q", what, target)
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: error %q does not wrap %q", what, err, target)
		return
	}
	wantMention(t, what, err, mention...)
}

// wantMention checks that the message of err contains each of mention, as is or quoted with
// Go escapes (a name with a tab in it appears as "tab\there" in a %q).
func wantMention(t *testing.T, what string, err error, mention ...string) {
	t.Helper()
	for _, m := range mention {
		q := strconv.Quote(m)
		q = q[1 : len(q)-1]
		if err != nil && !strings.Contains(err.Error(), m) && !strings.Contains(err.Error(), q) {
			t.Errorf("%s: error %q does not mention %q", what, err, shorten(m))
		}
	}
}

// wantEither checks that err wraps one of targets.
func wantEither(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one wrapping one of %q", what, targets)
		return
	}
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Errorf("%s: error %q wraps none of %q", what, err, targets)
}

func fmtParams(p broker.ReserveParams) string {
	var qs []string
	for _, q := range p.Queues {
		if q.Max > 0 {
			qs = append(qs, fmt.Sprintf("%s(max %d)", q.Name, q.Max))
		} else {
			qs = append(qs, q.Name)
		}
	}
	return fmt.Sprintf("queues=[%s] limit=%d lease=%s", strings.Join(qs, " "), p.Limit, p.Lease)
}

func fmtTask(t *broker.Task) string {
	if t == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{id=%s queue=%s type=%s state=%s attempt=%d/%d payload=%d bytes ready=%s}",
		t.ID, t.Queue, t.Type, t.State, t.Attempt, t.MaxAttempts, len(t.Payload), fmtTime(t.ReadyAt))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format("15:04:05.000000")
}

// shorten keeps long strings (a 200-character queue name) readable in messages.
func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }

// payloads returns the payloads of tasks as strings, in order.
func payloads(tasks []*broker.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = string(t.Payload)
	}
	return out
}
