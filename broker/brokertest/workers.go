package brokertest

import (
	"slices"
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testWorkers checks worker records: Heartbeat stores and replaces, Workers filters by the
// time of the last heartbeat, Deregister removes.
func (s *suite) testWorkers(t *testing.T) {
	s.test(t, "HeartbeatWorkersDeregister", func(e *env) {
		beat := func(w broker.WorkerInfo) {
			e.t.Helper()
			if err := e.b.Heartbeat(e.ctx, w); err != nil {
				e.t.Fatalf("Heartbeat(%s): %v", w.ID, err)
			}
		}
		list := func(since time.Time) map[string]broker.WorkerInfo {
			e.t.Helper()
			ws, err := e.b.Workers(e.ctx, since)
			if err != nil {
				e.t.Fatalf("Workers: %v", err)
			}
			out := map[string]broker.WorkerInfo{}
			for _, w := range ws {
				if _, dup := out[w.ID]; dup {
					e.t.Errorf("Workers lists %s twice", w.ID)
				}
				out[w.ID] = w
			}
			return out
		}
		started := time.Now().Add(-time.Minute).Round(0)
		beat(broker.WorkerInfo{ID: "w-old", Host: "h1", PID: 1, StartedAt: started, LastSeen: time.Now().Round(0)})
		// Heartbeats on each side of mark, whether the broker keeps the LastSeen given or
		// stamps its own clock.
		time.Sleep(50 * time.Millisecond)
		mark := time.Now()
		time.Sleep(50 * time.Millisecond)
		want := broker.WorkerInfo{
			ID: "w-new", Host: "host-2.example", PID: 4242, Queues: []string{"critical", "default"},
			Concurrency: 8, Busy: 3, StartedAt: started, LastSeen: time.Now().Round(0), Version: "v1.2.3",
		}
		beat(want)

		recent := list(mark)
		if _, ok := recent["w-old"]; ok || len(recent) != 1 {
			e.t.Errorf("Workers(since a time between two heartbeats) lists %v, want just w-new", keys(recent))
		}
		got, ok := recent["w-new"]
		if !ok {
			e.t.Fatalf("Workers(since) does not list the worker that just sent a heartbeat")
		}
		if got.Host != want.Host || got.PID != want.PID || !slices.Equal(got.Queues, want.Queues) ||
			got.Concurrency != want.Concurrency || got.Busy != want.Busy || got.Version != want.Version {
			e.t.Errorf("worker record = %+v, want %+v", got, want)
		}
		wantTime(e.t, "worker StartedAt", got.StartedAt, want.StartedAt, timeTolerance)
		if got.LastSeen.Before(mark) {
			e.t.Errorf("worker LastSeen = %s, before the heartbeat (%s)", fmtTime(got.LastSeen), fmtTime(mark))
		}
		if all := list(mark.Add(-time.Minute)); len(all) != 2 {
			e.t.Errorf("Workers(a minute ago) lists %v, want w-old and w-new", keys(all))
		}

		// A heartbeat replaces the record.
		want.Busy, want.LastSeen = 5, time.Now().Round(0)
		beat(want)
		if got := list(mark)["w-new"]; got.Busy != 5 {
			e.t.Errorf("worker Busy after a second heartbeat = %d, want 5 (the record is replaced)", got.Busy)
		}

		if err := e.b.Deregister(e.ctx, "w-new"); err != nil {
			e.t.Fatalf("Deregister: %v", err)
		}
		if all := list(time.Time{}); len(all) != 1 || all["w-old"].ID != "w-old" {
			e.t.Errorf("Workers after Deregister(w-new) lists %v, want just w-old", keys(all))
		}
	})
}

func keys(m map[string]broker.WorkerInfo) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
