package brisk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/histogram"
)

// The executor: buffered tasks start while slots are free; a handler's outcome becomes an
// ack, a retry or a kill.
//
// A started task waits in w.ready for a handler goroutine. Handler goroutines live on and
// take ready tasks themselves: one that finishes a task takes the next ready one, and one
// that takes a task while more are ready wakes one more idle goroutine (or starts one), so
// tasks that finish at once run on the goroutines already awake instead of each waking a
// goroutine, and slow ones still run side by side as soon as the goroutines woken one after
// another take them. An idle goroutine waits for a wake-up, and ends when the worker has
// stopped or more goroutines are idle than the concurrency limit.

// job is a started task waiting for a handler goroutine, with its held entry, the Task its
// handler gets and the context it runs with.
type job struct {
	ctx           context.Context
	cancelTimeout context.CancelFunc
	bt            *broker.Task
	t             *Task
	h             *heldTask
}

func (w *Worker) dispatch(tasks []*broker.Task) {
	held := make([]heldTask, len(tasks)) // one allocation for the batch
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, t := range tasks {
		h := &held[i]
		h.lease = t.Lease
		h.run = taskRun{w: w, lease: t.Lease}
		w.held[t.ID] = h
		w.perQueue[t.Queue]++
		w.buffer = append(w.buffer, t)
	}
	w.startBufferedLocked()
}

// startBufferedLocked starts buffered tasks while slots are free. w.mu must be held.
func (w *Worker) startBufferedLocked() {
	var ts []Task
	slots := int(w.concurrency.Load())
	for len(w.buffer) > 0 && w.running < slots && !w.stopping {
		bt := w.buffer[0]
		w.buffer[0] = nil
		w.buffer = w.buffer[1:]
		h := w.held[bt.ID]
		if h == nil { // lease lost while buffered
			w.perQueue[bt.Queue]--
			continue
		}
		if len(ts) == 0 { // the Tasks of the tasks started now, one allocation
			ts = make([]Task, min(len(w.buffer)+1, slots-w.running))
		}
		t := &ts[0]
		ts = ts[1:]
		*t = Task{
			Type: bt.Type, Payload: bt.Payload, Queue: bt.Queue, MaxAttempts: bt.MaxAttempts,
			Timeout: bt.Timeout, ID: bt.ID, Attempt: bt.Attempt, EnqueuedAt: bt.EnqueuedAt,
			ReadyAt: bt.ReadyAt, LastError: bt.LastError, Headers: bt.Headers,
		}
		timeout := bt.Timeout
		if timeout <= 0 {
			timeout = w.cfg.DefaultTimeout
		}
		// The handler's context is not a child of a context that the worker cancels: the
		// worker cancels it through h.stop (lease lost, task cancelled, grace period over),
		// so that starting and ending a task takes no lock of a context shared by all.
		cctx, stop := context.WithCancelCause(w.baseCtx)
		ctx, cancelTimeout := context.WithTimeout(cctx, timeout)
		h.stop = stop
		w.running++
		w.handlersWG.Add(1)
		w.ready = append(w.ready, job{ctx: context.WithValue(ctx, taskRunKey{}, &h.run), cancelTimeout: cancelTimeout, bt: bt, t: t, h: h})
	}
	w.wakeHandlerLocked()
}

// wakeHandlerLocked makes sure a handler goroutine comes for the ready tasks: unless one
// is on its way already, it wakes an idle one or starts one. w.mu must be held.
func (w *Worker) wakeHandlerLocked() {
	if len(w.ready) == 0 || w.waking {
		return
	}
	w.waking = true
	select {
	case w.wake <- struct{}{}:
	default:
		w.poolWG.Add(1)
		go w.handlerLoop()
	}
}

// takeReadyLocked takes the first ready task, and wakes another handler goroutine when more
// are ready. w.mu must be held.
func (w *Worker) takeReadyLocked() (job, bool) {
	if len(w.ready) == 0 {
		return job{}, false
	}
	j := w.ready[0]
	w.ready[0] = job{}
	w.ready = w.ready[1:]
	w.wakeHandlerLocked()
	return j, true
}

// handlerLoop runs ready tasks until the worker has stopped or more goroutines are idle
// than handlers may run at once. It starts woken: on its way to the ready tasks.
func (w *Worker) handlerLoop() {
	defer w.poolWG.Done()
	woken := true
	for {
		w.mu.Lock()
		if woken {
			w.waking = false
		}
		j, ok := w.takeReadyLocked()
		w.mu.Unlock()
		if ok {
			w.run(j)
			woken = false
			continue
		}
		if w.idle.Add(1) > w.concurrency.Load() {
			w.idle.Add(-1)
			return
		}
		select {
		case <-w.wake:
			w.idle.Add(-1)
			woken = true
		case <-w.quit:
			w.idle.Add(-1)
			return
		}
	}
}

