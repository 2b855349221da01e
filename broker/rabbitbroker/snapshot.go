package rabbitbroker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/briskq/brisk/broker"
)

// A snapshot is the whole state of the store, encoded as JSON: the base of a journal
// generation, the state after a given offset of that generation (see rollover.go).

// opSnapshot is an entry that journals written by older versions of this broker hold (a
// snapshot covering an offset was written); it changes nothing but snapCovers.
const opSnapshot = "snapshot"

type snapTask struct {
	T      broker.Task `json:"t"`
	Seq    int64       `json:"seq"`
	Worker string      `json:"w,omitempty"`
}

type snapQueue struct {
	Name      string        `json:"name"`
	SLA       time.Duration `json:"sla,omitempty"`
	Paused    bool          `json:"paused,omitempty"`
	Completed int64         `json:"completed,omitempty"`
	Failed    int64         `json:"failed,omitempty"`
}

type snapshot struct {
	Version    int                 `json:"version"`
	Gen        int64               `json:"gen"`    // the generation it is a base of
	Covers     int64               `json:"covers"` // the last offset of Gen it includes (-1: none)
	Seq        int64               `json:"seq"`
	SnapCovers int64               `json:"snap_covers"`
	Queues     []snapQueue         `json:"queues"`
	Tasks      []snapTask          `json:"tasks"`
	Workers    []broker.WorkerInfo `json:"workers"`
}

const snapshotVersion = 1

// encode returns the state as a base of generation gen that includes its entries up to
// offset covers (-1: none).
func (s *state) encode(gen, covers int64) ([]byte, error) {
	return s.copyOut(gen, covers).marshal()
}

// copyOut copies the state into a snapshot, unsorted. It is quick (no encoding; payloads
// are shared, never changed in place), so that the caller may hold b.mu while it runs and
// encode the copy with marshal after releasing it.
func (s *state) copyOut(gen, covers int64) *snapshot {
	snap := &snapshot{Version: snapshotVersion, Gen: gen, Covers: covers, Seq: s.seq, SnapCovers: s.snapCovers,
		Queues: make([]snapQueue, 0, len(s.queues)), Tasks: make([]snapTask, 0, len(s.tasks)), Workers: make([]broker.WorkerInfo, 0, len(s.workers))}
	for name, q := range s.queues {
		snap.Queues = append(snap.Queues, snapQueue{Name: name, SLA: q.sla, Paused: q.paused, Completed: q.completed, Failed: q.failed})
	}
	for _, r := range s.tasks {
		snap.Tasks = append(snap.Tasks, snapTask{T: r.t, Seq: r.seq, Worker: r.worker})
	}
	for _, w := range s.workers {
		snap.Workers = append(snap.Workers, w)
	}
	return snap
}

// marshal sorts the snapshot (so that equal states encode alike) and encodes it.
func (snap *snapshot) marshal() ([]byte, error) {
	slices.SortFunc(snap.Queues, func(a, b snapQueue) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(snap.Tasks, func(a, b snapTask) int { return strings.Compare(a.T.ID, b.T.ID) })
	slices.SortFunc(snap.Workers, func(a, b broker.WorkerInfo) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(snap)
}

// decodeState rebuilds a state from a snapshot and returns it with the generation it is a
// base of and the last offset of that generation it includes.
func decodeState(body []byte) (*state, int64, int64, error) {
	var snap snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, 0, 0, err
	}
	if snap.Version != snapshotVersion {
		return nil, 0, 0, fmt.Errorf("snapshot version %d, this brisk reads %d", snap.Version, snapshotVersion)
	}
	s := newState()
	s.seq, s.snapCovers = snap.Seq, snap.SnapCovers
	for _, sq := range snap.Queues {
		q := s.queue(sq.Name)
		q.sla, q.paused, q.completed, q.failed = sq.SLA, sq.Paused, sq.Completed, sq.Failed
	}
	for _, st := range snap.Tasks {
		r := &record{t: st.T, seq: st.Seq, worker: st.Worker, idx: -1}
		q := s.queue(r.t.Queue)
		s.tasks[r.t.ID] = r
		switch r.t.State {
		case broker.StateRunning:
			q.running[r.t.ID] = r
		case broker.StateDead:
			q.dead[r.t.ID] = r
		default:
			s.wait(q, r)
		}
	}
	for _, w := range snap.Workers {
		s.workers[w.ID] = w
	}
	return s, snap.Gen, snap.Covers, nil
}
