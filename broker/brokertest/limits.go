package brokertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// roleLimited is the child that reserves one task at a time in each of its goroutines,
// holds it for BRISKTEST_WORK, writes when it started and ended, and acks it.
const (
	roleLimited = "limitedconsumer"
	envWork     = "BRISKTEST_WORK"
	envLease    = "BRISKTEST_LEASE"
)

func init() { roles[roleLimited] = runLimitedConsumer }

// limiter returns the broker as a broker.Limiter or skips the test out loud.
func limiter(e *env) broker.Limiter {
	e.t.Helper()
	return optional[broker.Limiter](e, e.b, "broker.Limiter", "it keeps no rate or concurrency limits")
}

// setLimit stores l and fails the test on error.
func (e *env) setLimit(lim broker.Limiter, l broker.Limit) {
	e.t.Helper()
	if err := lim.SetLimit(e.ctx, l); err != nil {
		e.t.Fatalf("SetLimit(%+v): %v", l, err)
	}
}

// testRateLimit checks rate limits of the optional broker.Limiter: limits are stored,
// listed and deleted, bad ones refused; Reserve takes only what a queue's (or a type's)
// tokens allow and goes on to the next queue; a worker's loop does not spin while tokens
// are out and gets the next task when one is due; consumers in several processes share one
// bucket.
func (s *suite) testRateLimit(t *testing.T) {
	s.test(t, "SetListDelete", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "b", Rate: 10, Per: time.Second})
		e.setLimit(lim, broker.Limit{Queue: "a", Type: "t", MaxRunning: 2})
		e.setLimit(lim, broker.Limit{Queue: "a", Rate: 5, Per: time.Minute, Burst: 2, MaxRunning: 3})
		got, err := lim.Limits(e.ctx)
		want := []broker.Limit{
			{Queue: "a", Rate: 5, Per: time.Minute, Burst: 2, MaxRunning: 3},
			{Queue: "a", Type: "t", MaxRunning: 2},
			{Queue: "b", Rate: 10, Per: time.Second, Burst: 10}, // Burst defaults to Rate
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			e.t.Errorf("Limits = %v, %v; want %v", got, err, want)
		}
		e.setLimit(lim, broker.Limit{Queue: "b", MaxRunning: 1}) // replaces
		if err := lim.DeleteLimit(e.ctx, "a", "t"); err != nil {
			e.t.Fatalf("DeleteLimit: %v", err)
		}
		wantErr(e.t, "DeleteLimit of an unknown limit", lim.DeleteLimit(e.ctx, "a", "t"), broker.ErrNotFound)
		wantErr(e.t, "DeleteLimit of an unknown queue's limit", lim.DeleteLimit(e.ctx, "zzz", ""), broker.ErrNotFound)
		got, _ = lim.Limits(e.ctx)
		want = []broker.Limit{{Queue: "a", Rate: 5, Per: time.Minute, Burst: 2, MaxRunning: 3}, {Queue: "b", MaxRunning: 1}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			e.t.Errorf("Limits after a replace and a delete = %v, want %v", got, want)
		}
	})

	s.test(t, "BadInput", func(e *env) {
		lim := limiter(e)
		for what, l := range map[string]broker.Limit{
			"nothing to limit":       {Queue: "q"},
			"a negative rate":        {Queue: "q", Rate: -1, Per: time.Second},
			"a zero period":          {Queue: "q", Rate: 1},
			"a period under 1ms":     {Queue: "q", Rate: 1, Per: time.Microsecond},
			"a negative burst":       {Queue: "q", Rate: 1, Per: time.Second, Burst: -1},
			"a burst without a rate": {Queue: "q", Burst: 1, MaxRunning: 1},
			"a negative max running": {Queue: "q", MaxRunning: -1},
			"a bad queue":            {Queue: "has space", MaxRunning: 1},
			"a bad type":             {Queue: "q", Type: "bad type", MaxRunning: 1},
			"an absurd rate":         {Queue: "q", Rate: 2_000_000_000, Per: time.Second},
		} {
			wantErr(e.t, "SetLimit with "+what, lim.SetLimit(e.ctx, l), broker.ErrInvalid)
		}
		if got, err := lim.Limits(e.ctx); err != nil || len(got) != 0 {
			e.t.Errorf("refused limits were stored: %v, %v", got, err)
		}
	})

	s.test(t, "TakesWhatTokensAllowAndMovesOn", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "r", Rate: 5, Per: time.Second, Burst: 2})
		e.enqueue(NewTasks("r", "t", 10)...)
		e.enqueue(NewTasks("o", "t", 10)...)
		spent := time.Now() // the bucket is spent at the latest at the end of this Reserve
		got := e.reserve(broker.ReserveParams{Queues: queues("r", "o"), Limit: 5, Lease: longLease})
		spentBy := time.Now()
		byQueue := countBy(got, func(t *broker.Task) string { return t.Queue })
		if byQueue["r"] != 2 || byQueue["o"] != 3 {
			e.t.Errorf("Reserve(r limited to a burst of 2, then o) with Limit 5: %v, want r:2 o:3", byQueue)
		}
		if got := e.reserveFrom("r", 10, longLease); len(got) != 0 {
			e.t.Errorf("Reserve from r with its tokens spent: %d tasks, want none", len(got))
		}
		time.Sleep(250 * time.Millisecond) // one token at 5/s
		got = e.reserveFrom("r", 10, longLease)
		// At least one token came back since the bucket was spent; a loaded machine may
		// have slept longer and let more come back, up to the burst.
		most := min(2, int(time.Since(spent)/(200*time.Millisecond)))
		if least := int(time.Since(spentBy) / (200 * time.Millisecond)); len(got) < min(1, least) || len(got) > most {
			e.t.Errorf("Reserve from r %s later (5 per second, burst 2): %d tasks, want 1 to %d", time.Since(spentBy).Round(time.Millisecond), len(got), most)
		}
	})

	s.test(t, "PerType", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "m", Type: "slow", Rate: 1, Per: time.Hour, Burst: 1})
		e.enqueueEach(NewTask("m", "slow", nil), NewTask("m", "slow", nil), NewTask("m", "fast", nil), NewTask("m", "slow", nil), NewTask("m", "fast", nil))
		got := e.reserveFrom("m", 10, longLease)
		types := countBy(got, func(t *broker.Task) string { return t.Type })
		if types["slow"] != 1 || types["fast"] != 2 {
			e.t.Errorf("Reserve from m with 1 slow per hour: %v, want slow:1 fast:2 (the fast ones behind the held slow ones)", types)
		}
		if got := e.reserveFrom("m", 10, longLease); len(got) != 0 {
			e.t.Errorf("second Reserve: %d tasks, want none", len(got))
		}
		e.wantCounts("m", counts{pending: 2, running: 3})
	})

	s.test(t, "WaitUntilNextToken", func(e *env) {
		lim := limiter(e)
		const per = 400 * time.Millisecond
		e.setLimit(lim, broker.Limit{Queue: "w", Rate: 1, Per: per, Burst: 1})
		e.enqueue(NewTasks("w", "t", 3)...)
		first := e.reserveOne("w", longLease)
		took := time.Now()
		// A worker's loop: Reserve, and Wait when nothing comes.
		calls := 0
		var next time.Time
		for next.IsZero() && time.Since(took) < slack {
			calls++
			if got := e.reserveFrom("w", 1, longLease); len(got) == 1 {
				next = time.Now()
				break
			}
			if err := e.b.Wait(e.ctx, []string{"w"}, 10*time.Second); err != nil {
				e.t.Fatalf("Wait: %v", err)
			}
		}
		gap := next.Sub(took)
		e.t.Logf("with 1 token per %s, the loop got the next task %s after the first (%s), in %d Reserve calls", per, gap.Round(time.Millisecond), first.ID, calls)
		if next.IsZero() {
			e.t.Fatalf("no second task within %s", slack)
		}
		if gap < per-50*time.Millisecond {
			e.t.Errorf("second task %s after the first, want no sooner than the next token (%s)", gap, per)
		}
		if calls > 20 {
			e.t.Errorf("%d Reserve calls in %s: Wait returns at once while no token is due (a busy loop)", calls, gap)
		}
	})

	s.test(t, "AcrossProcesses", func(e *env) {
		lim := limiter(e)
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts 3 processes")
		}
		const (
			rate  = 20
			burst = 5
			n     = 70
		)
		e.setLimit(lim, broker.Limit{Queue: "mp", Rate: rate, Per: time.Second, Burst: burst})
		e.enqueue(NewTasks("mp", "t", n)...)
		var starts []time.Time
		for _, iv := range s.runLimited(e, "mp", 3, 0, longLease, nil) {
			starts = append(starts, iv.start)
		}
		// Every prefix of the starts stays within the bucket: at most burst + rate·t
		// tasks in the first t after the first start. A start is seen by a handler, some
		// time after the reserve that took the token, in one of three processes on a
		// loaded machine: allow that lag (startLag) on top of one token.
		const startLag = 300 * time.Millisecond
		t0 := starts[0]
		worst := 0.0
		for i, at := range starts {
			allowed := burst + rate*(at.Sub(t0)+startLag).Seconds() + 1
			worst = max(worst, float64(i+1)-allowed)
			if float64(i+1) > allowed {
				e.t.Errorf("%d tasks started within %s of the first, over the limit's %0.f (burst %d + %d/s)", i+1, at.Sub(t0), allowed, burst, rate)
				break
			}
		}
		span := starts[len(starts)-1].Sub(t0)
		e.t.Logf("3 processes started %d tasks under %d/s (burst %d) in %s: %.1f/s", len(starts), rate, burst, span.Round(time.Millisecond), float64(len(starts)-burst)/span.Seconds())
	})
}

