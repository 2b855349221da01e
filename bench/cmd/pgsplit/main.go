// Command pgsplit splits brisk's idle pickup on PostgreSQL (W3) into its steps, to show
// where the time goes beside PostgreSQL's own floor (pgbench -workloads FLOOR):
//
//	go run ./cmd/pgsplit URL          enqueue call, enqueue return → handler start, total
//	go run ./cmd/pgsplit URL steps    enqueue return → Wait returns, one Reserve, one Ack
//
// URL should name a schema of its own (…&schema=pgsplit); every task is acked. One task
// every 200 ms; in the first form the first 10 are uncounted.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sort"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/pgbroker"
)

const queue = "probe"

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: pgsplit URL [steps]")
	}
	ctx := context.Background()
	b, err := pgbroker.Open(ctx, os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	var s samples
	if len(os.Args) > 2 && os.Args[2] == "steps" {
		err = splitSteps(ctx, b, &s)
	} else {
		err = splitWorker(ctx, b, &s)
	}
	if err != nil {
		log.Fatal(err)
	}
	s.print()
}

// enqueue enqueues one task after the idle interval and returns when the call did.
func enqueue(ctx context.Context, c *brisk.Client) (start, end time.Time, err error) {
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	_, err = c.Enqueue(ctx, brisk.NewTask("p", []byte(`{}`), brisk.InQueue(queue)))
	return start, time.Now(), err
}

// splitWorker times enqueue calls and the pickup by a worker of 8 handlers.
func splitWorker(ctx context.Context, b *pgbroker.Broker, s *samples) error {
	c := brisk.NewClient(b)
	started := make(chan time.Time, 1)
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: queue}}, Concurrency: 8})
	if err != nil {
		return err
	}
	w.HandleFunc("p", func(context.Context, *brisk.Task) error { started <- time.Now(); return nil })
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer w.Stop()
	for i := range 60 {
		t0, t1, err := enqueue(ctx, c)
		if err != nil {
			return err
		}
		t2 := <-started
		if i >= 10 {
			s.add("enqueue call", t1.Sub(t0))
			s.add("enqueue return → handler", t2.Sub(t1))
			s.add("total", t2.Sub(t0))
		}
	}
	return nil
}

// splitSteps times the broker calls a worker makes for one task: the wake-up, Reserve
// and Ack.
func splitSteps(ctx context.Context, b *pgbroker.Broker, s *samples) error {
	c := brisk.NewClient(b)
	for range 50 {
		woke := make(chan time.Time, 1)
		go func() {
			_ = b.Wait(ctx, []string{queue}, 5*time.Second)
			woke <- time.Now()
		}()
		_, t1, err := enqueue(ctx, c)
		if err != nil {
			return err
		}
		t2 := <-woke
		got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: queue}}, Limit: 8, Lease: time.Minute})
		t3 := time.Now()
		if err != nil || len(got) == 0 {
			return fmt.Errorf("reserve: %d tasks, %v; want the task", len(got), err)
		}
		leases := make([]broker.Lease, len(got)) // with any task an earlier run left
		for i, t := range got {
			leases[i] = t.Lease
		}
		if err := b.Ack(ctx, leases); err != nil {
			return err
		}
		s.add("enqueue return → Wait returns", t2.Sub(t1))
		s.add("reserve", t3.Sub(t2))
		s.add("ack", time.Since(t3))
	}
	return nil
}

// samples are durations by step, printed in the order the steps first came.
type samples struct {
	names []string
	ms    map[string][]float64
}

func (s *samples) add(name string, d time.Duration) {
	if s.ms == nil {
		s.ms = map[string][]float64{}
	}
	if _, ok := s.ms[name]; !ok {
		s.names = append(s.names, name)
	}
	s.ms[name] = append(s.ms[name], float64(d.Microseconds())/1000)
}

func (s *samples) print() {
	for _, n := range s.names {
		v := s.ms[n]
		sort.Float64s(v)
		fmt.Printf("%-30s p50 %.2f ms  p90 %.2f ms\n", n, v[len(v)/2], v[len(v)*9/10])
	}
}
