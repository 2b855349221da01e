package brokertest

import (
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testSamples checks the optional broker.SampleStore: samples come back from any broker
// value on the store, by queue and time, to the millisecond; a sample in the same second as
// a stored one of its queue replaces it; samples older than broker.SampleRetention are
// dropped; bad samples are refused whole; deleting a queue (broker.QueueDeleter) drops its
// samples.
func (s *suite) testSamples(t *testing.T) {
	store := func(e *env, b broker.Broker) broker.SampleStore {
		e.t.Helper()
		return optional[broker.SampleStore](e, b, "broker.SampleStore", "dashboards keep their samples in memory, one history per process, lost at restart")
	}
	add := func(e *env, st broker.SampleStore, samples ...broker.QueueSample) {
		e.t.Helper()
		if err := st.AddSamples(e.ctx, samples); err != nil {
			e.t.Fatalf("AddSamples of %d sample(s): %v", len(samples), err)
		}
	}
	get := func(e *env, st broker.SampleStore, since time.Time) []broker.QueueSample {
		e.t.Helper()
		got, err := st.Samples(e.ctx, since)
		if err != nil {
			e.t.Fatalf("Samples: %v", err)
		}
		return got
	}

	s.test(t, "SharedAndOrdered", func(e *env) {
		st := store(e, e.b)
		e.enqueue(NewTask("a", "t", nil), NewTask("b", "t", nil))
		now := time.Now().Truncate(time.Millisecond)
		t0 := now.Add(-10 * time.Minute)
		add(e, st,
			broker.QueueSample{Queue: "b", At: t0, Latency: 2 * time.Second, Completed: 5, Failed: 1},
			broker.QueueSample{Queue: "a", At: t0.Add(5 * time.Second), Latency: 1500 * time.Millisecond, Completed: 7},
		)
		// Another broker value (another dashboard process) adds and reads the same store.
		other := store(e, e.open())
		add(e, other, broker.QueueSample{Queue: "a", At: t0.Add(10 * time.Second), Latency: 3 * time.Second, Completed: 9, Failed: 2})
		got := get(e, st, t0)
		want := []broker.QueueSample{
			{Queue: "a", At: t0.Add(5 * time.Second), Latency: 1500 * time.Millisecond, Completed: 7},
			{Queue: "a", At: t0.Add(10 * time.Second), Latency: 3 * time.Second, Completed: 9, Failed: 2},
			{Queue: "b", At: t0, Latency: 2 * time.Second, Completed: 5, Failed: 1},
		}
		wantSamples(e.t, "Samples(since the first)", got, want)
		wantSamples(e.t, "Samples(since the second)", get(e, other, t0.Add(5*time.Second)), want[:2])
		wantSamples(e.t, "Samples(since now)", get(e, st, now), nil)
	})

	s.test(t, "OnePerSecond", func(e *env) {
		st := store(e, e.b)
		e.enqueue(NewTask("q", "t", nil))
		sec := time.Now().Add(-time.Minute).Truncate(time.Second)
		add(e, st, broker.QueueSample{Queue: "q", At: sec.Add(100 * time.Millisecond), Latency: time.Second})
		add(e, st, broker.QueueSample{Queue: "q", At: sec.Add(700 * time.Millisecond), Latency: 2 * time.Second, Completed: 1})
		add(e, st, broker.QueueSample{Queue: "q", At: sec.Add(time.Second), Latency: 3 * time.Second, Completed: 2})
		wantSamples(e.t, "Samples after three samples in two seconds", get(e, st, sec), []broker.QueueSample{
			{Queue: "q", At: sec.Add(700 * time.Millisecond), Latency: 2 * time.Second, Completed: 1},
			{Queue: "q", At: sec.Add(time.Second), Latency: 3 * time.Second, Completed: 2},
		})
	})

	s.test(t, "Retention", func(e *env) {
		st := store(e, e.b)
		e.enqueue(NewTask("q", "t", nil))
		now := time.Now().Truncate(time.Millisecond)
		old := broker.QueueSample{Queue: "q", At: now.Add(-broker.SampleRetention - time.Minute), Latency: time.Second}
		kept := broker.QueueSample{Queue: "q", At: now.Add(-broker.SampleRetention + time.Minute), Latency: time.Second}
		add(e, st, old, kept)
		add(e, st, broker.QueueSample{Queue: "q", At: now, Latency: time.Second})
		got := get(e, st, now.Add(-2*broker.SampleRetention))
		if len(got) != 2 || !got[0].At.Equal(kept.At) {
			e.t.Errorf("Samples after adding one older than SampleRetention: %v, want the two within it", got)
		}
	})

	s.test(t, "BadInput", func(e *env) {
		st := store(e, e.b)
		e.enqueue(NewTask("q", "t", nil))
		now := time.Now()
		for what, bad := range map[string]broker.QueueSample{
			"an invalid queue name": {Queue: "has space", At: now},
			"a zero time":           {Queue: "q"},
			"a negative latency":    {Queue: "q", At: now, Latency: -1},
			"a negative counter":    {Queue: "q", At: now, Completed: -1},
		} {
			err := st.AddSamples(e.ctx, []broker.QueueSample{{Queue: "q", At: now.Add(-time.Second)}, bad})
			wantErr(e.t, "AddSamples with "+what, err, broker.ErrInvalid)
		}
		wantSamples(e.t, "Samples after refused calls", get(e, st, now.Add(-time.Hour)), nil)
		if err := st.AddSamples(e.ctx, nil); err != nil {
			e.t.Errorf("AddSamples of nothing: %v", err)
		}
	})

	s.test(t, "DroppedWithQueue", func(e *env) {
		st := store(e, e.b)
		d := optional[broker.QueueDeleter](e, e.b, "broker.QueueDeleter", "queues are never deleted")
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "q"}); err != nil {
			e.t.Fatal(err)
		}
		now := time.Now().Truncate(time.Millisecond)
		add(e, st, broker.QueueSample{Queue: "q", At: now.Add(-time.Minute), Latency: time.Second})
		if err := d.DeleteQueue(e.ctx, "q"); err != nil {
			e.t.Fatal(err)
		}
		if err := e.b.DeclareQueue(e.ctx, broker.QueueConfig{Name: "q"}); err != nil {
			e.t.Fatal(err)
		}
		wantSamples(e.t, "Samples of a queue deleted and declared again", get(e, st, now.Add(-time.Hour)), nil)
	})
}

// wantSamples compares samples, their times to the millisecond.
func wantSamples(t *testing.T, what string, got, want []broker.QueueSample) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Queue == w.Queue && near(g.At, w.At, timeTolerance) && g.Latency == w.Latency &&
			g.Completed == w.Completed && g.Failed == w.Failed
	}
	if !same {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
