package brisk_test

import (
	"errors"
	"testing"

	"github.com/briskq/brisk"
)

// The PostgreSQL broker's tests cover EnqueueTx on a broker that has it
// (broker/pgbroker); here a broker without it refuses and stores nothing.
func TestEnqueueTxUnsupported(t *testing.T) {
	b, c := setup(t)
	task := brisk.NewTask("t", nil, brisk.WithID("tx-1"))
	ids, err := c.EnqueueTx(t.Context(), struct{}{}, task)
	if !errors.Is(err, brisk.ErrUnsupported) || !errors.Is(err, brisk.ErrInvalid) || ids != nil {
		t.Fatalf("EnqueueTx on %T = %v, %v; want an error wrapping ErrUnsupported and ErrInvalid", b, ids, err)
	}
	if _, err := b.Task(t.Context(), "tx-1"); !errors.Is(err, brisk.ErrNotFound) {
		t.Errorf("Task after a refused EnqueueTx: %v, want ErrNotFound", err)
	}
}
