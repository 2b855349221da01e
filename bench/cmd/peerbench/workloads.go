package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// runW1 is the drain workload: n tasks enqueued one call each, n more in batches of 1000
// (one call each again, untimed, where the system has no batch enqueue), then one worker
// of 8 handlers drains the 2n; the drain rate runs from the first task seen done to the
// last (worker start-up excluded) and waits for the broker to show none left.
func runW1(ctx context.Context, s goSystem, n int, rs *redisStats) (result, error) {
	r := result{"tasks": 2 * n}
	progress("  enqueueing %d tasks one call each", n)
	c0 := s.enqueueCalls()
	start := time.Now()
	for i := range n {
		if err := s.enqueue(ctx, i, 0); err != nil {
			return nil, err
		}
	}
	r["enqueue_per_s"] = round(float64(n)/time.Since(start).Seconds(), 1)
	r["enqueue_cmds_per_task"] = round(float64(s.enqueueCalls()-c0)/float64(n), 3)

	progress("  enqueueing %d tasks in batches of %d", n, batchSize)
	start = time.Now()
	batched := true
	for i := n; i < 2*n; i += batchSize {
		seqs := make([]int, 0, batchSize)
		for j := i; j < min(2*n, i+batchSize); j++ {
			seqs = append(seqs, j)
		}
		err := s.enqueueBatch(ctx, seqs, nil)
		if errors.Is(err, errNoBatch) {
			batched = false
			for _, seq := range seqs {
				if err := s.enqueue(ctx, seq, 0); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	if batched {
		r["enqueue_batch_per_s"] = round(float64(n)/time.Since(start).Seconds(), 1)
	}

	progress("  draining %d tasks with one worker of %d handlers", 2*n, concurrency)
	var done atomic.Int64
	before, err := rs.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	w0 := s.workerCalls()
	stop, err := s.startWorker(ctx, func([]byte) { done.Add(1) })
	if err != nil {
		return nil, err
	}
	defer stop()
	var dt drainTimer
	if err := waitCount(ctx, func() (int, error) { return int(done.Load()), nil }, 2*n, stallTimeout, &dt); err != nil {
		return nil, err
	}
	// The handlers have run; wait for the broker to record them done (brisk acks in
	// batches right after).
	if err := waitCount(ctx, func() (int, error) {
		left, err := s.remaining(ctx)
		if left > 0 {
			return 0, err
		}
		return 1, err
	}, 1, stallTimeout, nil); err != nil {
		return nil, err
	}
	elapsed := time.Since(dt.first)
	after, err := rs.commandStats(ctx)
	if err != nil {
		return nil, err
	}
	wcalls := s.workerCalls() - w0
	if err := stop(); err != nil {
		return nil, err
	}
	drained := 2*n - dt.firstCount
	r["drain_per_s"] = round(float64(drained)/elapsed.Seconds(), 1)
	r["worker_cmds_per_task"] = round(float64(wcalls)/float64(2*n), 3)
	d := diffStats(before, after)
	scripts := d["evalsha"] + d["eval"] + d["fcall"] + d["evalsha_ro"] + d["eval_ro"]
	var other int64
	for k, v := range d {
		switch k {
		case "evalsha", "eval", "fcall", "evalsha_ro", "eval_ro", "info":
		default:
			other += v
		}
	}
	r["server_scripts_per_task"] = round(float64(scripts)/float64(2*n), 3)
	r["server_other_cmds_per_task"] = round(float64(other)/float64(2*n), 3)
	r["server_cmd_breakdown"] = perTask(d, 2*n)
	return r, nil
}

func perTask(d map[string]int64, n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range d {
		if k == "info" {
			continue
		}
		if x := round(float64(v)/float64(n), 3); x > 0 {
			out[k] = x
		}
	}
	return out
}

// runPickup is W2 (rate 500 or 2000, 20 s) and W3 (rate 5, 50 tasks): an idle worker,
// a producer enqueueing one call per task at rate; pickup = handler start − ready time.
func runPickup(ctx context.Context, s goSystem, rate float64, total int) (result, error) {
	p := newPickups(total)
	stop, err := s.startWorker(ctx, p.record)
	if err != nil {
		return nil, err
	}
	defer stop()
	sleepCtx(ctx, 300*time.Millisecond) // let the worker reach its idle wait
	progress("  enqueueing %d tasks at %g/s", total, rate)
	achieved, err := produce(ctx, total, rate, func(seq int, _ time.Time) error { return s.enqueue(ctx, seq, 0) })
	if err != nil {
		return nil, err
	}
	keptUp := waitFor(ctx, p.count, total, time.Millisecond, w2KeptUpWithin)
	if !keptUp {
		waitFor(ctx, p.count, total, 10*time.Millisecond, 30*time.Second)
	}
	if err := stop(); err != nil {
		return nil, err
	}
	r := result{"tasks": total, "rate": rate, "achieved_rate": round(achieved, 1)}
	r.addPickups("pickup", p.sorted())
	r["kept_up"] = keptUp && achieved >= 0.95*rate && p.count() == total
	return r, nil
}

// runW5 is the timely workload: n tasks delayed by uniform random 0–10 s (enqueued in
// batches where the system has them), to an idle worker; lateness = start − ready time.
func runW5(ctx context.Context, s goSystem, n int) (result, error) {
	p := newPickups(n)
	stop, err := s.startWorker(ctx, p.record)
	if err != nil {
		return nil, err
	}
	defer stop()
	sleepCtx(ctx, 300*time.Millisecond)
	progress("  enqueueing %d tasks delayed by 0-%s", n, w5MaxDelay)
	for i := 0; i < n; i += batchSize {
		seqs := make([]int, 0, batchSize)
		delays := make([]time.Duration, 0, batchSize)
		for j := i; j < min(n, i+batchSize); j++ {
			seqs = append(seqs, j)
			delays = append(delays, time.Duration(rand.Float64()*float64(w5MaxDelay)))
		}
		err := s.enqueueBatch(ctx, seqs, delays)
		if errors.Is(err, errNoBatch) {
			for k, seq := range seqs {
				if err := s.enqueue(ctx, seq, delays[k]); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	if !waitFor(ctx, p.count, n, 5*time.Millisecond, w5MaxDelay+time.Minute) {
		left, err := s.remaining(ctx)
		return nil, fmt.Errorf("only %d of %d delayed tasks ran within %s (the broker shows %d not done, error %v)", p.count(), n, w5MaxDelay+time.Minute, left, err)
	}
	if err := stop(); err != nil {
		return nil, err
	}
	r := result{"tasks": n}
	r.addPickups("late", p.sorted())
	return r, nil
}
