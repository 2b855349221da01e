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
	"os"
	"sort"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/pgbroker"
)

func main() {
	ctx := context.Background()
	b, err := pgbroker.Open(ctx, os.Args[1])
	if err != nil {
		panic(err)
	}
	defer b.Close()
	c := brisk.NewClient(b)
	if len(os.Args) > 2 {
		var wake, res, ack []float64
		for range 50 {
			done := make(chan time.Time, 1)
			go func() {
				_ = b.Wait(ctx, []string{"probe"}, 5*time.Second)
				done <- time.Now()
			}()
			time.Sleep(200 * time.Millisecond)
			if _, err := c.Enqueue(ctx, brisk.NewTask("p", []byte(`{}`), brisk.InQueue("probe"))); err != nil {
				panic(err)
			}
			t1 := time.Now()
			t2 := <-done
			got, err := b.Reserve(ctx, broker.ReserveParams{Queues: []broker.QueueLimit{{Name: "probe"}}, Limit: 8, Lease: time.Minute})
			t3 := time.Now()
			if err != nil || len(got) != 1 {
				panic(fmt.Sprint(len(got), err))
			}
			if err := b.Ack(ctx, []broker.Lease{got[0].Lease}); err != nil {
				panic(err)
			}
			t4 := time.Now()
			wake = append(wake, float64(t2.Sub(t1).Microseconds())/1000)
			res = append(res, float64(t3.Sub(t2).Microseconds())/1000)
			ack = append(ack, float64(t4.Sub(t3).Microseconds())/1000)
		}
		for _, x := range []struct {
			n string
			v []float64
		}{{"enqueue return → wait returns", wake}, {"reserve", res}, {"ack", ack}} {
			sort.Float64s(x.v)
			fmt.Printf("%-30s p50 %.2f ms  p90 %.2f\n", x.n, x.v[len(x.v)/2], x.v[len(x.v)*9/10])
		}
		return
	}
	started := make(chan time.Time, 1)
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "probe"}}, Concurrency: 8})
	w.HandleFunc("p", func(ctx context.Context, t *brisk.Task) error { started <- time.Now(); return nil })
	if err := w.Start(ctx); err != nil {
		panic(err)
	}
	defer w.Stop()
	var enq, pick, total []float64
	for i := range 60 {
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		if _, err := c.Enqueue(ctx, brisk.NewTask("p", []byte(`{}`), brisk.InQueue("probe"))); err != nil {
			panic(err)
		}
		t1 := time.Now()
		t2 := <-started
		if i < 10 {
			continue
		}
		enq = append(enq, float64(t1.Sub(t0).Microseconds())/1000)
		pick = append(pick, float64(t2.Sub(t1).Microseconds())/1000)
		total = append(total, float64(t2.Sub(t0).Microseconds())/1000)
	}
	for _, x := range []struct {
		n string
		v []float64
	}{{"enqueue call", enq}, {"enqueue return → handler", pick}, {"total", total}} {
		sort.Float64s(x.v)
		fmt.Printf("%-26s p50 %.2f ms  p90 %.2f\n", x.n, x.v[len(x.v)/2], x.v[len(x.v)*9/10])
	}
}
