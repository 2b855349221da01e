package autoscale_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/briskq/brisk/autoscale"
)

type fixedSource struct {
	latency time.Duration
	err     error
}

func (f fixedSource) Sample(_ context.Context, queue string) (autoscale.Sample, error) {
	return autoscale.Sample{Queue: queue, Latency: f.latency}, f.err
}

func TestDecisionsHandler(t *testing.T) {
	t.Parallel()
	nop := autoscale.ActuatorFunc(func(context.Context, int) error { return nil })
	a, err := autoscale.NewController(autoscale.ControllerConfig{Queue: "a", Source: fixedSource{latency: 1500 * time.Millisecond},
		Policy: &autoscale.Fixed{Bounds: autoscale.DefaultBounds, N: 3}, Actuator: nop})
	if err != nil {
		t.Fatal(err)
	}
	b, err := autoscale.NewController(autoscale.ControllerConfig{Queue: "b", Source: fixedSource{err: errors.New("broker down")}, Actuator: nop})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = a.Step(ctx)
	_, _ = b.Step(ctx)
	srv := httptest.NewServer(autoscale.DecisionsHandler(autoscale.ControllersDecisions(a, b)))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/decisions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var raw []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 {
		t.Fatalf("%d decisions, want 2: %v", len(raw), raw)
	}
	for _, k := range []string{"time", "queue", "current", "desired", "reason", "latency_seconds"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("decision lacks %q: %v", k, raw[0])
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, raw[0]["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	got := map[string]map[string]any{}
	for _, d := range raw {
		got[d["queue"].(string)] = d
	}
	if d := got["a"]; d == nil || d["current"] != 1.0 || d["desired"] != 3.0 || d["latency_seconds"] != 1.5 || d["reason"] == "" {
		t.Errorf("decision of a: %v", d)
	}
	if d := got["b"]; d == nil || d["desired"] != 1.0 || d["latency_seconds"] != 0.0 {
		t.Errorf("decision of b: %v", d)
	}

	post, err := http.Post(srv.URL+"/decisions", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", post.StatusCode)
	}

	empty := httptest.NewRecorder()
	autoscale.DecisionsHandler(func() []autoscale.DecisionRecord { return nil }).ServeHTTP(empty, httptest.NewRequest("GET", "/decisions", nil))
	if body := empty.Body.String(); body != "[]\n" {
		t.Errorf("no decisions: %q", body)
	}
}
