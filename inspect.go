package brisk

import (
	"context"
	"fmt"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
)

// State is a task's state: scheduled, pending, running, dead, cancelled or completed.
type State = brisktype.State

// The states of a stored task.
const (
	StateScheduled = brisktype.StateScheduled
	StatePending   = brisktype.StatePending
	StateRunning   = brisktype.StateRunning
	StateDead      = brisktype.StateDead
	StateCancelled = brisktype.StateCancelled
)

// QueueInfo is a queue's statistics at one moment: counts by state, queue latency, SLA.
type QueueInfo = brisktype.QueueInfo

// TaskInfo is a stored task as an inspector lists it.
type TaskInfo = brisktype.TaskInfo

// WorkerInfo is a worker's last heartbeat.
type WorkerInfo = brisktype.WorkerInfo

// QueueSample is one queue's latency and counters at one moment, as the dashboard samples
// them for its charts and rates.
type QueueSample = brisktype.QueueSample

// SampleRetention is how long a broker that keeps samples keeps each.
const SampleRetention = broker.SampleRetention

// Inspector reads and manages what a broker stores: queues, tasks, dead tasks, workers.
// The CLI and the dashboard are built on it.
type Inspector struct {
	b Broker
}

// NewInspector returns an inspector of broker b.
func NewInspector(b Broker) *Inspector { return &Inspector{b: b} }

// Queues returns every known queue's statistics, sorted by name. A queue without a
// declared SLA whose name states one ("five_second", see SLAFromName) reports that SLA.
func (i *Inspector) Queues(ctx context.Context) ([]QueueInfo, error) {
	qs, err := i.b.Stats(ctx)
	if err != nil {
		return nil, wrapf(err, "queue stats")
	}
	for j := range qs {
		if qs[j].SLA == 0 { // a queue named after its SLA has it without a declaration
			qs[j].SLA, _ = SLAFromName(qs[j].Name)
		}
	}
	return qs, nil
}

// WithinSLA reports whether a queue's latency is at or below its SLA (true when none is set).
func WithinSLA(q QueueInfo) bool { return q.SLA == 0 || q.Latency <= q.SLA }

// Tasks lists the tasks of queue in state, oldest first (completed ones by the time they
// finished), limit at a time from offset. A broker without the capability ListAll lists
// what its documentation says (RabbitMQ: dead tasks only), and one that does not keep
// completed tasks (broker.Retainer) lists none; for another state the error wraps
// ErrUnsupported and names the broker.
func (i *Inspector) Tasks(ctx context.Context, queue string, state State, limit, offset int) ([]*TaskInfo, error) {
	if !state.Valid() {
		return nil, fmt.Errorf("%w: unknown state %q (want scheduled, pending, running, dead, cancelled or completed)", ErrInvalid, state)
	}
	if _, ok := i.b.(broker.Retainer); !ok && state == StateCompleted {
		return nil, fmt.Errorf("brisk: list completed tasks of %s: %w", queue, unsupported(i.b, "keep completed tasks"))
	}
	ts, err := i.b.Tasks(ctx, broker.ListParams{Queue: queue, State: state, Limit: limit, Offset: offset})
	if err != nil {
		return nil, wrapf(err, "list %s tasks of %s", state, queue)
	}
	infos := make([]*TaskInfo, len(ts))
	for j, t := range ts {
		infos[j] = &t.TaskInfo
	}
	return infos, nil
}

// Task returns one task by ID. A broker without the capability ListAll finds only dead tasks
// and the running tasks of its own broker value; for any other ID the error wraps
// ErrUnsupported and names the broker.
func (i *Inspector) Task(ctx context.Context, id string) (*TaskInfo, error) {
	t, err := i.b.Task(ctx, id)
	if err != nil {
		return nil, wrapf(err, "task %s", id)
	}
	return &t.TaskInfo, nil
}

// RetryDead makes dead tasks of queue pending again with a fresh attempt budget: those
// with the given IDs, or all when none is given. It returns how many it moved.
func (i *Inspector) RetryDead(ctx context.Context, queue string, ids ...string) (int, error) {
	n, err := i.b.RetryDead(ctx, queue, nilIfEmpty(ids))
	if err != nil {
		return n, wrapf(err, "retry dead tasks of %s", queue)
	}
	return n, nil
}

