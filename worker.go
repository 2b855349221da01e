package brisk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/histogram"
	"github.com/briskq/brisk/internal/service"
)

// Version is brisk's version, reported in worker heartbeats.
const Version = "0.1.0"

// QueueSpec is one queue a worker serves.
type QueueSpec struct {
	// Name of the queue.
	Name string
	// Weight is the queue's share when queues are served by weight (default 1): a queue of
	// weight 3 is tried first three times as often as one of weight 1.
	Weight int
	// MaxConcurrency caps how many of this queue's tasks the worker runs at once, so that
	// one greedy queue cannot take every slot. 0 means only Concurrency limits it.
	MaxConcurrency int
	// SLA, when set, is declared on the queue when the worker starts.
	SLA time.Duration
}

// WorkerConfig configures a Worker. Zero fields take the defaults given.
type WorkerConfig struct {
	// Queues the worker serves. Default: the queue DefaultQueue.
	Queues []QueueSpec
	// StrictPriority serves queues in the order listed: a queue is reserved from only when
	// every queue before it has nothing ready. Default false: queues are tried in a random
	// order drawn by Weight for each reservation.
	StrictPriority bool
	// Concurrency is how many handlers run at once. Default 10. SetConcurrency changes it
	// while the worker runs.
	Concurrency int
	// Prefetch is how many tasks the worker reserves beyond its free handler slots. Default
	// 0, so that an idle worker elsewhere is never starved by a busy one.
	Prefetch int
	// PrefetchWait, when set, lets the worker reserve beyond its free slots as many tasks
	// as it expects to start within PrefetchWait, from the mean time of its recent handler
	// runs (Concurrency × PrefetchWait ÷ that mean, at most 16 × Concurrency, and never
	// less than Prefetch; with several queues, the mean of the slowest one). Short tasks then come in large batches (fewer broker round
	// trips per task, and a RabbitMQ consumer window wide enough to keep the queue
	// flowing), while long ones are reserved only for free slots, so a buffered task waits
	// about PrefetchWait at most and an idle worker elsewhere is not starved. Until a
	// handler has returned the worker holds only Prefetch. Default 0: off.
	PrefetchWait time.Duration
	// Lease is how long a reserved task belongs to the worker without an extension; the
	// worker extends it every Lease/3 while the handler runs, and a crashed worker's tasks
	// are delivered again after it. Default 10s.
	Lease time.Duration
	// ShutdownTimeout is the grace period that running handlers get to finish when the
	// worker stops; after it their contexts are cancelled and their tasks handed back.
	// Default 10s.
	ShutdownTimeout time.Duration
	// DefaultTimeout bounds one run of a task that has no Timeout of its own. Default 30m.
	DefaultTimeout time.Duration
	// Backoff returns the delay before attempt n+1 after attempt n failed. Default
	// ExponentialBackoff(time.Second, time.Hour): full jitter over 1s·2^(n−1), at most 1h.
	Backoff func(attempt int, err error) time.Duration
	// IdleWait is the longest the worker waits for a wake-up before it asks the broker
	// again. Default 1s. Brokers wake waiting workers earlier when tasks arrive.
	IdleWait time.Duration
	// HeartbeatInterval is how often the worker records itself in the broker. Default 5s.
	HeartbeatInterval time.Duration
	// KeepDeadWorkersTasks turns off reaping: by default a worker that sees another worker
	// of the same host whose process is gone hands that worker's tasks back at once instead
	// of waiting for their leases to expire. Turn it off where workers of one host name run
	// in separate PID namespaces.
	KeepDeadWorkersTasks bool
	// ID names the worker in heartbeats. Default host-pid-random.
	ID string
	// Logger receives the worker's logs. Default: warnings and errors as text on standard
	// error (a worker whose broker fails says so); pass slog.New(slog.DiscardHandler) for
	// none.
	Logger *slog.Logger
}

// ExponentialBackoff returns a backoff with full jitter: a uniform random delay in
// [0, min(max, base·2^(attempt−1))].
func ExponentialBackoff(base, max time.Duration) func(attempt int, err error) time.Duration {
	return func(attempt int, _ error) time.Duration {
		if attempt < 1 {
			attempt = 1
		}
		ceil := float64(base) * math.Pow(2, float64(attempt-1))
		if ceil > float64(max) || math.IsInf(ceil, 0) {
			ceil = float64(max)
		}
		return time.Duration(rand.Float64() * ceil)
	}
}

