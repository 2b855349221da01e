package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/workload"
)

// storeSample is the size of a benchmark's store at one moment: the completed tasks its
// queue keeps, and for a broker on a file (SQLite) the bytes of the file and its
// write-ahead log (-1 elsewhere).
type storeSample struct {
	at       time.Duration // since the sampler started
	retained int64
	bytes    int64
}

// storeSampler records the store's size every interval while a benchmark runs, so that a
// run with a retention shows whether the store stays bounded.
type storeSampler struct {
	in    *brisk.Inspector
	queue string
	path  string // the SQLite file, or ""
	out   io.Writer

	mu      sync.Mutex
	samples []storeSample
}

// newStoreSampler samples the queue of in's broker; progress lines go to out (nil: none).
func newStoreSampler(b brisk.Broker, queue string, out io.Writer) *storeSampler {
	s := &storeSampler{in: brisk.NewInspector(b), queue: queue, out: out}
	if f, ok := b.(interface{ Path() string }); ok {
		s.path = f.Path()
	}
	return s
}

// run samples every interval until ctx ends (the caller takes the last sample).
func (s *storeSampler) run(ctx context.Context, every time.Duration) {
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		s.sample(ctx, time.Since(start))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *storeSampler) sample(ctx context.Context, at time.Duration) {
	smp := storeSample{at: at, bytes: -1}
	if qs, err := s.in.Queues(ctx); err == nil {
		for _, q := range qs {
			if q.Name == s.queue {
				smp.retained = q.Retained
			}
		}
	}
	if s.path != "" {
		smp.bytes = 0
		for _, p := range []string{s.path, s.path + "-wal"} {
			if fi, err := os.Stat(p); err == nil {
				smp.bytes += fi.Size()
			}
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
	if s.out != nil {
		fmt.Fprintf(s.out, "%s store at %3.0fs: %d completed tasks kept, %s\n",
			time.Now().Format("15:04:05"), at.Seconds(), smp.retained, sizeText(smp.bytes))
	}
}

// addTo adds the figures of the samples to r: the kept tasks and the store's bytes at the
// start, the middle and the end of the run, and their maximum.
func (s *storeSampler) addTo(r *workload.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return
	}
	points := []struct {
		name string
		smp  storeSample
	}{{"start", s.samples[0]}, {"mid", s.samples[len(s.samples)/2]}, {"end", s.samples[len(s.samples)-1]}}
	var most storeSample
	for _, smp := range s.samples {
		most.retained = max(most.retained, smp.retained)
		most.bytes = max(most.bytes, smp.bytes)
	}
	points = append(points, struct {
		name string
		smp  storeSample
	}{"max", most})
	for _, p := range points {
		r.Add("retained_"+p.name, "kept tasks, "+p.name, p.smp.retained, "")
	}
	if s.path == "" {
		return
	}
	for _, p := range points {
		r.Add("store_mb_"+p.name, "store size, "+p.name, workload.Round(float64(p.smp.bytes)/(1<<20), 1), "MiB")
	}
}

// sizeText shows a byte count in MiB, or says that the store has no file.
func sizeText(n int64) string {
	if n < 0 {
		return "store size unknown (not a file)"
	}
	return fmt.Sprintf("%.1f MiB (file and WAL)", float64(n)/(1<<20))
}
