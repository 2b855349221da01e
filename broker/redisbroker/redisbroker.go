package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/limithint"
)

var (
	_ broker.Broker           = (*Broker)(nil)
	_ broker.Reaper           = (*Broker)(nil)
	_ broker.Pauser           = (*Broker)(nil)
	_ broker.AckReserver      = (*Broker)(nil)
	_ broker.Canceler         = (*Broker)(nil)
	_ broker.Leader           = (*Broker)(nil)
	_ broker.ScheduleStore    = (*Broker)(nil)
	_ broker.Limiter          = (*Broker)(nil)
	_ broker.QueueDeleter     = (*Broker)(nil)
	_ broker.SampleStore      = (*Broker)(nil)
	_ broker.Retainer         = (*Broker)(nil)
	_ broker.ProgressReporter = (*Broker)(nil)
)

// reclaimBatch bounds how many expired leases one reserve script call reclaims, so that a
// mass expiry never makes one script long; the rest are reclaimed by the next calls.
const reclaimBatch = 256

// Broker is a broker.Broker, broker.Reaper, broker.Pauser, broker.AckReserver,
// broker.QueueDeleter, broker.SampleStore, broker.Retainer and broker.ProgressReporter
// that keeps tasks in Redis. Create it with Open or OpenOptions; it is safe for concurrent use.
type Broker struct {
	opts Options
	rdb  redis.UniversalClient
	k    keys
	log  *slog.Logger
	addr string // names the server (or the cluster's seeds) in errors
	// cluster is set when rdb is a *redis.ClusterClient.
	cluster bool

	hub   *hub
	hints limithint.Hints // why limits left ready tasks behind, per queue (see Wait)
	// registered holds, on a cluster, the queues that an enqueue of this process has
	// added to the registry (see Enqueue).
	registered sync.Map

	closed    atomic.Bool
	closedCh  chan struct{}
	closeOnce sync.Once
	bgCancel  context.CancelFunc
	bgCtx     context.Context
}

// OpenOptions opens a broker with opts. A server that does not answer a PING within
// opts.PingTimeout is an error wrapping broker.ErrUnavailable.
func OpenOptions(ctx context.Context, opts Options) (*Broker, error) {
	routeClientLog(opts.Logger)
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:     opts,
		k:        keys{prefix: opts.Prefix},
		log:      opts.Logger,
		closedCh: make(chan struct{}),
	}
	b.hub = newHub()
	b.bgCtx, b.bgCancel = context.WithCancel(context.Background())
	fail := func(err error) (*Broker, error) {
		if b.rdb != nil {
			b.rdb.Close()
		}
		b.bgCancel()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, opts.PingTimeout)
	defer cancel()
	if opts.Cluster != nil {
		b.connectCluster(opts.Cluster)
	} else {
		ro := *opts.Redis
		ro.ContextTimeoutEnabled = true
		if ro.MaxRetries == 0 {
			// A script is never sent twice: a retried enqueue whose first try was applied
			// would report a duplicate, a retried reserve would lease tasks nobody holds.
			// go-redis drops broken pooled connections itself; the caller retries.
			ro.MaxRetries = -1
		}
		if ro.DialerRetries == 0 {
			// Fail fast while the server is away (go-redis's default tries 5 times, 100 ms
			// apart, per command); the caller's own retry loop backs off.
			ro.DialerRetries = 2
			ro.DialerRetryTimeout = 50 * time.Millisecond
		}
		b.addr = ro.Addr
		b.rdb = redis.NewClient(&ro)
		if !opts.NoClusterDetect {
			// INFO is the first call, so its error says whether the server answers at all.
			info, err := b.rdb.Info(pctx, "cluster").Result()
			if err != nil {
				return fail(b.openError(ctx, fmt.Sprintf("INFO cluster (timeout %s)", opts.PingTimeout), err))
			}
			if strings.Contains(info, "cluster_enabled:1") {
				if ro.DB != 0 {
					return fail(fmt.Errorf("brisk: redis: open %s: the server is a Redis Cluster node, which has only database 0, not %d: %w", b.addr, ro.DB, broker.ErrInvalid))
				}
				b.rdb.Close()
				b.connectCluster(clusterOptionsOf(&ro))
			}
		}
	}
	if b.cluster {
		// Every master must answer, not just the seed that was asked.
		err := b.rdb.(*redis.ClusterClient).ForEachMaster(pctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
		if err != nil {
			return fail(b.openError(ctx, "PING every master", err))
		}
	} else if opts.NoClusterDetect {
		if err := b.rdb.Ping(pctx).Err(); err != nil {
			return fail(b.openError(ctx, fmt.Sprintf("PING (timeout %s)", opts.PingTimeout), err))
		}
	}
	for _, s := range allScripts {
		if err := s.Load(pctx, b.rdb).Err(); err != nil {
			return fail(fmt.Errorf("brisk: redis: open %s: load scripts: %w: %w", b.addr, broker.ErrUnavailable, err))
		}
	}
	if err := b.migrate(ctx); err != nil {
		return fail(err)
	}
	b.checkDurability(pctx)
	return b, nil
}

