package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// queueNames returns every known queue, sorted.
func (b *Broker) queueNames(ctx context.Context) ([]string, error) {
	qs, err := b.rdb.SMembers(ctx, b.k.queues()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(qs)
	return qs, nil
}

// DeclareQueue registers the queue and stores its SLA (idempotent).
func (b *Broker) DeclareQueue(ctx context.Context, q broker.QueueConfig) error {
	if b.closed.Load() {
		return errClosed("declare queue")
	}
	if err := broker.ValidateQueueName(q.Name); err != nil {
		return fmt.Errorf("brisk: redis: declare queue: %w", err)
	}
	if q.SLA < 0 {
		return fmt.Errorf("brisk: redis: declare queue %q: negative SLA %s: %w", q.Name, q.SLA, broker.ErrInvalid)
	}
	pipe := b.rdb.Pipeline()
	pipe.HSet(ctx, b.k.meta(q.Name), "sla", int64(q.SLA))
	pipe.SAdd(ctx, b.k.queues(), q.Name)
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("declare queue %q", q.Name), err)
	}
	return nil
}

// PauseQueue pauses (paused=true) or resumes the queue, creating it if needed, by setting
// the field paused of its meta HASH, which the reserve script checks. Resuming publishes the
// queue on the wake channel, so that waiting workers of every process look again.
func (b *Broker) PauseQueue(ctx context.Context, queue string, paused bool) error {
	op := "resume queue"
	if paused {
		op = "pause queue"
	}
	if b.closed.Load() {
		return errClosed(op)
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: redis: %s: %w", op, err)
	}
	v := 0
	if paused {
		v = 1
	}
	pipe := b.rdb.Pipeline()
	pipe.HSet(ctx, b.k.meta(queue), "paused", v)
	pipe.SAdd(ctx, b.k.queues(), queue)
	if !paused {
		pipe.Publish(ctx, b.k.wake(), queue)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	if !paused {
		b.hub.Notify(queue)
	}
	return nil
}

// Stats returns the statistics of every known queue in one round trip: counts by ZCARD
// and ZCOUNT, the oldest pending task by the first member of the ready ZSET, the retained
// tasks by the unexpired members of the completed ZSET.
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	if b.closed.Load() {
		return nil, errClosed("stats")
	}
	qs, err := b.queueNames(ctx)
	if err != nil {
		return nil, b.fail(ctx, "stats", err)
	}
	t := now()
	nowUS := us(t)
	type cmds struct {
		pending, scheduled, running, dead  *redis.IntCmd
		cancelled, cancelledGone, retained *redis.IntCmd
		first                              *redis.ZSliceCmd
		meta                               *redis.SliceCmd
	}
	all := make([]cmds, len(qs))
	pipe := b.rdb.Pipeline()
	for i, q := range qs {
		all[i] = cmds{
			pending:   pipe.ZCount(ctx, b.k.ready(q), "-inf", nowUS),
			scheduled: pipe.ZCount(ctx, b.k.ready(q), "("+nowUS, "+inf"),
			running:   pipe.ZCard(ctx, b.k.running(q)),
			dead:      pipe.ZCard(ctx, b.k.dead(q)),
			cancelled: pipe.ZCard(ctx, b.k.cancelled(q)),
			// Cancelled tasks kept for a retention that has passed (their records
			// deleted by Redis, their members not yet swept) are not counted.
			cancelledGone: pipe.ZCount(ctx, b.k.cancelledExpiry(q), "-inf", nowUS),
			retained:      pipe.ZCount(ctx, b.k.completed(q), "("+nowUS, "+inf"),
			first:         pipe.ZRangeWithScores(ctx, b.k.ready(q), 0, 0),
			meta:          pipe.HMGet(ctx, b.k.meta(q), "sla", "completed", "failed", "paused", "ret"),
		}
	}
	if len(qs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, b.fail(ctx, "stats", err)
		}
	}
	out := make([]broker.QueueStats, len(qs))
	for i, q := range qs {
		c := all[i]
		meta := c.meta.Val()
		st := broker.QueueStats{
			Name:      q,
			SLA:       time.Duration(atoi64(asString(meta[0]))),
			Pending:   c.pending.Val(),
			Scheduled: c.scheduled.Val(),
			Running:   c.running.Val(),
			Dead:      c.dead.Val(),
			Cancelled: c.cancelled.Val() - c.cancelledGone.Val(),
			Completed: atoi64(asString(meta[1])),
			Failed:    atoi64(asString(meta[2])),
			Paused:    asString(meta[3]) == "1",
			Retained:  c.retained.Val(),
			Retention: time.Duration(atoi64(asString(meta[4]))) * time.Microsecond,
		}
		if z := c.first.Val(); len(z) == 1 && st.Pending > 0 {
			oldest := time.UnixMicro(int64(math.Round(z[0].Score)))
			if !oldest.After(t) {
				st.OldestReadyAt = oldest
				st.Latency = max(t.Sub(oldest), 0)
			}
		}
		out[i] = st
	}
	return out, nil
}

