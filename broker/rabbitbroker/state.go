package rabbitbroker

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/briskq/brisk/broker"
)

// The journal's entries. Every change to the store is one event, published with a
// publisher confirm to the journal stream; every broker value applies the events in stream
// order to its own copy of the state. Decisions that depend on time (is a task ready, has
// a lease expired) use the time the event carries (Now, the publisher's clock), never the
// clock of the broker that applies it, so every copy reaches the same state.
const (
	opEnqueue       = "enqueue"
	opReserve       = "reserve"
	opExtend        = "extend"
	opAck           = "ack"
	opRetry         = "retry"
	opKill          = "kill"
	opRelease       = "release"
	opDeclare       = "declare"
	opPause         = "pause"
	opRetryDead     = "retrydead"
	opDelete        = "delete"
	opHeartbeat     = "heartbeat"
	opDeregister    = "deregister"
	opReleaseWorker = "releaseworker"
	opSync          = "sync"
)

// event is one journal entry (JSON). Which fields are set depends on Op.
type event struct {
	Op     string              `json:"op"`
	ID     string              `json:"id"`  // unique per event: publisher id + counter
	Now    time.Time           `json:"now"` // the publisher's clock
	Tasks  []*broker.Task      `json:"tasks,omitempty"`
	Queues []broker.QueueLimit `json:"queues,omitempty"`
	Limit  int                 `json:"limit,omitempty"`
	Dur    time.Duration       `json:"dur,omitempty"` // lease (reserve, extend)
	Worker string              `json:"worker,omitempty"`
	Leases []broker.Lease      `json:"leases,omitempty"`
	At     time.Time           `json:"at,omitzero"` // retry time
	Err    string              `json:"err,omitempty"`
	Queue  string              `json:"queue,omitempty"`
	State  broker.State        `json:"state,omitempty"`
	IDs    []string            `json:"ids,omitempty"`
	All    bool                `json:"all,omitempty"` // ids nil: every task
	SLA    time.Duration       `json:"sla,omitempty"`
	Paused bool                `json:"paused,omitempty"`
	Info   *broker.WorkerInfo  `json:"info,omitempty"`
	Covers int64               `json:"covers,omitempty"` // snapshot (written by older versions)
	Gen    int64               `json:"gen,omitempty"`    // moved: the next generation
}

// result is what applying an event returned, handed to the goroutine that published it.
type result struct {
	tasks []*broker.Task
	lost  []broker.Lease
	n     int
	snap  *snapshot // moved: the state at the entry, the base of the next generation
	err   error
}

// record is one stored task with what the broker keeps beside it.
type record struct {
	t      broker.Task
	seq    int64  // order among equal ReadyAt (enqueue order)
	worker string // who reserved it (running only)
	idx    int    // index in its queue's waiting heap, -1 when not there
}

// qstate is one queue.
type qstate struct {
	name      string
	sla       time.Duration
	paused    bool
	waiting   waitHeap // pending and scheduled: by ReadyAt, then seq
	running   map[string]*record
	dead      map[string]*record
	completed int64
	failed    int64
}

// state is one broker value's copy of the store, rebuilt from the journal.
type state struct {
	seq        int64
	snapCovers int64 // the offset of the newest snapshot announced by an older brisk
	tasks      map[string]*record
	queues     map[string]*qstate
	workers    map[string]broker.WorkerInfo
}

func newState() *state {
	return &state{tasks: map[string]*record{}, queues: map[string]*qstate{}, workers: map[string]broker.WorkerInfo{}}
}

func (s *state) queue(name string) *qstate {
	q := s.queues[name]
	if q == nil {
		q = &qstate{name: name, running: map[string]*record{}, dead: map[string]*record{}}
		s.queues[name] = q
	}
	return q
}

