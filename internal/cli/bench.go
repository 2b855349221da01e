package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/briskq/brisk"
)

var benchCmd = &command{
	name:     "bench",
	synopsis: "--workload W1|W2|W3|W4|W5 [--tasks N] [--rate R] [--concurrency N] [--json]",
	summary:  "run a benchmark workload against brisk and print its figures",
	detail: `
The workloads (see BRIEF.md); each task carries a ~100-byte JSON payload with its enqueue
time, and handlers do nothing unless said:
  W1 drain    enqueue --tasks (20000) one call each, then as many again in batches of
              1000, with no worker; then time one worker draining them all.
              Figures: enqueue_per_s, enqueue_batch_per_s, drain_per_s.
  W2 steady   a running worker; a producer enqueues one task per call at --rate (500/s)
              for 20 s (--tasks overrides the count). Figures: pickup_p50_ms,
              pickup_p90_ms, pickup_p99_ms, pickup_max_ms, kept_up (all picked up within
              2 s of the producer's end, at >= 95% of the rate).
  W3 idle     one task every 200 ms (--rate 5) for 10 s (50 tasks) to an idle worker.
              Figures: pickup_p50_ms, pickup_p99_ms, pickup_max_ms.
  W4 crash    2000 tasks whose handler sleeps 50 ms, run by a worker in a child process
              that is killed with SIGKILL when half are done and restarted at once.
              Figures: lost, duplicates, interrupted, redelivery_s (from the kill until
              the last interrupted task started again).
  W5 timely   2000 tasks delayed by uniform random 0-10 s, to an idle worker. Figures:
              late_p50_ms, late_p99_ms, late_max_ms (start - ready time).
Pickup latency is the handler's start minus the task's ready time; percentiles are exact.

Without --broker and $BRISK_BROKER the run uses a fresh SQLite file in a temporary
directory, removed at the end. With a broker it uses a queue of its own (bench_w1_<random>)
and deletes the tasks it leaves.

--json prints one JSON object on one line with workload, broker (password masked), queue,
tasks, concurrency, the workload's figures and seconds (the run's wall time).`,
	run: runBench,
}

// benchTaskType is the type of every benchmark task.
const benchTaskType = "bench.noop"

// Defaults of the workloads, as BRIEF.md sets them.
const (
	w1Tasks          = 20000
	w1Batch          = 1000
	w2Rate           = 500.0
	w2Seconds        = 20
	w2KeptUpWithin   = 2 * time.Second
	w3Interval       = 200 * time.Millisecond
	w3Tasks          = 50
	w4Tasks          = 2000
	w4Sleep          = 50 * time.Millisecond
	w4Timeout        = 2 * time.Minute
	w5Tasks          = 2000
	w5MaxDelay       = 10 * time.Second
	benchConcurrency = 8
	// stallTimeout ends a run in error when no task has completed for that long.
	stallTimeout = time.Minute
)

// bench is one run of one workload.
type bench struct {
	ctx         context.Context
	workload    string
	url         string // the broker URL the run uses
	queue       string // the run's own queue
	tasks       int
	rate        float64
	concurrency int
	c           *brisk.Client
	in          *brisk.Inspector
	progress    io.Writer // human progress lines; io.Discard with --json
	out         *benchReport
}