func (w *Worker) pickupHistogram(queue string) *histogram.Histogram {
	if h, ok := w.pickup.Load(queue); ok {
		return h.(*histogram.Histogram)
	}
	h, _ := w.pickup.LoadOrStore(queue, new(histogram.Histogram))
	return h.(*histogram.Histogram)
}

func (w *Worker) run(j job) {
	defer w.handlersWG.Done()
	bt, t, h, ctx := j.bt, j.t, j.h, j.ctx
	start := w.clock.Now()
	w.pickupHistogram(bt.Queue).Observe(start.Sub(bt.ReadyAt))
	w.hooks.start(ctx, w.log, t)
	err := w.call(ctx, t)
	elapsed := w.clock.Now().Sub(start)
	if err != nil && ctx.Err() == context.DeadlineExceeded && w.hardCtx.Err() == nil {
		err = fmt.Errorf("timed out after %s: %w", elapsed.Round(time.Millisecond), err)
	}
	j.cancelTimeout()
	h.stop(context.Canceled)

	w.mu.Lock()
	w.running--
	w.perQueue[bt.Queue]--
	w.observeRunLocked(bt.Queue, elapsed)
	released := h.released || w.held[bt.ID] != h
	if !released {
		h.returned = true
	}
	w.startBufferedLocked()
	w.mu.Unlock()
	w.signalSlot()
	if released { // handed back at shutdown or lost to another worker: not ours
		w.hooks.finish(w.bgCtx, w.log, t, Outcome{Kind: OutcomeReleased, Err: err, Elapsed: elapsed})
		return
	}
	w.finish(bt, t, err, h.run.takeResult(), elapsed)
}

// call runs the handler, turning a panic into an error that wraps ErrPanic.
func (w *Worker) call(ctx context.Context, t *Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	h, ok := w.chains[t.Type]
	if !ok {
		if h = w.anyChain; h == nil {
			return fmt.Errorf("%w for type %s", ErrNoHandler, t.Type)
		}
	}
	return h.ProcessTask(ctx, t)
}

// finish records the outcome of a task whose handler returned, with the result it stored
// (kept only when it succeeded), and tells the Finish hooks: after the ack is queued or the
// kill is stored (a hook may look the task up), but before a retry is stored, so that one
// task's hooks come in the order of its attempts: once stored, the next attempt may start
// at once on another goroutine or worker.
func (w *Worker) finish(t *broker.Task, ut *Task, err error, result []byte, elapsed time.Duration) {
	if err == nil {
		w.processed.Add(1)
		w.acks.push(broker.Completion{Lease: t.Lease, Result: result}) // whoever acks it forgets the task
		w.hooks.finish(w.bgCtx, w.log, ut, Outcome{Kind: OutcomeDone, Elapsed: elapsed})
		return
	}
	w.failed.Add(1)
	ctx := w.bgCtx
	msg := err.Error()
	if errors.Is(err, ErrSkipRetry) || t.Attempt >= t.MaxAttempts {
		if e := w.b.Kill(ctx, t.Lease, msg); e != nil {
			w.log.ErrorContext(ctx, "move task to dead", "task", t.ID, "err", e)
		} else {
			w.log.WarnContext(ctx, "task dead", "task", t.ID, "type", t.Type, "attempt", t.Attempt, "err", firstLine(msg))
		}
		w.forget(t)
		w.hooks.finish(ctx, w.log, ut, Outcome{Kind: OutcomeDead, Err: err, Elapsed: elapsed})
		return
	}
	delay := w.cfg.Backoff(t.Attempt, err)
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		delay = ra.Delay
	}
	o := Outcome{Kind: OutcomeRetry, Err: err, Elapsed: elapsed, NextAttempt: w.clock.Now().Add(delay)}
	w.hooks.finish(ctx, w.log, ut, o)
	if e := w.b.Retry(ctx, t.Lease, o.NextAttempt, msg); e != nil {
		w.log.ErrorContext(ctx, "schedule retry", "task", t.ID, "err", e)
	} else {
		w.log.InfoContext(ctx, "task failed, will retry", "task", t.ID, "type", t.Type, "attempt", t.Attempt, "in", delay, "err", firstLine(msg))
	}
	w.forget(t)
}

// forget drops a finished task from the held set.
func (w *Worker) forget(t *broker.Task) {
	w.mu.Lock()
	delete(w.held, t.ID)
	w.mu.Unlock()
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
