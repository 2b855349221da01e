// Package workload measures the benchmark workloads W1–W5 (docs/workloads.md) against any
// task queue system. `brisk bench` and the peer harness in bench/ both run them through this
// package, so that a figure means the same thing for brisk and for the systems it is
// compared with.
//
// A system under test implements System: enqueue one task or a batch, start a worker whose
// handler calls the workload's handler with each task's payload, and count what is left.
// The payload of every task is Payload(seq, enqueued, ready): about 100 bytes of JSON with
// the task's sequence number and its enqueue and ready times, so that a handler can measure
// pickup latency without asking the system anything.
package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the workloads.
const (
	// TaskType is the type of every benchmark task.
	TaskType = "bench.noop"
	// PayloadSize is the size in bytes of every task's JSON payload.
	PayloadSize = 100
	// BatchSize is the size of a batch enqueue.
	BatchSize = 1000
	// Concurrency is how many handlers a worker runs at once.
	Concurrency = 8
	// W1Tasks is how many tasks W1 enqueues one call each (and as many again in batches).
	W1Tasks = 20000
	// W2Rate is W2's first producer rate, per second; W2Seconds how long it produces.
	W2Rate    = 500.0
	W2Seconds = 20
	// W2KeptUpWithin is how soon after the producer's end every task must have been picked
	// up for a W2 run to have kept up.
	W2KeptUpWithin = 2 * time.Second
	// WarmUp is how long W2 and W3 produce at their rate before they measure; those tasks'
	// pickups are not counted (see Runner.Pickup).
	WarmUp = time.Second
	// W3Interval is the time between W3's tasks; W3Tasks how many it sends.
	W3Interval = 200 * time.Millisecond
	W3Tasks    = 50
	// W4Tasks is how many tasks W4 runs; each handler sleeps W4Sleep. W4Wait is the longest
	// W4 waits after the kill for every task to be done.
	W4Tasks = 2000
	W4Sleep = 50 * time.Millisecond
	W4Wait  = 2 * time.Minute
	// W5Tasks is how many tasks W5 delays by uniform random 0 to W5MaxDelay.
	W5Tasks    = 2000
	W5MaxDelay = 10 * time.Second
	// StallTimeout ends a run in error when nothing has progressed for that long.
	StallTimeout = time.Minute
)

// ErrNoBatch is returned by System.EnqueueBatch of a system that has no batch enqueue; the
// workloads then enqueue one call per task (and report no batch rate).
var ErrNoBatch = errors.New("no batch enqueue")

// Handler is what a workload runs for each task: a system's worker calls it with the task's
// payload when a handler starts, and acks the task when it returns nil.
type Handler func(ctx context.Context, payload []byte) error

// System is a task queue under test, with one queue of its own for the run.
type System interface {
	// Enqueue stores task seq with Payload(seq, now, now+delay), ready after delay, in one
	// call.
	Enqueue(ctx context.Context, seq int, delay time.Duration) error
	// EnqueueBatch stores tasks seqs with the given delays (nil: none) in one call, or
	// returns ErrNoBatch.
	EnqueueBatch(ctx context.Context, seqs []int, delays []time.Duration) error
	// StartWorker starts one worker of Concurrency handlers (or the system's own setting)
	// that runs h for every task; stop stops it gracefully and releases what it holds.
	StartWorker(ctx context.Context, h Handler) (stop func() error, err error)
	// Remaining counts the queue's tasks not done yet (pending, scheduled, running).
	Remaining(ctx context.Context) (int, error)
}

