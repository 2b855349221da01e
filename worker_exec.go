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

// The executor: buffered tasks start in handler goroutines while slots are free; a
// handler's outcome becomes an ack, a retry or a kill.

func (w *Worker) dispatch(tasks []*broker.Task) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range tasks {
		w.held[t.ID] = &heldTask{lease: t.Lease}
		w.perQueue[t.Queue]++
		w.buffer = append(w.buffer, t)
	}
	w.startBufferedLocked()
}

// startBufferedLocked starts buffered tasks while slots are free. w.mu must be held.
func (w *Worker) startBufferedLocked() {
	for len(w.buffer) > 0 && w.running < int(w.concurrency.Load()) && !w.stopping {
		t := w.buffer[0]
		w.buffer[0] = nil
		w.buffer = w.buffer[1:]
		h := w.held[t.ID]
		if h == nil { // lease lost while buffered
			w.perQueue[t.Queue]--
			continue
		}
		timeout := t.Timeout
		if timeout <= 0 {
			timeout = w.cfg.DefaultTimeout
		}
		cctx, stop := context.WithCancelCause(w.hardCtx)
		ctx, cancelTimeout := context.WithTimeout(cctx, timeout)
		cancel := func() { cancelTimeout(); stop(context.Canceled) }
		h.cancel, h.stop = cancel, stop
		w.running++
		w.handlersWG.Add(1)
		go w.run(ctx, cancel, t)
	}
}

func (w *Worker) pickupHistogram(queue string) *histogram.Histogram {
	if h, ok := w.pickup.Load(queue); ok {
		return h.(*histogram.Histogram)
	}
	h, _ := w.pickup.LoadOrStore(queue, new(histogram.Histogram))
	return h.(*histogram.Histogram)
}

func (w *Worker) run(ctx context.Context, cancel context.CancelFunc, bt *broker.Task) {
	defer w.handlersWG.Done()
	start := w.clock.Now()
	w.pickupHistogram(bt.Queue).Observe(start.Sub(bt.ReadyAt))
	t := &Task{
		Type: bt.Type, Payload: bt.Payload, Queue: bt.Queue, MaxAttempts: bt.MaxAttempts,
		Timeout: bt.Timeout, ID: bt.ID, Attempt: bt.Attempt, EnqueuedAt: bt.EnqueuedAt,
		ReadyAt: bt.ReadyAt, LastError: bt.LastError, Headers: bt.Headers,
	}
	run := &taskRun{w: w, lease: bt.Lease}
	ctx = context.WithValue(ctx, taskRunKey{}, run)
	w.hooks.start(ctx, w.log, t)
	err := w.call(ctx, t)
	elapsed := w.clock.Now().Sub(start)
	if err != nil && ctx.Err() == context.DeadlineExceeded && w.hardCtx.Err() == nil {
		err = fmt.Errorf("timed out after %s: %w", elapsed.Round(time.Millisecond), err)
	}
	cancel()

	w.mu.Lock()
	w.running--
	w.perQueue[bt.Queue]--
	w.observeRunLocked(bt.Queue, elapsed)
	h := w.held[bt.ID]
	released := h == nil || h.released
	if !released {
		h.returned = true
	}
	w.startBufferedLocked()
	w.mu.Unlock()
	w.signalSlot()
	o := Outcome{Kind: OutcomeReleased, Err: err, Elapsed: elapsed}
	if !released { // else handed back at shutdown or lost to another worker: not ours
		o = w.finish(bt, err, run.takeResult())
		o.Elapsed = elapsed
	}
	w.hooks.finish(w.bgCtx, w.log, t, o)
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
// (kept only when it succeeded), and returns it.
func (w *Worker) finish(t *broker.Task, err error, result []byte) Outcome {
	if err == nil {
		w.processed.Add(1)
		w.acks.push(broker.Completion{Lease: t.Lease, Result: result}) // whoever acks it forgets the task
		return Outcome{Kind: OutcomeDone}
	}
	w.failed.Add(1)
	ctx := w.bgCtx
	msg := err.Error()
	var ra *RetryAfterError
	o := Outcome{Kind: OutcomeDead, Err: err}
	switch {
	case errors.Is(err, ErrSkipRetry) || t.Attempt >= t.MaxAttempts:
		if e := w.b.Kill(ctx, t.Lease, msg); e != nil {
			w.log.ErrorContext(ctx, "move task to dead", "task", t.ID, "err", e)
		} else {
			w.log.WarnContext(ctx, "task dead", "task", t.ID, "type", t.Type, "attempt", t.Attempt, "err", firstLine(msg))
		}
	default:
		delay := w.cfg.Backoff(t.Attempt, err)
		if errors.As(err, &ra) {
			delay = ra.Delay
		}
		o = Outcome{Kind: OutcomeRetry, Err: err, NextAttempt: w.clock.Now().Add(delay)}
		if e := w.b.Retry(ctx, t.Lease, o.NextAttempt, msg); e != nil {
			w.log.ErrorContext(ctx, "schedule retry", "task", t.ID, "err", e)
		} else {
			w.log.InfoContext(ctx, "task failed, will retry", "task", t.ID, "type", t.Type, "attempt", t.Attempt, "in", delay, "err", firstLine(msg))
		}
	}
	w.forget(t)
	return o
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
