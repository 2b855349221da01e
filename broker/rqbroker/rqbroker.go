// Package rqbroker watches the queues of RQ (Python's Redis Queue) on Redis, read only,
// so that brisk queues, brisk dashboard, /metrics and brisk autoscale work on an RQ fleet
// without a change to its code.
//
// URL: rq+redis://[:password@]host:6379/0 (or rq+rediss://), with the parameter
// sla=QUEUE:DURATION (repeatable) for the queues whose name does not state their SLA; the
// other parameters go to go-redis. Import it for its side effect, or use the brisk command:
//
//	import _ "github.com/briskq/brisk/broker/rqbroker"
//
// What it reads, as RQ (1.x, 2.x) writes it: the set rq:queues of queue keys; each queue's
// list rq:queue:NAME of job ids (RQ pushes on the right and pops on the left, so the
// oldest is at index 0); the job hashes rq:job:ID (enqueued_at, in UTC, is when the job
// became ready); the registries rq:wip:NAME (started jobs: running), rq:scheduled:NAME
// (scored by the time to run: scheduled, and towards latency once overdue),
// rq:failed:NAME (dead) and rq:finished:NAME (scored by expiry: the completed count grows
// by the jobs that appear there); and the workers' set rq:workers with their hashes.
//
// Queue latency is now − enqueued_at of the job at the head of the queue, or now − the
// scheduled time of the oldest overdue scheduled job (a job the scheduler has not moved
// yet waits too), whichever is older; latency_source is "enqueued_at" or "scheduled_at".
// Every write (enqueue, retry, delete, pause, declaring an SLA) is refused with an error
// wrapping broker.ErrUnsupported: RQ's own code owns the queues.
package rqbroker

import (
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/watch"
)

func init() { broker.Register(open, "rq+redis", "rq+rediss") }

// Keys RQ uses (rq/queue.py, rq/registry.py, rq/job.py, rq/worker_registration.py).
const (
	queuesKey   = "rq:queues"
	queuePrefix = "rq:queue:"
	jobPrefix   = "rq:job:"
	// resultsPrefix names the stream of a job's results (RQ ≥ 1.12).
	resultsPrefix = "rq:results:"
	workersKey    = "rq:workers"
)

func startedKey(q string) string   { return "rq:wip:" + q }
func scheduledKey(q string) string { return "rq:scheduled:" + q }
func failedKey(q string) string    { return "rq:failed:" + q }
func finishedKey(q string) string  { return "rq:finished:" + q }

// rqTime is the format of RQ's timestamps (rq/utils.py utcformat); older jobs lack the
// fraction.
const rqTime = "2006-01-02T15:04:05.999999Z"

// Broker watches RQ's queues on one Redis database. It implements broker.Broker; every
// write is refused.
type Broker struct {
	watch.ReadOnly
	rdb *redis.Client
	sla map[string]time.Duration

	statsMu  sync.Mutex // one Stats at a time, so that no new registry member counts twice
	mu       sync.Mutex
	finished map[string]*registryCounter
	failed   map[string]*registryCounter
	closed   bool
}

var _ broker.Broker = (*Broker)(nil)

// registryCounter turns a registry scored by expiry (now + TTL at insertion) into a count
// that only grows: members scored above the highest score seen so far are new.
type registryCounter struct {
	maxScore float64
	total    int64
}

func open(ctx context.Context, u *url.URL) (broker.Broker, error) {
	opts, own, err := watch.RedisURL(u, "sla")
	if err != nil {
		return nil, fmt.Errorf("brisk: rq+redis: %w", err)
	}
	sla, err := watch.SLAs(own)
	if err != nil {
		return nil, fmt.Errorf("brisk: rq+redis: url %q: %w", u.Redacted(), err)
	}
	b := &Broker{
		ReadOnly: watch.ReadOnly{Name: "rq+redis"}, rdb: redis.NewClient(opts), sla: sla,
		finished: map[string]*registryCounter{}, failed: map[string]*registryCounter{},
	}
	if err := watch.Ping(ctx, b.Name, b.rdb); err != nil {
		_ = b.rdb.Close()
		return nil, err
	}
	return b, nil
}

// Close closes the connection to Redis. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.rdb.Close()
}

func (b *Broker) check() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("brisk: %s: %w", b.Name, broker.ErrClosed)
	}
	return nil
}

func (b *Broker) fail(what string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("brisk: %s: %s: %w", b.Name, what, broker.ErrClosed)
	}
	return fmt.Errorf("brisk: %s: %s: %v: %w", b.Name, what, err, broker.ErrUnavailable)
}

