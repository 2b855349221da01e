package brisk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/sqlitebroker" // sqlite://, the embedded broker
)

// openExample opens a fresh embedded broker in a temporary directory.
func openExample() (brisk.Broker, func()) {
	dir, _ := os.MkdirTemp("", "brisk-example")
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(dir, "brisk.db"))
	if err != nil {
		panic(err)
	}
	return b, func() { b.Close(); os.RemoveAll(dir) }
}

// A unique task is enqueued once per window: a second enqueue of the same type and payload
// returns the first task's ID and ErrDuplicate.
func ExampleUnique() {
	b, done := openExample()
	defer done()
	ctx := context.Background()
	client := brisk.NewClient(b)

	task := brisk.NewTask("report.build", []byte(`{"day":"2030-01-02"}`))
	first, err := client.Enqueue(ctx, task, brisk.Unique(time.Hour))
	fmt.Println(err)
	second, err := client.Enqueue(ctx, task, brisk.Unique(time.Hour))
	fmt.Println(second == first, errors.Is(err, brisk.ErrDuplicate))
	// Output:
	// <nil>
	// true true
}

// A cancelled task is kept in state cancelled and never runs; a running one's handler has
// its context cancelled within a second, wherever it runs.
func ExampleInspector_CancelTask() {
	b, done := openExample()
	defer done()
	ctx := context.Background()
	id, _ := brisk.NewClient(b).Enqueue(ctx, brisk.NewTask("email.send", nil, brisk.Delay(time.Hour)))

	in := brisk.NewInspector(b)
	was, err := in.CancelTask(ctx, id)
	fmt.Println(was, err)
	queues, _ := in.Queues(ctx)
	fmt.Printf("scheduled=%d cancelled=%d\n", queues[0].Scheduled, queues[0].Cancelled)
	// Output:
	// scheduled <nil>
	// scheduled=0 cancelled=1
}

// Limits live in the broker, so every worker of every process keeps them: here at most
// 100 tasks per second of queue "emails", and at most 2 "pdf.render" tasks running at once.
func ExampleInspector_SetLimit() {
	b, done := openExample()
	defer done()
	ctx := context.Background()
	in := brisk.NewInspector(b)
	in.SetLimit(ctx, brisk.Limit{Queue: "emails", Rate: 100, Per: time.Second})
	in.SetLimit(ctx, brisk.Limit{Queue: "default", Type: "pdf.render", MaxRunning: 2})

	limits, _ := in.Limits(ctx)
	for _, l := range limits {
		fmt.Printf("queue=%s type=%q rate=%d/%s burst=%d max_running=%d\n", l.Queue, l.Type, l.Rate, l.Per, l.Burst, l.MaxRunning)
	}
	err := in.SetLimit(ctx, brisk.Limit{Queue: "emails", Rate: -1, Per: time.Second})
	fmt.Println(errors.Is(err, brisk.ErrInvalid))
	// Output:
	// queue=default type="pdf.render" rate=0/0s burst=0 max_running=2
	// queue=emails type="" rate=100/1s burst=100 max_running=0
	// true
}

// A schedule is stored in the broker; a Scheduler (run one in every process you like: one
// leader enqueues) enqueues a task at each tick, and workers run them.
func ExampleScheduler() {
	b, done := openExample()
	defer done()
	ctx := context.Background()

	s, _ := brisk.NewScheduler(b, brisk.SchedulerConfig{})
	err := s.Register(ctx, brisk.Periodic{Name: "heartbeat", Spec: "@every 1s", Task: brisk.NewTask("ping", nil)})
	fmt.Println(err)
	s.Start(ctx)
	defer s.Stop()

	var ticks atomic.Int32
	twice := make(chan struct{})
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{})
	w.HandleFunc("ping", func(ctx context.Context, t *brisk.Task) error {
		if ticks.Add(1) == 2 {
			close(twice)
		}
		return nil
	})
	w.Start(ctx)
	<-twice
	w.Stop()
	fmt.Println("two ticks run")
	// Output:
	// <nil>
	// two ticks run
}

// ParseSpec reads cron expressions with seconds and time zones, and fixed intervals.
func ExampleParseSpec() {
	at := time.Date(2030, 1, 2, 15, 4, 5, 0, time.UTC)
	for _, spec := range []string{"@every 15m", "0 30 9 * * MON-FRI", "CRON_TZ=Asia/Tokyo 0 0 9 * * *"} {
		sp, err := brisk.ParseSpec(spec)
		if err != nil {
			panic(err)
		}
		fmt.Println(sp.Next(at).UTC().Format(time.RFC3339))
	}
	_, err := brisk.ParseSpec("61 * * * *")
	fmt.Println(errors.Is(err, brisk.ErrInvalid))
	// Output:
	// 2030-01-02T15:15:00Z
	// 2030-01-03T09:30:00Z
	// 2030-01-03T00:00:00Z
	// true
}
