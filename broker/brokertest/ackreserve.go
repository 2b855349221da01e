package brokertest

import (
	"testing"

	"github.com/briskq/brisk/broker"
)

// testAckReserve checks the optional broker.AckReserver: AckReserve does what Ack and then
// Reserve do, each with its own result: the acked tasks are gone and counted, a lease not
// held is reported through ackErr wrapping ErrLeaseLost while the others are acked, the
// reserve follows the queues in order and their limits, and bad reserve parameters or a
// closed broker give Reserve's errors.
func (s *suite) testAckReserve(t *testing.T) {
	const without = "a worker acks and reserves in two round trips"
	ackReserver := func(e *env) broker.AckReserver {
		e.t.Helper()
		return optional[broker.AckReserver](e, e.b, "broker.AckReserver", without)
	}

	s.test(t, "AcksThenReserves", func(e *env) {
		ar := ackReserver(e)
		tasks := NewTasks("ar", "t", 5)
		e.enqueueEach(tasks...)
		first := e.reserveFrom("ar", 2, longLease)
		if len(first) != 2 {
			e.t.Fatalf("Reserve(limit 2) got %d tasks", len(first))
		}
		got, ackErr, err := ar.AckReserve(e.ctx, leases(first), broker.ReserveParams{Queues: queues("ar"), Limit: 2, Lease: longLease, WorkerID: "w1"})
		if ackErr != nil || err != nil {
			e.t.Fatalf("AckReserve: ackErr %v, err %v", ackErr, err)
		}
		if want := ids(tasks[2:4]); !sameSet(ids(got), want) {
			e.t.Errorf("AckReserve reserved %v, want the next two in order %v", ids(got), want)
		}
		for _, task := range got {
			if task.State != broker.StateRunning || task.Attempt != 1 || task.Lease.Token == "" {
				e.t.Errorf("AckReserve returned %s, want running, attempt 1, with a lease", fmtTask(task))
			}
		}
		e.wantGone("acked by AckReserve", ids(first)...)
		st := e.mustStats("ar")
		if st.Running != 2 || st.Pending != 1 {
			e.t.Errorf("Stats after AckReserve: %s, want 1 pending and 2 running", countsOf(st))
		}
		if st.Completed != 0 && st.Completed != 2 {
			e.t.Errorf("Stats after AckReserve of 2: Completed %d, want 2", st.Completed)
		}
		// With no acks it is Reserve.
		last, ackErr, err := ar.AckReserve(e.ctx, nil, broker.ReserveParams{Queues: queues("ar"), Limit: 10, Lease: longLease})
		if ackErr != nil || err != nil || len(last) != 1 || last[0].ID != tasks[4].ID {
			e.t.Errorf("AckReserve with no acks: got %v (ackErr %v, err %v), want task %s", ids(last), ackErr, err, tasks[4].ID)
		}
	})

	s.test(t, "LeaseNotHeld", func(e *env) {
		ar := ackReserver(e)
		e.enqueueEach(NewTasks("ar", "t", 3)...)
		held := e.reserveFrom("ar", 2, longLease)
		stale := held[1].Lease
		stale.Token += "-stale"
		got, ackErr, err := ar.AckReserve(e.ctx, []broker.Lease{held[0].Lease, stale}, broker.ReserveParams{Queues: queues("ar"), Limit: 5, Lease: longLease})
		if err != nil {
			e.t.Fatalf("AckReserve: err %v", err)
		}
		wantErr(e.t, "AckReserve with a lease not held: ackErr", ackErr, broker.ErrLeaseLost, held[1].ID)
		if len(got) != 1 {
			e.t.Errorf("AckReserve reserved %d tasks, want the 1 pending", len(got))
		}
		e.wantGone("acked by AckReserve", held[0].ID)
		e.wantState(held[1].ID, broker.StateRunning)
	})

	s.test(t, "QueuesInOrder", func(e *env) {
		ar := ackReserver(e)
		e.enqueue(NewTasks("ar-a", "t", 1)...)
		e.enqueue(NewTasks("ar-b", "t", 3)...)
		e.enqueue(NewTasks("ar-c", "t", 3)...)
		a := e.reserveFrom("ar-a", 1, longLease)
		b := e.reserveFrom("ar-b", 1, longLease)
		p := broker.ReserveParams{Lease: longLease, Limit: 4, Queues: []broker.QueueLimit{
			{Name: "ar-a"}, {Name: "ar-b", Max: 1}, {Name: "ar-c"},
		}}
		got, ackErr, err := ar.AckReserve(e.ctx, append(leases(a), leases(b)...), p)
		if ackErr != nil || err != nil {
			e.t.Fatalf("AckReserve: ackErr %v, err %v", ackErr, err)
		}
		per := map[string]int{}
		for _, task := range got {
			per[task.Queue]++
		}
		if len(got) != 4 || per["ar-b"] != 1 || per["ar-c"] != 3 {
			e.t.Errorf("AckReserve(%s) got %v per queue, want ar-b 1 (its Max) and ar-c 3", fmtParams(p), per)
		}
		e.wantGone("acked by AckReserve", ids(a)...)
		e.wantGone("acked by AckReserve", ids(b)...)
	})

	s.test(t, "BadParamsStillAck", func(e *env) {
		ar := ackReserver(e)
		e.enqueueEach(NewTasks("ar", "t", 1)...)
		held := e.reserveFrom("ar", 1, longLease)
		_, ackErr, err := ar.AckReserve(e.ctx, leases(held), broker.ReserveParams{Queues: queues("ar"), Limit: 0, Lease: longLease})
		wantErr(e.t, "AckReserve with Limit 0: err", err, broker.ErrInvalid)
		if ackErr != nil {
			e.t.Errorf("AckReserve with Limit 0: ackErr %v, want the acks done", ackErr)
		}
		e.wantGone("acked by AckReserve", ids(held)...)
	})

	s.test(t, "AfterClose", func(e *env) {
		b := e.open()
		ar := optional[broker.AckReserver](e, b, "broker.AckReserver", without)
		e.enqueueEach(NewTasks("ar", "t", 1)...)
		held := e.reserveFrom("ar", 1, longLease)
		if err := b.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
		_, ackErr, err := ar.AckReserve(e.ctx, leases(held), broker.ReserveParams{Queues: queues("ar"), Limit: 1, Lease: longLease})
		wantErr(e.t, "AckReserve after Close: ackErr", ackErr, broker.ErrClosed)
		wantErr(e.t, "AckReserve after Close: err", err, broker.ErrClosed)
		e.wantState(held[0].ID, broker.StateRunning)
	})
}
