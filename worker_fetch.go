package brisk

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/service"
)

// fetcher is the worker's service that reserves tasks while there are free slots and hands
// them to handlers (dispatch). It stops first when the worker stops.
type fetcher struct {
	service.Base
	w *Worker
}

// Start starts the fetch loop.
func (f *fetcher) Start(ctx context.Context) error { return f.StartLoop(ctx, f.loop) }

func (f *fetcher) loop(ctx context.Context) {
	w := f.w
	defer w.acks.setIdle()
	names := w.queueNames()
	errDelay := 50 * time.Millisecond
	for ctx.Err() == nil {
		limit, queues := w.wants()
		if limit == 0 || len(queues) == 0 {
			w.acks.setIdle()
			select {
			case <-w.slotFreed:
			case <-ctx.Done():
			}
			continue
		}
		tasks, err := w.reserve(ctx, broker.ReserveParams{Queues: queues, Limit: limit, Lease: w.cfg.Lease, WorkerID: w.cfg.ID})
		if err != nil {
			w.acks.setIdle()
			if ctx.Err() != nil {
				break
			}
			f.Logger.ErrorContext(ctx, "reserve", "err", err, "retry_in", errDelay)
			service.Sleep(ctx, errDelay)
			errDelay = min(errDelay*2, 5*time.Second)
			continue
		}
		errDelay = 50 * time.Millisecond
		if len(tasks) == 0 {
			w.acks.setIdle()
			if err := w.b.Wait(ctx, names, w.cfg.IdleWait); err != nil && ctx.Err() == nil {
				f.Logger.ErrorContext(ctx, "wait", "err", err)
				service.Sleep(ctx, time.Second)
			}
			continue
		}
		w.dispatch(tasks)
		// Let the handlers just started run before counting free slots again: the handler
		// goroutine woken for them waits for this one to yield, and handlers that finish
		// at once free their slots for the next reserve, which then takes a full batch.
		runtime.Gosched()
	}
}

// reserve reserves tasks; when the broker can, it acks the tasks finished since the last
// reserve in the same round trip (unless one has a result to keep: AckReserve carries
// none, so they are completed first).
func (w *Worker) reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if w.ackReserver == nil {
		return w.b.Reserve(ctx, p)
	}
	acks := w.acks.takeForReserve()
	if len(acks) == 0 {
		return w.b.Reserve(ctx, p)
	}
	if slices.ContainsFunc(acks, func(c broker.Completion) bool { return c.Result != nil }) {
		w.ackBatch(acks, ackFirst)
		return w.b.Reserve(ctx, p)
	}
	tasks, ackErr, err := w.ackReserver.AckReserve(ctx, broker.Leases(acks), p)
	if ackErr == nil || errors.Is(ackErr, broker.ErrLeaseLost) || errors.Is(ackErr, ErrClosed) {
		w.acked(acks, ackErr, ackFirst)
	} else {
		// The round trip failed, maybe after the acks took effect: ack them again.
		try := ackAfterFailure
		if ctx.Err() != nil && errors.Is(ackErr, ctx.Err()) {
			try = ackAfterStop
		}
		w.ackBatch(acks, try)
	}
	return tasks, err
}

// wants returns how many tasks to reserve now and from which queues, in the order to try.
func (w *Worker) wants() (int, []broker.QueueLimit) {
	w.mu.Lock()
	defer w.mu.Unlock()
	conc := int(w.concurrency.Load())
	free := conc + w.prefetchLocked(conc) - w.running - len(w.buffer)
	if free <= 0 {
		return 0, nil
	}
	order := w.cfg.Queues
	if !w.cfg.StrictPriority && len(order) > 1 {
		order = weightedOrder(order)
	}
	queues := make([]broker.QueueLimit, 0, len(order))
	for _, q := range order {
		max := 0
		if q.MaxConcurrency > 0 {
			max = q.MaxConcurrency - w.perQueue[q.Name]
			if max <= 0 {
				continue
			}
		}
		queues = append(queues, broker.QueueLimit{Name: q.Name, Max: max})
	}
	return free, queues
}

// maxPrefetchPerSlot bounds the tasks PrefetchWait lets a worker hold beyond its free
// slots, per handler slot: enough for a batch per round trip that makes a broker's fixed
// costs small, few enough that a worker stopping hands back little.
const maxPrefetchPerSlot = 16

// prefetchLocked returns how many tasks the worker may hold beyond its free slots now, for
// conc handler slots: Prefetch, or more with PrefetchWait (see WorkerConfig). w.mu must be
// held.
func (w *Worker) prefetchLocked(conc int) int {
	p := w.cfg.Prefetch
	if w.cfg.PrefetchWait <= 0 || len(w.meanRun) == 0 {
		return p
	}
	// The slowest queue's runs decide: a task of it held behind busy slots must still
	// start within about PrefetchWait.
	var slowest time.Duration
	for _, m := range w.meanRun {
		slowest = max(slowest, m)
	}
	expected := float64(conc) * float64(w.cfg.PrefetchWait) / float64(slowest)
	return max(p, int(min(expected, float64(maxPrefetchPerSlot*conc))))
}

// observeRunLocked adds a handler's run time to its queue's moving mean that PrefetchWait
// uses (each new run weighs 1/8). w.mu must be held.
func (w *Worker) observeRunLocked(queue string, d time.Duration) {
	if w.cfg.PrefetchWait <= 0 {
		return
	}
	d = max(d, time.Microsecond)
	m, ok := w.meanRun[queue]
	if !ok {
		w.meanRun[queue] = d
		return
	}
	w.meanRun[queue] = m + (d-m)/8
}

// weightedOrder draws a random order in which a queue of weight w comes first w times as
// often as one of weight 1 (Efraimidis–Spirakis sampling without replacement).
func weightedOrder(qs []QueueSpec) []QueueSpec {
	type keyed struct {
		q   QueueSpec
		key float64
	}
	ks := make([]keyed, len(qs))
	for i, q := range qs {
		ks[i] = keyed{q, math.Pow(rand.Float64(), 1/float64(q.Weight))}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].key > ks[j].key })
	out := make([]QueueSpec, len(qs))
	for i, k := range ks {
		out[i] = k.q
	}
	return out
}
