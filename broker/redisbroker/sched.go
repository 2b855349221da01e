package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// Cancel finds the queue that holds id (one pipelined round trip over the known queues)
// and cancels the task there with one script call.
func (b *Broker) Cancel(ctx context.Context, id string) (broker.State, error) {
	if b.closed.Load() {
		return "", errClosed("cancel")
	}
	if id == "" {
		return "", fmt.Errorf("brisk: redis: cancel: empty task id: %w", broker.ErrInvalid)
	}
	op := fmt.Sprintf("cancel task %q", id)
	qs, err := b.queueNames(ctx)
	if err != nil {
		return "", b.fail(ctx, op, err)
	}
	if len(qs) > 0 {
		pipe := b.rdb.Pipeline()
		exists := make([]*redis.IntCmd, len(qs))
		for i, q := range qs {
			exists[i] = pipe.Exists(ctx, b.k.task(q, id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return "", b.fail(ctx, op, err)
		}
		for i, q := range qs {
			if exists[i].Val() == 0 {
				continue
			}
			res, err := cancelScript.Run(ctx, b.rdb,
				[]string{b.k.ready(q), b.k.running(q), b.k.cancelled(q), b.k.meta(q), b.k.cancelledExpiry(q)},
				b.k.taskPrefix(q), b.k.workerTasksPrefix(q), id, b.k.wake(), q, us(now())).StringSlice()
			if err != nil {
				return "", b.fail(ctx, op, err)
			}
			switch res[0] {
			case "":
				continue // gone meanwhile
			case "run":
				return broker.StateRunning, nil
			case "q":
				if usTime(res[1]).After(now()) {
					return broker.StateScheduled, nil
				}
				return broker.StatePending, nil
			case "cancelled":
				return broker.StateCancelled, nil
			case "dead":
				return "", fmt.Errorf("brisk: redis: %s: the task is dead (it has ended; delete it instead): %w", op, broker.ErrInvalid)
			case "done":
				return "", fmt.Errorf("brisk: redis: %s: the task has completed (it is kept for its retention; delete it instead): %w", op, broker.ErrInvalid)
			}
		}
	}
	return "", fmt.Errorf("brisk: redis: %s: %w", op, broker.ErrNotFound)
}

// Revoked reads the state and token of each lease's task in one pipelined round trip.
func (b *Broker) Revoked(ctx context.Context, leases []broker.Lease) ([]broker.Revocation, error) {
	if b.closed.Load() {
		return nil, errClosed("revoked")
	}
	if len(leases) == 0 {
		return nil, nil
	}
	keys := make([]string, len(leases))
	for i, l := range leases {
		if err := checkLeaseQueue("revoked", l); err != nil {
			return nil, err
		}
		keys[i] = b.k.task(l.Queue, l.TaskID)
	}
	recs, err := b.getRecords(ctx, keys)
	if err != nil {
		return nil, b.fail(ctx, fmt.Sprintf("check %d lease(s)", len(leases)), err)
	}
	var out []broker.Revocation
	for i, l := range leases {
		r := recs[i]
		if r != nil && r.State == "run" && strconv.FormatInt(r.Token, 10) == l.Token {
			continue
		}
		out = append(out, broker.Revocation{Lease: l, Cancelled: r != nil && r.State == "cancelled"})
	}
	return out, nil
}

// AcquireLeadership takes or renews the leadership name with one script call.
func (b *Broker) AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (broker.Leadership, bool, error) {
	if b.closed.Load() {
		return broker.Leadership{}, false, errClosed("acquire leadership")
	}
	if err := broker.ValidateLeadership(name, holder, ttl); err != nil {
		return broker.Leadership{}, false, fmt.Errorf("brisk: redis: acquire leadership: %w", err)
	}
	t := now()
	res, err := acquireLeaderScript.Run(ctx, b.rdb, []string{b.k.leader(name)}, holder, us(t), us(t.Add(ttl))).Slice()
	if err != nil {
		return broker.Leadership{}, false, b.fail(ctx, fmt.Sprintf("acquire leadership %q", name), err)
	}
	l := broker.Leadership{Name: name, Holder: holder, Token: atoi64(asString(res[1])), Until: usTime(asString(res[2]))}
	if asString(res[0]) != "1" {
		l.Holder = asString(res[3])
		return l, false, nil
	}
	return l, true, nil
}

// RenewLeadership extends l with one script call if it is held.
func (b *Broker) RenewLeadership(ctx context.Context, l broker.Leadership, ttl time.Duration) (broker.Leadership, bool, error) {
	if b.closed.Load() {
		return l, false, errClosed("renew leadership")
	}
	if err := broker.ValidateLeadership(l.Name, l.Holder, ttl); err != nil {
		return l, false, fmt.Errorf("brisk: redis: renew leadership: %w", err)
	}
	t := now()
	until := t.Add(ttl)
	n, err := renewLeaderScript.Run(ctx, b.rdb, []string{b.k.leader(l.Name)}, l.Holder, l.Token, us(t), us(until)).Int()
	if err != nil {
		return l, false, b.fail(ctx, fmt.Sprintf("renew leadership %q", l.Name), err)
	}
	if n != 1 {
		return l, false, nil
	}
	l.Until = time.UnixMicro(until.UnixMicro())
	return l, true, nil
}

// ReleaseLeadership ends l with one script call if it is held.
func (b *Broker) ReleaseLeadership(ctx context.Context, l broker.Leadership) error {
	if b.closed.Load() {
		return errClosed("release leadership")
	}
	if err := broker.ValidateQueueName(l.Name); err != nil {
		return fmt.Errorf("brisk: redis: release leadership: %w", err)
	}
	if err := releaseLeaderScript.Run(ctx, b.rdb, []string{b.k.leader(l.Name)}, l.Holder, l.Token).Err(); err != nil {
		return b.fail(ctx, fmt.Sprintf("release leadership %q", l.Name), err)
	}
	return nil
}

// CurrentLeader reads the leadership name.
func (b *Broker) CurrentLeader(ctx context.Context, name string) (broker.Leadership, bool, error) {
	if b.closed.Load() {
		return broker.Leadership{}, false, errClosed("current leader")
	}
	if err := broker.ValidateQueueName(name); err != nil {
		return broker.Leadership{}, false, fmt.Errorf("brisk: redis: current leader: %w", err)
	}
	v, err := b.rdb.HMGet(ctx, b.k.leader(name), "holder", "token", "until").Result()
	if err != nil {
		return broker.Leadership{}, false, b.fail(ctx, fmt.Sprintf("current leader %q", name), err)
	}
	l := broker.Leadership{Name: name, Holder: asString(v[0]), Token: atoi64(asString(v[1])), Until: usTime(asString(v[2]))}
	return l, l.Holder != "" && l.Until.After(now()), nil
}

// scheduleRecord is how a schedule's definition is stored (its last run lives apart, in
// the runs HASH, so that putting a definition never races with recording a run).
type scheduleRecord struct {
	Spec        string `json:"spec"`
	Queue       string `json:"queue"`
	Type        string `json:"type"`
	Payload     []byte `json:"payload,omitempty"`
	MaxAttempts int    `json:"max_attempts"`
	TimeoutNS   int64  `json:"timeout_ns,omitempty"`
	CatchUp     bool   `json:"catch_up,omitempty"`
	CreatedUS   int64  `json:"created_us"`
	UpdatedUS   int64  `json:"updated_us"`
}

// PutSchedule stores s, keeping the creation time of a schedule it replaces (its last run
// is kept apart and stays).
func (b *Broker) PutSchedule(ctx context.Context, s broker.Schedule) error {
	if b.closed.Load() {
		return errClosed("put schedule")
	}
	if err := broker.ValidateSchedule(s, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: redis: put schedule: %w", err)
	}
	op := fmt.Sprintf("put schedule %q", s.Name)
	t := now().UnixMicro()
	rec := scheduleRecord{Spec: s.Spec, Queue: s.Queue, Type: s.Type, Payload: s.Payload, MaxAttempts: s.MaxAttempts,
		TimeoutNS: int64(s.Timeout), CatchUp: s.CatchUp, CreatedUS: t, UpdatedUS: t}
	old, err := b.rdb.HGet(ctx, b.k.schedules(), s.Name).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return b.fail(ctx, op, err)
	}
	var prev scheduleRecord
	if err == nil && json.Unmarshal([]byte(old), &prev) == nil && prev.CreatedUS != 0 {
		rec.CreatedUS = prev.CreatedUS
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("brisk: redis: %s: %w", op, err)
	}
	if err := b.rdb.HSet(ctx, b.k.schedules(), s.Name, data).Err(); err != nil {
		return b.fail(ctx, op, err)
	}
	return nil
}

// DeleteSchedule removes the schedule name and its last run.
func (b *Broker) DeleteSchedule(ctx context.Context, name string) error {
	if b.closed.Load() {
		return errClosed("delete schedule")
	}
	pipe := b.rdb.TxPipeline() // one slot: the keys share the {prefix:sched} tag
	del := pipe.HDel(ctx, b.k.schedules(), name)
	pipe.HDel(ctx, b.k.runs(), name)
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("delete schedule %q", name), err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("brisk: redis: delete schedule: %w: no schedule named %q", broker.ErrNotFound, name)
	}
	return nil
}