func runBench(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	brokerURL := brokerFlag(fs)
	workload := fs.String("workload", "", "run workload `W`: W1, W2, W3, W4 or W5 (required)")
	tasks := fs.Int("tasks", 0, "run `N` tasks (default: the workload's)")
	rate := fs.Float64("rate", 0, "enqueue `R` tasks per second in W2 (default 500) or W3 (default 5)")
	concurrency := fs.Int("concurrency", benchConcurrency, "run `N` handlers at once in the worker")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a summary")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	wl := strings.ToUpper(*workload)
	switch {
	case wl == "":
		return usagef("bench needs --workload W1|W2|W3|W4|W5")
	case !slices.Contains([]string{"W1", "W2", "W3", "W4", "W5"}, wl):
		return usagef("--workload %q is not one of W1, W2, W3, W4, W5", *workload)
	case *tasks < 0:
		return usagef("--tasks %d is negative", *tasks)
	case *rate < 0 || math.IsInf(*rate, 0) || math.IsNaN(*rate):
		return usagef("--rate %v must be a positive number", *rate)
	case *rate > 0 && wl != "W2" && wl != "W3":
		return usagef("--rate applies to W2 and W3 only")
	case *concurrency < 1:
		return usagef("--concurrency %d must be at least 1", *concurrency)
	}

	b := &bench{ctx: ctx, workload: wl, tasks: *tasks, rate: *rate, concurrency: *concurrency,
		progress: e.stderr, out: &benchReport{}}
	if *asJSON {
		b.progress = io.Discard
	}
	switch wl {
	case "W1":
		b.tasks = orDefault(b.tasks, w1Tasks)
	case "W2":
		b.rate = orDefault(b.rate, w2Rate)
		b.tasks = orDefault(b.tasks, int(math.Round(b.rate*w2Seconds)))
	case "W3":
		b.rate = orDefault(b.rate, float64(time.Second/w3Interval))
		b.tasks = orDefault(b.tasks, w3Tasks)
	case "W4":
		b.tasks = orDefault(b.tasks, w4Tasks)
	case "W5":
		b.tasks = orDefault(b.tasks, w5Tasks)
	}

	// Isolation: a run never touches what it did not create.
	b.url = *brokerURL
	if b.url == "" && os.Getenv("BRISK_BROKER") == "" {
		dir, err := os.MkdirTemp("", "brisk-bench-")
		if err != nil {
			return fmt.Errorf("bench: temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		b.url = "sqlite://" + filepath.ToSlash(filepath.Join(dir, "bench.db"))
	}
	b.url = brisk.BrokerURL(b.url)
	b.queue = fmt.Sprintf("bench_%s_%08x", strings.ToLower(wl), rand.Uint32())
	if b.c, err = openClient(ctx, b.url); err != nil {
		return err
	}
	defer closeClient(b.c)
	b.in = brisk.NewInspector(b.c.Broker())
	defer b.cleanup()

	r := b.out
	r.add("workload", "workload", wl, "")
	r.add("broker", "broker", maskURL(b.url), "")
	r.add("queue", "queue", b.queue, "")
	r.add("tasks", "tasks", b.tasks, "")
	r.add("concurrency", "concurrency", b.concurrency, "")
	if wl == "W2" || wl == "W3" {
		r.add("rate", "target rate", b.rate, "/s")
	}
	fmt.Fprintf(b.progress, "bench: %s on %s, queue %s\n", wl, maskURL(b.url), b.queue)
	start := time.Now()
	switch wl {
	case "W1":
		err = b.w1()
	case "W2":
		err = b.w2()
	case "W3":
		err = b.w3()
	case "W4":
		err = b.w4()
	case "W5":
		err = b.w5()
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", wl, err)
	}
	r.add("seconds", "wall time", round(time.Since(start).Seconds(), 3), "s")
	if *asJSON {
		return writeJSON(e.stdout, r, false)
	}
	return r.print(e.stdout)
}

// orDefault returns v, or def when v is zero (the flag was not given).
func orDefault[T int | float64](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// maskURL hides a password in a broker URL.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// cleanup deletes the run's leftover tasks, even after Ctrl-C.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.ctx), 30*time.Second)
	defer cancel()
	for _, st := range []brisk.State{brisk.StatePending, brisk.StateScheduled, brisk.StateDead} {
		_, _ = b.in.DeleteTasks(ctx, b.queue, st)
	}
}

// benchPad makes the payload about 100 bytes: {"t":<19 digits>,"pad":"…"}.
var benchPad = strings.Repeat("x", 66)

// newTask returns a benchmark task with the enqueue time now in its payload.
func (b *bench) newTask(now time.Time, opts ...brisk.Option) *brisk.Task {
	payload := fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, now.UnixNano(), benchPad)
	return brisk.NewTask(benchTaskType, payload, append(opts, brisk.InQueue(b.queue))...)
}

// enqueueBatches enqueues n tasks in batches of w1Batch, each task with the options
// opts(i) returns (nil: none), and returns their ids.
func (b *bench) enqueueBatches(n int, opts func(i int) []brisk.Option) ([]string, error) {
	all := make([]string, 0, n)
	for i := 0; i < n; i += w1Batch {
		batch := make([]*brisk.Task, min(w1Batch, n-i))
		now := time.Now()
		for j := range batch {
			var o []brisk.Option
			if opts != nil {
				o = opts(i + j)
			}
			batch[j] = b.newTask(now, o...)
		}
		ids, err := b.c.EnqueueBatch(b.ctx, batch)
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
	}
	return all, nil
}

// startWorker starts an in-process worker of the run's queue with handler h.
func (b *bench) startWorker(h brisk.HandlerFunc) (*brisk.Worker, error) {
	w, err := brisk.NewWorker(b.c.Broker(), brisk.WorkerConfig{
		Queues:          []brisk.QueueSpec{{Name: b.queue}},
		Concurrency:     b.concurrency,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	w.Handle(benchTaskType, h)
	if err := w.Start(b.ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// remaining returns how many tasks of the run's queue are not done yet.
func (b *bench) remaining() (int64, error) {
	qs, err := b.in.Queues(b.ctx)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if q.Name == b.queue {
			return q.Pending + q.Scheduled + q.Running, nil
		}
	}
	return 0, nil
}

// waitProgress polls count every `every` until it reaches target. It fails when ctx is
// done or when count stays the same for stall (if > 0); it returns false, not an error,
// when timeout (if > 0) passes first.
func (b *bench) waitProgress(count func() (int, error), target int, every, timeout, stall time.Duration) (bool, error) {
	start := time.Now()
	last, lastChange := -1, start
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := count()
		if err != nil {
			return false, err
		}
		if n >= target {
			return true, nil
		}
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		} else if stall > 0 && now.Sub(lastChange) > stall {
			return false, fmt.Errorf("stalled: %d of %d, no progress for %s", n, target, stall)
		}
		if timeout > 0 && now.Sub(start) >= timeout {
			return false, nil
		}
		select {
		case <-b.ctx.Done():
			return false, b.ctx.Err()
		case <-tick.C:
		}
	}
}

// waitEmpty waits until the run's queue holds no pending, scheduled or running task.
func (b *bench) waitEmpty() error {
	_, err := b.waitProgress(func() (int, error) {
		n, err := b.remaining()
		if n > 0 {
			return 0, err
		}
		return 1, err
	}, 1, 2*time.Millisecond, 0, stallTimeout)
	return err
}

// w1 is the drain workload.
func (b *bench) w1() error {
	n := b.tasks
	fmt.Fprintf(b.progress, "bench: enqueueing %d tasks one call each\n", n)
	start := time.Now()
	for range n {
		if _, err := b.c.Enqueue(b.ctx, b.newTask(time.Now())); err != nil {
			return err
		}
	}
	single := time.Since(start)
	fmt.Fprintf(b.progress, "bench: enqueueing %d tasks in batches of %d\n", n, w1Batch)
	start = time.Now()
	if _, err := b.enqueueBatches(n, nil); err != nil {
		return err
	}
	batched := time.Since(start)

	total := 2 * n
	fmt.Fprintf(b.progress, "bench: draining %d tasks with one worker of %d handlers\n", total, b.concurrency)
	var done atomic.Int64
	start = time.Now()
	w, err := b.startWorker(func(context.Context, *brisk.Task) error {
		done.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	if _, err := b.waitProgress(func() (int, error) { return int(done.Load()), nil }, total, time.Millisecond, 0, stallTimeout); err != nil {
		return err
	}
	// The handlers have run; the acks are written in batches right after.
	if err := b.waitEmpty(); err != nil {
		return err
	}
	drain := time.Since(start)
	if err := w.Stop(); err != nil {
		return err
	}

	r := b.out
	r.add("enqueue_per_s", "enqueue, one call each", round(float64(n)/single.Seconds(), 1), "/s")
	r.add("enqueue_batch_per_s", "enqueue, batches of 1000", round(float64(n)/batched.Seconds(), 1), "/s")
	r.add("drained", "drained", total, "")
	r.add("drain_per_s", "drain", round(float64(total)/drain.Seconds(), 1), "/s")
	return nil
}

// pickups records the first start of every task of a run, as the latency from its ready
// time. Handlers call record first thing.
type pickups struct {
	mu      sync.Mutex
	seen    map[string]struct{}
	samples []time.Duration
}

func newPickups(n int) *pickups {
	return &pickups{seen: make(map[string]struct{}, n), samples: make([]time.Duration, 0, n)}
}

func (p *pickups) handle(_ context.Context, t *brisk.Task) error {
	lat := time.Since(t.ReadyAt)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[t.ID]; ok { // delivered again: only the first pickup counts
		return nil
	}
	p.seen[t.ID] = struct{}{}
	p.samples = append(p.samples, lat)
	return nil
}

func (p *pickups) count() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.samples), nil
}

// sorted returns a sorted copy of the samples.
func (p *pickups) sorted() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.samples)
	slices.Sort(s)
	return s
}

