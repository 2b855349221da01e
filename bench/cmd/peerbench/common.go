package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Workload defaults, as BRIEF.md and brisk's own `brisk bench` (internal/cli/bench.go)
// define them.
const (
	taskType       = "bench.noop"
	payloadSize    = 100 // bytes of JSON in every task of every system
	batchSize      = 1000
	concurrency    = 8 // handlers per worker process (Go systems, Celery threads)
	w2Seconds      = 20
	w2KeptUpWithin = 2 * time.Second
	w3Interval     = 200 * time.Millisecond
	w3Tasks        = 50
	w4Sleep        = 50 * time.Millisecond
	w5MaxDelay     = 10 * time.Second
	stallTimeout   = time.Minute
)

// payload returns the ~100-byte JSON payload of task seq: its sequence number, the enqueue
// time and the ready time (enqueue time + delay) in Unix nanoseconds, padded with x to
// exactly payloadSize bytes. bench/python builds the same.
func payload(seq int, enq, ready time.Time) []byte {
	b := fmt.Appendf(nil, `{"i":%d,"t":%d,"r":%d,"pad":"`, seq, enq.UnixNano(), ready.UnixNano())
	for len(b) < payloadSize-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// field returns the integer field name ("i", "t" or "r") of a payload, without a JSON
// decoder so that handlers stay as cheap as the Python ones.
func field(p []byte, name string) int64 {
	key := []byte(`"` + name + `":`)
	i := bytes.Index(p, key)
	if i < 0 {
		return -1
	}
	p = p[i+len(key):]
	j := 0
	for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(p[:j]), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// pickups records the first start of every task as the latency from its ready time.
type pickups struct {
	mu      sync.Mutex
	seen    map[int64]struct{}
	samples []time.Duration
}

func newPickups(n int) *pickups {
	return &pickups{seen: make(map[int64]struct{}, n), samples: make([]time.Duration, 0, n)}
}

// record is called first thing by a handler with the task's payload.
func (p *pickups) record(pl []byte) {
	now := time.Now().UnixNano()
	lat := time.Duration(now - field(pl, "r"))
	id := field(pl, "i")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[id]; ok {
		return
	}
	p.seen[id] = struct{}{}
	p.samples = append(p.samples, lat)
}

func (p *pickups) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.samples)
}

func (p *pickups) sorted() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slices.Clone(p.samples)
	slices.Sort(s)
	return s
}

// percentile is the nearest-rank p-quantile of sorted samples, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return round(float64(sorted[rank-1])/float64(time.Millisecond), 3)
}

func round(v float64, decimals int) float64 {
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}

// result is the figures of one workload of one system, keyed as BRIEF.md's JSON keys.
type result map[string]any

// addPickups sets the pickup or lateness figures (prefix "pickup" or "late").
func (r result) addPickups(prefix string, s []time.Duration) {
	r["picked_up"] = len(s)
	r[prefix+"_p50_ms"] = percentile(s, 0.50)
	r[prefix+"_p90_ms"] = percentile(s, 0.90)
	r[prefix+"_p99_ms"] = percentile(s, 0.99)
	r[prefix+"_max_ms"] = percentile(s, 1)
}

// drainTimer measures a drain as the Python harness does: from the first poll that sees
// a task done to the poll that sees all done, so that worker start-up is excluded, and
// the rate counts only the tasks done in between.
type drainTimer struct {
	first      time.Time
	firstCount int
}

// waitCount polls count every ms until it reaches target; it fails when count stays the
// same for stall, or ctx ends.
func waitCount(ctx context.Context, count func() (int, error), target int, stall time.Duration, dt *drainTimer) error {
	last, lastChange := -1, time.Now()
	for {
		n, err := count()
		if err != nil {
			return err
		}
		now := time.Now()
		if dt != nil && n > 0 && dt.first.IsZero() {
			dt.first, dt.firstCount = now, n
		}
		if n >= target {
			return nil
		}
		if n != last {
			last, lastChange = n, now
		} else if stall > 0 && now.Sub(lastChange) > stall {
			return fmt.Errorf("stalled: %d of %d done, no progress for %s", n, target, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// waitFor polls count until target or timeout; it reports whether target was reached.
func waitFor(ctx context.Context, count func() int, target int, every, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if count() >= target {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(every)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// produce calls enqueue for seq 0..total-1 at rate per second: every 2 ms it enqueues
// what the schedule has come to (as brisk bench does). It returns the achieved rate.
func produce(ctx context.Context, total int, rate float64, enqueue func(seq int, now time.Time) error) (float64, error) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		due := min(total, int(time.Since(start).Seconds()*rate))
		for ; sent < due; sent++ {
			if err := enqueue(sent, time.Now()); err != nil {
				return 0, err
			}
		}
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// countingConn counts the Redis commands a client writes (RESP arrays), so that commands
// per task can be told from the client side: a pipeline of k commands counts k, and an
// EVALSHA counts one whatever its script runs.
type countingConn struct {
	net.Conn
	n *atomic.Int64
	p respCounter
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.n.Add(int64(c.p.feed(b)))
	return c.Conn.Write(b)
}

// countingDialer returns a dialer for go-redis whose connections add to n.
func countingDialer(n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, n: n}, nil
	}
}

// respCounter is a streaming parser of what a client writes: arrays of bulk strings.
type respCounter struct {
	state   int // 0: expect '*', 1: array length, 2: expect '$', 3: bulk length, 4: bulk bytes, 5: bulk CRLF
	num     int64
	left    int64 // bulk strings left in the array
	skip    int64 // bytes left of the bulk string (+2 for CRLF)
	sawCR   bool
	inArray bool
}

// feed parses b and returns the number of commands that were completed in it.
func (r *respCounter) feed(b []byte) int {
	done := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch r.state {
		case 0:
			if c == '*' {
				r.state, r.num = 1, 0
			}
		case 1, 3:
			switch {
			case c >= '0' && c <= '9':
				r.num = r.num*10 + int64(c-'0')
			case c == '\r':
			case c == '\n':
				if r.state == 1 {
					r.left = r.num
					if r.left == 0 {
						r.state = 0
						done++
					} else {
						r.state = 2
					}
				} else {
					r.skip = r.num + 2
					r.state = 4
				}
				r.num = 0
			}
		case 2:
			if c == '$' {
				r.state, r.num = 3, 0
			}
		case 4:
			n := min(r.skip, int64(len(b)-i))
			r.skip -= n
			i += int(n) - 1
			if r.skip == 0 {
				r.left--
				if r.left == 0 {
					r.state = 0
					done++
				} else {
					r.state = 2
				}
			}
		}
	}
	return done
}
