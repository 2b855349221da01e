package celerybroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/watch"
)

// What kombu's Redis transport writes (kombu/transport/redis.py): a list per queue and
// priority step (the queue's name for step 0, the name + sep + step for the others),
// LPUSHed and BRPOPed, so that a list's oldest message is at index -1; the set
// _kombu.binding.EXCHANGE of "routing_key sep pattern sep queue"; and the hash unacked of
// delivery tag → [message, exchange, routing_key] for messages a worker has reserved and
// not acked (with the default acks_late=False, the prefetched ones).
const (
	kombuSep      = "\x06\x16"
	bindingPrefix = "_kombu.binding."
	unackedKey    = "unacked"
)

// prioritySteps are kombu's default priority_steps.
var prioritySteps = []int{0, 3, 6, 9}

func subListKey(queue string, step int) string {
	if step == 0 {
		return queue
	}
	return fmt.Sprintf("%s%s%d", queue, kombuSep, step)
}

// rediscoverLooks is how many looks use the queues found before they are looked for again
// (at least every rediscoverMin): finding them scans the keyspace.
const (
	rediscoverLooks = 10
	rediscoverMin   = time.Second
)

// maxUnacked bounds the reserved messages read to attribute them to queues.
const maxUnacked = 50000

// redisBroker watches Celery's queues on one Redis database.
type redisBroker struct {
	watch.ReadOnly
	rdb  *redis.Client
	opts options

	tickMu       sync.Mutex // one look at the queues at a time
	queues       map[string]*celeryQueue
	discoveredAt time.Time

	looker
}

var _ broker.Broker = (*redisBroker)(nil)

// celeryQueue is what the broker keeps of one queue between looks.
type celeryQueue struct {
	name     string
	subs     []*subList
	consumed int64 // messages taken from the lists by workers, as counted
}

// subList is one priority step's list, as last seen.
type subList struct {
	key      string
	seen     bool
	tail     string // the newest message (index 0) at the last look
	length   int64
	total    int64 // messages that arrived since the broker started watching (a lower bound)
	arrivals watch.Arrivals
}

func openRedis(ctx context.Context, u *url.URL) (broker.Broker, error) {
	ropts, own, err := watch.RedisURL(u, "sla", "track")
	if err != nil {
		return nil, fmt.Errorf("brisk: celery+redis: %w", err)
	}
	o, err := parseOptions("celery+redis", u, own)
	if err != nil {
		return nil, err
	}
	b := &redisBroker{
		ReadOnly: watch.ReadOnly{Name: "celery+redis"}, rdb: redis.NewClient(ropts), opts: o,
		queues: map[string]*celeryQueue{}, looker: newLooker(),
	}
	if err := watch.Ping(ctx, b.Name, b.rdb); err != nil {
		_ = b.rdb.Close()
		return nil, err
	}
	// A failed look in the background is not reported: the next Stats fails the same way.
	b.start(o.track, func(ctx context.Context) { _, _ = b.look(ctx) })
	return b, nil
}

// Close stops the background looks and closes the connection. It is idempotent.
func (b *redisBroker) Close() error {
	return b.close(func() error {
		b.tickMu.Lock()
		defer b.tickMu.Unlock()
		return b.rdb.Close()
	})
}

func (b *redisBroker) fail(what string, err error) error {
	if errors.Is(err, redis.ErrClosed) || b.closed() {
		return fmt.Errorf("brisk: %s: %s: %w", b.Name, what, broker.ErrClosed)
	}
	return fmt.Errorf("brisk: %s: %s: %v: %w", b.Name, what, err, broker.ErrUnavailable)
}

