package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

// BenchmarkQueuesPage renders the queues page of 100 queues holding 1,000,000 pending tasks
// on SQLite: the server time of one request. Filling the store takes a while (batches of
// 10,000 per queue) and is not timed. Run it (with the Redis variant) with
//
//	go test -run '^$' -bench QueuesPage -benchtime 100x ./dashboard
func BenchmarkQueuesPage(b *testing.B) {
	benchQueuesPage(b, setup(b, dashboard.Options{SampleInterval: time.Hour}))
}

// BenchmarkQueuesPageRedis is BenchmarkQueuesPage on Redis (BRISK_REDIS_URL, default the
// local one), under a random key prefix whose keys are deleted afterwards (SCAN + UNLINK).
// Without Redis it is skipped out loud. The 1,000,000 tasks take about 0.5 GB of Redis
// memory while it runs.
func BenchmarkQueuesPageRedis(b *testing.B) {
	benchQueuesPage(b, setupRedis(b, dashboard.Options{SampleInterval: time.Hour}))
}

func benchQueuesPage(b *testing.B, e *env) {
	const queues, perQueue, batch = 100, 10_000, 10_000
	ctx := context.Background()
	start := time.Now()
	payload := []byte(`{"to":"ada@example.com","enqueued_ns":1700000000000000000,"template":"welcome"}`)
	for q := range queues {
		name := fmt.Sprintf("q%03d_thirty_seconds", q)
		for i := 0; i < perQueue; i += batch {
			tasks := make([]*brisk.Task, batch)
			for j := range tasks {
				tasks[j] = brisk.NewTask("email.send", payload, brisk.InQueue(name))
			}
			if _, err := e.client.EnqueueBatch(ctx, tasks); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("filled %d queues with %d pending tasks in %s", queues, queues*perQueue, time.Since(start).Round(time.Millisecond))
	h := e.srv.Config.Handler
	req := httptest.NewRequest("GET", "/", nil)
	// One request outside the timing checks the page and warms the caches.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("queues page: %d", rec.Code)
	}
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("queues page: %d", rec.Code)
		}
	}
}