func (c *WorkerConfig) validate() error {
	if c.Concurrency < 0 {
		return fmt.Errorf("%w: WorkerConfig.Concurrency %d is negative", ErrInvalid, c.Concurrency)
	}
	if c.Prefetch < 0 {
		return fmt.Errorf("%w: WorkerConfig.Prefetch %d is negative", ErrInvalid, c.Prefetch)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Lease", c.Lease}, {"ShutdownTimeout", c.ShutdownTimeout}, {"DefaultTimeout", c.DefaultTimeout},
		{"IdleWait", c.IdleWait}, {"HeartbeatInterval", c.HeartbeatInterval}, {"PrefetchWait", c.PrefetchWait}} {
		if d.v < 0 {
			return fmt.Errorf("%w: WorkerConfig.%s %s is negative", ErrInvalid, d.name, d.v)
		}
	}
	if c.Lease > 0 && c.Lease < 30*time.Millisecond {
		return fmt.Errorf("%w: WorkerConfig.Lease %s is below 30ms", ErrInvalid, c.Lease)
	}
	seen := map[string]bool{}
	for i, q := range c.Queues {
		if err := broker.ValidateQueueName(q.Name); err != nil {
			return fmt.Errorf("WorkerConfig.Queues[%d]: %w", i, err)
		}
		if seen[q.Name] {
			return fmt.Errorf("%w: WorkerConfig.Queues lists %q twice", ErrInvalid, q.Name)
		}
		seen[q.Name] = true
		if q.Weight < 0 || q.MaxConcurrency < 0 || q.SLA < 0 {
			return fmt.Errorf("%w: WorkerConfig.Queues[%d] (%s): negative weight, limit or SLA", ErrInvalid, i, q.Name)
		}
	}
	return nil
}

