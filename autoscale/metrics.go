package autoscale

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics exports what the controllers see and decide in the Prometheus format, on a
// registry of its own (so that it can be mounted next to other handlers, e.g. by the
// dashboard, without clashing with the default registry):
//
//	brisk_queue_latency_seconds{queue}           age of the oldest pending task
//	brisk_queue_pending{queue}                   tasks waiting for a handler
//	brisk_queue_sla_seconds{queue}               the queue's SLA (0: none)
//	brisk_autoscale_desired_workers{queue}       the count the queue's controller wants
//	brisk_autoscale_current_workers              the workers the actuator keeps
//	brisk_autoscale_decisions_total{queue,direction}  decisions, direction up, down or hold
//
// A KEDA ScaledObject or an HPA can scale on brisk_queue_latency_seconds (see
// docs/keda/).
type Metrics struct {
	reg                            *prometheus.Registry
	latency, pending, sla, desired *prometheus.GaugeVec
	current                        prometheus.Gauge
	decisions                      *prometheus.CounterVec
}

// NewMetrics returns the collectors on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "brisk_queue_latency_seconds",
			Help: "Queue latency: how long the oldest pending task has waited, in seconds."}, []string{"queue"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "brisk_queue_pending",
			Help: "Tasks waiting for a handler."}, []string{"queue"}),
		sla: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "brisk_queue_sla_seconds",
			Help: "The queue's latency SLA in seconds (0: none declared)."}, []string{"queue"}),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "brisk_autoscale_desired_workers",
			Help: "The worker count the queue's autoscaling controller wants."}, []string{"queue"}),
		current: prometheus.NewGauge(prometheus.GaugeOpts{Name: "brisk_autoscale_current_workers",
			Help: "The worker count the actuator keeps."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "brisk_autoscale_decisions_total",
			Help: "Autoscaling decisions, by queue and direction (up, down, hold)."}, []string{"queue", "direction"}),
	}
	m.reg.MustRegister(m.latency, m.pending, m.sla, m.desired, m.current, m.decisions)
	return m
}

// Registry returns the registry the collectors are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the /metrics handler for the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveSample sets the queue gauges from s.
func (m *Metrics) ObserveSample(s Sample) {
	m.latency.WithLabelValues(s.Queue).Set(s.Latency.Seconds())
	m.pending.WithLabelValues(s.Queue).Set(float64(s.Pending))
	m.sla.WithLabelValues(s.Queue).Set(s.SLA.Seconds())
}

// ObserveDecision records a decision of queue's controller: the desired count, the
// decision counter and, when the sample succeeded, the queue gauges. A decision whose
// sample failed leaves the queue gauges as they were.
func (m *Metrics) ObserveDecision(queue string, d Decision) {
	if !d.Sample.At.IsZero() {
		s := d.Sample
		s.Queue = queue
		m.ObserveSample(s)
	}
	m.desired.WithLabelValues(queue).Set(float64(d.Desired))
	dir := "hold"
	switch {
	case d.Desired > d.Current:
		dir = "up"
	case d.Desired < d.Current:
		dir = "down"
	}
	m.decisions.WithLabelValues(queue, dir).Inc()
}

// SetCurrentWorkers sets brisk_autoscale_current_workers.
func (m *Metrics) SetCurrentWorkers(n int) { m.current.Set(float64(n)) }
