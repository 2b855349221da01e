// Package apiv1 holds the JSON shapes of brisk's scripting contract, shared by the CLI
// ("brisk queues --json", "brisk tasks --json") and the dashboard's /api/v1 so that both
// print the same objects. Keys are only ever added.
package apiv1

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/briskq/brisk"
)

// Queue is one element of "brisk queues --json" and of GET /api/v1/queues.
type Queue struct {
	Name           string   `json:"name"`
	Pending        int64    `json:"pending"`
	Scheduled      int64    `json:"scheduled"`
	Running        int64    `json:"running"`
	Dead           int64    `json:"dead"`
	LatencySeconds float64  `json:"latency_seconds"`
	SLASeconds     *float64 `json:"sla_seconds"`
	WithinSLA      bool     `json:"within_sla"`
	Completed      int64    `json:"completed"`
	Failed         int64    `json:"failed"`
	// Paused is true while the queue is paused (workers take none of its tasks).
	Paused bool `json:"paused"`
	// Notes says which figures the broker cannot give exactly and where they come from
	// (absent when every figure is exact).
	Notes []string `json:"notes,omitempty"`
	// Cancelled counts the cancelled tasks kept.
	Cancelled int64 `json:"cancelled"`
	// LatencySource says what latency_seconds is measured from: "ready_at" for brisk's
	// own brokers; on a watched Celery or RQ broker "enqueued_at", "published_at",
	// "eta", "timestamp", or "first_seen" when it is an estimate (docs/python.md).
	LatencySource string `json:"latency_source"`
	// Retained counts the completed tasks kept for a retention.
	Retained int64 `json:"retained"`
	// RetentionSeconds is how long the queue keeps completed and cancelled tasks (0:
	// none).
	RetentionSeconds float64 `json:"retention_seconds"`
}

// FromQueue converts a queue's statistics to its JSON shape.
func FromQueue(q brisk.QueueInfo) Queue {
	j := Queue{
		Name: q.Name, Pending: q.Pending, Scheduled: q.Scheduled, Running: q.Running, Dead: q.Dead,
		LatencySeconds: q.Latency.Seconds(), WithinSLA: brisk.WithinSLA(q),
		Completed: q.Completed, Failed: q.Failed, Paused: q.Paused, Cancelled: q.Cancelled, Notes: q.Notes,
		LatencySource: q.LatencySource, Retained: q.Retained, RetentionSeconds: q.Retention.Seconds(),
	}
	if j.LatencySource == "" {
		j.LatencySource = "ready_at"
	}
	if q.SLA > 0 {
		s := q.SLA.Seconds()
		j.SLASeconds = &s
	}
	return j
}

// Queues converts a listing; it is never nil, so that no queue encodes as [] not null.
func Queues(qs []brisk.QueueInfo) []Queue { return convert(qs, FromQueue) }