// openError wraps an error of Open's first calls: the context's error when the caller gave
// up, ErrUnavailable otherwise.
func (b *Broker) openError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("brisk: redis: open %s: %w", b.addr, ctx.Err())
	}
	if redis.HasErrorPrefix(err, "WRONGPASS") || redis.HasErrorPrefix(err, "NOAUTH") {
		// A wrong or missing password is the caller's to fix, not an outage to wait out.
		return fmt.Errorf("brisk: redis: open %s: authentication refused (check the URL's user and password): %w: %w", b.addr, broker.ErrInvalid, err)
	}
	return fmt.Errorf("brisk: redis: open %s: %s: %w: %w", b.addr, what, broker.ErrUnavailable, err)
}

// Capabilities declares every optional behaviour: the whole task state machine lives in
// the store, and Enqueue keeps uniqueness locks.
func (b *Broker) Capabilities() broker.Capabilities {
	c := broker.AllCapabilities()
	c.Unique = true
	return c
}

// Close closes the connections. It is idempotent; tasks stay stored.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		close(b.closedCh)
		b.bgCancel()
		b.hub.stop()
		if e := b.rdb.Close(); e != nil && !errors.Is(e, redis.ErrClosed) {
			err = fmt.Errorf("brisk: redis: close: %w", e)
		}
	})
	return err
}

// errClosed is returned by every method after Close.
func errClosed(op string) error {
	return fmt.Errorf("brisk: redis: %s: %w", op, broker.ErrClosed)
}

// fail wraps an error of the client: ErrClosed after Close, the context's error when the
// caller gave up, ErrUnavailable when the server could not be reached or could not serve.
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	if b.closed.Load() || errors.Is(err, redis.ErrClosed) {
		return errClosed(op)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("brisk: redis: %s: %w", op, err)
	}
	if isConnError(err) {
		return fmt.Errorf("brisk: redis: %s (server %s): %w: %w", op, b.addr, broker.ErrUnavailable, err)
	}
	return fmt.Errorf("brisk: redis: %s: %w", op, err)
}

// isConnError reports whether err says the server could not be reached or cannot serve now
// (as opposed to an error reply about the command itself).
func isConnError(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY "} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection")
}

// now is the broker's clock.
func now() time.Time { return time.Now() }

