package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/dashboard"
)

func TestEnqueueOptionsAndIdempotentID(t *testing.T) {
	t.Parallel()
	for name, setupFn := range map[string]func(testing.TB, dashboard.Options) *env{"sqlite": setup, "redis": setupRedis} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setupFn(t, dashboard.Options{})
			at := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
			body := fmt.Sprintf(`{"type":"a","payload":{"n":1},"id":"order-17","max_attempts":3,"timeout_seconds":2.5,"process_at":%q,"headers":{"traceparent":"00-t-s-01","tenant":"acme"}}`, at.Format(time.RFC3339Nano))
			if id := e.enqueue(t, "q", body); id != "order-17" {
				t.Fatalf("id %q, want order-17", id)
			}
			task, err := brisk.NewInspector(e.b).Task(context.Background(), "order-17")
			if err != nil {
				t.Fatal(err)
			}
			if task.MaxAttempts != 3 || task.Timeout != 2500*time.Millisecond || !task.ReadyAt.Equal(at) || task.State != brisk.StateScheduled {
				t.Fatalf("stored task %+v: want max_attempts 3, timeout 2.5s, ready at %s, scheduled", task, at)
			}
			if task.Headers["traceparent"] != "00-t-s-01" || task.Headers["tenant"] != "acme" || len(task.Headers) != 2 {
				t.Fatalf("stored headers %v", task.Headers)
			}
			// The same id again: 409 with the existing id, nothing changed.
			code, resp := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", `{"type":"b","id":"order-17"}`)
			var conflict map[string]string
			if err := json.Unmarshal([]byte(resp), &conflict); code != http.StatusConflict || err != nil || conflict["id"] != "order-17" || conflict["error"] == "" {
				t.Fatalf("second enqueue of the id: %d %s, want 409 with the id", code, resp)
			}
			if again, _ := brisk.NewInspector(e.b).Task(context.Background(), "order-17"); again.Type != "a" {
				t.Fatalf("the stored task changed: %+v", again)
			}
			// A process_at in the past means now: pending at once.
			id := e.enqueue(t, "q", `{"type":"a","process_at":"2001-01-01T00:00:00Z"}`)
			if past, _ := brisk.NewInspector(e.b).Task(context.Background(), id); past.State != brisk.StatePending || time.Since(past.ReadyAt) > time.Minute {
				t.Fatalf("past process_at: %+v, want pending and ready now", past)
			}
		})
	}
}

func TestEnqueueBadOptions(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	for _, body := range []string{
		`{"type":"a","max_attempts":-1}`,
		`{"type":"a","timeout_seconds":-1}`,
		`{"type":"a","process_at":"tomorrow"}`,
		`{"type":"a","process_at":"2030-01-01T00:00:00Z","delay_seconds":5}`,
		`{"type":"a","queue":"other"}`,
		`{"type":"a","headers":{"bad name":"x"}}`,
	} {
		code, resp := e.do(t, "POST", "/api/v1/queues/q/tasks", "application/json", body)
		wantError(t, code, resp, http.StatusBadRequest)
	}
	if _, resp := e.do(t, "GET", "/api/v1/queues", "", ""); resp != "[]\n" {
		t.Fatalf("a refused enqueue stored something: %s", resp)
	}
}

func TestEnqueueBatchAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	ok := `{"tasks":[{"queue":"a","type":"x","payload":{"i":1}},{"queue":"b","type":"y","id":"b-1","delay_seconds":60}]}`
	code, resp := e.do(t, "POST", "/api/v1/tasks/batch", "application/json", ok)
	var out struct{ IDs []string }
	if err := json.Unmarshal([]byte(resp), &out); code != http.StatusCreated || err != nil || len(out.IDs) != 2 || out.IDs[1] != "b-1" {
		t.Fatalf("batch: %d %s", code, resp)
	}
	counts := func() string {
		_, resp := e.do(t, "GET", "/api/v1/queues", "", "")
		var qs []map[string]any
		if err := json.Unmarshal([]byte(resp), &qs); err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, q := range qs {
			s += fmt.Sprintf("%s:%v/%v ", q["name"], q["pending"], q["scheduled"])
		}
		return s
	}
	before := counts()
	if before != "a:1/0 b:0/1 " {
		t.Fatalf("after the batch: %s", before)
	}
	for body, want := range map[string]int{
		`{"tasks":[]}`: 400,
		`{"tasks":[{"queue":"a","type":"x"},{"type":"x"}]}`:                                  400, // no queue
		`{"tasks":[{"queue":"a","type":"x"},{"queue":"a","type":""}]}`:                       400,
		`{"tasks":[{"queue":"a","type":"x","id":"d"},{"queue":"a","type":"x","id":"d"}]}`:    400,
		`{"tasks":[{"queue":"a","type":"x"},{"queue":"b","type":"x","id":"b-1"}]}`:           409,
		`{"tasks":[{"queue":"a","type":"x"},{"queue":"a","type":"x","max_attempts":-2}]}`:    400,
		`{"tasks":[{"queue":"a","type":"x"},{"queue":"bad name!","type":"x"}]}`:              400,
		`{"tasks":[{"queue":"a","type":"x"},{"queue":"a","type":"x","unknown_field":true}]}`: 400,
	} {
		code, resp := e.do(t, "POST", "/api/v1/tasks/batch", "application/json", body)
		if code != want {
			t.Fatalf("batch %s: %d %s, want %d", body, code, resp, want)
		}
		if want == 409 && !json.Valid([]byte(resp)) {
			t.Fatalf("409 body %q", resp)
		}
		if want == 409 {
			var c struct{ IDs []string }
			_ = json.Unmarshal([]byte(resp), &c)
			if len(c.IDs) != 1 || c.IDs[0] != "b-1" {
				t.Fatalf("409 body %s, want ids [b-1]", resp)
			}
		}
	}
	if after := counts(); after != before {
		t.Fatalf("a refused batch stored something: %s, before %s", after, before)
	}
}

func TestPutQueueSLA(t *testing.T) {
	t.Parallel()
	e := setup(t, dashboard.Options{})
	code, resp := e.do(t, "PUT", "/api/v1/queues/reports", "application/json", `{"sla_seconds": 90}`)
	var q map[string]any
	if err := json.Unmarshal([]byte(resp), &q); code != 200 || err != nil || q["name"] != "reports" || q["sla_seconds"] != 90.0 {
		t.Fatalf("PUT sla 90: %d %s", code, resp)
	}
	code, resp = e.do(t, "PUT", "/api/v1/queues/reports", "application/json", `{"sla_seconds": null}`)
	if err := json.Unmarshal([]byte(resp), &q); code != 200 || err != nil || q["sla_seconds"] != nil {
		t.Fatalf("PUT sla null: %d %s", code, resp)
	}
	for _, body := range []string{`{}`, `{"sla_seconds": -1}`, `{"sla_seconds": "5s"}`, `{"sla_seconds": 5, "x": 1}`} {
		code, resp := e.do(t, "PUT", "/api/v1/queues/reports", "application/json", body)
		wantError(t, code, resp, http.StatusBadRequest)
	}
	code, resp = e.do(t, "PUT", "/api/v1/queues/reports", "text/plain", `{"sla_seconds": 5}`)
	wantError(t, code, resp, http.StatusUnsupportedMediaType)
	code, resp = e.do(t, "PUT", "/api/v1/queues/reports", "application/json", `{"sla_seconds": 5}`, "Origin", "http://evil.example")
	wantError(t, code, resp, http.StatusForbidden)
	ro := setup(t, dashboard.Options{ReadOnly: true})
	code, resp = ro.do(t, "PUT", "/api/v1/queues/reports", "application/json", `{"sla_seconds": 5}`)
	wantError(t, code, resp, http.StatusForbidden)
}