// testConcurrency checks concurrency limits of the optional broker.Limiter: Reserve keeps
// a queue's (or a type's) running tasks at most MaxRunning; a slot comes back when a task
// is acked, retried, killed, released or cancelled, when its lease expires, and at once
// through broker.Reaper; an ack wakes a worker waiting for a slot; and workers in several
// processes, one of them killed with SIGKILL while it holds slots, never run more than
// MaxRunning at once and finish the queue.
func (s *suite) testConcurrency(t *testing.T) {
	s.test(t, "MaxRunning", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "c", MaxRunning: 2})
		e.enqueue(NewTasks("c", "t", 8)...)
		held := e.reserveFrom("c", 10, longLease)
		if len(held) != 2 {
			e.t.Fatalf("Reserve with MaxRunning 2: %d tasks, want 2", len(held))
		}
		if got := e.reserveFrom("c", 10, longLease); len(got) != 0 {
			e.t.Fatalf("Reserve with both slots taken: %d tasks, want none", len(got))
		}
		frees := []struct {
			how  string
			free func(broker.Lease) error
		}{
			{"Ack", func(l broker.Lease) error { return e.b.Ack(e.ctx, []broker.Lease{l}) }},
			{"Retry", func(l broker.Lease) error { return e.b.Retry(e.ctx, l, time.Now().Add(time.Hour), "x") }},
			{"Kill", func(l broker.Lease) error { return e.b.Kill(e.ctx, l, "x") }},
			{"Release", func(l broker.Lease) error { return e.b.Release(e.ctx, []broker.Lease{l}) }},
		}
		if c, ok := e.b.(broker.Canceler); ok {
			frees = append(frees, struct {
				how  string
				free func(broker.Lease) error
			}{"Cancel", func(l broker.Lease) error { _, err := c.Cancel(e.ctx, l.TaskID); return err }})
		}
		for _, f := range frees {
			if err := f.free(held[0].Lease); err != nil {
				e.t.Fatalf("%s: %v", f.how, err)
			}
			got := e.reserveFrom("c", 10, longLease)
			if len(got) != 1 {
				e.t.Fatalf("Reserve after %s of one of two running: %d tasks, want 1", f.how, len(got))
			}
			held = append(held[1:], got[0])
		}
	})

	s.test(t, "PerType", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "c", Type: "x", MaxRunning: 1})
		e.enqueueEach(NewTask("c", "x", nil), NewTask("c", "x", nil), NewTask("c", "y", nil))
		got := e.reserveFrom("c", 10, longLease)
		types := countBy(got, func(t *broker.Task) string { return t.Type })
		if types["x"] != 1 || types["y"] != 1 {
			e.t.Errorf("Reserve with x limited to 1 running: %v, want x:1 y:1", types)
		}
	})

	s.test(t, "SlotBackAtLeaseExpiryOrReap", func(e *env) {
		lim := limiter(e)
		e.setLimit(lim, broker.Limit{Queue: "c", MaxRunning: 1})
		e.enqueue(NewTasks("c", "t", 3)...)
		held := e.reserve(broker.ReserveParams{Queues: queues("c"), Limit: 1, Lease: shortLease, WorkerID: "gone"})
		if len(held) != 1 {
			e.t.Fatalf("Reserve: %d, want 1", len(held))
		}
		if got := e.reserveFrom("c", 1, longLease); len(got) != 0 {
			e.t.Fatalf("Reserve with the slot taken: %d, want none", len(got))
		}
		sleepUntil(held[0].LeaseUntil)
		again := e.reserve(broker.ReserveParams{Queues: queues("c"), Limit: 1, Lease: longLease, WorkerID: "dead"})
		if len(again) != 1 {
			e.t.Fatalf("Reserve after the lease expired: %d, want 1 (the slot is back)", len(again))
		}
		reaper, ok := e.b.(broker.Reaper)
		if !ok {
			return
		}
		if n, err := reaper.ReleaseWorker(e.ctx, "dead"); err != nil || n != 1 {
			e.t.Fatalf("ReleaseWorker = %d, %v; want 1", n, err)
		}
		if got := e.reserveFrom("c", 1, longLease); len(got) != 1 {
			e.t.Errorf("Reserve after ReleaseWorker of the slot's holder: %d, want 1 (the slot is back at once)", len(got))
		}
	})

	s.test(t, "AckWakesWaiter", func(e *env) {
		lim := limiter(e)
		other := e.open()
		e.setLimit(lim, broker.Limit{Queue: "w", MaxRunning: 1})
		e.enqueue(NewTasks("w", "t", 2)...)
		held := e.reserveOne("w", longLease)
		if got := e.reserveFrom("w", 1, longLease); len(got) != 0 {
			e.t.Fatalf("Reserve with the slot taken: %d, want none", len(got))
		}
		e.wantWake(e.b, "an Ack that frees a slot, through another broker value", func() {
			if err := other.Ack(e.ctx, []broker.Lease{held.Lease}); err != nil {
				e.t.Fatalf("Ack: %v", err)
			}
		})
		if got := e.reserveFrom("w", 1, longLease); len(got) != 1 {
			e.t.Errorf("Reserve after the Ack: %d, want 1", len(got))
		}
	})

	s.test(t, "AcrossProcessesWithKill", func(e *env) {
		lim := limiter(e)
		if testing.Short() {
			e.t.Skip("SKIPPED in -short mode: this test starts 3 processes")
		}
		const (
			maxRunning = 3
			n          = 90
			work       = 100 * time.Millisecond
			lease      = time.Second
		)
		e.setLimit(lim, broker.Limit{Queue: "cc", MaxRunning: maxRunning})
		e.enqueue(NewTasks("cc", "t", n)...)
		var maxSeen atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { // the broker's own count, sampled
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if st, ok := e.stats("cc"); ok && st.Running > maxSeen.Load() {
					maxSeen.Store(st.Running)
				}
			}
		})
		var reaped time.Time // when the killed process's slots were handed back through the Reaper
		ivs := s.runLimited(e, "cc", 3, work, lease, func(victim *child) {
			if reaper, ok := e.b.(broker.Reaper); ok {
				reaped = time.Now()
				for g := range 3 {
					if _, err := reaper.ReleaseWorker(e.ctx, fmt.Sprintf("p%d-g%d", victim.cmd.Process.Pid, g)); err != nil {
						e.t.Errorf("ReleaseWorker: %v", err)
					}
				}
			}
		})
		close(stop)
		wg.Wait()
		// A task the killed process held counts as running until its lease expired, or
		// until the Reaper handed it back.
		for i := range ivs {
			if ivs[i].end.IsZero() {
				ivs[i].end = ivs[i].start.Add(lease - 50*time.Millisecond)
				if !reaped.IsZero() && reaped.Before(ivs[i].end) {
					ivs[i].end = reaped
				}
			}
		}
		if m, at := maxOverlap(ivs); m > maxRunning {
			e.t.Errorf("%d tasks ran at once at %s across the processes, over MaxRunning %d", m, at.Format("15:04:05.000"), maxRunning)
		}
		if m := maxSeen.Load(); m > maxRunning {
			e.t.Errorf("Stats reported %d running at once, over MaxRunning %d", m, maxRunning)
		}
		st := e.mustStats("cc")
		if st.Completed < n || countsOf(st) != (counts{}) {
			e.t.Errorf("after the run: completed %d, %v; want %d completed and nothing left (the killed process's slots came back)", st.Completed, countsOf(st), n)
		}
	})
}