// percentile returns the p-quantile (0 < p ≤ 1) of sorted samples by the nearest-rank
// method, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return round(float64(sorted[rank-1])/float64(time.Millisecond), 3)
}

func round(v float64, decimals int) float64 {
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}

// produce enqueues total tasks, one call each, at rate per second: every 2 ms it enqueues
// what the schedule has come to, so that high rates work and a late tick catches up. It
// returns how long it took from the start to the last enqueue.
func (b *bench) produce(total int, rate float64) (time.Duration, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total {
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-tick.C:
		}
		due := min(total, int(time.Since(start).Seconds()*rate))
		for ; sent < due; sent++ {
			if _, err := b.c.Enqueue(b.ctx, b.newTask(time.Now())); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

// pickupRun starts a worker that records pickups, lets it go idle, runs the producer at
// rate, and waits for the pickups. keptUp reports whether every task was picked up within
// w2KeptUpWithin of the producer's end; after that it waits up to tail more for the rest.
func (b *bench) pickupRun(rate float64, tail time.Duration) (p *pickups, produced time.Duration, keptUp bool, err error) {
	p = newPickups(b.tasks)
	w, err := b.startWorker(p.handle)
	if err != nil {
		return nil, 0, false, err
	}
	defer w.Stop()
	sleepCtx(b.ctx, 300*time.Millisecond) // let the worker reach its idle wait
	fmt.Fprintf(b.progress, "bench: enqueueing %d tasks at %g/s\n", b.tasks, rate)
	if produced, err = b.produce(b.tasks, rate); err != nil {
		return nil, 0, false, err
	}
	if keptUp, err = b.waitProgress(p.count, b.tasks, time.Millisecond, w2KeptUpWithin, 0); err != nil {
		return nil, 0, false, err
	}
	if !keptUp {
		if _, err = b.waitProgress(p.count, b.tasks, 10*time.Millisecond, tail, 0); err != nil {
			return nil, 0, false, err
		}
	}
	return p, produced, keptUp, w.Stop()
}

func (b *bench) addPickups(p *pickups, p90 bool) {
	s := p.sorted()
	r := b.out
	r.add("picked_up", "picked up", len(s), "")
	r.add("pickup_p50_ms", "pickup p50", percentile(s, 0.50), "ms")
	if p90 {
		r.add("pickup_p90_ms", "pickup p90", percentile(s, 0.90), "ms")
	}
	r.add("pickup_p99_ms", "pickup p99", percentile(s, 0.99), "ms")
	r.add("pickup_max_ms", "pickup max", percentile(s, 1), "ms")
}

// w2 is the steady workload.
func (b *bench) w2() error {
	p, produced, keptUp, err := b.pickupRun(b.rate, 30*time.Second)
	if err != nil {
		return err
	}
	achieved := float64(b.tasks) / produced.Seconds()
	b.out.add("achieved_rate", "achieved rate", round(achieved, 1), "/s")
	b.addPickups(p, true)
	b.out.add("kept_up", "kept up", keptUp && achieved >= 0.95*b.rate, "")
	return nil
}

// w3 is the idle workload: W2's producer at one task per 200 ms.
func (b *bench) w3() error {
	p, _, _, err := b.pickupRun(b.rate, 10*time.Second)
	if err != nil {
		return err
	}
	b.addPickups(p, false)
	return nil
}

// w5 is the timely workload.
func (b *bench) w5() error {
	p := newPickups(b.tasks)
	w, err := b.startWorker(p.handle)
	if err != nil {
		return err
	}
	defer w.Stop()
	sleepCtx(b.ctx, 300*time.Millisecond)
	fmt.Fprintf(b.progress, "bench: enqueueing %d tasks delayed by 0-%s\n", b.tasks, w5MaxDelay)
	delays := make([]time.Duration, b.tasks)
	for i := range delays {
		delays[i] = time.Duration(rand.Float64() * float64(w5MaxDelay))
	}
	if _, err := b.enqueueBatches(b.tasks, func(i int) []brisk.Option {
		return []brisk.Option{brisk.Delay(delays[i])}
	}); err != nil {
		return err
	}
	ok, err := b.waitProgress(p.count, b.tasks, 5*time.Millisecond, w5MaxDelay+time.Minute, 0)
	if err != nil {
		return err
	}
	if !ok {
		n, _ := p.count()
		return fmt.Errorf("only %d of %d delayed tasks ran within %s", n, b.tasks, w5MaxDelay+time.Minute)
	}
	if err := w.Stop(); err != nil {
		return err
	}
	s := p.sorted()
	r := b.out
	r.add("late_p50_ms", "lateness p50", percentile(s, 0.50), "ms")
	r.add("late_p99_ms", "lateness p99", percentile(s, 0.99), "ms")
	r.add("late_max_ms", "lateness max", percentile(s, 1), "ms")
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// benchReport is the result of a run: figures in the order they were added, printed as one
// JSON object or as a human summary.
type benchReport struct {
	figs []figure
}

type figure struct {
	key   string // JSON key
	label string // label in the summary
	val   any    // string, int, float64, bool or nil (JSON null, "-")
	unit  string // unit in the summary
}

func (r *benchReport) add(key, label string, val any, unit string) {
	r.figs = append(r.figs, figure{key, label, val, unit})
}

// MarshalJSON writes the figures as one object, keys in order.
func (r *benchReport) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range r.figs {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, fmt.Errorf("figure %s: %w", f.key, err)
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (r *benchReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range r.figs {
		var v string
		switch x := f.val.(type) {
		case nil:
			v = "-"
		case float64:
			switch {
			case f.unit == "/s":
				v = fmt.Sprintf("%.0f", x)
			case x >= 100:
				v = fmt.Sprintf("%.1f", x)
			default:
				v = fmt.Sprintf("%.3g", x)
			}
		case bool:
			v = map[bool]string{true: "yes", false: "no"}[x]
		default:
			v = fmt.Sprint(x)
		}
		if f.val != nil && f.unit != "" {
			if f.unit == "/s" {
				v += "/s"
			} else {
				v += " " + f.unit
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", f.label, v)
	}
	return tw.Flush()
}
