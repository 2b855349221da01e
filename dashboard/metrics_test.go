package dashboard_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

// TestMetrics scrapes /metrics: every queue's counts, latency, SLA and counters, brisk_up
// 1 while the broker answers and 0 (with nothing else) once it cannot, and the dashboard's
// authentication in front of it.
func TestMetrics(t *testing.T) {
	t.Parallel()
	locked := setup(t, dashboard.Options{Token: "s3cret"})
	if code, _ := locked.do(t, "GET", "/metrics", "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without the token: %d, want 401", code)
	}
	if code, _ := locked.do(t, "GET", "/metrics", "", "", "Authorization", "Bearer s3cret"); code != http.StatusOK {
		t.Errorf("GET /metrics with the token: %d, want 200", code)
	}

	e := setup(t, dashboard.Options{})
	for range 3 {
		e.enqueue(t, "five_second", `{"type":"t","payload":{}}`)
	}
	if _, err := e.client.Enqueue(context.Background(), &brisk.Task{Type: "t", Queue: "later", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	makeDead(t, e, "bad", 1)
	code, body := e.do(t, "GET", "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	for _, want := range []string{
		"brisk_up 1",
		`brisk_queue_pending{queue="five_second"} 3`,
		`brisk_queue_sla_seconds{queue="five_second"} 5`,
		`brisk_queue_scheduled{queue="later"} 1`,
		`brisk_queue_dead{queue="bad"} 1`,
		`brisk_queue_failed_total{queue="bad"} 1`,
		`brisk_queue_completed_total{queue="five_second"} 0`,
		`brisk_queue_paused{queue="five_second"} 0`,
		"# TYPE brisk_queue_completed_total counter",
		"# TYPE brisk_queue_latency_seconds gauge",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(body, `brisk_queue_latency_seconds{queue="five_second"} `) {
		t.Errorf("/metrics lacks the latency of five_second:\n%s", body)
	}

	e.b.Close()
	code, body = e.do(t, "GET", "/metrics", "", "")
	if code != http.StatusOK || !strings.Contains(body, "brisk_up 0") || strings.Contains(body, "brisk_queue_pending") {
		t.Errorf("GET /metrics with the broker closed: %d\n%s\nwant 200 with brisk_up 0 and no queue", code, body)
	}
}