// discover finds Celery's queues as its workers and producers leave them: the queues of
// kombu's bindings, and the lists whose oldest element is a kombu message (a queue
// whose messages were sent without a declaration). Celery's own queues (pidbox, events)
// are left out. tickMu is held.
func (b *redisBroker) discover(ctx context.Context) error {
	names := map[string]bool{}
	var bindings []string
	iter := b.rdb.Scan(ctx, 0, bindingPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		bindings = append(bindings, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return b.fail("find queues", err)
	}
	for _, key := range bindings {
		members, err := b.rdb.SMembers(ctx, key).Result()
		if err != nil {
			return b.fail("find queues", err)
		}
		for _, m := range members {
			parts := strings.Split(m, kombuSep)
			if q := parts[len(parts)-1]; len(parts) == 3 && q != "" && !isCeleryInternal(q) {
				names[q] = true
			}
		}
	}
	var lists []string
	iter = b.rdb.ScanType(ctx, 0, "*", 1000, "list").Iterator()
	for iter.Next(ctx) {
		lists = append(lists, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return b.fail("find queues", err)
	}
	var candidates []string
	for _, key := range lists {
		base, _, _ := strings.Cut(key, kombuSep)
		if !names[base] && !strings.HasPrefix(key, "_kombu") && key != unackedKey && !isCeleryInternal(base) {
			candidates = append(candidates, key)
		}
	}
	if len(candidates) > 0 {
		pipe := b.rdb.Pipeline()
		heads := make([]*redis.StringCmd, len(candidates))
		for i, key := range candidates {
			heads[i] = pipe.LIndex(ctx, key, -1)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return b.fail("find queues", err)
		}
		for i, key := range candidates {
			if _, ok := parseMessage(heads[i].Val()); ok {
				base, _, _ := strings.Cut(key, kombuSep)
				names[base] = true
			}
		}
	}
	for name := range names {
		if b.queues[name] == nil {
			q := &celeryQueue{name: name}
			for _, step := range prioritySteps {
				q.subs = append(q.subs, &subList{key: subListKey(name, step)})
			}
			b.queues[name] = q
		}
	}
	b.discoveredAt = time.Now()
	return nil
}

// look counts, in every queue's lists, the messages that arrived and left since the last
// look: a message is identified by its text (kombu gives each a unique delivery tag), so
// the position of the last look's newest message tells how many came after it. It
// returns the queues, sorted by name.
func (b *redisBroker) look(ctx context.Context) ([]*celeryQueue, error) {
	b.tickMu.Lock()
	defer b.tickMu.Unlock()
	if b.closed() {
		return nil, fmt.Errorf("brisk: %s: %w", b.Name, broker.ErrClosed)
	}
	if time.Since(b.discoveredAt) > max(rediscoverMin, rediscoverLooks*b.opts.track) {
		if err := b.discover(ctx); err != nil {
			return nil, err
		}
	}
	qs := make([]*celeryQueue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	type reads struct {
		length *redis.IntCmd
		tail   *redis.StringCmd
		pos    *redis.IntCmd
	}
	var all [][]reads
	pipe := b.rdb.TxPipeline() // one moment for every list
	for _, q := range qs {
		rs := make([]reads, len(q.subs))
		for i, s := range q.subs {
			rs[i].length = pipe.LLen(ctx, s.key)
			rs[i].tail = pipe.LIndex(ctx, s.key, 0)
			if s.tail != "" {
				rs[i].pos = pipe.LPos(ctx, s.key, s.tail, redis.LPosArgs{Rank: 1})
			}
		}
		all = append(all, rs)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("look at queues", err)
	}
	now := time.Now()
	for i, q := range qs {
		for j, s := range q.subs {
			r := all[i][j]
			length := r.length.Val()
			var arrived int64
			switch {
			case !s.seen:
				arrived = length // all there arrived by now
			case s.tail == "":
				arrived = length // the list was empty: all there is new (more may have come and gone)
			case r.pos.Err() == nil:
				arrived = r.pos.Val() // the messages newer than the last newest one
			default:
				arrived = length // the last newest one left: all there is new (a lower bound)
			}
			if s.seen {
				q.consumed += max(0, s.length+arrived-length)
			}
			s.seen, s.tail, s.length = true, r.tail.Val(), length
			s.total += arrived
			s.arrivals.Observe(now, s.total)
		}
	}
	return qs, nil
}

// Stats reads every Celery queue: pending (the messages in its lists), running (the
// messages reserved by workers and not acked), queue latency, and the count of messages
// taken from the lists as Completed.
func (b *redisBroker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	qs, err := b.look(ctx)
	if err != nil {
		return nil, err
	}
	pipe := b.rdb.Pipeline()
	heads := make([][]*redis.StringCmd, len(qs))
	for i, q := range qs {
		for _, s := range q.subs {
			heads[i] = append(heads[i], pipe.LIndex(ctx, s.key, -1))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, b.fail("read head messages", err)
	}
	reserved, err := b.reserved(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	b.tickMu.Lock()
	defer b.tickMu.Unlock()
	out := make([]broker.QueueStats, len(qs))
	for i, q := range qs {
		st := broker.QueueStats{Name: q.name, SLA: b.opts.sla[q.name], Running: int64(len(reserved[q.name])), Completed: q.consumed}
		for j, s := range q.subs {
			st.Pending += s.length
			raw := heads[i][j].Val()
			if raw == "" {
				continue
			}
			at, source := time.Time{}, ""
			if m, ok := parseMessage(raw); ok {
				at, source = m.ready()
				if at.After(now) {
					continue // an eta still to come: not waiting yet
				}
			}
			if at.IsZero() {
				// The head is message number total − length + 1 of the arrivals counted.
				if first, ok := s.arrivals.FirstSeen(s.total - s.length + 1); ok {
					at, source = first, "first_seen"
				}
			}
			if !at.IsZero() && (st.OldestReadyAt.IsZero() || at.Before(st.OldestReadyAt)) {
				st.OldestReadyAt, st.LatencySource = at, source
			}
		}
		if !st.OldestReadyAt.IsZero() {
			st.Latency = max(0, now.Sub(st.OldestReadyAt))
		}
		out[i] = st
	}
	return out, nil
}

// reserved reads the unacked hash and returns its messages by queue.
func (b *redisBroker) reserved(ctx context.Context) (map[string][]message, error) {
	n, err := b.rdb.HLen(ctx, unackedKey).Result()
	if err != nil {
		return nil, b.fail("read reserved messages", err)
	}
	out := map[string][]message{}
	if n == 0 || n > maxUnacked {
		return out, nil
	}
	vals, err := b.rdb.HVals(ctx, unackedKey).Result()
	if err != nil {
		return nil, b.fail("read reserved messages", err)
	}
	for _, v := range vals {
		var entry []json.RawMessage // [message, exchange, routing_key]
		if json.Unmarshal([]byte(v), &entry) != nil || len(entry) != 3 {
			continue
		}
		var m message
		var routingKey string
		if json.Unmarshal(entry[0], &m) != nil || json.Unmarshal(entry[2], &routingKey) != nil {
			continue
		}
		out[routingKey] = append(out[routingKey], m)
	}
	return out, nil
}

// Tasks lists a queue's pending messages (oldest first, higher priorities first) or its
// reserved ones (running). Celery keeps no dead tasks in the broker, and its scheduled
// (eta) tasks are reserved by workers: those listings are empty.
func (b *redisBroker) Tasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if b.closed() {
		return nil, fmt.Errorf("brisk: %s: %w", b.Name, broker.ErrClosed)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = 100
	}
	out := []*broker.Task{}
	switch p.State {
	case broker.StatePending:
		offset := int64(p.Offset)
		for _, step := range prioritySteps {
			key := subListKey(p.Queue, step)
			n, err := b.rdb.LLen(ctx, key).Result()
			if err != nil {
				return nil, b.fail("list messages", err)
			}
			if offset >= n {
				offset -= n
				continue
			}
			take := min(n-offset, int64(limit-len(out)))
			raws, err := b.rdb.LRange(ctx, key, -(offset + take), -(offset + 1)).Result()
			if err != nil {
				return nil, b.fail("list messages", err)
			}
			for i := len(raws) - 1; i >= 0; i-- { // oldest first
				if m, ok := parseMessage(raws[i]); ok {
					out = append(out, m.task(p.Queue, broker.StatePending))
				}
			}
			offset = 0
			if len(out) >= limit {
				break
			}
		}
	case broker.StateRunning:
		reserved, err := b.reserved(ctx)
		if err != nil {
			return nil, err
		}
		ms := reserved[p.Queue]
		for i := p.Offset; i < len(ms) && len(out) < limit; i++ {
			out = append(out, ms[i].task(p.Queue, broker.StateRunning))
		}
	case broker.StateScheduled, broker.StateDead:
	default:
		return nil, fmt.Errorf("brisk: %s: %w: unknown state %q", b.Name, broker.ErrInvalid, p.State)
	}
	return out, nil
}

// Task is not supported: finding a message by id means reading every queue.
func (b *redisBroker) Task(context.Context, string) (*broker.Task, error) {
	return nil, b.Unsupported("find a task by id")
}

// Workers returns no worker: Celery records its workers in no Redis structure (they
// answer broadcasts instead).
func (b *redisBroker) Workers(context.Context, time.Time) ([]broker.WorkerInfo, error) {
	if b.closed() {
		return nil, fmt.Errorf("brisk: %s: %w", b.Name, broker.ErrClosed)
	}
	return nil, nil
}
