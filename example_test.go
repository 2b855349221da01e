package brisk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://, the embedded broker
)

// A program enqueues a task into a queue named after its SLA and a worker runs it.
func Example() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	b, err := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	client := brisk.NewClient(b)
	task, _ := brisk.NewJSONTask("email.send", map[string]string{"to": "ada@example.com"}, brisk.InQueue("five_second"))
	if _, err := client.Enqueue(ctx, task); err != nil {
		panic(err)
	}

	done := make(chan struct{})
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "five_second"}}})
	w.Handle("email.send", brisk.JSONHandler(func(ctx context.Context, t *brisk.Task, p map[string]string) error {
		fmt.Println("sending to", p["to"])
		close(done)
		return nil
	}))
	w.Start(ctx)
	<-done
	w.Stop()
	// Output: sending to ada@example.com
}

// Queue latency and the SLA of each queue come from the broker's statistics.
func ExampleInspector_Queues() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, _ := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	defer b.Close()

	client := brisk.NewClient(b)
	client.DeclareQueue(ctx, "five_second", 0) // the SLA comes from the name
	for i := 0; i < 3; i++ {
		client.Enqueue(ctx, brisk.NewTask("thumbnail.make", nil, brisk.InQueue("five_second")))
	}
	client.Enqueue(ctx, brisk.NewTask("report.build", nil, brisk.Delay(time.Hour)))

	queues, _ := brisk.NewInspector(b).Queues(ctx)
	for _, q := range queues {
		fmt.Printf("%s: pending=%d scheduled=%d sla=%s within=%v\n", q.Name, q.Pending, q.Scheduled, q.SLA, brisk.WithinSLA(q))
	}
	// Output:
	// default: pending=0 scheduled=1 sla=0s within=true
	// five_second: pending=3 scheduled=0 sla=5s within=true
}

// A batch is stored atomically, in one transaction.
func ExampleClient_EnqueueBatch() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, _ := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	defer b.Close()

	var batch []*brisk.Task
	for i := 0; i < 1000; i++ {
		t, _ := brisk.NewJSONTask("reminder.send", map[string]int{"event": i})
		batch = append(batch, t)
	}
	ids, err := brisk.NewClient(b).EnqueueBatch(ctx, batch)
	fmt.Println(len(ids), err)
	// Output: 1000 <nil>
}

// Hooks are told what became of each task: here, a task that fails twice is retried once
// and then dead, and the hook reports it (to an alerting system, say).
func ExampleWorker_AddHooks() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, _ := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	defer b.Close()
	brisk.NewClient(b).Enqueue(ctx, brisk.NewTask("invoice.send", []byte("42"), brisk.MaxAttempts(2)))

	dead := make(chan struct{})
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{Backoff: func(int, error) time.Duration { return 0 }})
	w.AddHooks(brisk.Hooks{Finish: func(ctx context.Context, t *brisk.Task, o brisk.Outcome) {
		fmt.Printf("%s %s attempt %d: %s (%v)\n", t.Type, t.Payload, t.Attempt, o.Kind, o.Err)
		if o.Kind == brisk.OutcomeDead {
			close(dead)
		}
	}})
	w.HandleFunc("invoice.send", func(ctx context.Context, t *brisk.Task) error {
		return errors.New("mail server refused")
	})
	w.Start(ctx)
	<-dead
	w.Stop()
	// Output:
	// invoice.send 42 attempt 1: retried (mail server refused)
	// invoice.send 42 attempt 2: dead (mail server refused)
}