func us(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// Enqueue stores tasks atomically. A batch is one script call over the keys of all its
// queues: all of its tasks are stored or, with an error, none (see the package
// documentation about Redis Cluster).
func (b *Broker) Enqueue(ctx context.Context, tasks []*broker.Task) error {
	if b.closed.Load() {
		return errClosed("enqueue")
	}
	if err := broker.ValidateTasks(tasks, b.opts.MaxPayload); err != nil {
		return fmt.Errorf("brisk: redis: enqueue: %w", err)
	}
	// Group by queue, keeping the batch's order within each queue.
	var order []string
	groups := map[string][]*broker.Task{}
	for _, t := range tasks {
		if _, ok := groups[t.Queue]; !ok {
			order = append(order, t.Queue)
		}
		groups[t.Queue] = append(groups[t.Queue], t)
	}
	if b.cluster && len(order) > 1 {
		if err := b.enqueueAcrossSlots(ctx, order, groups, len(tasks)); err != nil {
			return err
		}
		for _, q := range order {
			b.hub.Notify(q)
		}
		return nil
	}
	script, keys, args := b.enqueueCall(order, groups)
	var err error
	if !b.cluster {
		// One command: the script also adds the queues to the registry (after its
		// duplicate check, so a refused batch registers nothing).
		keys = append(keys, b.k.queues())
		err = script.Run(ctx, b.rdb, keys, args...).Err()
	} else if _, known := b.registered.Load(order[0]); known {
		// This process has registered the queue: the script alone, on the queue's node. A
		// queue deleted since (by any process) starts its sequence again, and the script
		// says so: registerFresh registers it once more.
		cmd := script.Run(ctx, b.rdb, keys, args...)
		if err = cmd.Err(); err == nil {
			b.registerFresh(ctx, order[:1], []*redis.Cmd{cmd})
		}
	} else {
		// On a cluster the registry lives in another slot than the queue: it is written
		// first, in the same round trip, so that Stats never misses a queue that holds
		// tasks (a refused batch may leave an empty queue registered). This process's
		// next enqueues to the queue skip it (registered).
		var cmd *redis.Cmd
		run := func(eval func(pipe redis.Pipeliner) *redis.Cmd) error {
			pipe := b.rdb.Pipeline()
			pipe.SAdd(ctx, b.k.queues(), order[0])
			cmd = eval(pipe)
			_, err := pipe.Exec(ctx)
			if cmd.Err() != nil {
				return cmd.Err()
			}
			return err
		}
		err = run(func(p redis.Pipeliner) *redis.Cmd { return script.EvalSha(ctx, p, keys, args...) })
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			err = run(func(p redis.Pipeliner) *redis.Cmd { return script.Eval(ctx, p, keys, args...) })
		}
		if err == nil {
			b.registered.Store(order[0], struct{}{})
			b.registerFresh(ctx, order[:1], []*redis.Cmd{cmd})
		}
	}
	if err != nil {
		if dup := duplicateOf(err, order, groups); dup != nil {
			return fmt.Errorf("brisk: redis: enqueue: %w", dup)
		}
		return b.fail(ctx, fmt.Sprintf("enqueue of %d task(s)", len(tasks)), err)
	}
	for _, q := range order {
		b.hub.Notify(q) // this process's waiters at once; others by the published message
	}
	return nil
}

// registerFresh adds to the registry, after their enqueue scripts, the queues whose script
// says their sequence started with it (cmds[i] ran for queues[i]): on a cluster a
// DeleteQueue may have removed such a queue from the registry between this enqueue's
// registry write and its script (see DeleteQueue). The tasks are stored whatever happens
// here, so a failure is logged, not returned: the queue stays unlisted until its next
// enqueue (which writes the registry first again) or declaration.
func (b *Broker) registerFresh(ctx context.Context, queues []string, cmds []*redis.Cmd) {
	var fresh []any
	for i, c := range cmds {
		if res, err := c.Int64Slice(); err == nil && len(res) == 2 && res[1] == 1 {
			fresh = append(fresh, queues[i])
		}
	}
	if len(fresh) == 0 {
		return
	}
	if err := b.rdb.SAdd(ctx, b.k.queues(), fresh...).Err(); err != nil {
		for _, q := range fresh {
			b.registered.Delete(q) // the next enqueue registers it before its script
		}
		b.log.Warn("redis: enqueue: the tasks are stored, but their new queue could not be registered again for Stats", "queues", fresh, "err", err)
	}
}