// Tasks lists one queue's tasks of one state, oldest ReadyAt first (running tasks: earliest
// lease expiry first; completed tasks: earliest expiry first, which is oldest FinishedAt
// first among tasks of one retention), in one round trip for the page of members and one
// for the tasks. Tasks kept for a retention that has passed are left out.
func (b *Broker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("tasks")
	}
	if err := broker.ValidateList(p); err != nil {
		return nil, fmt.Errorf("brisk: redis: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	q := p.Queue
	t := now()
	var (
		members []string
		err     error
	)
	switch p.State {
	case broker.StatePending:
		members, err = b.rdb.ZRangeByScore(ctx, b.k.ready(q), &redis.ZRangeBy{Min: "-inf", Max: us(t), Offset: int64(p.Offset), Count: int64(limit)}).Result()
	case broker.StateScheduled:
		members, err = b.rdb.ZRangeByScore(ctx, b.k.ready(q), &redis.ZRangeBy{Min: "(" + us(t), Max: "+inf", Offset: int64(p.Offset), Count: int64(limit)}).Result()
	case broker.StateRunning:
		members, err = b.rdb.ZRange(ctx, b.k.running(q), int64(p.Offset), int64(p.Offset+limit-1)).Result()
	case broker.StateDead:
		members, err = b.rdb.ZRange(ctx, b.k.dead(q), int64(p.Offset), int64(p.Offset+limit-1)).Result()
	case broker.StateCancelled:
		members, err = b.rdb.ZRange(ctx, b.k.cancelled(q), int64(p.Offset), int64(p.Offset+limit-1)).Result()
	case broker.StateCompleted:
		members, err = b.rdb.ZRangeByScore(ctx, b.k.completed(q), &redis.ZRangeBy{Min: "(" + us(t), Max: "+inf", Offset: int64(p.Offset), Count: int64(limit)}).Result()
	}
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("tasks of queue %q", q), err)
	}
	if len(members) == 0 {
		return nil, nil
	}
	keys := make([]string, len(members))
	for i, m := range members {
		keys[i] = b.k.task(q, idOf(m))
	}
	recs, err := b.getRecords(ctx, keys)
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("tasks of queue %q", q), err)
	}
	out := make([]*broker.Task, 0, len(members))
	for i, m := range members {
		if recs[i] == nil || recs[i].expired(t.UnixMicro()) {
			continue // removed between the two round trips, or expired
		}
		out = append(out, recs[i].task(idOf(m), q, t))
	}
	return out, nil
}

// Task returns one task by id, looked up in every known queue in one round trip. A task
// kept for a retention that has passed is not found.
func (b *Broker) Task(ctx context.Context, id string) (*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("task")
	}
	qs, err := b.queueNames(ctx)
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("task %q", id), err)
	}
	if id != "" && len(qs) > 0 {
		keys := make([]string, len(qs))
		for i, q := range qs {
			keys[i] = b.k.task(q, id)
		}
		recs, err := b.getRecords(ctx, keys)
		if err != nil {
			return nil, b.fail(ctx, fmt.Sprintf("task %q", id), err)
		}
		t := now()
		for i, q := range qs {
			if recs[i] != nil && !recs[i].expired(t.UnixMicro()) {
				return recs[i].task(id, q, t), nil
			}
		}
	}
	return nil, fmt.Errorf("brisk: redis: %w: id=%q", broker.ErrNotFound, id)
}

