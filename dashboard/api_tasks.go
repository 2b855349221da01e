package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/briskq/brisk"
	"github.com/briskq/brisk/internal/apiv1"
)

// maxBatch is the most tasks one POST /api/v1/tasks/batch may carry.
const maxBatch = 1000

// taskRequest is one task of an enqueue: the body of POST /api/v1/queues/{queue}/tasks,
// and each element of a batch (which also names its queue).
type taskRequest struct {
	Queue          string          `json:"queue"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	DelaySeconds   float64         `json:"delay_seconds"`
	ID             string          `json:"id"`
	MaxAttempts    int             `json:"max_attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	ProcessAt      string          `json:"process_at"`
	// Headers are carried to the handler (Task.Headers).
	Headers map[string]string `json:"headers"`
	// RetentionSeconds keeps the task that long once it has completed (brisk.Retain).
	RetentionSeconds float64 `json:"retention_seconds"`
	uniqueRequest
}

// seconds converts a number of seconds of a request to a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// badSeconds reports whether a number of seconds is outside [0, ten years].
func badSeconds(s float64) bool { return s < 0 || math.IsNaN(s) || s > maxSeconds }

// task checks the request and builds the task it asks for. A process_at in the past
// means now (the task is ready at once; its latency counts from the enqueue); one past
// brisk.MaxScheduleAhead is refused by the client.
func (req *taskRequest) task() (*brisk.Task, error) {
	delay, err := delayOf(req.DelaySeconds)
	if err == nil {
		err = checkPayload(req.Payload)
	}
	switch {
	case req.Type == "":
		return nil, errors.New("type is required")
	case err != nil:
		return nil, err
	case badSeconds(req.TimeoutSeconds):
		return nil, errors.New("timeout_seconds must be from 0 to ten years")
	case badSeconds(req.RetentionSeconds):
		return nil, errors.New("retention_seconds must be from 0 to ten years")
	case req.MaxAttempts < 0:
		return nil, fmt.Errorf("max_attempts %d is negative", req.MaxAttempts)
	case req.DelaySeconds > 0 && req.ProcessAt != "":
		return nil, errors.New("give delay_seconds or process_at, not both")
	}
	if err := brisk.ValidateHeaders(req.Headers); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), brisk.ErrInvalid.Error()+": "))
	}
	opts := []brisk.Option{brisk.InQueue(req.Queue)}
	if req.ProcessAt != "" {
		at, err := time.Parse(time.RFC3339Nano, req.ProcessAt)
		if err != nil {
			return nil, fmt.Errorf("process_at %q is not an RFC 3339 time such as 2030-01-02T15:04:05Z", req.ProcessAt)
		}
		opts = append(opts, brisk.ProcessAt(at)) // in the past: now (the client's rule)
	}
	if delay > 0 {
		opts = append(opts, brisk.Delay(delay))
	}
	if req.ID != "" {
		opts = append(opts, brisk.WithID(req.ID))
	}
	if req.MaxAttempts > 0 {
		opts = append(opts, brisk.MaxAttempts(req.MaxAttempts))
	}
	if req.TimeoutSeconds > 0 {
		opts = append(opts, brisk.Timeout(seconds(req.TimeoutSeconds)))
	}
	if req.RetentionSeconds > 0 {
		opts = append(opts, brisk.Retain(seconds(req.RetentionSeconds)))
	}
	unique, msg := req.options()
	if msg != "" {
		return nil, errors.New(msg)
	}
	var payload []byte
	if len(req.Payload) > 0 {
		payload = []byte(req.Payload)
	}
	t := brisk.NewTask(req.Type, payload, append(opts, unique...)...)
	t.Headers = req.Headers
	return t, nil
}

