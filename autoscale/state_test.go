package autoscale

import (
	"errors"
	"testing"
	"time"

	"github.com/briskq/brisk"
)

// TestSLASnapshotRestore: a policy restored from a snapshot decides as the one it was taken
// from, so a restarted autoscaler keeps its insurance against the last surge; a snapshot
// of something else is refused and changes nothing.
func TestSLASnapshotRestore(t *testing.T) {
	t.Parallel()
	samples := func(i int) Sample {
		s := Sample{SLA: 30 * time.Second, HandlerTime: 200 * time.Millisecond, Slots: 10, ArrivalRate: 30, Serving: 1}
		if i >= 5 && i < 11 { // a minute at 300/s
			s.ArrivalRate, s.Pending, s.Latency = 300, int64(600*(i-4)), time.Duration(i-4)*5*time.Second
		}
		return s
	}
	a := &SLA{}
	current := 1
	for i := range 14 {
		current = a.Decide(at(10*i), samples(i), current).Desired
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, fresh := &SLA{}, &SLA{}
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	cb, cf := current, current
	differs := false
	for i := 14; i < 60; i++ {
		da := a.Decide(at(10*i), samples(i), current)
		db := b.Decide(at(10*i), samples(i), cb)
		df := fresh.Decide(at(10*i), samples(i), cf)
		if da.Desired != db.Desired || da.Reason != db.Reason {
			t.Fatalf("t=%ds: restored policy decided %d (%s), the original %d (%s)", 10*i, db.Desired, db.Reason, da.Desired, da.Reason)
		}
		differs = differs || df.Desired != da.Desired
		current, cb, cf = da.Desired, db.Desired, df.Desired
	}
	if !differs {
		t.Errorf("a fresh policy decided as the restored one: the test does not show what the snapshot keeps")
	}

	before, _ := b.Snapshot()
	for _, bad := range []string{`{"up":{"at":["2026-01-01T00:00:00Z"],"want":[]}}`, `{"surprise":1}`, `[]`, `{"rate":-1}`} {
		if err := b.Restore([]byte(bad)); !errors.Is(err, brisk.ErrInvalid) {
			t.Errorf("Restore(%s) = %v, want an error wrapping ErrInvalid", bad, err)
		}
	}
	if after, _ := b.Snapshot(); string(after) != string(before) {
		t.Errorf("a refused Restore changed the policy:\n%s\n%s", before, after)
	}
}