// Schedules lists every schedule by name, with its last run, in one round trip.
func (b *Broker) Schedules(ctx context.Context) ([]broker.Schedule, error) {
	if b.closed.Load() {
		return nil, errClosed("schedules")
	}
	pipe := b.rdb.TxPipeline()
	defs := pipe.HGetAll(ctx, b.k.schedules())
	runs := pipe.HGetAll(ctx, b.k.runs())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, b.fail(ctx, "schedules", err)
	}
	out := make([]broker.Schedule, 0, len(defs.Val()))
	for name, data := range defs.Val() {
		var rec scheduleRecord
		if err := json.Unmarshal([]byte(data), &rec); err != nil {
			b.log.Warn("brisk: redis: skipping a corrupt schedule record", "schedule", name, "err", err)
			continue
		}
		s := broker.Schedule{Name: name, Spec: rec.Spec, Queue: rec.Queue, Type: rec.Type, Payload: rec.Payload,
			MaxAttempts: rec.MaxAttempts, Timeout: time.Duration(rec.TimeoutNS), CatchUp: rec.CatchUp,
			CreatedAt: time.UnixMicro(rec.CreatedUS), UpdatedAt: time.UnixMicro(rec.UpdatedUS)}
		if run, ok := runs.Val()[name]; ok {
			at, id, _ := strings.Cut(run, " ")
			s.LastRun, s.LastTaskID = usTime(at), id
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MarkScheduleRun records a tick with one script call that checks the leadership.
func (b *Broker) MarkScheduleRun(ctx context.Context, l broker.Leadership, name string, at time.Time, taskID string) error {
	if b.closed.Load() {
		return errClosed("mark schedule run")
	}
	if err := broker.ValidateQueueName(l.Name); err != nil {
		return fmt.Errorf("brisk: redis: mark schedule run: %w", err)
	}
	op := fmt.Sprintf("mark run of schedule %q", name)
	n, err := markRunScript.Run(ctx, b.rdb, []string{b.k.leader(l.Name), b.k.schedules(), b.k.runs()},
		l.Holder, l.Token, us(now()), name, us(at), taskID).Int()
	switch {
	case err != nil:
		return b.fail(ctx, op, err)
	case n < 0:
		return fmt.Errorf("brisk: redis: %s: leadership %q token %d: %w", op, l.Name, l.Token, broker.ErrLeaseLost)
	case n == 0:
		return fmt.Errorf("brisk: redis: mark schedule run: %w: no schedule named %q", broker.ErrNotFound, name)
	}
	return nil
}

// limitField is the field of a limit in the limits and buckets HASHes.
func limitField(typ string) string {
	if typ == "" {
		return "*"
	}
	return "t:" + typ
}

// SetLimit stores l in its queue's limits HASH with one script call (the bucket starts
// full) and registers the queue.
func (b *Broker) SetLimit(ctx context.Context, l broker.Limit) error {
	if b.closed.Load() {
		return errClosed("set limit")
	}
	l, err := broker.ValidateLimit(l)
	if err != nil {
		return fmt.Errorf("brisk: redis: set %w", err)
	}
	q := l.Queue
	value := fmt.Sprintf("%d %d %d %d", l.Rate, l.Per.Microseconds(), l.Burst, l.MaxRunning)
	if err := setLimitScript.Run(ctx, b.rdb, []string{b.k.limits(q), b.k.buckets(q), b.k.meta(q)}, limitField(l.Type), value).Err(); err != nil {
		return b.fail(ctx, fmt.Sprintf("set limit of queue %q", q), err)
	}
	if err := b.rdb.SAdd(ctx, b.k.queues(), q).Err(); err != nil {
		return b.fail(ctx, fmt.Sprintf("set limit of queue %q", q), err)
	}
	b.hints.Clear(q)
	if err := b.rdb.Publish(ctx, b.k.wake(), q).Err(); err != nil { // a raised limit may let waiters take tasks
		return b.fail(ctx, fmt.Sprintf("set limit of queue %q", q), err)
	}
	return nil
}

// DeleteLimit removes the limit of queue and typ with one script call.
func (b *Broker) DeleteLimit(ctx context.Context, queue, typ string) error {
	if b.closed.Load() {
		return errClosed("delete limit")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: redis: delete limit: %w", err)
	}
	had, err := setLimitScript.Run(ctx, b.rdb, []string{b.k.limits(queue), b.k.buckets(queue), b.k.meta(queue)}, limitField(typ), "").Int()
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("delete limit of queue %q", queue), err)
	}
	if had == 0 {
		if typ == "" {
			return fmt.Errorf("brisk: redis: delete limit: %w: no limit on queue %q", broker.ErrNotFound, queue)
		}
		return fmt.Errorf("brisk: redis: delete limit: %w: no limit on type %q of queue %q", broker.ErrNotFound, typ, queue)
	}
	b.hints.Clear(queue)
	if err := b.rdb.Publish(ctx, b.k.wake(), queue).Err(); err != nil {
		return b.fail(ctx, fmt.Sprintf("delete limit of queue %q", queue), err)
	}
	return nil
}

