package brisk_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
)

// BenchmarkWorker1000SleepingHandlers measures the resident memory of a process whose worker
// runs 1,000 handlers at once, each sleeping until all have started (target: under 64 MiB).
// The figure is the whole test process's RSS, so it includes the test binary itself.
func BenchmarkWorker1000SleepingHandlers(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		ctx := context.Background()
		br, err := brisk.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "brisk.db"))
		if err != nil {
			b.Fatal(err)
		}
		c := brisk.NewClient(br)
		batch := make([]*brisk.Task, n)
		for j := range batch {
			batch[j] = brisk.NewTask("sleep", []byte(`{"pad":"0123456789012345678901234567890123456789012345678901234567890123456789"}`))
		}
		if _, err := c.EnqueueBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		var started atomic.Int32
		all := make(chan struct{})
		release := make(chan struct{})
		w, _ := brisk.NewWorker(br, brisk.WorkerConfig{Concurrency: n})
		w.HandleFunc("sleep", func(ctx context.Context, _ *brisk.Task) error {
			if started.Add(1) == n {
				close(all)
			}
			<-release
			return nil
		})
		runtime.GC()
		before := rssKiB()
		if err := w.Start(ctx); err != nil {
			b.Fatal(err)
		}
		<-all
		during := rssKiB()
		close(release)
		w.Stop()
		br.Close()
		b.ReportMetric(float64(during)/1024, "rss_MiB")
		b.ReportMetric(float64(during-before)/1024, "rss_growth_MiB")
	}
}

// rssKiB reads the process's resident set size from /proc (0 where there is none).
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// BenchmarkDrain measures how fast one worker with 8 handlers drains a queue of no-op tasks
// (the W1 drain of docs/workloads.md inside go test).
func BenchmarkDrain(b *testing.B) {
	brokertest.BenchDrain(b, brokertest.Harness{
		NewURL: func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "brisk.db") },
		Open:   broker.Open,
	})
}
