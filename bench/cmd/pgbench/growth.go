package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/briskq/brisk/internal/workload"
)

// minute is one minute of the GROWTH run: the pickups of the tasks picked up in it and the
// size of brisk's tables at its end.
type minute struct {
	Minute       int     `json:"minute"`
	PickedUp     int     `json:"picked_up"`
	PickupP50Ms  float64 `json:"pickup_p50_ms"`
	PickupP99Ms  float64 `json:"pickup_p99_ms"`
	PickupMaxMs  float64 `json:"pickup_max_ms"`
	TableMiB     float64 `json:"table_mib"`
	IndexMiB     float64 `json:"index_mib"`
	DeadTuples   int64   `json:"tasks_dead_tuples"`
	Remaining    int     `json:"remaining"`
	AchievedRate float64 `json:"achieved_rate"`
}

// runGrowth is W2 at rate for minutes on brisk, with producers goroutines sharing the rate
// (one PostgreSQL commit waits for the WAL flush, which bounds one goroutine's enqueues),
// and pickup latency and table sizes minute by minute.
func runGrowth(ctx context.Context, s *briskSystem, rate float64, minutes, producers int) ([]minute, error) {
	buckets := make([]*workload.Pickups, minutes+2)
	for i := range buckets {
		buckets[i] = workload.NewPickups(int(rate * 60))
	}
	start := time.Now()
	stop, err := s.StartWorker(ctx, func(ctx context.Context, p []byte) error {
		i := min(int(time.Since(start)/time.Minute), len(buckets)-1)
		return buckets[i].Handle(ctx, p)
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	n := int(rate) * 60 * minutes
	out := make([]minute, minutes)
	sizes := make(chan error, 1)
	mctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(sizes)
		for m := range minutes {
			workload.SleepCtx(mctx, time.Until(start.Add(time.Duration(m+1)*time.Minute)))
			if mctx.Err() != nil {
				return
			}
			table, index, err := s.sizes(ctx)
			if err == nil {
				err = s.admin.QueryRow(ctx, `SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'tasks'`, s.schema).Scan(&out[m].DeadTuples)
			}
			left, rerr := s.Remaining(ctx)
			if err == nil {
				err = rerr
			}
			if err != nil {
				sizes <- err
				return
			}
			out[m].TableMiB = workload.Round(float64(table)/(1<<20), 2)
			out[m].IndexMiB = workload.Round(float64(index)/(1<<20), 2)
			out[m].Remaining = left
			progress("GROWTH minute %d: tables %.1f MiB, indexes %.1f MiB, %d dead tuples in tasks, %d not done, %d picked up",
				m+1, out[m].TableMiB, out[m].IndexMiB, out[m].DeadTuples, left, buckets[m].Count())
		}
	}()
	// The producers stop when the minutes are over, whether or not they sent every task:
	// a producer that cannot keep the rate must not stretch the run.
	pctx, stopProducing := context.WithDeadline(ctx, start.Add(time.Duration(minutes)*time.Minute))
	defer stopProducing()
	g, gctx := errgroup.WithContext(pctx)
	per := n / producers
	var sent atomic.Int64
	for p := range producers {
		g.Go(func() error {
			_, err := workload.Produce(gctx, per, rate/float64(producers), func(seq int) error {
				if err := s.Enqueue(gctx, p*per+seq, 0); err != nil {
					return err
				}
				sent.Add(1)
				return nil
			})
			if pctx.Err() != nil && ctx.Err() == nil {
				return nil // the minutes are over
			}
			return err
		})
	}
	err = g.Wait()
	achieved := float64(sent.Load()) / time.Since(start).Seconds()
	if err == nil {
		count := func() int {
			c := 0
			for _, b := range buckets {
				c += b.Count()
			}
			return c
		}
		if !workload.WaitFor(ctx, count, int(sent.Load()), 10*time.Millisecond, time.Minute) {
			err = fmt.Errorf("only %d of %d tasks picked up a minute after the producers ended", count(), sent.Load())
		}
	}
	cancel()
	if serr := <-sizes; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	for m := range out {
		sorted := buckets[m].Sorted()
		out[m].Minute = m + 1
		out[m].PickedUp = len(sorted)
		out[m].PickupP50Ms = workload.Round(workload.Percentile(sorted, 0.5), 2)
		out[m].PickupP99Ms = workload.Round(workload.Percentile(sorted, 0.99), 2)
		out[m].PickupMaxMs = workload.Round(workload.Percentile(sorted, 1), 2)
		out[m].AchievedRate = workload.Round(achieved, 1)
	}
	return out, nil
}
