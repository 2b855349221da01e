package brokertest

import (
	"errors"
	"testing"

	"github.com/briskq/brisk/broker"
)

// testTxEnqueue checks the optional broker.TxEnqueuer, once for each kind of transaction
// that Harness.BeginTx begins: a rolled back transaction leaves no task that a worker
// could ever see, a task of an open transaction is invisible to every reader and runs
// once the transaction commits (waking a waiting worker), a batch is all or nothing and a
// duplicate leaves the transaction usable, and a transaction of a wrong type, or a closed
// broker, is refused.
func (s *suite) testTxEnqueue(t *testing.T) {
	const without = "tasks are enqueued in transactions of the broker's own only"
	setup := func(e *env) (broker.TxEnqueuer, []AppTx) {
		e.t.Helper()
		te := optional[broker.TxEnqueuer](e, e.b, "broker.TxEnqueuer", without)
		if s.h.BeginTx == nil {
			e.t.Fatalf("%T implements broker.TxEnqueuer but the Harness has no BeginTx to test it with", e.b)
		}
		txs := s.h.BeginTx(e.t, e.url)
		if len(txs) == 0 {
			e.t.Fatal("Harness.BeginTx began no transaction")
		}
		return te, txs
	}
	// each runs f with a fresh transaction of each kind.
	each := func(e *env, f func(te broker.TxEnqueuer, tx AppTx, queue string)) {
		te, txs := setup(e)
		f(te, txs[0], "tx0")
		for i := 1; i < len(txs); i++ {
			more := s.h.BeginTx(e.t, e.url)
			f(te, more[i], "tx"+itoa(i))
		}
	}

	s.test(t, "RollbackLeavesNothing", func(e *env) {
		each(e, func(te broker.TxEnqueuer, tx AppTx, queue string) {
			tasks := NewTasks(queue, "t", 3)
			if err := te.EnqueueTx(e.ctx, tx.Tx, tasks); err != nil {
				e.t.Fatalf("EnqueueTx in a %s: %v", tx.Kind, err)
			}
			if err := tx.Rollback(e.ctx); err != nil {
				e.t.Fatalf("Rollback of the %s: %v", tx.Kind, err)
			}
			if got := e.reserveFrom(queue, 10, longLease); len(got) != 0 {
				e.t.Errorf("%s rolled back: Reserve got %v, want nothing", tx.Kind, ids(got))
			}
			e.wantGone(tx.Kind+" rolled back", ids(tasks)...)
			e.wantCounts(queue, counts{})
		})
	})

	s.test(t, "InvisibleUntilCommit", func(e *env) {
		other := e.open()
		each(e, func(te broker.TxEnqueuer, tx AppTx, queue string) {
			task := NewTask(queue, "t", []byte(`{"n":1}`))
			if err := te.EnqueueTx(e.ctx, tx.Tx, []*broker.Task{task}); err != nil {
				e.t.Fatalf("EnqueueTx in a %s: %v", tx.Kind, err)
			}
			for _, b := range []broker.Broker{e.b, other} {
				got, err := b.Reserve(e.ctx, broker.ReserveParams{Queues: queues(queue), Limit: 10, Lease: longLease})
				if err != nil || len(got) != 0 {
					e.t.Errorf("Reserve while the %s is open: got %v (%v), want nothing", tx.Kind, ids(got), err)
				}
				if _, err := b.Task(e.ctx, task.ID); !errors.Is(err, broker.ErrNotFound) {
					e.t.Errorf("Task while the %s is open: %v, want ErrNotFound", tx.Kind, err)
				}
			}
			e.wantCounts(queue, counts{})
			e.wantWakeOn(other, queue, "the commit of a "+tx.Kind+" with a task", func() {
				if err := tx.Commit(e.ctx); err != nil {
					e.t.Fatalf("Commit of the %s: %v", tx.Kind, err)
				}
			})
			got := e.reserveFrom(queue, 10, longLease)
			if len(got) != 1 || got[0].ID != task.ID || string(got[0].Payload) != `{"n":1}` {
				e.t.Fatalf("after the commit of the %s: Reserve got %v, want task %s with its payload", tx.Kind, ids(got), task.ID)
			}
		})
	})

	s.test(t, "BatchAllOrNothing", func(e *env) {
		each(e, func(te broker.TxEnqueuer, tx AppTx, queue string) {
			stored := NewTask(queue, "t", nil)
			e.enqueue(stored)
			batch := NewTasks(queue, "t", 3)
			batch[2].ID = stored.ID
			err := te.EnqueueTx(e.ctx, tx.Tx, batch)
			wantErr(e.t, "EnqueueTx of a batch whose last ID is stored", err, broker.ErrDuplicate, stored.ID)
			good := NewTasks(queue, "t", 4)
			if err := te.EnqueueTx(e.ctx, tx.Tx, good); err != nil {
				e.t.Fatalf("EnqueueTx in the same %s after a refused duplicate: %v (the transaction must stay usable)", tx.Kind, err)
			}
			if err := tx.Commit(e.ctx); err != nil {
				e.t.Fatalf("Commit of the %s: %v", tx.Kind, err)
			}
			e.wantGone("in a batch refused for a duplicate", ids(batch[:2])...)
			got := e.reserveFrom(queue, 10, longLease)
			want := append([]string{stored.ID}, ids(good)...)
			if !sameSet(ids(got), want) {
				e.t.Errorf("after the commit: Reserve got %v, want the stored task and the whole second batch %v", ids(got), want)
			}
		})
	})

	s.test(t, "BadTransaction", func(e *env) {
		te, txs := setup(e)
		for _, bad := range []any{nil, "BEGIN", e.b} {
			task := NewTask("txbad", "t", nil)
			err := te.EnqueueTx(e.ctx, bad, []*broker.Task{task})
			wantErr(e.t, "EnqueueTx with a transaction that is not one", err, broker.ErrInvalid)
			e.wantGone("refused", task.ID)
		}
		bad := NewTask("", "t", nil)
		wantErr(e.t, "EnqueueTx of a task without a queue", te.EnqueueTx(e.ctx, txs[0].Tx, []*broker.Task{bad}), broker.ErrInvalid)
		b := e.open()
		if err := b.Close(); err != nil {
			e.t.Fatal(err)
		}
		closed := optional[broker.TxEnqueuer](e, b, "broker.TxEnqueuer", without)
		wantErr(e.t, "EnqueueTx on a closed broker", closed.EnqueueTx(e.ctx, txs[0].Tx, NewTasks("txbad", "t", 1)), broker.ErrClosed)
		for _, tx := range txs {
			if err := tx.Rollback(e.ctx); err != nil {
				e.t.Errorf("Rollback of the %s: %v", tx.Kind, err)
			}
		}
	})
}