func (c *WorkerConfig) setDefaults() {
	if len(c.Queues) == 0 {
		c.Queues = []QueueSpec{{Name: DefaultQueue}}
	}
	c.Queues = append([]QueueSpec(nil), c.Queues...)
	for i := range c.Queues {
		if c.Queues[i].Weight == 0 {
			c.Queues[i].Weight = 1
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	if c.Lease == 0 {
		c.Lease = 10 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = 30 * time.Minute
	}
	if c.Backoff == nil {
		c.Backoff = ExponentialBackoff(time.Second, time.Hour)
	}
	if c.IdleWait == 0 {
		c.IdleWait = time.Second
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
}

// Worker reserves tasks from a broker and runs their handlers. Register handlers with
// Handle before Start or Run.
type Worker struct {
	b    broker.Broker
	cfg  WorkerConfig
	log  *slog.Logger
	host string

	handlers   map[string]Handler
	fallback   Handler // for types without a handler of their own (HandleDefault), or nil
	middleware []Middleware
	hooks      hookList
	chains     map[string]Handler // handlers wrapped in the middleware, built once by Start
	anyChain   Handler            // fallback wrapped in the middleware, or nil

	concurrency atomic.Int64
	processed   atomic.Int64
	failed      atomic.Int64
	pickup      sync.Map // queue name → *histogram.Histogram

	lifecycle sync.Mutex // held by Start and Stop, so that Stop never sees a half-started worker

	mu        sync.Mutex
	started   bool
	stopping  bool
	running   int                      // handlers running
	meanRun   map[string]time.Duration // moving mean of handler run times per queue (PrefetchWait)
	perQueue  map[string]int           // running + buffered per queue
	buffer    []*broker.Task           // prefetched, not started
	held      map[string]*heldTask
	startedAt time.Time

	slotFreed chan struct{} // signalled when a slot frees or concurrency grows

	acks        *ackQueue
	ackReserver broker.AckReserver // b, when it can ack and reserve in one round trip
	retainer    broker.Retainer    // b, when it keeps completed tasks with their results
	progress    broker.ProgressReporter

	// The background services, started in this order by Start and stopped by Stop in
	// the order fetcher, (handlers), acker, leases, heartbeat.
	fetcher   fetcher
	acker     acker
	leases    leaseKeeper
	heartbeat heartbeater
	clock     service.Clock

	baseCtx    context.Context // the values of Start's context: the handlers' contexts derive from it
	hardCtx    context.Context // cancelled when the grace period ends, after the handlers' contexts
	hardCancel context.CancelFunc
	bgCtx      context.Context // writes of outcomes, releases and acks, until the worker has stopped
	bgCancel   context.CancelFunc

	handlersWG sync.WaitGroup // handlers running
	ready      []job          // started tasks that no handler goroutine has taken yet
	waking     bool           // a handler goroutine is on its way to the ready tasks
	wake       chan struct{}  // wakes an idle handler goroutine (unbuffered)
	idle       atomic.Int64   // handler goroutines waiting for a wake-up
	quit       chan struct{}  // closed when the worker has stopped: idle handler goroutines end
	poolWG     sync.WaitGroup // handler goroutines
	stopOnce   sync.Once
	stopErr    error
}

type heldTask struct {
	lease    broker.Lease
	run      taskRun                 // what the handler's context carries
	stop     context.CancelCauseFunc // cancels the handler's context with a cause (nil until it starts)
	returned bool                    // the handler returned; its outcome is being written
	released bool                    // handed back or lost: the outcome is ignored
}

// NewWorker returns a worker on broker b. It returns an error naming the bad field of cfg.
func NewWorker(b Broker, cfg WorkerConfig) (*Worker, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: NewWorker needs a broker", ErrInvalid)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	host, _ := os.Hostname()
	w := &Worker{
		b:         b,
		cfg:       cfg,
		log:       cfg.Logger.With("worker", cfg.ID),
		host:      host,
		handlers:  map[string]Handler{},
		perQueue:  map[string]int{},
		meanRun:   map[string]time.Duration{},
		held:      map[string]*heldTask{},
		slotFreed: make(chan struct{}, 1),
		acks:      newAckQueue(),
		wake:      make(chan struct{}),
		quit:      make(chan struct{}),
		clock:     service.SystemClock{},
	}
	w.ackReserver, _ = b.(broker.AckReserver)
	w.retainer, _ = b.(broker.Retainer)
	w.progress, _ = b.(broker.ProgressReporter)
	w.fetcher.w, w.acker.w, w.leases.w, w.heartbeat.w = w, w, w, w
	w.concurrency.Store(int64(cfg.Concurrency))
	return w, nil
}

// Handle registers h for tasks of type typ. It panics if typ already has a handler or is
// not a valid type name, or if the worker has started (programmer errors).
func (w *Worker) Handle(typ string, h Handler) {
	if err := broker.ValidateTypeName(typ); err != nil {
		panic(err.Error())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("brisk: Handle called after the worker started")
	}
	if _, dup := w.handlers[typ]; dup {
		panic("brisk: two handlers for task type " + typ)
	}
	w.handlers[typ] = h
}

// HandleDefault registers h for every task type that has no handler of its own: a
// catch-all, for workers that forward tasks to code elsewhere (brisk worker --exec and
// --http do). It panics if a default handler is registered already or the worker has
// started (programmer errors).
func (w *Worker) HandleDefault(h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("brisk: HandleDefault called after the worker started")
	}
	if w.fallback != nil {
		panic("brisk: two default handlers")
	}
	w.fallback = h
}

// HandleFunc registers fn for tasks of type typ.
func (w *Worker) HandleFunc(typ string, fn func(ctx context.Context, t *Task) error) {
	w.Handle(typ, HandlerFunc(fn))
}

// Use adds middleware around every handler, the first added outermost. It panics if the
// worker has started (the chains are built once, when it starts).
func (w *Worker) Use(mw ...Middleware) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("brisk: Use called after the worker started")
	}
	w.middleware = append(w.middleware, mw...)
}

// AddHooks adds hooks that are told when a handler starts and what became of its task (see
// Hooks), called in the order added. It panics if the worker has started.
func (w *Worker) AddHooks(h Hooks) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("brisk: AddHooks called after the worker started")
	}
	w.hooks = append(w.hooks, h)
}

// SetConcurrency changes how many handlers run at once, while the worker runs. Handlers
// already running over a lowered limit finish first; nothing is interrupted.
func (w *Worker) SetConcurrency(n int) {
	if n < 1 {
		n = 1
	}
	w.concurrency.Store(int64(n))
	w.signalSlot()
	// Start prefetched tasks that a raised limit now allows.
	w.mu.Lock()
	w.startBufferedLocked()
	w.mu.Unlock()
}