// enqueueOne handles POST /api/v1/queues/{queue}/tasks: 201 {"id"}; with an id (or a
// unique key) already held, 409 {"error", "id"} and nothing changes.
func (h *handler) enqueueOne(w http.ResponseWriter, r *http.Request) {
	var req taskRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Queue != "" {
		writeError(w, http.StatusBadRequest, `"queue" is given by the path, not the body`)
		return
	}
	req.Queue = r.PathValue("queue")
	t, err := req.task()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := h.client.Enqueue(r.Context(), t)
	if err != nil {
		var dup *brisk.DuplicateError
		if !errors.As(err, &dup) && errors.Is(err, brisk.ErrDuplicate) && t.ID != "" {
			writeJSON(w, http.StatusConflict, map[string]string{"error": message(err), "id": t.ID})
			return
		}
		h.enqueueError(w, r, id, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

// batchRequest is the body of POST /api/v1/tasks/batch.
type batchRequest struct {
	Tasks []taskRequest `json:"tasks"`
}

// apiEnqueueBatch handles POST /api/v1/tasks/batch: every task is stored, or none. It
// answers 201 {"ids": [...]} in the order given; a bad task gets 400 naming its index, and
// ids already stored get 409 {"error", "ids"} listing them.
func (h *handler) apiEnqueueBatch(w http.ResponseWriter, r *http.Request) {
	var req batchRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if len(req.Tasks) == 0 {
		writeError(w, http.StatusBadRequest, `"tasks" must be a non-empty array`)
		return
	}
	if len(req.Tasks) > maxBatch {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("a batch holds at most %d tasks, got %d", maxBatch, len(req.Tasks)))
		return
	}
	tasks := make([]*brisk.Task, len(req.Tasks))
	seen := map[string]int{}
	for i := range req.Tasks {
		tr := &req.Tasks[i]
		if tr.Queue == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tasks[%d]: queue is required", i))
			return
		}
		t, err := tr.task()
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tasks[%d]: %v", i, err))
			return
		}
		if tr.ID != "" {
			if j, dup := seen[tr.ID]; dup {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("tasks[%d]: id %q is also the id of tasks[%d]", i, tr.ID, j))
				return
			}
			seen[tr.ID] = i
		}
		tasks[i] = t
	}
	ids, err := h.client.EnqueueBatch(r.Context(), tasks)
	if err != nil {
		if errors.Is(err, brisk.ErrDuplicate) {
			body := map[string]any{"error": message(err), "ids": h.storedIDs(r.Context(), req.Tasks)}
			var dup *brisk.DuplicateError
			if errors.As(err, &dup) {
				body["id"] = dup.ID // the task that holds an id or unique key of the batch
			}
			writeJSON(w, http.StatusConflict, body)
			return
		}
		h.brokerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string][]string{"ids": ids})
}

// storedIDs returns the given ids of tasks that the broker holds (never nil).
func (h *handler) storedIDs(ctx context.Context, tasks []taskRequest) []string {
	out := []string{}
	for _, t := range tasks {
		if t.ID == "" {
			continue
		}
		if _, err := h.in.Task(ctx, t.ID); err == nil {
			out = append(out, t.ID)
		}
	}
	return out
}

// apiPutQueue handles PUT /api/v1/queues/{queue}: declares the queue (created if needed)
// with its settings (sla_seconds, retention_seconds; at least one) and answers its
// statistics, the shape of GET /api/v1/queues.
func (h *handler) apiPutQueue(w http.ResponseWriter, r *http.Request) {
	raw := map[string]json.RawMessage{}
	if !decodeJSON(w, r, &raw) {
		return
	}
	_, hasSLA := raw["sla_seconds"]
	_, hasRetention := raw["retention_seconds"]
	known := 0
	for _, has := range []bool{hasSLA, hasRetention} {
		if has {
			known++
		}
	}
	if known == 0 || len(raw) != known {
		writeError(w, http.StatusBadRequest, `the body must be {"sla_seconds": N} (null or 0 clears the SLA), {"retention_seconds": N} (null or 0 turns it off) or both`)
		return
	}
	retention, msg := secondsField(raw, "retention_seconds")
	sla, msg2 := secondsField(raw, "sla_seconds")
	if msg == "" {
		msg = msg2
	}
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	queue := r.PathValue("queue")
	if hasRetention {
		if err := h.client.SetRetention(r.Context(), queue, retention); err != nil {
			h.brokerError(w, r, err)
			return
		}
	}
	if hasSLA {
		if err := h.client.DeclareQueue(r.Context(), queue, sla); err != nil {
			h.brokerError(w, r, err)
			return
		}
	}
	qs, err := h.in.Queues(r.Context())
	if err != nil {
		h.brokerError(w, r, err)
		return
	}
	for _, q := range qs {
		if q.Name == queue {
			writeJSON(w, http.StatusOK, apiv1.FromQueue(q))
			return
		}
	}
	writeError(w, http.StatusInternalServerError, "queue "+queue+" declared but not listed by the broker")
}

// secondsField reads a number of seconds (null or absent: 0) from 0 to ten years, or
// says what is wrong with it.
func secondsField(raw map[string]json.RawMessage, name string) (time.Duration, string) {
	var v *float64
	if _, ok := raw[name]; !ok {
		return 0, ""
	}
	if err := json.Unmarshal(raw[name], &v); err != nil {
		return 0, name + " must be a number of seconds or null"
	}
	if v == nil {
		return 0, ""
	}
	if badSeconds(*v) {
		return 0, name + " must be from 0 to ten years"
	}
	return seconds(*v), ""
}
