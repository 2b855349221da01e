package autoscale

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// DecisionRecord is one decision as GET /decisions serves it (and the dashboard reads it
// with --autoscaler): when, for which queue, the count before and after, why, and the
// queue latency the decision saw (0 when sampling failed).
type DecisionRecord struct {
	Time           time.Time `json:"time"`
	Queue          string    `json:"queue"`
	Current        int       `json:"current"`
	Desired        int       `json:"desired"`
	Reason         string    `json:"reason"`
	LatencySeconds float64   `json:"latency_seconds"`
}

// NewDecisionRecord returns the record of d, a decision of queue's controller.
func NewDecisionRecord(queue string, d Decision) DecisionRecord {
	return DecisionRecord{Time: d.At, Queue: queue, Current: d.Current, Desired: d.Desired,
		Reason: d.Reason, LatencySeconds: d.Sample.Latency.Seconds()}
}

// Queue returns the queue the controller watches.
func (c *Controller) Queue() string { return c.cfg.Queue }

// ControllersDecisions returns a function listing the last decisions of every controller
// (see Controller.Decisions) as records, oldest first, for DecisionsHandler.
func ControllersDecisions(ctls ...*Controller) func() []DecisionRecord {
	return func() []DecisionRecord {
		var out []DecisionRecord
		for _, c := range ctls {
			for _, d := range c.Decisions() {
				out = append(out, NewDecisionRecord(c.Queue(), d))
			}
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
		return out
	}
}

// DecisionsHandler returns the GET /decisions handler: a JSON array of the records list
// returns ([] when there are none), e.g.
//
//	[{"time":"2026-01-02T15:04:05.123Z","queue":"emails","current":2,"desired":3,
//	  "reason":"latency 9s over target 8s","latency_seconds":9.1}]
func DecisionsHandler(list func() []DecisionRecord) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed", http.StatusMethodNotAllowed)
			return
		}
		recs := list()
		if recs == nil {
			recs = []DecisionRecord{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(recs) // the client went away
	})
}