// enqueueCall returns the script, KEYS and ARGV that store the tasks of the given queues
// in one call: enqueueOneScript for one task, else enqueueScript (enqueueArgs). The
// registry key, where the caller passes it, goes last.
func (b *Broker) enqueueCall(order []string, groups map[string][]*broker.Task) (*redis.Script, []string, []any) {
	if len(order) > 1 || len(groups[order[0]]) > 1 {
		keys, args := b.enqueueArgs(order, groups)
		return enqueueScript, keys, args
	}
	q, t := order[0], groups[order[0]][0]
	var lock string
	var until int64
	if t.Unique.Key != "" {
		lock, until = b.k.uniquePrefix(q)+t.Unique.Key, t.Unique.Until.UnixMilli()
	}
	return enqueueOneScript, []string{b.k.task(q, t.ID), b.k.ready(q), b.k.meta(q)},
		[]any{b.k.wake(), q, encodeNew(t), us(t.ReadyAt), t.ID, lock, until, encodeTail(t)}
}

// enqueueArgs returns the KEYS and ARGV of one enqueueScript call storing the tasks of the
// given queues.
func (b *Broker) enqueueArgs(order []string, groups map[string][]*broker.Task) ([]string, []any) {
	n := 0
	for _, q := range order {
		n += len(groups[q])
	}
	keys := make([]string, 0, 2*len(order))
	args := make([]any, 0, 2+4*len(order)+6*n)
	args = append(args, b.k.wake(), len(order))
	for _, q := range order {
		keys = append(keys, b.k.ready(q), b.k.meta(q))
		args = append(args, b.k.taskPrefix(q), b.k.uniquePrefix(q), q, len(groups[q]))
		for _, t := range groups[q] {
			var until int64
			if t.Unique.Key != "" {
				until = t.Unique.Until.UnixMilli()
			}
			args = append(args, t.ID, encodeNew(t), us(t.ReadyAt), t.Unique.Key, until, encodeTail(t))
		}
	}
	return keys, args
}