// queueNames lists RQ's queues, sorted.
func (b *Broker) queueNames(ctx context.Context) ([]string, error) {
	keys, err := b.rdb.SMembers(ctx, queuesKey).Result()
	if err != nil {
		return nil, b.fail("list queues", err)
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, queuePrefix); ok && name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// queueReads are the replies of one queue's first round trip.
type queueReads struct {
	pending, started, scheduled, failed *redis.IntCmd
	heads                               *redis.StringSliceCmd
	overdue, lastFinished, lastFailed   *redis.ZSliceCmd
}

// Stats reads every RQ queue's counts and latency in two round trips.
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	b.statsMu.Lock()
	defer b.statsMu.Unlock()
	names, err := b.queueNames(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	nowScore := strconv.FormatInt(now.Unix(), 10)
	reads := make([]queueReads, len(names))
	pipe := b.rdb.Pipeline()
	for i, q := range names {
		r := &reads[i]
		r.pending = pipe.LLen(ctx, queuePrefix+q)
		r.heads = pipe.LRange(ctx, queuePrefix+q, 0, 4) // the head, and the next in case its hash is gone
		r.started = pipe.ZCard(ctx, startedKey(q))
		r.scheduled = pipe.ZCard(ctx, scheduledKey(q))
		r.overdue = pipe.ZRangeByScoreWithScores(ctx, scheduledKey(q), &redis.ZRangeBy{Min: "-inf", Max: nowScore, Count: 1})
		r.failed = pipe.ZCard(ctx, failedKey(q))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("read queues", err)
	}
	// Second round trip: enqueued_at of the head jobs, and the new members of the
	// registries that count completions and failures with their highest score, read
	// atomically so that no member is counted twice.
	pipe = b.rdb.TxPipeline()
	enqueued := make([][]*redis.StringCmd, len(names))
	newFinished := make([]*redis.IntCmd, len(names))
	newFailed := make([]*redis.IntCmd, len(names))
	b.mu.Lock()
	for i, q := range names {
		for _, id := range reads[i].heads.Val() {
			enqueued[i] = append(enqueued[i], pipe.HGet(ctx, jobPrefix+id, "enqueued_at"))
		}
		newFinished[i] = countAbove(ctx, pipe, finishedKey(q), b.finished[q])
		newFailed[i] = countAbove(ctx, pipe, failedKey(q), b.failed[q])
		reads[i].lastFinished = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: finishedKey(q), Start: 0, Stop: 0, Rev: true})
		reads[i].lastFailed = pipe.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{Key: failedKey(q), Start: 0, Stop: 0, Rev: true})
	}
	b.mu.Unlock()
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("read head jobs", err)
	}
	out := make([]broker.QueueStats, len(names))
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range names {
		r := &reads[i]
		s := broker.QueueStats{
			Name: q, SLA: b.sla[q], Pending: r.pending.Val(), Scheduled: r.scheduled.Val(),
			Running: r.started.Val(), Dead: r.failed.Val(),
			Completed: advance(b.finished, q, newFinished[i].Val(), r.lastFinished.Val()),
			Failed:    advance(b.failed, q, newFailed[i].Val(), r.lastFailed.Val()),
		}
		for _, cmd := range enqueued[i] {
			if at, err := time.Parse(rqTime, cmd.Val()); err == nil {
				s.OldestReadyAt, s.LatencySource = at, "enqueued_at"
				break
			}
		}
		if od := r.overdue.Val(); len(od) == 1 {
			at := time.Unix(0, int64(od[0].Score*1e9))
			if s.OldestReadyAt.IsZero() || at.Before(s.OldestReadyAt) {
				s.OldestReadyAt, s.LatencySource = at, "scheduled_at"
			}
		}
		if !s.OldestReadyAt.IsZero() {
			s.Latency = max(0, now.Sub(s.OldestReadyAt))
		}
		out[i] = s
	}
	return out, nil
}

// countAbove queues a count of the members of key scored above the highest score c has
// seen, or of all members the first time.
func countAbove(ctx context.Context, pipe redis.Pipeliner, key string, c *registryCounter) *redis.IntCmd {
	if c == nil {
		return pipe.ZCard(ctx, key)
	}
	return pipe.ZCount(ctx, key, "("+strconv.FormatFloat(c.maxScore, 'f', -1, 64), "+inf")
}

// advance adds n new members to the counter of q and returns its total. b.mu is held.
func advance(m map[string]*registryCounter, q string, n int64, last []redis.Z) int64 {
	c := m[q]
	if c == nil {
		c = &registryCounter{}
		m[q] = c
	}
	c.total += n
	if len(last) == 1 && last[0].Score > c.maxScore {
		c.maxScore = last[0].Score
	}
	return c.total
}

// registryOf is the registry that holds a queue's jobs in a state, "" for pending (the
// queue's list itself).
func registryOf(q string, s broker.State) string {
	switch s {
	case broker.StateRunning:
		return startedKey(q)
	case broker.StateScheduled:
		return scheduledKey(q)
	case broker.StateDead:
		return failedKey(q)
	}
	return ""
}

// Tasks lists a queue's jobs in one state: pending from the queue's list (oldest first),
// running, scheduled and dead from RQ's registries (by score).
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if !p.State.Valid() {
		return nil, fmt.Errorf("brisk: %s: %w: unknown state %q", b.Name, broker.ErrInvalid, p.State)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	start, stop := int64(p.Offset), int64(p.Offset+limit-1)
	var ids []string
	var err error
	if key := registryOf(p.Queue, p.State); key != "" {
		ids, err = b.rdb.ZRange(ctx, key, start, stop).Result()
	} else {
		ids, err = b.rdb.LRange(ctx, queuePrefix+p.Queue, start, stop).Result()
	}
	if err != nil {
		return nil, b.fail("list jobs", err)
	}
	return b.jobs(ctx, ids, p.State)
}