// apply changes the state by one event and returns its result. It must depend on nothing
// but the state and the event.
func (s *state) apply(ev *event) result {
	switch ev.Op {
	case opEnqueue:
		return s.enqueue(ev)
	case opReserve:
		return s.reserve(ev)
	case opExtend:
		var lost []broker.Lease
		for _, l := range ev.Leases {
			if r := s.held(l); r != nil {
				r.t.LeaseUntil = ev.Now.Add(ev.Dur)
			} else {
				lost = append(lost, l)
			}
		}
		return result{lost: lost}
	case opAck:
		var lost []broker.Lease
		for _, l := range ev.Leases {
			r := s.held(l)
			if r == nil {
				lost = append(lost, l)
				continue
			}
			q := s.queues[r.t.Queue]
			delete(q.running, r.t.ID)
			delete(s.tasks, r.t.ID)
			q.completed++
		}
		if len(lost) > 0 {
			return result{lost: lost, err: lostError(lost)}
		}
		return result{}
	case opRetry, opKill:
		l := ev.Leases[0]
		r := s.held(l)
		if r == nil {
			return result{err: lostError(ev.Leases)}
		}
		q := s.queues[r.t.Queue]
		delete(q.running, r.t.ID)
		q.failed++
		r.t.LastError, r.t.FailedAt = ev.Err, ev.Now
		r.t.LeaseUntil, r.t.Lease, r.worker = time.Time{}, broker.Lease{}, ""
		if ev.Op == opKill {
			r.t.State = broker.StateDead
			q.dead[r.t.ID] = r
		} else {
			r.t.ReadyAt = ev.At
			s.seq++
			r.seq = s.seq
			s.wait(q, r)
		}
		return result{}
	case opRelease:
		for _, l := range ev.Leases {
			if r := s.held(l); r != nil {
				q := s.queues[r.t.Queue]
				delete(q.running, r.t.ID)
				r.t.Attempt--
				r.t.LeaseUntil, r.t.Lease, r.worker = time.Time{}, broker.Lease{}, ""
				s.wait(q, r) // seq kept: it goes back to its place
			}
		}
		return result{}
	case opDeclare:
		s.queue(ev.Queue).sla = ev.SLA
		return result{}
	case opPause:
		s.queue(ev.Queue).paused = ev.Paused
		return result{}
	case opRetryDead:
		q := s.queues[ev.Queue]
		if q == nil {
			return result{}
		}
		n := 0
		for _, r := range s.selected(q.dead, ev) {
			delete(q.dead, r.t.ID)
			r.t.Attempt, r.t.ReadyAt = 0, ev.Now
			s.seq++
			r.seq = s.seq
			s.wait(q, r)
			n++
		}
		return result{n: n}
	case opDelete:
		q := s.queues[ev.Queue]
		if q == nil {
			return result{}
		}
		var victims []*record
		switch ev.State {
		case broker.StateDead:
			victims = s.selected(q.dead, ev)
		case broker.StatePending, broker.StateScheduled:
			m := map[string]*record{}
			for _, r := range q.waiting {
				if stateAt(r, ev.Now) == ev.State {
					m[r.t.ID] = r
				}
			}
			victims = s.selected(m, ev)
		}
		for _, r := range victims {
			if r.idx >= 0 {
				heap.Remove(&q.waiting, r.idx)
			}
			delete(q.dead, r.t.ID)
			delete(s.tasks, r.t.ID)
		}
		return result{n: len(victims)}
	case opHeartbeat:
		w := *ev.Info
		w.LastSeen = ev.Now
		s.workers[w.ID] = w
		return result{}
	case opDeregister:
		delete(s.workers, ev.Worker)
		return result{}
	case opReleaseWorker:
		n := 0
		for _, name := range sortedKeys(s.queues) {
			q := s.queues[name]
			for _, r := range sortedRecords(q.running) {
				if r.worker != ev.Worker {
					continue
				}
				delete(q.running, r.t.ID)
				r.t.LeaseUntil, r.t.Lease, r.worker = time.Time{}, broker.Lease{}, ""
				s.wait(q, r)
				n++
			}
		}
		delete(s.workers, ev.Worker)
		return result{n: n}
	case opSync:
		return result{}
	case opSnapshot:
		s.snapCovers = max(s.snapCovers, ev.Covers)
		return result{}
	}
	return result{err: fmt.Errorf("brisk: rabbitmq: journal entry with unknown op %q (a newer brisk wrote it?)", ev.Op)}
}

// selected returns the records of m that ev selects (ev.All, or those named in ev.IDs,
// each once), in a fixed order.
func (s *state) selected(m map[string]*record, ev *event) []*record {
	if ev.All {
		return sortedRecords(m)
	}
	var out []*record
	seen := map[string]bool{}
	for _, id := range ev.IDs {
		if r, ok := m[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, r)
		}
	}
	return out
}

func (s *state) enqueue(ev *event) result {
	for _, t := range ev.Tasks {
		if _, dup := s.tasks[t.ID]; dup {
			return result{err: fmt.Errorf("brisk: rabbitmq: %w: id=%q", broker.ErrDuplicate, t.ID)}
		}
	}
	for _, t := range ev.Tasks {
		r := &record{t: *t, idx: -1}
		r.t.State, r.t.Attempt = broker.StatePending, 0
		r.t.StartedAt, r.t.LeaseUntil, r.t.Lease, r.t.LastError, r.t.FailedAt = time.Time{}, time.Time{}, broker.Lease{}, "", time.Time{}
		s.seq++
		r.seq = s.seq
		s.tasks[t.ID] = r
		s.wait(s.queue(t.Queue), r)
	}
	return result{}
}

