package brisk_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/redisbroker" // redis://
	"github.com/briskq/brisk/internal/redistest"
	"github.com/briskq/brisk/internal/testenv"
)

// The rate-limit benchmark: a limit of rateBenchRate tasks per second (burst
// rateBenchBurst) on one queue, rateBenchProcs worker processes of 8 handlers each
// draining it, for BRISK_RATEBENCH_SECONDS (default 30). It reports the achieved rate:
// the tasks started within the window after the first start, divided by the window.
//
//	go test -run '^$' -bench BenchmarkRateLimit -benchtime 1x .
const (
	envRateWorker   = "BRISK_RATEBENCH_WORKER" // set in a worker process: the broker URL
	rateBenchQueue  = "ratelimited"
	rateBenchRate   = 100
	rateBenchBurst  = 10
	rateBenchProcs  = 4
	rateBenchPerSec = "BRISK_RATEBENCH_SECONDS"
)

func BenchmarkRateLimit(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		for range b.N {
			rateBench(b, "sqlite://"+filepath.Join(b.TempDir(), "brisk.db"))
		}
	})
	b.Run("redis", func(b *testing.B) {
		raw := redistest.URL(b)
		for range b.N {
			rateBench(b, testenv.WithPrefix(b, raw, redistest.NewPrefix(b, raw, "ratebench")))
		}
	})
}

func rateBench(b *testing.B, url string) {
	window := 30 * time.Second
	if s := os.Getenv(rateBenchPerSec); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q is not a number of seconds", rateBenchPerSec, s)
		}
		window = time.Duration(n) * time.Second
	}
	ctx := context.Background()
	br, err := brisk.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	in := brisk.NewInspector(br)
	if err := in.SetLimit(ctx, brisk.Limit{Queue: rateBenchQueue, Rate: rateBenchRate, Per: time.Second, Burst: rateBenchBurst}); err != nil {
		b.Fatal(err)
	}
	// More tasks than the window can start, so that the workers always have work.
	n := int(window.Seconds()*rateBenchRate*1.3) + 200
	client := brisk.NewClient(br)
	for i := 0; i < n; i += 500 {
		batch := make([]*brisk.Task, 0, 500)
		for j := i; j < min(i+500, n); j++ {
			batch = append(batch, brisk.NewTask("tick", nil, brisk.InQueue(rateBenchQueue)))
		}
		if _, err := client.EnqueueBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu     sync.Mutex
		starts []time.Time
		procs  []*exec.Cmd
		reads  sync.WaitGroup
	)
	b.ResetTimer()
	for range rateBenchProcs {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envRateWorker+"="+url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
		reads.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if ns, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "start "), 10, 64); err == nil {
					mu.Lock()
					starts = append(starts, time.Unix(0, ns))
					mu.Unlock()
				}
			}
		})
	}
	deadline := time.Now().Add(window + 20*time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		done := len(starts) > 0 && time.Since(starts[0]) > window+time.Second
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		_ = p.Wait()
	}
	reads.Wait()
	b.StopTimer()
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	if len(starts) == 0 {
		b.Fatal("no task started")
	}
	in0 := 0
	for _, s := range starts {
		if s.Sub(starts[0]) < window {
			in0++
		}
	}
	// The first Burst tasks start at once; the rest at the rate.
	rate := float64(in0) / window.Seconds()
	steady := float64(in0-rateBenchBurst) / window.Seconds()
	load, _ := os.ReadFile("/proc/loadavg")
	b.ReportMetric(rate, "tasks/s")
	b.ReportMetric(100*(rate-rateBenchRate)/rateBenchRate, "%off")
	b.ReportMetric(steady, "steady/s")
	b.Logf("%s: limit %d/s burst %d, %d worker processes: %d tasks started in %s = %.2f/s (%.2f/s after the burst); load %s",
		strings.SplitN(url, ":", 2)[0], rateBenchRate, rateBenchBurst, rateBenchProcs, in0, window, rate, steady, strings.TrimSpace(string(load)))
}

// runRateWorker is a worker process of the benchmark: a brisk worker of 8 handlers on the
// limited queue that writes "start <unix ns>" for every task, until SIGTERM.
func runRateWorker(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	b, err := brisk.Open(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: rateBenchQueue}}, Concurrency: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	w.HandleFunc("tick", func(ctx context.Context, t *brisk.Task) error {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "start %d\n", time.Now().UnixNano())
		return nil
	})
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