// duplicateOf turns the enqueue script's "DUP <g> <id>" and "UNIQ <g> <i> <holder>"
// errors, for a call over the queues of order, into a *broker.DuplicateError (nil for any
// other error).
func duplicateOf(err error, order []string, groups map[string][]*broker.Task) *broker.DuplicateError {
	msg := err.Error()
	queueOf := func(g string) (string, bool) {
		n, err := strconv.Atoi(g)
		if err != nil || n < 1 || n > len(order) {
			return "", false
		}
		return order[n-1], true
	}
	if rest, ok := strings.CutPrefix(msg, "DUP "); ok {
		g, id, _ := strings.Cut(rest, " ")
		if q, ok := queueOf(g); ok {
			return &broker.DuplicateError{Queue: q, ID: id}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "UNIQ "); ok {
		f := strings.SplitN(rest, " ", 3)
		if len(f) == 3 {
			q, ok := queueOf(f[0])
			i, err := strconv.Atoi(f[1])
			if ok && err == nil && i >= 0 && i < len(groups[q]) {
				return &broker.DuplicateError{Queue: q, ID: f[2], Key: groups[q][i].Unique.Key}
			}
		}
	}
	return nil
}

// Reserve leases up to p.Limit ready tasks, one script call per queue in priority order,
// stopping when the limit is met.
func (b *Broker) Reserve(ctx context.Context, p broker.ReserveParams) ([]*broker.Task, error) {
	if b.closed.Load() {
		return nil, errClosed("reserve")
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, fmt.Errorf("brisk: redis: reserve: %w", err)
	}
	var out []*broker.Task
	for _, ql := range p.Queues {
		want := p.Limit - len(out)
		if want <= 0 {
			break
		}
		c := b.newReserveCall(ql, want, p)
		res, err := reserveScript.Run(ctx, b.rdb, c.keys, c.args...).Slice()
		if err != nil {
			return nil, b.reserveFailed(ctx, ql.Name, out, err)
		}
		out = append(out, b.decodeReserve(ctx, c, res)...)
	}
	return out, nil
}

// reserveCall is one call of reserveScript: up to want tasks of one queue.
type reserveCall struct {
	queue        string
	start, until time.Time
	keys         []string
	args         []any
}

func (b *Broker) newReserveCall(ql broker.QueueLimit, want int, p broker.ReserveParams) reserveCall {
	if ql.Max > 0 {
		want = min(want, ql.Max)
	}
	q := ql.Name
	start := now()
	until := start.Add(p.Lease)
	return reserveCall{
		queue: q, start: start, until: until,
		keys: []string{b.k.ready(q), b.k.running(q), b.k.dead(q), b.k.meta(q), b.k.limits(q), b.k.buckets(q),
			b.k.completed(q), b.k.cancelled(q), b.k.cancelledExpiry(q)},
		args: []any{b.k.taskPrefix(q), b.k.workerTasksPrefix(q), us(start), want, us(until), p.WorkerID, reclaimBatch,
			limithint.SlotPoll.Microseconds()},
	}
}

// decodeReserve records the hint that heads the script's reply (see hints) and returns
// the leased tasks that follow it.
func (b *Broker) decodeReserve(ctx context.Context, c reserveCall, res []any) []*broker.Task {
	if len(res) < 2 {
		return nil
	}
	if at, _ := res[0].(int64); at >= 0 {
		slot, _ := res[1].(int64)
		b.hints.Set(c.queue, limithint.Hint{Until: time.UnixMicro(at), Slot: slot == 1})
	} else {
		b.hints.Clear(c.queue)
	}
	return b.decodeLeased(ctx, c, res[2:])
}

// decodeLeased turns the tasks of the script's reply (id, lease token and record as
// leased, per task) into leased tasks. A record that Go cannot decode (the scripts could,
// so only a fault of this decoder or a record written by something else) cannot be run:
// the task is moved to dead with the decoding error, where the Inspector shows it, instead
// of being handed to a handler or redelivered for ever.
func (b *Broker) decodeLeased(ctx context.Context, c reserveCall, res []any) []*broker.Task {
	startedAt := time.UnixMicro(c.start.UnixMicro())
	leaseUntil := time.UnixMicro(c.until.UnixMicro())
	out := make([]*broker.Task, 0, len(res)/3)
	for i := 0; i+3 <= len(res); i += 3 {
		id := asString(res[i])
		lease := broker.Lease{TaskID: id, Queue: c.queue, Token: asString(res[i+1])}
		r, err := decodeRecord(asString(res[i+2]))
		if err != nil {
			msg := fmt.Sprintf("brisk: redis: reserve: task %q of queue %q: %v", id, c.queue, err)
			if kerr := b.Kill(context.WithoutCancel(ctx), lease, msg); kerr != nil {
				b.log.Error("redis: reserve: a task record that cannot be decoded could not be moved to dead either; it is delivered again when its lease expires",
					"queue", c.queue, "id", id, "err", err, "kill_err", kerr)
			} else {
				b.log.Error("redis: reserve: moved a task whose record cannot be decoded to dead", "queue", c.queue, "id", id, "err", err)
			}
			continue
		}
		t := r.task(id, c.queue, startedAt)
		t.State = broker.StateRunning
		t.StartedAt = startedAt
		t.LeaseUntil = leaseUntil
		t.Lease = lease
		out = append(out, t)
	}
	return out
}

// reserveFailed hands back the tasks already leased by this Reserve and wraps err.
func (b *Broker) reserveFailed(ctx context.Context, q string, leased []*broker.Task, err error) error {
	b.handBack(ctx, leased)
	return b.fail(ctx, fmt.Sprintf("reserve from queue %q", q), err)
}

// handBack releases tasks leased by a call that then failed: they must not stay leased to
// no one until their leases expire.
func (b *Broker) handBack(ctx context.Context, leased []*broker.Task) {
	if len(leased) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = b.Release(rctx, leasesOf(leased))
		cancel()
	}
}