// getRecords reads the task records of keys in one round trip (MGET on one server; on a
// cluster one GET per key, pipelined, as the keys may live in several slots). A key that
// does not exist gives nil. A record that cannot be decoded gives the values read before
// the fault, with the decoding error as its last error, so that one bad record does not
// hide the others from the Inspector (Reserve moves such a task to dead: decodeLeased).
func (b *Broker) getRecords(ctx context.Context, keys []string) ([]*record, error) {
	vals := make([]any, len(keys))
	if b.cluster {
		pipe := b.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.Get(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, c := range cmds {
			if c.Err() == nil {
				vals[i] = c.Val()
			}
		}
	} else {
		var err error
		if vals, err = b.rdb.MGet(ctx, keys...).Result(); err != nil {
			return nil, err
		}
	}
	out := make([]*record, len(keys))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		r, err := decodeRecord(s)
		if err != nil {
			r.LastError = fmt.Sprintf("brisk: redis: task %s: %v (last error before: %q)", keys[i], err, r.LastError)
		}
		out[i] = &r
	}
	return out, nil
}

// RetryDead makes dead tasks of queue pending again (one script call).
func (b *Broker) RetryDead(ctx context.Context, queue string, ids []string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("retry dead")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: redis: retry dead: %w", err)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	args := []any{b.k.taskPrefix(queue), b.k.wake(), queue, us(now())}
	for _, id := range ids {
		args = append(args, id)
	}
	n, err := retryDeadScript.Run(ctx, b.rdb, []string{b.k.ready(queue), b.k.dead(queue), b.k.meta(queue)}, args...).Int()
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("retry dead tasks of queue %q", queue), err)
	}
	if n > 0 {
		b.hub.Notify(queue)
	}
	return n, nil
}

// Delete removes tasks of queue in state (not running), one script call.
func (b *Broker) Delete(ctx context.Context, queue string, state broker.State, ids []string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("delete")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return 0, fmt.Errorf("brisk: redis: delete: %w", err)
	}
	keys := make([]string, 1, 2)
	switch state {
	case broker.StatePending, broker.StateScheduled:
		keys[0] = b.k.ready(queue)
	case broker.StateDead:
		keys[0] = b.k.dead(queue)
	case broker.StateCancelled:
		keys[0] = b.k.cancelled(queue)
		keys = append(keys, b.k.cancelledExpiry(queue))
	case broker.StateCompleted:
		keys[0] = b.k.completed(queue)
	case broker.StateRunning:
		return 0, fmt.Errorf("brisk: redis: delete from queue %q: running tasks cannot be deleted (they belong to a worker): %w", queue, broker.ErrInvalid)
	default:
		return 0, fmt.Errorf("brisk: redis: delete from queue %q: unknown state %q: %w", queue, state, broker.ErrInvalid)
	}
	if ids != nil && len(ids) == 0 {
		return 0, nil
	}
	args := []any{b.k.taskPrefix(queue), string(state), us(now())}
	for _, id := range ids {
		args = append(args, id)
	}
	n, err := deleteScript.Run(ctx, b.rdb, keys, args...).Int()
	if err != nil {
		return 0, b.fail(ctx, fmt.Sprintf("delete %s tasks of queue %q", state, queue), err)
	}
	return n, nil
}

// workerRecord is how a worker's heartbeat is stored.
type workerRecord struct {
	ID          string   `json:"id"`
	Host        string   `json:"host,omitempty"`
	PID         int      `json:"pid,omitempty"`
	Queues      []string `json:"queues,omitempty"`
	Concurrency int      `json:"concurrency,omitempty"`
	Busy        int      `json:"busy,omitempty"`
	StartedAt   int64    `json:"started_at_us,omitempty"`
	LastSeen    int64    `json:"last_seen_us"`
	Version     string   `json:"version,omitempty"`
}