// Task is a task in "brisk tasks --json" and in the /api/v1 task routes.
type Task struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	Type           string          `json:"type"`
	State          string          `json:"state"`
	Attempt        int             `json:"attempt"`
	MaxAttempts    int             `json:"max_attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	EnqueuedAt     *string         `json:"enqueued_at"`
	ReadyAt        *string         `json:"ready_at"`
	StartedAt      *string         `json:"started_at"`
	FailedAt       *string         `json:"failed_at"`
	LeaseUntil     *string         `json:"lease_until"`
	LastError      string          `json:"last_error"`
	Payload        json.RawMessage `json:"payload"`
	PayloadBase64  *string         `json:"payload_base64,omitempty"`
	// Headers are the task's string headers ({} when none).
	Headers map[string]string `json:"headers"`
	// RetentionSeconds is the task's own retention (0: its queue's).
	RetentionSeconds float64 `json:"retention_seconds"`
	// FinishedAt is when a completed or cancelled task finished, ExpiresAt when a kept one
	// is removed (null when unset).
	FinishedAt *string `json:"finished_at"`
	ExpiresAt  *string `json:"expires_at"`
	// DurationSeconds is how long a completed task's last attempt ran (null before it
	// completed).
	DurationSeconds *float64 `json:"duration_seconds"`
	// Result is a completed task's result as a JSON value when it is valid JSON, else null
	// with the bytes in base64 under result_base64 (null too when there is none).
	Result       json.RawMessage `json:"result"`
	ResultBase64 *string         `json:"result_base64,omitempty"`
	// Progress is what the handler last reported, or null.
	Progress *Progress `json:"progress"`
}

// Progress is a task's progress in a Task.
type Progress struct {
	Percent float64 `json:"percent"`
	Message string  `json:"message"`
	At      *string `json:"at"`
}

// FromTask converts a stored task to its JSON shape: the payload as a JSON value when it
// is valid JSON in valid UTF-8, else null with the bytes in base64 under payload_base64.
func FromTask(t *brisk.TaskInfo) Task {
	j := Task{
		ID: t.ID, Queue: t.Queue, Type: t.Type, State: string(t.State), Attempt: t.Attempt,
		MaxAttempts: t.MaxAttempts, TimeoutSeconds: t.Timeout.Seconds(),
		EnqueuedAt: Time(t.EnqueuedAt), ReadyAt: Time(t.ReadyAt), StartedAt: Time(t.StartedAt),
		FailedAt: Time(t.FailedAt), LeaseUntil: Time(t.LeaseUntil), LastError: t.LastError,
	}
	j.Payload, j.PayloadBase64 = payload(t.Payload)
	j.Result, j.ResultBase64 = payload(t.Result)
	j.RetentionSeconds = t.Retention.Seconds()
	j.FinishedAt, j.ExpiresAt = Time(t.FinishedAt), Time(t.ExpiresAt)
	if t.State == brisk.StateCompleted {
		d := t.Duration().Seconds()
		j.DurationSeconds = &d
	}
	if p := t.Progress; p != nil {
		j.Progress = &Progress{Percent: p.Percent, Message: p.Message, At: Time(p.At)}
	}
	j.Headers = t.Headers
	if j.Headers == nil {
		j.Headers = map[string]string{}
	}
	return j
}

// payload is a payload (or a result) as a JSON value when it is valid JSON, else null
// with the bytes in base64.
func payload(p []byte) (json.RawMessage, *string) {
	switch {
	case len(p) == 0:
		return json.RawMessage("null"), nil
	case json.Valid(p) && utf8.Valid(p): // json.Valid lets invalid UTF-8 in strings through
		return json.RawMessage(p), nil
	}
	b := base64.StdEncoding.EncodeToString(p)
	return json.RawMessage("null"), &b
}

// Tasks converts a listing; it is never nil.
func Tasks(ts []*brisk.TaskInfo) []Task { return convert(ts, FromTask) }

// Time is a time for JSON output: RFC 3339 with nanoseconds in UTC, or null when zero.
func Time(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// Worker is a worker's last heartbeat in GET /api/v1/workers.
type Worker struct {
	ID          string   `json:"id"`
	Host        string   `json:"host"`
	PID         int      `json:"pid"`
	Queues      []string `json:"queues"`
	Concurrency int      `json:"concurrency"`
	Busy        int      `json:"busy"`
	StartedAt   *string  `json:"started_at"`
	LastSeen    *string  `json:"last_seen"`
	Version     string   `json:"version"`
}

// Workers converts a listing; it is never nil.
func Workers(ws []brisk.WorkerInfo) []Worker {
	out := make([]Worker, 0, len(ws))
	for _, w := range ws {
		qs := w.Queues
		if qs == nil {
			qs = []string{}
		}
		out = append(out, Worker{
			ID: w.ID, Host: w.Host, PID: w.PID, Queues: qs, Concurrency: w.Concurrency,
			Busy: w.Busy, StartedAt: Time(w.StartedAt), LastSeen: Time(w.LastSeen), Version: w.Version,
		})
	}
	return out
}

// Delivery is one task handed to a handler in another language: a line of JSON on the
// standard input of a "brisk worker --exec" child, and the body that "brisk worker --http"
// POSTs (docs/worker-protocol.md). The payload is the task's JSON value, or null with the
// bytes in base64 under payload_base64 when it is not JSON.
type Delivery struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Queue         string          `json:"queue"`
	Payload       json.RawMessage `json:"payload"`
	PayloadBase64 *string         `json:"payload_base64,omitempty"`
	Attempt       int             `json:"attempt"`
	MaxAttempts   int             `json:"max_attempts"`
	EnqueuedAt    *string         `json:"enqueued_at"`
	ReadyAt       *string         `json:"ready_at"`
	// Deadline is when the worker gives up on this run (the task's timeout from its start).
	Deadline  *string `json:"deadline"`
	LastError string  `json:"last_error"`
	// Headers are the task's string metadata from its enqueue (trace context, …).
	Headers map[string]string `json:"headers"`
}

// The statuses of an Outcome.
const (
	OutcomeOK    = "ok"    // done: the task is acked
	OutcomeRetry = "retry" // run it again after delay_seconds (or the backoff without it)
	OutcomeFail  = "fail"  // the attempt failed: retried with backoff until attempts are spent
	OutcomeDead  = "dead"  // failed, do not retry: the task is dead at once
)

// Outcome is what a "brisk worker --exec" child answers for one Delivery, one line of JSON
// on its standard output. A line with Progress and no Status is a progress report while
// the task runs; more lines follow.
type Outcome struct {
	ID           string  `json:"id"`
	Status       string  `json:"status,omitempty"`
	Error        string  `json:"error,omitempty"`
	DelaySeconds float64 `json:"delay_seconds,omitempty"`
	// Result, with status ok, is kept as the task's result (any JSON value) where the
	// task is kept for a retention.
	Result json.RawMessage `json:"result,omitempty"`
	// Progress reports how far the task has come (brisk.ReportProgress).
	Progress *ProgressReport `json:"progress,omitempty"`
}

// ProgressReport is a progress line of a "brisk worker --exec" child.
type ProgressReport struct {
	Percent float64 `json:"percent"`
	Message string  `json:"message"`
}

// FromDelivery converts a task handed to a handler, whose run ends at deadline, to the
// Delivery shape.
func FromDelivery(t *brisk.Task, deadline time.Time) Delivery {
	d := Delivery{
		ID: t.ID, Type: t.Type, Queue: t.Queue, Attempt: t.Attempt, MaxAttempts: t.MaxAttempts,
		EnqueuedAt: Time(t.EnqueuedAt), ReadyAt: Time(t.ReadyAt), Deadline: Time(deadline),
		LastError: t.LastError,
	}
	d.Payload, d.PayloadBase64 = payload(t.Payload)
	d.Headers = t.Headers
	if d.Headers == nil {
		d.Headers = map[string]string{}
	}
	return d
}

// Periodic is a schedule in "brisk periodic list --json" and GET /api/v1/periodic.
type Periodic struct {
	Name           string          `json:"name"`
	Spec           string          `json:"spec"`
	Queue          string          `json:"queue"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	PayloadBase64  *string         `json:"payload_base64,omitempty"`
	MaxAttempts    int             `json:"max_attempts"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
	CatchUp        bool            `json:"catch_up"`
	CreatedAt      *string         `json:"created_at"`
	UpdatedAt      *string         `json:"updated_at"`
	LastRun        *string         `json:"last_run"`
	LastTaskID     string          `json:"last_task_id"`
	NextRun        *string         `json:"next_run"`
}

// FromPeriodic converts a stored schedule to its JSON shape.
func FromPeriodic(p brisk.PeriodicInfo) Periodic {
	j := Periodic{
		Name: p.Name, Spec: p.Spec, CatchUp: p.CatchUp, CreatedAt: Time(p.CreatedAt), UpdatedAt: Time(p.UpdatedAt),
		LastRun: Time(p.LastRun), LastTaskID: p.LastTaskID, NextRun: Time(p.NextRun),
	}
	if t := p.Task; t != nil {
		j.Queue, j.Type, j.MaxAttempts, j.TimeoutSeconds = t.Queue, t.Type, t.MaxAttempts, t.Timeout.Seconds()
		j.Payload, j.PayloadBase64 = payload(t.Payload)
	}
	return j
}

// PeriodicList converts a listing; it is never nil.
func PeriodicList(ps []brisk.PeriodicInfo) []Periodic { return convert(ps, FromPeriodic) }

// Limit is a limit in "brisk limit list --json" and GET /api/v1/limits; type is "" for a
// queue's own limit, rate 0 for no rate limit, max_running 0 for no concurrency limit.
type Limit struct {
	Queue      string  `json:"queue"`
	Type       string  `json:"type"`
	Rate       int     `json:"rate"`
	PerSeconds float64 `json:"per_seconds"`
	Burst      int     `json:"burst"`
	MaxRunning int     `json:"max_running"`
}

// Limits converts a listing; it is never nil.
func Limits(ls []brisk.Limit) []Limit {
	return convert(ls, func(l brisk.Limit) Limit {
		return Limit{Queue: l.Queue, Type: l.Type, Rate: l.Rate, PerSeconds: l.Per.Seconds(), Burst: l.Burst, MaxRunning: l.MaxRunning}
	})
}

// convert maps a listing through f into a slice that is never nil, so that an empty
// listing encodes as [] and not null.
func convert[T, J any](xs []T, f func(T) J) []J {
	out := make([]J, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}
