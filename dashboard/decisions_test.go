package dashboard_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk/dashboard"
	"github.com/briskq/brisk/internal/testenv"
)

// fakeAutoscaler serves GET /decisions as brisk autoscale --metrics does.
func fakeAutoscaler(t *testing.T, body func() string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /decisions", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body()))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestAutoscalerDecisionsOnChart(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(-5 * time.Minute).UTC().Format(time.RFC3339Nano)
	as := fakeAutoscaler(t, func() string {
		return `[{"time":"` + at + `","queue":"q","current":2,"desired":5,"reason":"latency 9s over <target> 8s","latency_seconds":9},` +
			`{"time":"` + at + `","queue":"other","current":1,"desired":7,"reason":"other queue","latency_seconds":1}]`
	})
	e := setup(t, dashboard.Options{AutoscalerURL: as.URL + "/"})
	e.enqueue(t, "q", `{"type":"a","payload":{}}`)
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; {
		var code int
		code, body = e.do(t, "GET", "/queues/q", "", "")
		if code != 200 {
			t.Fatalf("queue page: %d\n%s", code, body)
		}
		if strings.Contains(body, `class="decision"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{`<g class="decision"><title>`, `2 → 5: latency 9s over &lt;target&gt; 8s</title>`,
		`class="decision-tick"`, `class="decision-count"`, `>5</text>`, `autoscaler decisions`} {
		if !strings.Contains(body, want) {
			t.Errorf("queue page lacks %q:\n%s", want, body)
		}
	}
	if n := strings.Count(body, `<g class="decision">`); n != 1 {
		t.Errorf("%d decision markers, want 1 (the other queue's is not drawn, the repeated one once)", n)
	}
	if strings.Contains(body, "other queue") || strings.Contains(body, "<target>") {
		t.Errorf("the page shows another queue's decision or unescaped text:\n%s", body)
	}
}

func TestAutoscalerUnreachable(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	var logs testenv.Buffer
	e := setup(t, dashboard.Options{AutoscalerURL: gone.URL, SampleInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	e.enqueue(t, "q", `{"type":"a","payload":{}}`)
	time.Sleep(400 * time.Millisecond) // several samples
	code, body := e.do(t, "GET", "/queues/q", "", "")
	if code != 200 || !strings.Contains(body, `<svg class="chart"`) {
		t.Fatalf("queue page with the autoscaler unreachable: %d\n%s", code, body)
	}
	if strings.Contains(body, `class="decision"`) || strings.Contains(body, "autoscaler decisions") {
		t.Errorf("decisions drawn without an autoscaler:\n%s", body)
	}
	if n := strings.Count(logs.String(), "autoscaler decisions"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
}