// Heartbeat replaces the worker's record and its place in the index by last heartbeat, in
// one MULTI/EXEC.
func (b *Broker) Heartbeat(ctx context.Context, w broker.WorkerInfo) error {
	if b.closed.Load() {
		return errClosed("heartbeat")
	}
	if w.ID == "" {
		return fmt.Errorf("brisk: redis: heartbeat: empty worker id: %w", broker.ErrInvalid)
	}
	seen := w.LastSeen
	if seen.IsZero() {
		seen = now()
	}
	rec := workerRecord{ID: w.ID, Host: w.Host, PID: w.PID, Queues: w.Queues, Concurrency: w.Concurrency,
		Busy: w.Busy, LastSeen: seen.UnixMicro(), Version: w.Version}
	if !w.StartedAt.IsZero() {
		rec.StartedAt = w.StartedAt.UnixMicro()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("brisk: redis: heartbeat %q: %w", w.ID, err)
	}
	_, err = b.pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b.k.worker(w.ID), data, 0)
		p.ZAdd(ctx, b.k.workers(), redis.Z{Score: float64(rec.LastSeen), Member: w.ID})
		return nil
	})
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("heartbeat %q", w.ID), err)
	}
	return nil
}

// Deregister removes a worker's record.
func (b *Broker) Deregister(ctx context.Context, workerID string) error {
	if b.closed.Load() {
		return errClosed("deregister")
	}
	if err := b.deregister(ctx, workerID); err != nil {
		return b.fail(ctx, fmt.Sprintf("deregister %q", workerID), err)
	}
	return nil
}

func (b *Broker) deregister(ctx context.Context, workerID string) error {
	_, err := b.pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, b.k.worker(workerID))
		p.ZRem(ctx, b.k.workers(), workerID)
		return nil
	})
	return err
}

// Workers lists the records whose last heartbeat is newer than since.
func (b *Broker) Workers(ctx context.Context, since time.Time) ([]broker.WorkerInfo, error) {
	if b.closed.Load() {
		return nil, errClosed("workers")
	}
	lo := "-inf"
	if !since.IsZero() {
		lo = "(" + strconv.FormatInt(since.UnixMicro(), 10)
	}
	ids, err := b.rdb.ZRangeByScore(ctx, b.k.workers(), &redis.ZRangeBy{Min: lo, Max: "+inf"}).Result()
	if err != nil {
		return nil, b.fail(ctx, "workers", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = b.k.worker(id)
	}
	// GETs in one pipeline rather than one MGET: worker keys spread over a cluster's slots.
	pipe := b.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(names))
	for i, name := range names {
		gets[i] = pipe.Get(ctx, name)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail(ctx, "workers", err)
	}
	out := make([]broker.WorkerInfo, 0, len(gets))
	for i, g := range gets {
		s, err := g.Result()
		if err != nil {
			continue // deregistered between the two calls
		}
		var rec workerRecord
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			b.log.Warn("brisk: redis: skipping a corrupt worker record", "worker", ids[i], "err", err)
			continue
		}
		w := broker.WorkerInfo{ID: rec.ID, Host: rec.Host, PID: rec.PID, Queues: rec.Queues,
			Concurrency: rec.Concurrency, Busy: rec.Busy, LastSeen: time.UnixMicro(rec.LastSeen), Version: rec.Version}
		if rec.StartedAt != 0 {
			w.StartedAt = time.UnixMicro(rec.StartedAt)
		}
		out = append(out, w)
	}
	return out, nil
}

// encodeHeaders gives the stored form of a task's headers: a JSON object, "" for none.
// ValidateHeaders has checked them, so they always encode.
func encodeHeaders(h map[string]string) string {
	if len(h) == 0 {
		return ""
	}
	b, _ := json.Marshal(h)
	return string(b)
}

// decodeHeaders reads the stored form of headers (nil for "" or a value that is not a JSON
// object of strings, which brisk never writes).
func decodeHeaders(s string) map[string]string {
	if s == "" {
		return nil
	}
	var h map[string]string
	if json.Unmarshal([]byte(s), &h) != nil {
		return nil
	}
	return h
}
