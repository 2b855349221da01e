package brisk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/briskq/brisk"
)

// A task enqueued with Retain is kept after it completes, with the result its handler
// stored; Client.Result waits for it.
func ExampleClient_Result() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, err := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{})
	w.Handle("invoice.total", brisk.JSONHandler(func(ctx context.Context, t *brisk.Task, lines []int) error {
		total := 0
		for i, cents := range lines {
			total += cents
			brisk.ReportProgress(ctx, float64(i+1)*100/float64(len(lines)), "adding lines")
		}
		return brisk.SetResultJSON(ctx, map[string]int{"total_cents": total})
	}))
	w.Start(ctx)
	defer w.Stop()

	client := brisk.NewClient(b)
	task, _ := brisk.NewJSONTask("invoice.total", []int{1250, 399, 1000}, brisk.Retain(24*time.Hour))
	id, _ := client.Enqueue(ctx, task)

	info, err := client.Result(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.State, string(info.Result), info.Progress.Percent, "kept for", info.ExpiresAt.Sub(info.FinishedAt))
	// Output: completed {"total_cents":2649} 100 kept for 24h0m0s
}

// A queue's retention keeps every completed task of the queue, with or without a result.
func ExampleClient_SetRetention() {
	dir, _ := os.MkdirTemp("", "brisk-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, _ := brisk.Open(ctx, "sqlite://"+filepath.Join(dir, "brisk.db"))
	defer b.Close()

	client := brisk.NewClient(b)
	client.SetRetention(ctx, "reports", time.Hour)
	w, _ := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "reports"}}})
	w.HandleFunc("report.build", func(context.Context, *brisk.Task) error { return nil })
	w.Start(ctx)
	defer w.Stop()

	id, _ := client.Enqueue(ctx, brisk.NewTask("report.build", nil, brisk.InQueue("reports")))
	info, _ := client.Result(ctx, id)
	done, _ := brisk.NewInspector(b).Tasks(ctx, "reports", brisk.StateCompleted, 10, 0)
	fmt.Println(info.State, info.Attempt, len(done))
	// Output: completed 1 1
}