// reserve hands out ready tasks in the order of ev.Queues. Leases that expired by ev.Now in
// those queues end first: the task waits again (its attempt stays counted), or is dead if
// that was its last attempt.
func (s *state) reserve(ev *event) result {
	var out []*broker.Task
	left := ev.Limit
	for _, ql := range ev.Queues {
		q := s.queues[ql.Name]
		if left == 0 {
			break
		}
		if q == nil || q.paused {
			continue
		}
		s.expire(q, ev.Now)
		take := left
		if ql.Max > 0 {
			take = min(take, ql.Max)
		}
		for ; take > 0 && len(q.waiting) > 0 && !q.waiting[0].t.ReadyAt.After(ev.Now); take-- {
			r := heap.Pop(&q.waiting).(*record)
			r.t.State = broker.StateRunning
			r.t.Attempt++
			r.t.StartedAt = ev.Now
			r.t.LeaseUntil = ev.Now.Add(ev.Dur)
			r.t.Lease = broker.Lease{TaskID: r.t.ID, Queue: q.name, Token: fmt.Sprintf("%s.%d", ev.ID, len(out))}
			r.worker = ev.Worker
			q.running[r.t.ID] = r
			t := r.t
			out = append(out, &t)
			left--
		}
	}
	return result{tasks: out}
}

func (s *state) expire(q *qstate, now time.Time) {
	for _, r := range sortedRecords(q.running) {
		if r.t.LeaseUntil.After(now) {
			continue
		}
		delete(q.running, r.t.ID)
		r.t.Lease, r.worker = broker.Lease{}, ""
		if r.t.Attempt >= r.t.MaxAttempts {
			r.t.State = broker.StateDead
			r.t.LastError = fmt.Sprintf("lease expired on attempt %d of %d (worker lost?)", r.t.Attempt, r.t.MaxAttempts)
			r.t.FailedAt = now
			r.t.LeaseUntil = time.Time{}
			q.dead[r.t.ID] = r
			q.failed++
			continue
		}
		r.t.LeaseUntil = time.Time{}
		s.wait(q, r)
	}
}

// wait puts r among q's pending and scheduled tasks.
func (s *state) wait(q *qstate, r *record) {
	r.t.State = broker.StatePending
	heap.Push(&q.waiting, r)
}

// held returns the running task that l holds, or nil.
func (s *state) held(l broker.Lease) *record {
	r := s.tasks[l.TaskID]
	if r == nil || r.t.State != broker.StateRunning || r.t.Lease != l {
		return nil
	}
	return r
}

// stateAt is r's state at now: waiting tasks are pending or scheduled by their ReadyAt.
func stateAt(r *record, now time.Time) broker.State {
	if r.t.State == broker.StatePending && r.t.ReadyAt.After(now) {
		return broker.StateScheduled
	}
	return r.t.State
}

// view returns a copy of r as a reader sees it at now.
func view(r *record, now time.Time) *broker.Task {
	t := r.t
	t.State = stateAt(r, now)
	t.Payload = slices.Clone(r.t.Payload)
	return &t
}

func lostError(lost []broker.Lease) error {
	ids := make([]string, len(lost))
	for i, l := range lost {
		ids[i] = l.TaskID
	}
	return fmt.Errorf("brisk: rabbitmq: %w: task(s) %s", broker.ErrLeaseLost, strings.Join(ids, ", "))
}

// less orders tasks as the contract lists and delivers them: oldest ReadyAt first, then
// enqueue order.
func less(a, b *record) bool {
	if !a.t.ReadyAt.Equal(b.t.ReadyAt) {
		return a.t.ReadyAt.Before(b.t.ReadyAt)
	}
	return a.seq < b.seq
}

func sortedRecords(m map[string]*record) []*record {
	out := make([]*record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return strings.Compare(a.t.ID, b.t.ID)
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// waitHeap is a min-heap of records by (ReadyAt, seq) that keeps each record's index so
// that Delete can remove one from the middle.
type waitHeap []*record

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *waitHeap) Push(x any) {
	r := x.(*record)
	r.idx = len(*h)
	*h = append(*h, r)
}
func (h *waitHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.idx = -1
	return r
}
