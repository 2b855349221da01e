// Package metrics exports what a brisk worker's handlers do to Prometheus: how long each
// handler runs, what became of each task, how many run now, and how long tasks waited for a
// worker. Attach it to a worker with Instrument (it adds brisk.Hooks), and serve the
// registry it was given; `brisk worker --metrics ADDR` does both.
//
// The series, labelled by queue and task type:
//
//	brisk_task_duration_seconds{queue,type,outcome}   histogram of handler run time
//	brisk_tasks_total{queue,type,outcome}             counter: done, retried, dead, released
//	brisk_tasks_in_flight{queue,type}                 gauge: handlers running now
//	brisk_task_wait_seconds{queue,type}               histogram of start − ready time
//
// brisk_task_wait_seconds is the pickup latency: from the task's ready time (its enqueue, or
// the end of its delay or retry backoff) to the start of its handler, so a delayed task is
// not counted as waiting while it is not due. Its buckets include the usual SLA names' values
// (1, 5, 10, 30, 60, 300 s), so the share of tasks started within a queue's SLA is a ratio
// of two series, for example for five_second over 5 minutes:
//
//	sum(rate(brisk_task_wait_seconds_bucket{queue="five_second",le="5"}[5m]))
//	  / sum(rate(brisk_task_wait_seconds_count{queue="five_second"}[5m]))
package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/briskq/brisk"
)

// Buckets are the histogram buckets of both histograms, in seconds: fine below a second,
// then the common SLA values.
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Worker holds the series of one or more workers of a process.
type Worker struct {
	duration *prometheus.HistogramVec
	wait     *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
}

// New registers the series with reg and returns them. Registering twice with one registry
// is an error (use one Worker for every worker of a process).
func New(reg prometheus.Registerer) (*Worker, error) {
	m := &Worker{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "brisk_task_duration_seconds", Help: "How long handlers ran, by outcome.", Buckets: Buckets,
		}, []string{"queue", "type", "outcome"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "brisk_task_wait_seconds", Help: "Pickup latency: from a task's ready time to the start of its handler.", Buckets: Buckets,
		}, []string{"queue", "type"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brisk_tasks_total", Help: "Handler runs by outcome: done, retried, dead, released.",
		}, []string{"queue", "type", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "brisk_tasks_in_flight", Help: "Handlers running now.",
		}, []string{"queue", "type"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.wait, m.outcomes, m.inFlight} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, fmt.Errorf("metrics: %w: the brisk worker series are registered already: %v", brisk.ErrInvalid, err)
			}
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Hooks returns the hooks that record the series.
func (m *Worker) Hooks() brisk.Hooks {
	return brisk.Hooks{
		Start: func(_ context.Context, t *brisk.Task) {
			m.inFlight.WithLabelValues(t.Queue, t.Type).Inc()
			if !t.ReadyAt.IsZero() {
				m.wait.WithLabelValues(t.Queue, t.Type).Observe(max(0, time.Since(t.ReadyAt).Seconds()))
			}
		},
		Finish: func(_ context.Context, t *brisk.Task, o brisk.Outcome) {
			m.inFlight.WithLabelValues(t.Queue, t.Type).Dec()
			m.outcomes.WithLabelValues(t.Queue, t.Type, string(o.Kind)).Inc()
			m.duration.WithLabelValues(t.Queue, t.Type, string(o.Kind)).Observe(o.Elapsed.Seconds())
		},
	}
}

// Counter returns the counter of outcome (done, retried, dead, released) for a queue and
// a task type.
func (m *Worker) Counter(queue, typ, outcome string) prometheus.Counter {
	return m.outcomes.WithLabelValues(queue, typ, outcome)
}

// Instrument adds the hooks to w (before it starts).
func (m *Worker) Instrument(w *brisk.Worker) { w.AddHooks(m.Hooks()) }