// DeleteTasks removes tasks of queue in state (not running): those with the given IDs, or
// all of that state when none is given. It returns how many it removed.
func (i *Inspector) DeleteTasks(ctx context.Context, queue string, state State, ids ...string) (int, error) {
	if !state.Valid() {
		return 0, fmt.Errorf("%w: unknown state %q", ErrInvalid, state)
	}
	if len(ids) > 0 && (state == StatePending || state == StateScheduled) && !i.b.Capabilities().DeleteQueued {
		return 0, fmt.Errorf("brisk: delete %s tasks of %s by id: this broker (%T) deletes waiting tasks only all at once (capability DeleteQueued): %w", state, queue, i.b, ErrUnsupported)
	}
	n, err := i.b.Delete(ctx, queue, state, nilIfEmpty(ids))
	if err != nil {
		return n, wrapf(err, "delete %s tasks of %s", state, queue)
	}
	return n, nil
}

// PauseQueue pauses queue: workers take no task from it (tasks already running finish,
// and Enqueue still stores) until ResumeQueue. The pause is stored by the broker, so it holds
// for every worker and process. Pausing a paused queue, or one not yet known (it is created),
// is fine. A broker that cannot pause queues (it does not implement broker.Pauser) gives an
// error wrapping ErrUnsupported and ErrInvalid.
func (i *Inspector) PauseQueue(ctx context.Context, queue string) error {
	return i.pause(ctx, queue, true)
}

// ResumeQueue resumes a paused queue: workers take its tasks again, and waiting workers are
// woken. Resuming a queue that is not paused is fine. A broker that cannot pause queues gives
// an error wrapping ErrUnsupported and ErrInvalid.
func (i *Inspector) ResumeQueue(ctx context.Context, queue string) error {
	return i.pause(ctx, queue, false)
}

// CanPause reports whether the broker can pause queues (PauseQueue and ResumeQueue work).
func (i *Inspector) CanPause() bool {
	_, ok := i.b.(broker.Pauser)
	return ok
}

func (i *Inspector) pause(ctx context.Context, queue string, paused bool) error {
	op := "resume"
	if paused {
		op = "pause"
	}
	p, ok := i.b.(broker.Pauser)
	if !ok {
		return i.unsupported(fmt.Sprintf("%s queue %s", op, queue), "cannot pause queues")
	}
	if err := p.PauseQueue(ctx, queue, paused); err != nil {
		return wrapf(err, "%s queue %s", op, queue)
	}
	return nil
}

// Workers lists workers that sent a heartbeat within the last minute.
func (i *Inspector) Workers(ctx context.Context) ([]WorkerInfo, error) {
	ws, err := i.b.Workers(ctx, time.Now().Add(-time.Minute))
	if err != nil {
		return nil, wrapf(err, "workers")
	}
	return ws, nil
}

// DeleteQueue removes a queue that holds no task (none pending, scheduled, running or
// dead), with its SLA, pause, counters and samples; an enqueue to it later creates it
// afresh. A queue with tasks gives an error wrapping ErrQueueNotEmpty that counts them, an
// unknown one ErrQueueNotFound; a broker that cannot delete queues (it does not implement
// broker.QueueDeleter) an error wrapping ErrUnsupported and ErrInvalid.
func (i *Inspector) DeleteQueue(ctx context.Context, queue string) error {
	d, ok := i.b.(broker.QueueDeleter)
	if !ok {
		return i.unsupported("delete queue "+queue, "cannot delete queues")
	}
	if err := d.DeleteQueue(ctx, queue); err != nil {
		return wrapf(err, "delete queue %s", queue)
	}
	return nil
}

// AddSamples stores samples of queue statistics in the broker, so that every dashboard
// on the store shows the same history (kept for SampleRetention, one per queue and
// second). A broker that cannot keep them (it does not implement broker.SampleStore)
// gives an error wrapping ErrUnsupported and ErrInvalid.
func (i *Inspector) AddSamples(ctx context.Context, samples []QueueSample) error {
	st, ok := i.b.(broker.SampleStore)
	if !ok {
		return i.unsupported("add samples", "cannot keep samples")
	}
	if err := st.AddSamples(ctx, samples); err != nil {
		return wrapf(err, "add samples")
	}
	return nil
}

// Samples returns the samples the broker keeps taken at or after since, by queue and then
// time. A broker that cannot keep them gives an error wrapping ErrUnsupported and
// ErrInvalid.
func (i *Inspector) Samples(ctx context.Context, since time.Time) ([]QueueSample, error) {
	st, ok := i.b.(broker.SampleStore)
	if !ok {
		return nil, i.unsupported("samples", "cannot keep samples")
	}
	out, err := st.Samples(ctx, since)
	if err != nil {
		return nil, wrapf(err, "samples")
	}
	return out, nil
}

// unsupported is the error of a call the broker lacks the optional interface for.
func (i *Inspector) unsupported(op, what string) error {
	return fmt.Errorf("brisk: %s: this broker (%T) %s: %w: %w", op, i.b, what, ErrUnsupported, ErrInvalid)
}

func nilIfEmpty(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