// Limits lists the limits of every known queue, one pipelined round trip.
func (b *Broker) Limits(ctx context.Context) ([]broker.Limit, error) {
	if b.closed.Load() {
		return nil, errClosed("limits")
	}
	qs, err := b.queueNames(ctx)
	if err != nil {
		return nil, b.fail(ctx, "limits", err)
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(qs))
	for i, q := range qs {
		cmds[i] = pipe.HGetAll(ctx, b.k.limits(q))
	}
	if len(qs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, b.fail(ctx, "limits", err)
		}
	}
	var out []broker.Limit
	for i, q := range qs {
		for f, v := range cmds[i].Val() {
			l := broker.Limit{Queue: q}
			if f != "*" {
				l.Type = strings.TrimPrefix(f, "t:")
			}
			var per int64
			if _, err := fmt.Sscanf(v, "%d %d %d %d", &l.Rate, &per, &l.Burst, &l.MaxRunning); err != nil {
				b.log.Warn("brisk: redis: skipping a corrupt limit", "queue", q, "field", f, "value", v)
				continue
			}
			l.Per = time.Duration(per) * time.Microsecond
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Queue != out[j].Queue {
			return out[i].Queue < out[j].Queue
		}
		return out[i].Type < out[j].Type
	})
	return out, nil
}