func leasesOf(tasks []*broker.Task) []broker.Lease {
	out := make([]broker.Lease, len(tasks))
	for i, t := range tasks {
		out[i] = t.Lease
	}
	return out
}

// byQueue groups leases by queue, keeping the order of first appearance.
func byQueue(leases []broker.Lease) ([]string, map[string][]broker.Lease) {
	var order []string
	m := map[string][]broker.Lease{}
	for _, l := range leases {
		if _, ok := m[l.Queue]; !ok {
			order = append(order, l.Queue)
		}
		m[l.Queue] = append(m[l.Queue], l)
	}
	return order, m
}

func leaseArgs(head []any, ls []broker.Lease) []any {
	args := append(make([]any, 0, len(head)+2*len(ls)), head...)
	for _, l := range ls {
		args = append(args, l.TaskID, l.Token)
	}
	return args
}

// checkLeaseQueue refuses a lease whose queue is not a valid name (it cannot name keys).
func checkLeaseQueue(op string, l broker.Lease) error {
	if err := broker.ValidateQueueName(l.Queue); err != nil {
		return fmt.Errorf("brisk: redis: %s: lease of task %q: %w", op, l.TaskID, err)
	}
	return nil
}

// Extend moves the expiry of the held leases to now + d, one script call per queue, and
// returns the leases not held.
func (b *Broker) Extend(ctx context.Context, leases []broker.Lease, d time.Duration) ([]broker.Lease, error) {
	if b.closed.Load() {
		return nil, errClosed("extend")
	}
	if d <= 0 {
		return nil, fmt.Errorf("brisk: redis: extend by %s: %w", d, broker.ErrInvalid)
	}
	var lost []broker.Lease
	order, groups := byQueue(leases)
	for _, q := range order {
		ls := groups[q]
		if err := checkLeaseQueue("extend", ls[0]); err != nil {
			return nil, err
		}
		until := us(now().Add(d))
		ids, err := extendScript.Run(ctx, b.rdb, []string{b.k.running(q)},
			leaseArgs([]any{b.k.taskPrefix(q), until}, ls)...).Int64Slice()
		if err != nil {
			return nil, b.fail(ctx, fmt.Sprintf("extend %d lease(s) of queue %q", len(ls), q), err)
		}
		lost = append(lost, pick(ls, ids)...)
	}
	return lost, nil
}

// pick returns the leases of ls at the positions a script reported (by position, not by
// task id: one call may carry two leases of one task, a stale one and the current one).
func pick(ls []broker.Lease, positions []int64) []broker.Lease {
	var out []broker.Lease
	for _, i := range positions {
		if i >= 0 && int(i) < len(ls) {
			out = append(out, ls[i])
		}
	}
	return out
}

// Ack completes the tasks of the held leases without results, one script call per queue:
// Complete without results.
func (b *Broker) Ack(ctx context.Context, leases []broker.Lease) error {
	if b.closed.Load() {
		return errClosed("ack")
	}
	return b.complete(ctx, "ack", leases, nil)
}

// Complete ends the attempts of the held leases as completed, one script call per queue:
// a task whose retention (its own, else its queue's) is positive is kept in
// StateCompleted with its result, any other is removed. Leases not held are skipped and
// reported in an error wrapping ErrLeaseLost after the others are completed; a result
// over broker.MaxResult fails the call with ErrInvalid before anything changes.
func (b *Broker) Complete(ctx context.Context, done []broker.Completion) error {
	if b.closed.Load() {
		return errClosed("complete")
	}
	if err := broker.ValidateCompletions(done); err != nil {
		return fmt.Errorf("brisk: redis: complete: %w", err)
	}
	results := make(map[broker.Lease]string, len(done))
	leases := make([]broker.Lease, len(done))
	for i, c := range done {
		leases[i] = c.Lease
		if c.Result != nil {
			results[c.Lease] = "=" + string(c.Result)
		}
	}
	return b.complete(ctx, "complete", leases, results)
}