// interval is one task's run as a limited consumer reported it: from just after its
// Reserve to just before its Ack (zero end: its process was killed while it ran).
type interval struct{ start, end time.Time }

// maxOverlap returns the most intervals that overlap at one time, and that time.
func maxOverlap(ivs []interval) (int, time.Time) {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, iv := range ivs {
		edges = append(edges, edge{iv.start, 1}, edge{iv.end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta // an end before a start at the same time
	})
	n, best := 0, 0
	var at time.Time
	for _, e := range edges {
		if n += e.delta; n > best {
			best, at = n, e.at
		}
	}
	return best, at
}

// runLimited runs procs limited-consumer processes on queue with each task held for work
// under lease, until they have drained it; with kill set, a process is killed with SIGKILL
// while it runs its third task or a later one, and kill is called. It returns every task run
// the processes reported, sorted by start.
func (s *suite) runLimited(e *env, queue string, procs int, work, lease time.Duration, kill func(*child)) []interval {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, childTimeout(e.t))
	defer cancel()
	children := make([]*child, procs)
	for i := range children {
		children[i] = s.startChild(e.t, ctx, roleLimited, e.url, envQueue+"="+queue, envGoroutines+"=3",
			envWork+"="+work.String(), envLease+"="+lease.String())
	}
	for i, c := range children {
		if err := c.waitReady(ctx); err != nil {
			e.t.Fatalf("process %d did not start: %v%s", i, err, c.output())
		}
	}
	for _, c := range children {
		c.start()
	}
	victim := -1
	if kill != nil {
		// Kill a process while it runs a task (its last line is a start), after a few.
		e.eventually("a process runs its third task", func() bool {
			for i, c := range children {
				if c.gotCount() >= 5 && strings.Contains(c.lastGot(), " start ") {
					victim = i
					return true
				}
			}
			return false
		})
		_ = children[victim].cmd.Process.Signal(syscall.SIGKILL)
		_ = children[victim].finish()
		kill(children[victim])
	}
	var ivs []interval
	for i, c := range children {
		if err := c.finish(); err != nil && i != victim {
			e.t.Errorf("process %d: %v%s", i, err, c.output())
		}
		open := map[string]int{} // task id → its interval, per process (a task may run again elsewhere)
		for _, line := range c.got {
			f := strings.Fields(line) // brisktest-got <id> start|end <unix ns>
			ns, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if len(f) != 4 || err != nil {
				e.t.Errorf("process %d wrote %q", i, line)
				continue
			}
			switch f[2] {
			case "start":
				open[f[1]] = len(ivs)
				ivs = append(ivs, interval{start: time.Unix(0, ns)})
			case "end":
				if j, ok := open[f[1]]; ok {
					ivs[j].end = time.Unix(0, ns)
					delete(open, f[1])
				}
			}
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
	if len(ivs) == 0 {
		e.t.Fatalf("no task started")
	}
	return ivs
}

// gotCount returns how many lineGot lines the child wrote so far.
func (c *child) gotCount() int {
	c.gotMu.Lock()
	defer c.gotMu.Unlock()
	return len(c.got)
}

// runLimitedConsumer is the limited-consumer role: BRISKTEST_GOROUTINES goroutines
// (worker ids p<pid>-g<n>) each reserve one task of BRISKTEST_QUEUE at a time under
// BRISKTEST_LEASE, write "brisktest-got <id> start <unix ns>", hold it for BRISKTEST_WORK,
// write "… end …" and ack it, until the queue has been empty for consumerIdleExit.
func runLimitedConsumer(t *testing.T, h Harness, url string) {
	queue := os.Getenv(envQueue)
	goroutines, _ := strconv.Atoi(os.Getenv(envGoroutines))
	work, _ := time.ParseDuration(os.Getenv(envWork))
	lease, _ := time.ParseDuration(os.Getenv(envLease))
	ctx := t.Context()
	b, err := h.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	defer b.Close()
	fmt.Println(lineReady)
	_, _ = readGo()
	var (
		mu       sync.Mutex
		lastSeen atomic.Int64
		wg       sync.WaitGroup
	)
	say := func(id, what string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "%s %s %s %d\n", lineGot, id, what, time.Now().UnixNano())
	}
	lastSeen.Store(time.Now().UnixNano())
	for g := range max(goroutines, 1) {
		worker := fmt.Sprintf("p%d-g%d", os.Getpid(), g)
		wg.Go(func() {
			for {
				got, err := b.Reserve(ctx, broker.ReserveParams{Queues: queues(queue), Limit: 1, Lease: lease, WorkerID: worker})
				if err != nil {
					t.Errorf("%s: Reserve: %v", worker, err)
					return
				}
				if len(got) == 0 {
					if time.Since(time.Unix(0, lastSeen.Load())) > consumerIdleExit {
						return
					}
					if err := b.Wait(ctx, []string{queue}, 100*time.Millisecond); err != nil {
						t.Errorf("%s: Wait: %v", worker, err)
						return
					}
					continue
				}
				lastSeen.Store(time.Now().UnixNano())
				say(got[0].ID, "start")
				time.Sleep(work)
				say(got[0].ID, "end")
				if err := b.Ack(ctx, leases(got)); err != nil && !errors.Is(err, broker.ErrLeaseLost) {
					t.Errorf("%s: Ack: %v", worker, err)
					return
				}
				lastSeen.Store(time.Now().UnixNano())
			}
		})
	}
	wg.Wait()
}

// countBy counts tasks by key.
func countBy(tasks []*broker.Task, key func(*broker.Task) string) map[string]int {
	n := map[string]int{}
	for _, t := range tasks {
		n[key(t)]++
	}
	return n
}
