package autoscale

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"
)

// Snapshotter is implemented by policies whose decisions depend on what they saw before
// (windows of recommendations, recent peaks, smoothed rates), so that an autoscaler that
// restarts goes on where it stopped instead of forgetting the last surge. Neither method
// may run concurrently with Decide.
type Snapshotter interface {
	// Snapshot encodes the policy's memory.
	Snapshot() ([]byte, error)
	// Restore replaces the policy's memory with a Snapshot of a policy of the same kind.
	// What has aged since is forgotten as it would have been: windows drop entries older
	// than their length at the next decision, smoothed rates decay over the gap.
	Restore(data []byte) error
}

var _ Snapshotter = (*SLA)(nil)

// windowState is a window's entries as a snapshot holds them.
type windowState struct {
	At   []time.Time `json:"at"`
	Want []int       `json:"want"`
}

func (w *window) state() windowState {
	return windowState{At: slices.Clone(w.at), Want: slices.Clone(w.want)}
}

// slaState is the memory of the sla policy.
type slaState struct {
	Up          windowState `json:"up"`
	Down        windowState `json:"down"`
	Backlog     windowState `json:"backlog"`
	Peak        windowState `json:"peak"`
	Rescue      windowState `json:"rescue"`
	Rate        float64     `json:"rate"`
	HandlerTime float64     `json:"handler_time"`
	Last        time.Time   `json:"last"`
}

// Snapshot implements Snapshotter.
func (p *SLA) Snapshot() ([]byte, error) {
	return json.Marshal(slaState{
		Up: p.up.state(), Down: p.down.state(), Backlog: p.backlog.state(), Peak: p.peak.state(),
		Rescue: p.rescue.state(), Rate: p.rate, HandlerTime: p.ht, Last: p.last,
	})
}

// Restore implements Snapshotter. A snapshot that is not the sla policy's is an error
// wrapping brisk.ErrInvalid, and the policy is left as it was.
func (p *SLA) Restore(data []byte) error {
	var s slaState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return invalidf("sla: restore: not a snapshot of the sla policy: %v", err)
	}
	if s.Rate < 0 || s.HandlerTime < 0 {
		return invalidf("sla: restore: negative rate %g or handler time %g", s.Rate, s.HandlerTime)
	}
	pairs := []struct {
		w *window
		s windowState
	}{{&p.up, s.Up}, {&p.down, s.Down}, {&p.backlog, s.Backlog}, {&p.peak, s.Peak}, {&p.rescue, s.Rescue}}
	for _, r := range pairs { // check them all before changing any
		if len(r.s.At) != len(r.s.Want) {
			return invalidf("sla: restore: a window with %d times and %d counts", len(r.s.At), len(r.s.Want))
		}
	}
	for _, r := range pairs {
		r.w.at, r.w.want = r.s.At, r.s.Want
	}
	p.rate, p.ht, p.last = s.Rate, s.HandlerTime, s.Last
	return nil
}