// complete runs ackScript for leases, with their results when results is not nil (a
// lease that is not in it has none).
func (b *Broker) complete(ctx context.Context, op string, leases []broker.Lease, results map[broker.Lease]string) error {
	var lost []broker.Lease
	order, groups := byQueue(leases)
	for _, q := range order {
		if err := checkLeaseQueue(op, groups[q][0]); err != nil {
			return err
		}
	}
	for _, q := range order {
		ls := groups[q]
		keys, args := b.ackCall(q, ls, results)
		ids, err := ackScript.Run(ctx, b.rdb, keys, args...).Int64Slice()
		if err != nil {
			return b.fail(ctx, fmt.Sprintf("%s %d task(s) of queue %q", op, len(ls), q), err)
		}
		lost = append(lost, pick(ls, ids)...)
	}
	return ackLost(lost, len(leases))
}

// ackCall returns the keys and arguments of ackScript for leases of queue q, with their
// results when results is not nil.
func (b *Broker) ackCall(q string, ls []broker.Lease, results map[broker.Lease]string) ([]string, []any) {
	keys := []string{b.k.running(q), b.k.meta(q), b.k.completed(q), b.k.cancelled(q), b.k.cancelledExpiry(q)}
	head := []any{b.k.taskPrefix(q), b.k.workerTasksPrefix(q), b.k.wake(), q, us(now())}
	if results == nil {
		return keys, leaseArgs(append(head, 2), ls)
	}
	args := append(head, 3)
	for _, l := range ls {
		args = append(args, l.TaskID, l.Token, results[l])
	}
	return keys, args
}

// SetRetention stores the queue's retention in its meta HASH (field ret, µs), which the
// scripts that complete or cancel a task read, and registers the queue.
func (b *Broker) SetRetention(ctx context.Context, queue string, d time.Duration) error {
	if b.closed.Load() {
		return errClosed("set retention")
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: redis: set retention: %w", err)
	}
	if err := broker.ValidateRetention(d); err != nil {
		return fmt.Errorf("brisk: redis: set retention of queue %q: %w", queue, err)
	}
	pipe := b.rdb.Pipeline()
	pipe.HSet(ctx, b.k.meta(queue), "ret", retentionUS(d))
	pipe.SAdd(ctx, b.k.queues(), queue)
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("set retention of queue %q", queue), err)
	}
	return nil
}

// SetProgress replaces the progress of the task held under l, in one script call fenced
// by the lease token.
func (b *Broker) SetProgress(ctx context.Context, l broker.Lease, p broker.Progress) error {
	if b.closed.Load() {
		return errClosed("set progress")
	}
	if err := checkLeaseQueue("set progress", l); err != nil {
		return err
	}
	if err := broker.ValidateProgress(p); err != nil {
		return fmt.Errorf("brisk: redis: set progress of task %q: %w", l.TaskID, err)
	}
	if p.At.IsZero() {
		p.At = now()
	}
	ok, err := progressScript.Run(ctx, b.rdb, []string{b.k.task(l.Queue, l.TaskID)}, l.Token, encodeProgress(p)).Int()
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("set progress of task %q", l.TaskID), err)
	}
	if ok == 0 {
		return fmt.Errorf("brisk: redis: set progress: %w: task %s/%s", broker.ErrLeaseLost, l.Queue, l.TaskID)
	}
	return nil
}

// ackLost is Ack's error for the leases of a batch of n that were not held, or nil.
func ackLost(lost []broker.Lease, n int) error {
	if len(lost) == 0 {
		return nil
	}
	names := make([]string, len(lost))
	for i, l := range lost {
		names[i] = l.Queue + "/" + l.TaskID
	}
	return fmt.Errorf("brisk: redis: ack: %w: %d of %d task(s) not held: %s", broker.ErrLeaseLost, len(lost), n, strings.Join(names, ", "))
}

