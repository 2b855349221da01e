package histogram

import (
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {100 * time.Microsecond, 0}, {101 * time.Microsecond, 1}, {200 * time.Microsecond, 1},
		{201 * time.Microsecond, 2}, {time.Millisecond, 4}, {time.Hour, len(Bounds)},
	}
	for _, c := range cases {
		if got := bucket(c.d); got != c.want {
			t.Errorf("bucket(%s) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	var h Histogram
	for i := 0; i < 99; i++ {
		h.Observe(150 * time.Microsecond)
	}
	h.Observe(50 * time.Millisecond)
	s := h.Snapshot()
	if s.Count != 100 {
		t.Fatalf("count %d", s.Count)
	}
	if got := s.Quantile(0.5); got != 200*time.Microsecond {
		t.Errorf("p50 %s", got)
	}
	if got := s.Quantile(1); got < 50*time.Millisecond {
		t.Errorf("max %s", got)
	}
	if (Snapshot{}).Quantile(0.5) != 0 {
		t.Error("empty quantile not 0")
	}
}
