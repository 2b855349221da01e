package dashboard

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/briskq/brisk"
)

// metricsTimeout bounds the broker call of one scrape.
const metricsTimeout = 5 * time.Second

// queueCollector exports every queue's statistics in the Prometheus format, read from the
// broker at each scrape (one Stats call, as the queues page makes):
//
//	brisk_up                               1 when the broker answered the scrape, else 0
//	brisk_queue_latency_seconds{queue}     age of the oldest pending task
//	brisk_queue_sla_seconds{queue}         the queue's SLA (0: none)
//	brisk_queue_pending{queue}             and _scheduled, _running, _dead, _cancelled: tasks by state
//	brisk_queue_retained{queue}            completed tasks kept for a retention
//	brisk_queue_paused{queue}              1 while the queue is paused
//	brisk_queue_completed_total{queue}     acks since the queue was created
//	brisk_queue_failed_total{queue}        failed attempts since the queue was created
//
// The latency, SLA and pending names are those of brisk autoscale --metrics, so a KEDA
// ScaledObject or an alert written for one works on the other.
type queueCollector struct {
	in  *brisk.Inspector
	log *slog.Logger

	up, latency, sla, pending, scheduled, running, dead, cancelled, retained, paused, completed, failed *prometheus.Desc
}

func newQueueCollector(in *brisk.Inspector, log *slog.Logger) *queueCollector {
	q := []string{"queue"}
	return &queueCollector{
		in: in, log: log,
		up:        prometheus.NewDesc("brisk_up", "1 when the broker answered the scrape, else 0.", nil, nil),
		latency:   prometheus.NewDesc("brisk_queue_latency_seconds", "Queue latency: how long the oldest pending task has waited, in seconds.", q, nil),
		sla:       prometheus.NewDesc("brisk_queue_sla_seconds", "The queue's latency SLA in seconds (0: none declared).", q, nil),
		pending:   prometheus.NewDesc("brisk_queue_pending", "Tasks waiting for a handler.", q, nil),
		scheduled: prometheus.NewDesc("brisk_queue_scheduled", "Tasks delayed or waiting for a retry.", q, nil),
		running:   prometheus.NewDesc("brisk_queue_running", "Tasks leased to a worker.", q, nil),
		dead:      prometheus.NewDesc("brisk_queue_dead", "Dead tasks kept for inspection and retry.", q, nil),
		cancelled: prometheus.NewDesc("brisk_queue_cancelled", "Cancelled tasks kept.", q, nil),
		retained:  prometheus.NewDesc("brisk_queue_retained", "Completed tasks kept for a retention.", q, nil),
		paused:    prometheus.NewDesc("brisk_queue_paused", "1 while the queue is paused, else 0.", q, nil),
		completed: prometheus.NewDesc("brisk_queue_completed_total", "Tasks acked since the queue was created.", q, nil),
		failed:    prometheus.NewDesc("brisk_queue_failed_total", "Failed attempts since the queue was created.", q, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.latency, c.sla, c.pending, c.scheduled, c.running, c.dead, c.cancelled, c.retained, c.paused, c.completed, c.failed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one Stats call per scrape.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	qs, err := c.in.Queues(ctx)
	if err != nil {
		c.log.Error("dashboard: metrics", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	gauge := func(d *prometheus.Desc, v float64, queue string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, queue)
	}
	for _, q := range qs {
		gauge(c.latency, q.Latency.Seconds(), q.Name)
		gauge(c.sla, q.SLA.Seconds(), q.Name)
		gauge(c.pending, float64(q.Pending), q.Name)
		gauge(c.scheduled, float64(q.Scheduled), q.Name)
		gauge(c.running, float64(q.Running), q.Name)
		gauge(c.dead, float64(q.Dead), q.Name)
		gauge(c.cancelled, float64(q.Cancelled), q.Name)
		gauge(c.retained, float64(q.Retained), q.Name)
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		gauge(c.paused, paused, q.Name)
		ch <- prometheus.MustNewConstMetric(c.completed, prometheus.CounterValue, float64(q.Completed), q.Name)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(q.Failed), q.Name)
	}
}

// metricsHandler serves /metrics from a registry of its own (so that an application that
// mounts the dashboard keeps its default registry to itself).
func metricsHandler(in *brisk.Inspector, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newQueueCollector(in, log))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
