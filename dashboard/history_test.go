package dashboard_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

// pointsRE finds the points of a latency chart's line.
var pointsRE = regexp.MustCompile(`<polyline class="latency" points="([^"]*)"`)

// chartPoints returns how many points the latency chart of a queue's page draws.
func chartPoints(t *testing.T, e *env, queue string) int {
	t.Helper()
	code, page := e.do(t, "GET", "/queues/"+queue, "", "")
	if code != 200 {
		t.Fatalf("queue page: %d", code)
	}
	m := pointsRE.FindStringSubmatch(page)
	if m == nil {
		return 0
	}
	return len(strings.Fields(m[1]))
}

// TestHistoryKeptInBroker checks that the samples behind the latency chart and the rates
// are kept in the broker: a dashboard started later (another process, or the same after a
// restart) shows the history that an earlier one sampled, at once, on SQLite and on Redis.
func TestHistoryKeptInBroker(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		checkHistory(t, setup(t, dashboard.Options{SampleInterval: 100 * time.Millisecond}))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		checkHistory(t, setupRedis(t, dashboard.Options{SampleInterval: 100 * time.Millisecond}))
	})
}

func checkHistory(t *testing.T, first *env) {
	ctx := context.Background()
	first.enqueue(t, "q", `{"type":"a"}`)
	in := brisk.NewInspector(first.b)
	// The first dashboard samples for a few seconds (one sample per second is kept).
	deadline := time.Now().Add(20 * time.Second)
	for {
		ss, err := in.Samples(ctx, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard stored %d samples in 20s, want 4", len(ss))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A dashboard that starts now and samples once an hour draws them at once.
	later := serve(t, first.url, dashboard.Options{SampleInterval: time.Hour})
	var n int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n = chartPoints(t, later, "q"); n >= 5 {
			return
		}
	}
	t.Errorf("a dashboard started later draws %d points, want the 4 or more samples of the first and its own", n)
}