// jobs reads job hashes; ids whose hash is gone are left out.
func (b *Broker) jobs(ctx context.Context, ids []string, state broker.State) ([]*broker.Task, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	results := make([]*redis.XMessageSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, jobPrefix+id)
		if state == broker.StateDead {
			results[i] = pipe.XRevRangeN(ctx, resultsPrefix+id, "+", "-", 1)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("read jobs", err)
	}
	out := make([]*broker.Task, 0, len(ids))
	for i, id := range ids {
		h := cmds[i].Val()
		if len(h) == 0 {
			continue
		}
		t := jobTask(id, h, state)
		if results[i] != nil && t.LastError == "" {
			t.LastError = lastError(results[i].Val())
		}
		out = append(out, t)
	}
	return out, nil
}

// lastError reads the exception of a job's last result (RQ ≥ 1.12 keeps results in a
// stream; exc_string is zlib-compressed and base64-encoded).
func lastError(msgs []redis.XMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	s, _ := msgs[0].Values["exc_string"].(string)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return lastLine(decompress(string(raw)))
}

// jobTask turns a job hash into a task: its type is the function RQ calls and its
// payload the job's description (the call with its arguments) as a JSON string.
func jobTask(id string, h map[string]string, state broker.State) *broker.Task {
	desc := h["description"]
	typ := desc
	if i := strings.IndexByte(typ, '('); i >= 0 {
		typ = typ[:i]
	}
	payload, _ := json.Marshal(desc)
	t := &broker.Task{TaskInfo: brisktype.TaskInfo{ID: id, Queue: h["origin"], Type: typ, Payload: payload, State: state, MaxAttempts: 1}}
	if retries, err := strconv.Atoi(h["retries_left"]); err == nil {
		t.MaxAttempts += retries
	}
	if secs, err := strconv.ParseFloat(h["timeout"], 64); err == nil && secs > 0 {
		t.Timeout = time.Duration(secs * float64(time.Second))
	}
	parse := func(k string) time.Time {
		at, _ := time.Parse(rqTime, h[k])
		return at
	}
	t.EnqueuedAt = parse("created_at")
	t.ReadyAt = parse("enqueued_at")
	t.StartedAt = parse("started_at")
	if state == broker.StateDead {
		t.FailedAt = parse("ended_at")
		if h["exc_info"] != "" { // RQ before 1.12
			t.LastError = lastLine(decompress(h["exc_info"]))
		}
	}
	if !t.StartedAt.IsZero() && state != broker.StatePending {
		t.Attempt = 1
	}
	return t
}

// decompress undoes the zlib compression RQ applies to exc_info; text that is not
// compressed is returned as it is.
func decompress(s string) string {
	r, err := zlib.NewReader(strings.NewReader(s))
	if err != nil {
		return s
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return s
	}
	return string(b)
}

// lastLine is the last non-empty line of a traceback: the exception.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// statusState maps RQ's job status to a state; done reports a finished job.
func statusState(status string) (s broker.State, done bool) {
	switch status {
	case "started":
		return broker.StateRunning, false
	case "scheduled", "deferred":
		return broker.StateScheduled, false
	case "failed", "stopped", "canceled":
		return broker.StateDead, false
	case "finished":
		return "", true
	}
	return broker.StatePending, false
}

// Task reads one job by id; a finished job is reported as not found (done, as brisk
// removes a completed task).
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	h, err := b.rdb.HGetAll(ctx, jobPrefix+id).Result()
	if err != nil {
		return nil, b.fail("read job", err)
	}
	state, done := statusState(h["status"])
	if len(h) == 0 || done {
		return nil, fmt.Errorf("brisk: %s: job %s: %w", b.Name, id, broker.ErrNotFound)
	}
	return jobTask(id, h, state), nil
}

// Workers lists RQ's workers whose last heartbeat is after since.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	keys, err := b.rdb.SMembers(ctx, workersKey).Result()
	if err != nil {
		return nil, b.fail("list workers", err)
	}
	sort.Strings(keys)
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("read workers", err)
	}
	var out []broker.WorkerInfo
	for i, k := range keys {
		h := cmds[i].Val()
		seen, err := time.Parse(rqTime, h["last_heartbeat"])
		if err != nil || !seen.After(since) {
			continue
		}
		born, _ := time.Parse(rqTime, h["birth"])
		pid, _ := strconv.Atoi(h["pid"])
		busy := 0
		if h["state"] == "busy" {
			busy = 1
		}
		var queues []string
		if h["queues"] != "" {
			queues = strings.Split(h["queues"], ",")
		}
		out = append(out, broker.WorkerInfo{
			ID: strings.TrimPrefix(k, "rq:worker:"), Host: h["hostname"], PID: pid, Queues: queues,
			Concurrency: 1, Busy: busy, StartedAt: born, LastSeen: seen, Version: "rq " + h["version"],
		})
	}
	return out, nil
}
