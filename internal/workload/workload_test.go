package workload

import (
	"encoding/json"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]float64{0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := Percentile(s, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile(s[:1], 0.99); got != 1 {
		t.Errorf("p99 of one sample = %v", got)
	}
	if got := Percentile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("p50 of none = %v, want NaN", got)
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	enq := time.Unix(1700000000, 123456789)
	p := Payload(42, enq, enq.Add(time.Second))
	if len(p) != PayloadSize {
		t.Errorf("payload is %d bytes, want %d: %s", len(p), PayloadSize, p)
	}
	var v map[string]any
	if err := json.Unmarshal(p, &v); err != nil {
		t.Fatalf("payload is not JSON: %v: %s", err, p)
	}
	for name, want := range map[string]int64{"i": 42, "t": enq.UnixNano(), "r": enq.Add(time.Second).UnixNano(), "x": -1} {
		if got := Field(p, name); got != want {
			t.Errorf("Field(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	r := &Result{}
	r.Add("a", "A", 1, "")
	r.Add("b", "B", math.NaN(), "ms")
	r.Add("a", "A", 2, "")
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":2,"b":null}` {
		t.Errorf("JSON = %s", b)
	}
}

// TestProduceConcurrently checks that concurrent callers send every task once, keep several
// slow calls in flight, and stop at the first error.
func TestProduceConcurrently(t *testing.T) {
	t.Parallel()
	const total = 200
	var mu sync.Mutex
	calls := map[int]int{}
	inFlight, most := 0, 0
	slow := func(seq int) error {
		mu.Lock()
		calls[seq]++
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return nil
	}
	if _, err := ProduceConcurrently(t.Context(), total, 10000, 8, slow); err != nil {
		t.Fatal(err)
	}
	if len(calls) != total {
		t.Errorf("%d tasks sent, want %d", len(calls), total)
	}
	for seq, n := range calls {
		if n != 1 {
			t.Errorf("task %d sent %d times", seq, n)
		}
	}
	if most < 2 || most > 8 {
		t.Errorf("at most %d calls in flight, want 2 to 8", most)
	}

	boom := errors.New("boom")
	_, err := ProduceConcurrently(t.Context(), total, 10000, 4, func(seq int) error {
		if seq == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("ProduceConcurrently = %v, want the enqueue's error", err)
	}
}