// Retry ends the attempt under l and schedules the task to be ready at at.
func (b *Broker) Retry(ctx context.Context, l broker.Lease, at time.Time, errMsg string) error {
	if b.closed.Load() {
		return errClosed("retry")
	}
	if err := checkLeaseQueue("retry", l); err != nil {
		return err
	}
	q := l.Queue
	n, err := retryScript.Run(ctx, b.rdb, []string{b.k.ready(q), b.k.running(q), b.k.meta(q)},
		b.k.taskPrefix(q), b.k.workerTasksPrefix(q), b.k.wake(), q, l.TaskID, l.Token, us(at), errMsg, us(now()),
	).Int()
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("retry task %q of queue %q", l.TaskID, q), err)
	}
	if n == 0 {
		return fmt.Errorf("brisk: redis: retry: %w: task %q of queue %q", broker.ErrLeaseLost, l.TaskID, q)
	}
	b.hub.Notify(q)
	return nil
}

// Kill ends the attempt under l and moves the task to dead.
func (b *Broker) Kill(ctx context.Context, l broker.Lease, errMsg string) error {
	if b.closed.Load() {
		return errClosed("kill")
	}
	if err := checkLeaseQueue("kill", l); err != nil {
		return err
	}
	q := l.Queue
	n, err := killScript.Run(ctx, b.rdb, []string{b.k.dead(q), b.k.running(q), b.k.meta(q)},
		b.k.taskPrefix(q), b.k.workerTasksPrefix(q), l.TaskID, l.Token, errMsg, us(now()), b.k.wake(), q,
	).Int()
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("kill task %q of queue %q", l.TaskID, q), err)
	}
	if n == 0 {
		return fmt.Errorf("brisk: redis: kill: %w: task %q of queue %q", broker.ErrLeaseLost, l.TaskID, q)
	}
	return nil
}

// Release hands the held tasks back unrun, one script call per queue; leases not held are
// skipped.
func (b *Broker) Release(ctx context.Context, leases []broker.Lease) error {
	if b.closed.Load() {
		return errClosed("release")
	}
	order, groups := byQueue(leases)
	for _, q := range order {
		ls := groups[q]
		if err := checkLeaseQueue("release", ls[0]); err != nil {
			return err
		}
		n, err := releaseScript.Run(ctx, b.rdb, []string{b.k.ready(q), b.k.running(q)},
			leaseArgs([]any{b.k.taskPrefix(q), b.k.workerTasksPrefix(q), b.k.wake(), q}, ls)...).Int()
		if err != nil {
			return b.fail(ctx, fmt.Sprintf("release %d task(s) of queue %q", len(ls), q), err)
		}
		if n > 0 {
			b.hub.Notify(q)
		}
	}
	return nil
}

// ReleaseWorker makes the running tasks reserved by workerID ready again in every known
// queue (one script call per queue, the attempts stay counted) and removes the worker's
// record.
func (b *Broker) ReleaseWorker(ctx context.Context, workerID string) (int, error) {
	if b.closed.Load() {
		return 0, errClosed("release worker")
	}
	if workerID == "" {
		return 0, fmt.Errorf("brisk: redis: release worker: empty worker id: %w", broker.ErrInvalid)
	}
	qs, err := b.queueNames(ctx)
	if err != nil {
		return 0, b.fail(ctx, "release worker "+strconv.Quote(workerID), err)
	}
	total := 0
	for _, q := range qs {
		n, err := releaseWorkerScript.Run(ctx, b.rdb,
			[]string{b.k.ready(q), b.k.running(q), b.k.workerTasks(q, workerID)},
			b.k.taskPrefix(q), workerID, b.k.wake(), q).Int()
		if err != nil {
			return total, b.fail(ctx, fmt.Sprintf("release worker %q in queue %q", workerID, q), err)
		}
		if n > 0 {
			b.hub.Notify(q)
		}
		total += n
	}
	if err := b.deregister(ctx, workerID); err != nil {
		return total, b.fail(ctx, "release worker "+strconv.Quote(workerID), err)
	}
	return total, nil
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// usTime turns stored microseconds into a time; "" or 0 is the zero time.
func usTime(s string) time.Time {
	n := atoi64(s)
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n)
}
