package rabbitbroker_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/broker/brokertest"
)

// TestInspectorOnRabbitMQ checks what the user API says on RabbitMQ: dead tasks are listed,
// retried and deleted; listing pending tasks and deleting them by ID fail with
// ErrUnsupported naming the broker; and Stats says where its inexact figures come from.
func TestInspectorOnRabbitMQ(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openBroker(t, newURL(t))
	in := brisk.NewInspector(b)
	tasks := brokertest.NewTasks("q", "t", 3)
	if err := b.Enqueue(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	got, err := b.Reserve(ctx, broker.ReserveParams{Queues: q1, Limit: 2, Lease: time.Minute})
	if err != nil || len(got) != 2 {
		t.Fatalf("Reserve = %d, %v", len(got), err)
	}
	for _, task := range got {
		if err := b.Kill(ctx, task.Lease, "bad input"); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := in.Tasks(ctx, "q", brisk.StateDead, 10, 0)
	if err != nil || len(dead) != 2 || dead[0].LastError != "bad input" || dead[0].FailedAt.IsZero() {
		t.Fatalf("Tasks(dead) = %v, %v; want the 2 killed tasks with their error and failure time", dead, err)
	}
	for _, state := range []brisk.State{brisk.StatePending, brisk.StateScheduled, brisk.StateRunning} {
		_, err := in.Tasks(ctx, "q", state, 10, 0)
		if !errors.Is(err, brisk.ErrUnsupported) || !strings.Contains(err.Error(), "rabbitmq") {
			t.Errorf("Tasks(%s) = %v, want ErrUnsupported naming the broker", state, err)
		}
	}
	if _, err := in.DeleteTasks(ctx, "q", brisk.StatePending, tasks[2].ID); !errors.Is(err, brisk.ErrUnsupported) {
		t.Errorf("DeleteTasks(pending, id) = %v, want ErrUnsupported", err)
	}
	if n, err := in.RetryDead(ctx, "q", dead[0].ID); err != nil || n != 1 {
		t.Errorf("RetryDead(one) = %d, %v; want 1, nil", n, err)
	}
	if n, err := in.DeleteTasks(ctx, "q", brisk.StateDead); err != nil || n != 1 {
		t.Errorf("DeleteTasks(dead, all) = %d, %v; want 1, nil", n, err)
	}
	qs, err := in.Queues(ctx)
	if err != nil || len(qs) != 1 {
		t.Fatalf("Queues = %v, %v", qs, err)
	}
	if qs[0].Pending != 2 || qs[0].Dead != 0 {
		t.Errorf("Queues: pending %d dead %d, want 2 and 0", qs[0].Pending, qs[0].Dead)
	}
	if !slices.ContainsFunc(qs[0].Notes, func(n string) bool { return strings.HasPrefix(n, "running:") }) {
		t.Errorf("Queues notes = %q, want one on the running count", qs[0].Notes)
	}

	// Without the management API the running count is this process's, and says so.
	off := openBroker(t, newURL(t)+"&management=off")
	if err := off.Enqueue(ctx, brokertest.NewTasks("q", "t", 1)); err != nil {
		t.Fatal(err)
	}
	st, err := off.Stats(ctx)
	if err != nil || len(st) != 1 {
		t.Fatalf("Stats = %v, %v", st, err)
	}
	if !slices.Contains(st[0].Notes, "running: this process only (management API off)") {
		t.Errorf("Stats notes with management off = %q", st[0].Notes)
	}
}
