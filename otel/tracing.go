// Package briskotel traces brisk tasks with OpenTelemetry: a producer span when a task is
// enqueued, whose context travels in the task's headers (W3C traceparent and tracestate by
// default), and a consumer span for every attempt of its handler, a child of the producer
// span, so that one trace runs from the request that enqueued a task to the handler that ran
// it, across processes and machines.
//
// It is a module of its own so that brisk itself does not depend on OpenTelemetry:
//
//	tr := briskotel.New()                 // the global TracerProvider and propagator
//	client.AddHooks(tr.ClientHooks())
//	tr.Instrument(worker)                 // middleware and hooks, before Start
//
// Spans follow OpenTelemetry's messaging conventions: "send <queue>" (kind producer) and
// "process <queue>" (kind consumer), with messaging.system "brisk",
// messaging.destination.name (the queue), messaging.message.id (the task ID), and brisk's
// own brisk.task.type, brisk.task.attempt and brisk.outcome (done, retried, dead, released).
// A failed attempt sets the span's status to error with the handler's error.
package briskotel

import (
	"context"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/briskq/brisk"
)

// instrumentation names the tracer.
const instrumentation = "github.com/briskq/brisk/otel"

// Option configures Tracing.
type Option func(*Tracing)

// WithTracerProvider sets the provider of the tracer (default otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(t *Tracing) { t.provider = tp }
}

// WithPropagator sets how span context is written into and read from task headers
// (default otel.GetTextMapPropagator(), or W3C trace context and baggage when that is the
// no-op default).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(t *Tracing) { t.prop = p }
}

// Tracing makes the spans of brisk tasks.
type Tracing struct {
	provider trace.TracerProvider
	prop     propagation.TextMapPropagator
	tracer   trace.Tracer

	mu    sync.Mutex
	spans map[string]trace.Span // running attempts' consumer spans, by task ID and attempt
}

// New returns Tracing configured by opts.
func New(opts ...Option) *Tracing {
	t := &Tracing{spans: map[string]trace.Span{}}
	for _, o := range opts {
		o(t)
	}
	if t.provider == nil {
		t.provider = otel.GetTracerProvider()
	}
	if t.prop == nil {
		t.prop = otel.GetTextMapPropagator()
		if len(t.prop.Fields()) == 0 { // the global default propagates nothing
			t.prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	}
	t.tracer = t.provider.Tracer(instrumentation)
	return t
}

// headers adapts a task's headers to a propagation.TextMapCarrier.
type headers struct{ t *brisk.Task }

func (h headers) Get(key string) string { return h.t.Headers[key] }

func (h headers) Set(key, value string) {
	if h.t.Headers == nil {
		h.t.Headers = map[string]string{}
	}
	h.t.Headers[key] = value
}

func (h headers) Keys() []string {
	keys := make([]string, 0, len(h.t.Headers))
	for k := range h.t.Headers {
		keys = append(keys, k)
	}
	return keys
}

func attrs(t *brisk.Task) []attribute.KeyValue {
	queue := t.Queue
	if queue == "" {
		queue = brisk.DefaultQueue
	}
	return []attribute.KeyValue{
		attribute.String("messaging.system", "brisk"),
		attribute.String("messaging.destination.name", queue),
		attribute.String("messaging.message.id", t.ID),
		attribute.String("brisk.task.type", t.Type),
	}
}

// ClientHooks returns the hooks that record a producer span for every enqueued task and
// write its context into the task's headers. Add them with Client.AddHooks.
func (tr *Tracing) ClientHooks() brisk.Hooks {
	return brisk.Hooks{Enqueue: func(ctx context.Context, t *brisk.Task) error {
		queue := t.Queue
		if queue == "" {
			queue = brisk.DefaultQueue
		}
		ctx, span := tr.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(append(attrs(t), attribute.String("messaging.operation.type", "send"))...))
		defer span.End()
		tr.prop.Inject(ctx, headers{t})
		return nil
	}}
}

func spanKey(t *brisk.Task) string { return t.ID + "/" + strconv.Itoa(t.Attempt) }

// Middleware starts the consumer span of an attempt, a child of the producer span whose
// context the task's headers carry, and gives the handler a context that holds it. The
// span ends when the worker's Finish hook (WorkerHooks) tells the outcome.
func (tr *Tracing) Middleware() brisk.Middleware {
	return func(next brisk.Handler) brisk.Handler {
		return brisk.HandlerFunc(func(ctx context.Context, t *brisk.Task) error {
			parent := tr.prop.Extract(ctx, headers{t})
			ctx, span := tr.tracer.Start(parent, "process "+t.Queue, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(append(attrs(t),
					attribute.String("messaging.operation.type", "process"),
					attribute.Int("brisk.task.attempt", t.Attempt))...))
			tr.mu.Lock()
			tr.spans[spanKey(t)] = span
			tr.mu.Unlock()
			err := next.ProcessTask(ctx, t)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		})
	}
}

// WorkerHooks returns the hook that ends an attempt's consumer span with its outcome.
func (tr *Tracing) WorkerHooks() brisk.Hooks {
	return brisk.Hooks{Finish: func(_ context.Context, t *brisk.Task, o brisk.Outcome) {
		tr.mu.Lock()
		span, ok := tr.spans[spanKey(t)]
		delete(tr.spans, spanKey(t))
		tr.mu.Unlock()
		if !ok {
			return // the handler never ran (no handler for the type)
		}
		span.SetAttributes(attribute.String("brisk.outcome", string(o.Kind)))
		if o.Kind == brisk.OutcomeRetry {
			span.SetAttributes(attribute.String("brisk.next_attempt", o.NextAttempt.UTC().Format("2006-01-02T15:04:05.000Z07:00")))
		}
		span.End()
	}}
}

// Instrument adds the middleware and the Finish hook to w, before it starts.
func (tr *Tracing) Instrument(w *brisk.Worker) {
	w.Use(tr.Middleware())
	w.AddHooks(tr.WorkerHooks())
}