// Payload returns the payload of task seq: its sequence number, enqueue time and ready time
// in Unix nanoseconds, padded to PayloadSize bytes of JSON. bench/python builds the same.
func Payload(seq int, enqueued, ready time.Time) []byte {
	b := fmt.Appendf(make([]byte, 0, PayloadSize), `{"i":%d,"t":%d,"r":%d,"pad":"`, seq, enqueued.UnixNano(), ready.UnixNano())
	for len(b) < PayloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// Field returns the integer field name ("i", "t" or "r") of a payload made by Payload, or -1,
// without a JSON decoder so that handlers stay as cheap as the Python ones.
func Field(p []byte, name string) int64 {
	key := []byte(`"` + name + `":`)
	i := bytes.Index(p, key)
	if i < 0 {
		return -1
	}
	p = p[i+len(key):]
	j := 0
	for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(p[:j]), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// Runner runs workloads against one system.
type Runner struct {
	// System is the system under test.
	System System
	// Progress receives one human line per step (nil: none).
	Progress io.Writer
	// Hooks, when set, is called before and after each phase of W1 ("enqueue",
	// "enqueue_batch", "drain") so that a harness can add figures of its own (commands per
	// task, say) to the result.
	Hooks func(phase string, after bool, r *Result) error
	// Producers is how many enqueue calls W2 and W3 may have in flight at once (0 or 1: one
	// call after the other). The schedule stays the same: task seq is due at seq/rate
	// seconds. More callers model a web application whose requests enqueue concurrently,
	// so that a system whose single call takes longer than the interval between tasks (a
	// durable commit per call) still receives the rate.
	Producers int
}

func (ru *Runner) progress(format string, a ...any) {
	if ru.Progress != nil {
		fmt.Fprintf(ru.Progress, time.Now().Format("15:04:05")+" "+format+"\n", a...)
	}
}

func (ru *Runner) hook(phase string, after bool, r *Result) error {
	if ru.Hooks == nil {
		return nil
	}
	return ru.Hooks(phase, after, r)
}

// EnqueueAll enqueues tasks from..to-1 in batches of BatchSize (one call per task where the
// system has no batch enqueue), task i delayed by delay(i) (nil: none). It reports whether
// every batch was one call.
func (ru *Runner) EnqueueAll(ctx context.Context, from, to int, delay func(i int) time.Duration) (batched bool, err error) {
	batched = true
	for i := from; i < to; i += BatchSize {
		seqs := make([]int, 0, BatchSize)
		var delays []time.Duration
		for j := i; j < min(to, i+BatchSize); j++ {
			seqs = append(seqs, j)
			if delay != nil {
				delays = append(delays, delay(j))
			}
		}
		err := ru.System.EnqueueBatch(ctx, seqs, delays)
		if errors.Is(err, ErrNoBatch) {
			batched = false
			for k, seq := range seqs {
				var d time.Duration
				if delays != nil {
					d = delays[k]
				}
				if err := ru.System.Enqueue(ctx, seq, d); err != nil {
					return false, err
				}
			}
			continue
		}
		if err != nil {
			return false, err
		}
	}
	return batched, nil
}

// waitEmpty waits until the system shows no task left, failing after StallTimeout.
func (ru *Runner) waitEmpty(ctx context.Context) error {
	return WaitCount(ctx, func() (int, error) {
		left, err := ru.System.Remaining(ctx)
		if left > 0 {
			return 0, err
		}
		return 1, err
	}, 1, StallTimeout, nil)
}

// W1 is the drain workload: n tasks enqueued one call each, n more in batches of BatchSize,
// then one worker drains the 2n. The drain rate runs from the first poll that sees a task
// done to the moment the system shows none left (worker start-up excluded) and counts the
// tasks done in between.
func (ru *Runner) W1(ctx context.Context, n int) (*Result, error) {
	r := &Result{}
	if err := ru.hook("enqueue", false, r); err != nil {
		return nil, err
	}
	ru.progress("enqueueing %d tasks one call each", n)
	start := time.Now()
	for i := range n {
		if err := ru.System.Enqueue(ctx, i, 0); err != nil {
			return nil, err
		}
	}
	r.Add("enqueue_per_s", "enqueue, one call each", Round(float64(n)/time.Since(start).Seconds(), 1), "/s")
	if err := ru.hook("enqueue", true, r); err != nil {
		return nil, err
	}

	if err := ru.hook("enqueue_batch", false, r); err != nil {
		return nil, err
	}
	ru.progress("enqueueing %d tasks in batches of %d", n, BatchSize)
	start = time.Now()
	batched, err := ru.EnqueueAll(ctx, n, 2*n, nil)
	if err != nil {
		return nil, err
	}
	if batched {
		r.Add("enqueue_batch_per_s", "enqueue, batches of 1000", Round(float64(n)/time.Since(start).Seconds(), 1), "/s")
	}
	if err := ru.hook("enqueue_batch", true, r); err != nil {
		return nil, err
	}

	ru.progress("draining %d tasks with one worker", 2*n)
	if err := ru.hook("drain", false, r); err != nil {
		return nil, err
	}
	var done atomic.Int64
	stop, err := ru.System.StartWorker(ctx, func(context.Context, []byte) error {
		done.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	var dt DrainTimer
	if err := WaitCount(ctx, func() (int, error) { return int(done.Load()), nil }, 2*n, StallTimeout, &dt); err != nil {
		return nil, err
	}
	// The handlers have run; the system records them done right after (brisk acks in
	// batches).
	if err := ru.waitEmpty(ctx); err != nil {
		return nil, err
	}
	elapsed := time.Since(dt.First)
	if err := ru.hook("drain", true, r); err != nil {
		return nil, err
	}
	if err := stop(); err != nil {
		return nil, err
	}
	r.Add("drained", "drained", 2*n, "")
	r.Add("drain_per_s", "drain", Round(float64(2*n-dt.FirstCount)/elapsed.Seconds(), 1), "/s")
	return r, nil
}

// Pickup is W2 (rate 500 or 2000 per second for W2Seconds) and W3 (rate 5, W3Tasks tasks):
// an idle worker, a producer enqueueing total tasks one call each at rate; pickup latency is
// the handler's start minus the task's ready time. kept_up says whether every task was
// picked up within W2KeptUpWithin of the producer's end at 95% of the rate or more.
//
// Both measure a steady state, not a start: before the measured tasks, the producer runs
// for WarmUp at the same rate and with the same concurrent calls, and the worker picks
// those tasks up uncounted, then idles again. What that second warms is what any process
// has warm after its first requests: the connections of the clients' and the worker's
// pools (opened on first use, a new PostgreSQL backend each), prepared statements and
// loaded scripts. Its pickups are reported apart (warmup_p99_ms, warmup_max_ms).
func (ru *Runner) Pickup(ctx context.Context, rate float64, total int) (*Result, error) {
	warmN := max(1, int(rate*WarmUp.Seconds()))
	p, warm := NewPickups(total), NewPickups(warmN)
	stop, err := ru.System.StartWorker(ctx, func(ctx context.Context, pl []byte) error {
		if Field(pl, "i") >= int64(total) {
			return warm.Handle(ctx, pl)
		}
		return p.Handle(ctx, pl)
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	ru.progress("warming up: %d tasks at %g/s, not counted", warmN, rate)
	if _, err := ProduceConcurrently(ctx, warmN, rate, ru.Producers, func(seq int) error { return ru.System.Enqueue(ctx, total+seq, 0) }); err != nil {
		return nil, err
	}
	if !WaitFor(ctx, warm.Count, warmN, time.Millisecond, 30*time.Second) {
		return nil, fmt.Errorf("warming up: only %d of %d tasks picked up within 30s", warm.Count(), warmN)
	}
	SleepCtx(ctx, 300*time.Millisecond) // let the worker reach its idle wait
	ru.progress("enqueueing %d tasks at %g/s", total, rate)
	achieved, err := ProduceConcurrently(ctx, total, rate, ru.Producers, func(seq int) error { return ru.System.Enqueue(ctx, seq, 0) })
	if err != nil {
		return nil, err
	}
	keptUp := WaitFor(ctx, p.Count, total, time.Millisecond, W2KeptUpWithin)
	if !keptUp {
		WaitFor(ctx, p.Count, total, 10*time.Millisecond, 30*time.Second)
	}
	if err := stop(); err != nil {
		return nil, err
	}
	r := &Result{}
	r.Add("tasks", "tasks", total, "")
	r.Add("rate", "target rate", rate, "/s")
	r.Add("achieved_rate", "achieved rate", Round(achieved, 1), "/s")
	if ru.Producers > 1 {
		r.Add("producers", "concurrent enqueue calls", ru.Producers, "")
	}
	r.AddPercentiles("pickup", "pickup", p.Sorted())
	r.Add("kept_up", "kept up", keptUp && achieved >= 0.95*rate && p.Count() == total, "")
	ws := warm.Sorted()
	r.Add("warmup_tasks", "warm-up tasks, not counted", warmN, "")
	r.Add("warmup_p99_ms", "warm-up pickup p99", Percentile(ws, 0.99), "ms")
	r.Add("warmup_max_ms", "warm-up pickup max", Percentile(ws, 1), "ms")
	return r, nil
}

// W5 is the timely workload: n tasks delayed by uniform random 0 to W5MaxDelay (in batches
// where the system has them), to an idle worker; lateness is the handler's start minus the
// task's ready time.
func (ru *Runner) W5(ctx context.Context, n int) (*Result, error) {
	p := NewPickups(n)
	stop, err := ru.System.StartWorker(ctx, p.Handle)
	if err != nil {
		return nil, err
	}
	defer stop()
	SleepCtx(ctx, 300*time.Millisecond)
	ru.progress("enqueueing %d tasks delayed by 0-%s", n, W5MaxDelay)
	delays := make([]time.Duration, n)
	for i := range delays {
		delays[i] = time.Duration(rand.Float64() * float64(W5MaxDelay))
	}
	if _, err := ru.EnqueueAll(ctx, 0, n, func(i int) time.Duration { return delays[i] }); err != nil {
		return nil, err
	}
	if !WaitFor(ctx, p.Count, n, 5*time.Millisecond, W5MaxDelay+time.Minute) {
		left, err := ru.System.Remaining(ctx)
		return nil, fmt.Errorf("only %d of %d delayed tasks ran within %s (the system shows %d not done, error %v)", p.Count(), n, W5MaxDelay+time.Minute, left, err)
	}
	if err := stop(); err != nil {
		return nil, err
	}
	r := &Result{}
	r.Add("tasks", "tasks", n, "")
	r.AddPercentiles("late", "lateness", p.Sorted())
	return r, nil
}

// Pickups records the first start of every task as the latency from its ready time.
type Pickups struct {
	mu      sync.Mutex
	seen    map[int64]struct{}
	samples []time.Duration
}

// NewPickups returns an empty record sized for n tasks.
func NewPickups(n int) *Pickups {
	return &Pickups{seen: make(map[int64]struct{}, n), samples: make([]time.Duration, 0, n)}
}

// Handle records the pickup of the task whose payload is p (a Handler). A task delivered
// again is not counted twice: only its first pickup counts.
func (p *Pickups) Handle(_ context.Context, pl []byte) error {
	lat := time.Duration(time.Now().UnixNano() - Field(pl, "r"))
	id := Field(pl, "i")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[id]; ok {
		return nil
	}
	p.seen[id] = struct{}{}
	p.samples = append(p.samples, lat)
	return nil
}

// Count returns how many tasks have been picked up.
func (p *Pickups) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.samples)
}

// Sorted returns a sorted copy of the samples.
func (p *Pickups) Sorted() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.samples)
	slices.Sort(s)
	return s
}

// Percentile returns the nearest-rank p-quantile (0 < p ≤ 1) of sorted samples in
// milliseconds, or NaN when there are none.
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return Round(float64(sorted[rank-1])/float64(time.Millisecond), 3)
}

// Round rounds v to decimals places.
func Round(v float64, decimals int) float64 {
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}

// DrainTimer measures a drain from the first poll that sees a task done, so that worker
// start-up is excluded, and the rate counts only the tasks done after it.
type DrainTimer struct {
	First      time.Time
	FirstCount int
}

// WaitCount polls count every millisecond until it reaches target; it fails when count stays
// the same for stall (if > 0) or ctx ends. dt (if not nil) records the first poll that saw
// a count above zero.
func WaitCount(ctx context.Context, count func() (int, error), target int, stall time.Duration, dt *DrainTimer) error {
	last, lastChange := -1, time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		n, err := count()
		if err != nil {
			return err
		}
		now := time.Now()
		if dt != nil && n > 0 && dt.First.IsZero() {
			dt.First, dt.FirstCount = now, n
		}
		if n >= target {
			if dt != nil && dt.First.IsZero() {
				dt.First = now
			}
			return nil
		}
		if n != last {
			last, lastChange = n, now
		} else if stall > 0 && now.Sub(lastChange) > stall {
			return fmt.Errorf("stalled: %d of %d done, no progress for %s", n, target, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// WaitFor polls count every `every` until it reaches target or timeout passes; it reports
// whether target was reached.
func WaitFor(ctx context.Context, count func() int, target int, every, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if count() >= target {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		SleepCtx(ctx, every)
	}
}

// SleepCtx sleeps for d or until ctx is done.
func SleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Produce calls enqueue for seq 0..total-1 at rate per second, one call after the other:
// every 2 ms it enqueues what the schedule has come to, so that high rates work and a late
// tick catches up. It returns the achieved rate.
func Produce(ctx context.Context, total int, rate float64, enqueue func(seq int) error) (float64, error) {
	return ProduceConcurrently(ctx, total, rate, 1, enqueue)
}

// ProduceConcurrently is Produce with up to callers enqueue calls in flight at once: every
// 2 ms the tasks the schedule has come to are handed to callers goroutines, so that a call
// slower than the interval between tasks does not hold back the next ones (open-loop, as
// requests arrive). callers of 0 or 1 calls enqueue on this goroutine. It returns the
// achieved rate, up to the return of the last call, or the first error.
func ProduceConcurrently(ctx context.Context, total int, rate float64, callers int, enqueue func(seq int) error) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	call := func(seq int) {
		if ctx.Err() == nil {
			if err := enqueue(seq); err != nil {
				cancel(err)
			}
		}
	}
	dispatch, finish := call, func() {}
	if callers > 1 {
		seqs := make(chan int, total)
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for seq := range seqs {
					call(seq)
				}
			})
		}
		dispatch = func(seq int) { seqs <- seq }
		finish = func() { close(seqs); wg.Wait() }
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < total && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		for due := min(total, int(time.Since(start).Seconds()*rate)); sent < due && ctx.Err() == nil; sent++ {
			dispatch(sent)
		}
	}
	finish()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}