// Concurrency returns the current concurrency limit.
func (w *Worker) Concurrency() int { return int(w.concurrency.Load()) }

// ID returns the worker's ID as recorded in heartbeats.
func (w *Worker) ID() string { return w.cfg.ID }

// Run starts the worker, runs until ctx is done, then shuts down gracefully (see Stop).
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return w.Stop()
}

// Start declares the worker's queues, records its heartbeat and starts reserving tasks in
// the background. Cancelling ctx does not stop the worker: call Stop.
func (w *Worker) Start(ctx context.Context) error {
	w.lifecycle.Lock()
	defer w.lifecycle.Unlock()
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return fmt.Errorf("%w: worker %s already started", ErrInvalid, w.cfg.ID)
	}
	w.started = true
	w.startedAt = w.clock.Now()
	w.chains = make(map[string]Handler, len(w.handlers))
	for typ, h := range w.handlers {
		w.chains[typ] = w.wrap(h)
	}
	if w.fallback != nil {
		w.anyChain = w.wrap(w.fallback)
	}
	w.mu.Unlock()
	if err := w.prepare(ctx); err != nil {
		w.mu.Lock()
		w.started = false
		w.mu.Unlock()
		return err
	}

	base := context.WithoutCancel(ctx)
	w.baseCtx = base
	w.hardCtx, w.hardCancel = context.WithCancel(base)
	w.bgCtx, w.bgCancel = context.WithCancel(base)
	w.fetcher.Init("fetcher", w.log, w.clock)
	w.acker.Init("acker", w.log, w.clock)
	w.leases.Init("leases", w.log, w.clock)
	w.heartbeat.Init("heartbeat", w.log, w.clock)
	for _, svc := range []interface{ Start(context.Context) error }{&w.acker, &w.leases, &w.heartbeat, &w.fetcher} {
		if err := svc.Start(base); err != nil {
			return fmt.Errorf("brisk: worker start: %w", err)
		}
	}
	w.log.InfoContext(ctx, "worker started", "queues", w.queueNames(), "concurrency", w.Concurrency())
	return nil
}

// wrap wraps h in the middleware, the first added outermost.
func (w *Worker) wrap(h Handler) Handler {
	for i := len(w.middleware) - 1; i >= 0; i-- {
		h = w.middleware[i](h)
	}
	return h
}

// prepare declares the worker's queues, records its first heartbeat and reaps dead workers.
func (w *Worker) prepare(ctx context.Context) error {
	for _, q := range w.cfg.Queues {
		sla := q.SLA
		if sla == 0 {
			if sla, _ = SLAFromName(q.Name); sla == 0 {
				continue
			}
		}
		if err := w.b.DeclareQueue(ctx, broker.QueueConfig{Name: q.Name, SLA: sla}); err != nil {
			return wrapf(err, "worker start: declare queue %s", q.Name)
		}
	}
	if err := w.b.Heartbeat(ctx, w.info()); err != nil {
		return wrapf(err, "worker start")
	}
	w.reapDeadWorkers(ctx)
	return nil
}

