package briskotel_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/briskq/brisk"
	_ "github.com/briskq/brisk/broker/sqlitebroker"
	briskotel "github.com/briskq/brisk/otel"
)

// TestMain lets the test binary be the worker process of TestTraceAcrossProcesses.
func TestMain(m *testing.M) {
	if url := os.Getenv("BRISKOTEL_WORKER"); url != "" {
		if err := worker(url); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// span is what the worker process reports of each span it recorded.
type span struct {
	Name, TraceID, SpanID, ParentID, Kind, Status string
	Attrs                                         map[string]string
}

func report(s sdktrace.ReadOnlySpan) span {
	out := span{Name: s.Name(), TraceID: s.SpanContext().TraceID().String(), SpanID: s.SpanContext().SpanID().String(),
		ParentID: s.Parent().SpanID().String(), Kind: s.SpanKind().String(), Status: s.Status().Code.String(), Attrs: map[string]string{}}
	for _, a := range s.Attributes() {
		out.Attrs[string(a.Key)] = a.Value.String()
	}
	return out
}

// worker runs one task's attempts (the first fails) with tracing to an in-memory exporter,
// then prints the spans as JSON lines.
func worker(url string) error {
	ctx := context.Background()
	b, err := brisk.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)
	w, err := brisk.NewWorker(b, brisk.WorkerConfig{Queues: []brisk.QueueSpec{{Name: "five_second"}},
		Backoff: func(int, error) time.Duration { return 0 }})
	if err != nil {
		return err
	}
	briskotel.New(briskotel.WithTracerProvider(tp)).Instrument(w)
	done := make(chan struct{})
	w.HandleFunc("invoice.send", func(ctx context.Context, t *brisk.Task) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return brisk.SkipRetry(errors.New("the handler's context holds no span"))
		}
		if t.Attempt == 1 {
			return errors.New("smtp: try again")
		}
		close(done)
		return nil
	})
	if err := w.Start(ctx); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		return errors.New("the task did not succeed within 20 s")
	}
	if err := w.Stop(); err != nil { // the Finish hook has ended every span
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	for _, s := range exp.GetSpans().Snapshots() {
		if err := enc.Encode(report(s)); err != nil {
			return err
		}
	}
	return nil
}

func TestTraceAcrossProcesses(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "b.db")
	ctx := context.Background()
	b, err := brisk.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(ctx)
	c := brisk.NewClient(b)
	c.AddHooks(briskotel.New(briskotel.WithTracerProvider(tp)).ClientHooks())

	// The request that enqueues the task.
	reqCtx, req := tp.Tracer("app").Start(ctx, "POST /invoices")
	id, err := c.Enqueue(reqCtx, brisk.NewTask("invoice.send", []byte(`{"n":42}`), brisk.InQueue("five_second")))
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	ended := rec.Ended()
	if len(ended) != 2 || ended[0].Name() != "send five_second" {
		t.Fatalf("spans of the enqueuing process: %d, first %q; want the producer span and the request", len(ended), ended[0].Name())
	}
	producer := ended[0]
	if producer.SpanKind() != trace.SpanKindProducer || producer.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Errorf("producer span: kind %s, parent %s; want producer, child of the request", producer.SpanKind(), producer.Parent().SpanID())
	}
	wantAttr(t, producer.Attributes(), "messaging.message.id", id)
	stored, err := brisk.NewInspector(b).Task(ctx, id)
	if err != nil || stored.Headers["traceparent"] == "" {
		t.Fatalf("stored task headers %v (%v), want a traceparent", stored.Headers, err)
	}

	// Another process runs it.
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "BRISKOTEL_WORKER="+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("worker process: %v", err)
	}
	var spans []span
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var s span
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("worker output %q: %v", sc.Text(), err)
		}
		spans = append(spans, s)
	}
	if len(spans) != 2 {
		t.Fatalf("worker spans: %+v, want two attempts", spans)
	}
	for i, s := range spans {
		if s.TraceID != producer.SpanContext().TraceID().String() || s.ParentID != producer.SpanContext().SpanID().String() {
			t.Errorf("attempt %d: trace %s parent %s, want trace %s and the producer span %s as parent",
				i+1, s.TraceID, s.ParentID, producer.SpanContext().TraceID(), producer.SpanContext().SpanID())
		}
		if s.Name != "process five_second" || s.Kind != "consumer" || s.Attrs["messaging.message.id"] != id ||
			s.Attrs["brisk.task.attempt"] != fmt.Sprint(i+1) {
			t.Errorf("attempt %d: %+v", i+1, s)
		}
	}
	if spans[0].Attrs["brisk.outcome"] != "retried" || spans[0].Status != codes.Error.String() {
		t.Errorf("first attempt: outcome %q status %s, want retried and Error", spans[0].Attrs["brisk.outcome"], spans[0].Status)
	}
	if spans[1].Attrs["brisk.outcome"] != "done" || spans[1].Status == codes.Error.String() {
		t.Errorf("second attempt: outcome %q status %s, want done", spans[1].Attrs["brisk.outcome"], spans[1].Status)
	}
}

func wantAttr(t *testing.T, attrs []attribute.KeyValue, key, want string) {
	t.Helper()
	for _, a := range attrs {
		if string(a.Key) == key {
			if a.Value.String() != want {
				t.Errorf("attribute %s = %q, want %q", key, a.Value.String(), want)
			}
			return
		}
	}
	t.Errorf("no attribute %s in %v", key, attrs)
}
