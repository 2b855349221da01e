package brokertest

import (
	"testing"
	"time"

	"github.com/briskq/brisk/broker"
)

// testLeader checks the optional broker.Leader: one holder at a time, renewal by the
// holder only, a larger fencing token at every new acquisition (after a release or an
// expiry), CurrentLeader, and bad input; and that every method of the optional
// capabilities of docs/scheduling.md (Canceler, Leader, ScheduleStore, Limiter) fails with
// ErrClosed after Close.
func (s *suite) testLeader(t *testing.T) {
	leader := func(e *env) broker.Leader {
		e.t.Helper()
		return optional[broker.Leader](e, e.b, "broker.Leader", "no leader can be elected through it")
	}
	acquire := func(e *env, l broker.Leader, holder string, ttl time.Duration, want bool) broker.Leadership {
		e.t.Helper()
		got, ok, err := l.AcquireLeadership(e.ctx, "lead", holder, ttl)
		if err != nil {
			e.t.Fatalf("AcquireLeadership(lead, %s): %v", holder, err)
		}
		if ok != want {
			e.t.Fatalf("AcquireLeadership(lead, %s) = %+v, %v; want held=%v", holder, got, ok, want)
		}
		return got
	}

	s.test(t, "OneHolderAndTokens", func(e *env) {
		l := leader(e)
		other := e.open().(broker.Leader)
		a := acquire(e, l, "a", longLease, true)
		if a.Holder != "a" || a.Token < 1 || !a.Until.After(time.Now()) {
			e.t.Errorf("first acquisition = %+v, want holder a, a token ≥ 1, a future Until", a)
		}
		b := acquire(e, other, "b", longLease, false)
		if b.Holder != "a" || b.Token != a.Token {
			e.t.Errorf("refused acquisition reports %+v, want the current holder a with token %d", b, a.Token)
		}
		again := acquire(e, l, "a", longLease, true) // the holder again: renewed, same token
		if again.Token != a.Token {
			e.t.Errorf("holder's second acquisition: token %d, want the same %d", again.Token, a.Token)
		}
		cur, held, err := other.CurrentLeader(e.ctx, "lead")
		if err != nil || !held || cur.Holder != "a" || cur.Token != a.Token {
			e.t.Errorf("CurrentLeader = %+v, %v, %v; want a with token %d", cur, held, err, a.Token)
		}
		if _, ok, err := other.RenewLeadership(e.ctx, broker.Leadership{Name: "lead", Holder: "b", Token: a.Token}, longLease); err != nil || ok {
			e.t.Errorf("RenewLeadership by a non-holder = %v, %v; want false", ok, err)
		}
		if err := other.ReleaseLeadership(e.ctx, broker.Leadership{Name: "lead", Holder: "b", Token: a.Token}); err != nil {
			e.t.Errorf("ReleaseLeadership by a non-holder: %v (must be a no-op)", err)
		}
		acquire(e, other, "b", longLease, false)
		if err := l.ReleaseLeadership(e.ctx, a); err != nil {
			e.t.Fatalf("ReleaseLeadership: %v", err)
		}
		if _, held, err := other.CurrentLeader(e.ctx, "lead"); err != nil || held {
			e.t.Errorf("CurrentLeader after release: held=%v, %v; want none", held, err)
		}
		b = acquire(e, other, "b", longLease, true)
		if b.Token <= a.Token {
			e.t.Errorf("acquisition after a release: token %d, want more than %d", b.Token, a.Token)
		}
		if _, ok, err := l.RenewLeadership(e.ctx, a, longLease); err != nil || ok {
			e.t.Errorf("RenewLeadership of the released leadership = %v, %v; want false", ok, err)
		}
	})

	s.test(t, "Expiry", func(e *env) {
		l := leader(e)
		a := acquire(e, l, "a", shortLease, true)
		renewed, ok, err := l.RenewLeadership(e.ctx, a, shortLease)
		if err != nil || !ok || renewed.Until.Before(a.Until) {
			e.t.Fatalf("RenewLeadership = %+v, %v, %v; want held with a later Until", renewed, ok, err)
		}
		sleepUntil(renewed.Until)
		if _, held, err := l.CurrentLeader(e.ctx, "lead"); err != nil || held {
			e.t.Errorf("CurrentLeader after expiry: held=%v, %v; want none", held, err)
		}
		b := acquire(e, e.open().(broker.Leader), "b", longLease, true)
		if b.Token <= a.Token {
			e.t.Errorf("acquisition after an expiry: token %d, want more than %d", b.Token, a.Token)
		}
		if _, ok, err := l.RenewLeadership(e.ctx, renewed, longLease); err != nil || ok {
			e.t.Errorf("RenewLeadership after another took over = %v, %v; want false", ok, err)
		}
		if cur, _, _ := l.CurrentLeader(e.ctx, "lead"); cur.Holder != "b" {
			e.t.Errorf("a refused renewal changed the leader to %q", cur.Holder)
		}
	})

	s.test(t, "BadInput", func(e *env) {
		l := leader(e)
		for _, c := range []struct {
			name, holder string
			ttl          time.Duration
		}{{"", "a", time.Second}, {"has space", "a", time.Second}, {"lead", "", time.Second}, {"lead", "a", 0}, {"lead", "a", -time.Second}} {
			_, _, err := l.AcquireLeadership(e.ctx, c.name, c.holder, c.ttl)
			wantErr(e.t, "AcquireLeadership("+quote(c.name)+", "+quote(c.holder)+", "+c.ttl.String()+")", err, broker.ErrInvalid)
		}
		if _, held, err := l.CurrentLeader(e.ctx, "lead"); err != nil || held {
			e.t.Errorf("a refused acquisition left a leader (%v, %v)", held, err)
		}
	})
	s.test(t, "AfterClose", func(e *env) {
		b := e.open()
		var calls []struct {
			what string
			call func() error
		}
		add := func(what string, call func() error) {
			calls = append(calls, struct {
				what string
				call func() error
			}{what, call})
		}
		ctx := e.ctx
		l := broker.Leadership{Name: "lead", Holder: "a", Token: 1}
		if c, ok := b.(broker.Canceler); ok {
			add("Cancel", func() error { _, err := c.Cancel(ctx, "x"); return err })
			add("Revoked", func() error {
				_, err := c.Revoked(ctx, []broker.Lease{{TaskID: "x", Queue: "q", Token: "t"}})
				return err
			})
		}
		if ld, ok := b.(broker.Leader); ok {
			add("AcquireLeadership", func() error { _, _, err := ld.AcquireLeadership(ctx, "lead", "a", time.Second); return err })
			add("RenewLeadership", func() error { _, _, err := ld.RenewLeadership(ctx, l, time.Second); return err })
			add("ReleaseLeadership", func() error { return ld.ReleaseLeadership(ctx, l) })
			add("CurrentLeader", func() error { _, _, err := ld.CurrentLeader(ctx, "lead"); return err })
		}
		if st, ok := b.(broker.ScheduleStore); ok {
			add("PutSchedule", func() error {
				return st.PutSchedule(ctx, broker.Schedule{Name: "s", Spec: "@every 1s", Queue: "q", Type: "t", MaxAttempts: 1})
			})
			add("DeleteSchedule", func() error { return st.DeleteSchedule(ctx, "s") })
			add("Schedules", func() error { _, err := st.Schedules(ctx); return err })
			add("MarkScheduleRun", func() error { return st.MarkScheduleRun(ctx, l, "s", time.Now(), "x") })
		}
		if lim, ok := b.(broker.Limiter); ok {
			add("SetLimit", func() error { return lim.SetLimit(ctx, broker.Limit{Queue: "q", MaxRunning: 1}) })
			add("DeleteLimit", func() error { return lim.DeleteLimit(ctx, "q", "") })
			add("Limits", func() error { _, err := lim.Limits(ctx); return err })
		}
		if len(calls) == 0 {
			e.t.Skipf("SKIPPED: %T implements none of broker.Canceler, Leader, ScheduleStore, Limiter", b)
		}
		if err := b.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		for _, c := range calls {
			wantErr(e.t, c.what+" after Close", c.call(), broker.ErrClosed)
		}
	})
}