// Stop shuts the worker down gracefully: it stops reserving, hands back prefetched tasks,
// lets running handlers finish within ShutdownTimeout, then cancels their contexts and
// hands their tasks back so other workers pick them up at once. It is idempotent and
// returns after every loop has ended.
func (w *Worker) Stop() error {
	w.lifecycle.Lock()
	defer w.lifecycle.Unlock()
	w.mu.Lock()
	if !w.started {
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	w.stopOnce.Do(func() { w.stopErr = w.stop() })
	return w.stopErr
}

func (w *Worker) stop() error {
	w.mu.Lock()
	w.stopping = true // no buffered task starts from now on
	w.mu.Unlock()
	w.fetcher.Stop()

	w.mu.Lock()
	var back []broker.Lease
	for _, t := range w.buffer {
		w.perQueue[t.Queue]--
		if h := w.held[t.ID]; h != nil {
			back = append(back, h.lease)
			delete(w.held, t.ID)
		}
	}
	w.buffer = nil
	w.mu.Unlock()

	ctx := w.bgCtx
	if len(back) > 0 {
		if err := w.b.Release(ctx, back); err != nil {
			w.log.WarnContext(ctx, "hand back prefetched tasks", "err", err, "tasks", len(back))
		}
	}

	done := make(chan struct{})
	go func() { w.handlersWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout):
		// Grace period over: take the remaining tasks back, then cancel their handlers.
		w.mu.Lock()
		back = back[:0]
		var stops []context.CancelCauseFunc
		for id, h := range w.held {
			if h.stop != nil && !h.returned && !h.released {
				h.released = true
				back = append(back, h.lease)
				stops = append(stops, h.stop)
				delete(w.held, id)
			}
		}
		w.mu.Unlock()
		if len(back) > 0 {
			if err := w.b.Release(ctx, back); err != nil {
				w.log.WarnContext(ctx, "hand back unfinished tasks", "err", err, "tasks", len(back))
			} else {
				w.log.InfoContext(ctx, "handed back unfinished tasks", "tasks", len(back))
			}
		}
		for _, stop := range stops {
			stop(context.Canceled)
		}
		w.hardCancel()
		select {
		case <-done:
		case <-time.After(time.Second):
			w.log.WarnContext(ctx, "handlers ignore their cancelled context; leaving them behind")
		}
	}
	// Every outcome is now written or queued: flush the acks, then end the loops.
	w.acker.Stop()
	w.leases.Stop()
	w.heartbeat.Stop()
	w.bgCancel()
	w.hardCancel()
	close(w.quit) // idle handler goroutines end; one still running a handler ends after it
	select {
	case <-done:
		w.poolWG.Wait()
	default: // handlers left behind: their goroutines end when they return
	}
	if err := w.b.Deregister(context.WithoutCancel(ctx), w.cfg.ID); err != nil && !errors.Is(err, ErrClosed) {
		w.log.WarnContext(ctx, "deregister", "err", err)
	}
	w.log.InfoContext(ctx, "worker stopped", "processed", w.processed.Load(), "failed", w.failed.Load())
	return nil
}

func (w *Worker) queueNames() []string {
	names := make([]string, len(w.cfg.Queues))
	for i, q := range w.cfg.Queues {
		names[i] = q.Name
	}
	return names
}

func (w *Worker) info() broker.WorkerInfo {
	w.mu.Lock()
	busy := w.running
	w.mu.Unlock()
	return broker.WorkerInfo{
		ID: w.cfg.ID, Host: w.host, PID: os.Getpid(), Queues: w.queueNames(),
		Concurrency: w.Concurrency(), Busy: busy, StartedAt: w.startedAt, LastSeen: w.clock.Now(),
		Version: Version,
	}
}

func (w *Worker) signalSlot() {
	select {
	case w.slotFreed <- struct{}{}:
	default:
	}
}

// WorkerStats is a snapshot of a worker's counters.
type WorkerStats struct {
	// Concurrency is the current limit; Busy how many handlers run.
	Concurrency, Busy int
	// Processed and Failed count handler runs since start.
	Processed, Failed int64
	// Pickup holds the pickup latencies observed per queue.
	Pickup map[string]LatencyHistogram
}

// LatencyHistogram is a histogram of latencies: Counts[i] counts observations at most
// Bounds[i] (and above Bounds[i−1]); the last count is above every bound.
type LatencyHistogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Quantile estimates the q-quantile as the upper bound of the bucket holding it.
func (h LatencyHistogram) Quantile(q float64) time.Duration {
	return histogram.Snapshot{Counts: h.Counts, Count: h.Count, Sum: h.Sum}.Quantile(q)
}

// Stats returns the worker's counters and pickup latency histograms.
func (w *Worker) Stats() WorkerStats {
	w.mu.Lock()
	busy := w.running
	w.mu.Unlock()
	s := WorkerStats{Concurrency: w.Concurrency(), Busy: busy, Processed: w.processed.Load(),
		Failed: w.failed.Load(), Pickup: map[string]LatencyHistogram{}}
	w.pickup.Range(func(k, v any) bool {
		snap := v.(*histogram.Histogram).Snapshot()
		s.Pickup[k.(string)] = LatencyHistogram{Bounds: histogram.Bounds, Counts: snap.Counts, Count: snap.Count, Sum: snap.Sum}
		return true
	})
	return s
}
