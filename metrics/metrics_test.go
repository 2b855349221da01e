package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/sqlitebroker"
	"github.com/briskq/brisk/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWorkerSeries(t *testing.T) {
	b, err := brisk.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg); !errors.Is(err, brisk.ErrInvalid) {
		t.Errorf("second New on one registry: %v, want ErrInvalid", err)
	}
	c := brisk.NewClient(b)
	for _, p := range []string{"ok", "ok", "bad"} {
		if _, err := c.Enqueue(t.Context(), brisk.NewTask("job", []byte(p), brisk.InQueue("five_second"), brisk.MaxAttempts(2))); err != nil {
			t.Fatal(err)
		}
	}
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "five_second"}},
		Backoff: func(int, error) time.Duration { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	m.Instrument(w)
	w.HandleFunc("job", func(_ context.Context, task *brisk.Task) error {
		if string(task.Payload) == "bad" {
			return errors.New("bad payload")
		}
		return nil
	})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	outcome := func(o string) float64 {
		var d dto.Metric
		if err := m.Counter("five_second", "job", o).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	deadline := time.Now().Add(10 * time.Second)
	for outcome("done") < 2 || outcome("dead") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("done %v, dead %v after 10 s", outcome("done"), outcome("dead"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := outcome("retried"); got != 1 {
		t.Errorf("retried = %v, want 1", got)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`brisk_task_wait_seconds_count{queue="five_second",type="job"} 4`,
		`brisk_tasks_in_flight{queue="five_second",type="job"} 0`,
		`brisk_task_duration_seconds_count{outcome="done",queue="five_second",type="job"} 2`,
		`brisk_task_wait_seconds_bucket{queue="five_second",type="job",le="5"} 4`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}
