// Package histogram records latencies into fixed exponential buckets without locks.
package histogram

import (
	"math"
	"sync/atomic"
	"time"
)

// Bounds are the upper bounds of the buckets: 100 µs × 2^i up to about 14 minutes, then +Inf.
var Bounds = func() []time.Duration {
	b := make([]time.Duration, 24)
	d := 100 * time.Microsecond
	for i := range b {
		b[i] = d
		d *= 2
	}
	return b
}()

// Histogram counts observations per bucket. The zero value is ready to use.
type Histogram struct {
	counts [25]atomic.Uint64 // len(Bounds)+1: the last is +Inf
	sum    atomic.Int64
}

// Observe records one latency (negative values count as 0).
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := bucket(d)
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func bucket(d time.Duration) int {
	if d <= Bounds[0] {
		return 0
	}
	// Bounds[i] = 100µs·2^i, so i = ceil(log2(d/100µs)).
	i := int(math.Ceil(math.Log2(float64(d) / float64(Bounds[0]))))
	if i < len(Bounds) && d > Bounds[i] { // guard against rounding
		i++
	}
	if i > len(Bounds) {
		i = len(Bounds)
	}
	return i
}

// Snapshot is a copy of a histogram's counts.
type Snapshot struct {
	// Counts[i] counts observations ≤ Bounds[i] and > Bounds[i-1]; the last entry counts
	// those above every bound.
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as the upper bound of the bucket that holds
// it; 0 when empty.
func (s Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.Count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			if i < len(Bounds) {
				return Bounds[i]
			}
			return time.Duration(math.MaxInt64)
		}
	}
	return Bounds[len(Bounds)-1]
}
