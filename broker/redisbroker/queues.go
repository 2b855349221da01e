package redisbroker

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// deleteQueueScript removes a queue that holds no task but the completed ones it keeps.
//
//	KEYS[1] ready ZSET, KEYS[2] running ZSET, KEYS[3] dead ZSET, KEYS[4] meta HASH,
//	KEYS[5] samples ZSET, KEYS[6] cancelled ZSET, KEYS[7] limits HASH, KEYS[8] buckets
//	HASH, KEYS[9] completed ZSET, KEYS[10] cancelled-expiry ZSET; KEYS[11], optional:
//	the queue registry SET (one server only: on a cluster it lives in another slot, and
//	the caller removes the queue from it)
//	ARGV[1] the queue's name, ARGV[2] "1" when the caller knows the queue is registered,
//	ARGV[3] the task key prefix
//
// Returns {known, waiting, running, dead, cancelled}: known is 1 when the queue is
// registered or has a meta HASH; when it is known and holds nothing, its keys (its limits
// too, its completed tasks kept for a retention, and its registry entry) are deleted.
var deleteQueueScript = redis.NewScript(luaChunked + `
local w = redis.call('ZCARD', KEYS[1])
local r = redis.call('ZCARD', KEYS[2])
local d = redis.call('ZCARD', KEYS[3])
local c = redis.call('ZCARD', KEYS[6])
local known = redis.call('EXISTS', KEYS[4])
if ARGV[2] == '1' or (#KEYS > 10 and redis.call('SISMEMBER', KEYS[11], ARGV[1]) == 1) then known = 1 end
if known == 1 and w + r + d + c == 0 then
  local ks = {}
  for _, m in ipairs(redis.call('ZRANGE', KEYS[9], 0, -1)) do ks[#ks+1] = ARGV[3] .. string.sub(m, 18) end
  chunked('DEL', nil, ks)
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
  if #KEYS > 10 then redis.call('SREM', KEYS[11], ARGV[1]) end
end
return {known, w, r, d, c}
`)

// addSamplesScript stores samples of one queue, one per second, and drops the old ones.
//
//	KEYS[1] the queue's samples ZSET (score: Unix second; member "<ms>:<latency ns>:
//	<completed>:<failed>")
//	ARGV[1] the oldest second kept, ARGV[2] the key's time to live in seconds (a key left
//	by a deleted queue expires), then pairs: second, member
//
// A sample replaces the one of its second. Returns the number of samples stored.
var addSamplesScript = redis.NewScript(`
for i = 3, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i+1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return (#ARGV - 2) / 2
`)

// DeleteQueue removes a queue that holds no task, with its meta HASH (SLA, pause,
// counters) and its samples, in one script over the queue's keys. On one server the script
// also removes the queue from the registry, so it is atomic with Enqueue's script. On a
// cluster the registry lives in another slot: it is updated after the script, and the
// queue's keys are looked at once more, so that an enqueue that raced the delete puts the
// queue back (see Enqueue).
func (b *Broker) DeleteQueue(ctx context.Context, queue string) error {
	const op = "delete queue"
	if b.closed.Load() {
		return errClosed(op)
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("brisk: redis: %s: %w", op, err)
	}
	keys := []string{b.k.ready(queue), b.k.running(queue), b.k.dead(queue), b.k.meta(queue), b.k.samples(queue),
		b.k.cancelled(queue), b.k.limits(queue), b.k.buckets(queue), b.k.completed(queue), b.k.cancelledExpiry(queue)}
	registered := "0"
	if b.cluster {
		in, err := b.rdb.SIsMember(ctx, b.k.queues(), queue).Result()
		if err != nil {
			return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
		}
		if in {
			registered = "1"
		}
	} else {
		keys = append(keys, b.k.queues())
	}
	res, err := deleteQueueScript.Run(ctx, b.rdb, keys, queue, registered, b.k.taskPrefix(queue)).Int64Slice()
	if err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	if len(res) != 5 {
		return fmt.Errorf("brisk: redis: %s %q: the script returned %v", op, queue, res)
	}
	switch known, w, r, d, c := res[0], res[1], res[2], res[3], res[4]; {
	case known == 0 && w+r+d+c == 0:
		return fmt.Errorf("brisk: redis: %s %q: %w", op, queue, broker.ErrQueueNotFound)
	case w+r+d+c > 0:
		return fmt.Errorf("brisk: redis: %s %q: %w: it holds %d pending or scheduled, %d running, %d dead and %d cancelled task(s)",
			op, queue, broker.ErrQueueNotEmpty, w, r, d, c)
	}
	if !b.cluster {
		return nil
	}
	b.registered.Delete(queue)
	pipe := b.rdb.Pipeline()
	pipe.SRem(ctx, b.k.queues(), queue)
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	// An enqueue whose registry write came before the SREM and whose script came after
	// the delete's script holds tasks now: register the queue again.
	pipe = b.rdb.Pipeline()
	counts := []*redis.IntCmd{pipe.Exists(ctx, b.k.meta(queue)), pipe.ZCard(ctx, b.k.ready(queue)),
		pipe.ZCard(ctx, b.k.running(queue)), pipe.ZCard(ctx, b.k.dead(queue))}
	if _, err := pipe.Exec(ctx); err != nil {
		return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
	}
	for _, c := range counts {
		if c.Val() > 0 {
			if err := b.rdb.SAdd(ctx, b.k.queues(), queue).Err(); err != nil {
				return b.fail(ctx, fmt.Sprintf("%s %q", op, queue), err)
			}
			break
		}
	}
	return nil
}

// sampleTTL is how long a samples key lives after its last write: it outlives the
// retention, so only the key of a deleted queue expires.
const sampleTTL = broker.SampleRetention + 5*time.Minute

// AddSamples stores samples with one script call per queue, pipelined.
func (b *Broker) AddSamples(ctx context.Context, samples []broker.QueueSample) error {
	const op = "add samples"
	if b.closed.Load() {
		return errClosed(op)
	}
	if err := broker.ValidateSamples(samples); err != nil {
		return fmt.Errorf("brisk: redis: %s: %w", op, err)
	}
	if len(samples) == 0 {
		return nil
	}
	var order []string
	args := map[string][]any{}
	cutoff := now().Add(-broker.SampleRetention).Unix()
	for _, s := range samples {
		if _, ok := args[s.Queue]; !ok {
			order = append(order, s.Queue)
			args[s.Queue] = []any{cutoff, int64(sampleTTL / time.Second)}
		}
		member := fmt.Sprintf("%d:%d:%d:%d", s.At.UnixMilli(), int64(s.Latency), s.Completed, s.Failed)
		args[s.Queue] = append(args[s.Queue], s.At.Unix(), member)
	}
	calls := make([]scriptCall, len(order))
	for i, q := range order {
		calls[i] = scriptCall{keys: []string{b.k.samples(q)}, args: args[q]}
	}
	if _, err := b.evalPipelined(ctx, addSamplesScript, calls); err != nil {
		return b.fail(ctx, fmt.Sprintf("add %d samples", len(samples)), err)
	}
	return nil
}

// Samples returns the samples of the registered queues taken at or after since, in one
// pipelined round trip after the registry's.
func (b *Broker) Samples(ctx context.Context, since time.Time) ([]broker.QueueSample, error) {
	const op = "samples"
	if b.closed.Load() {
		return nil, errClosed(op)
	}
	qs, err := b.queueNames(ctx)
	if err != nil || len(qs) == 0 {
		if err != nil {
			return nil, b.fail(ctx, op, err)
		}
		return nil, nil
	}
	sinceMS := since.UnixMilli()
	from := strconv.FormatInt(int64(math.Floor(float64(sinceMS)/1000)), 10)
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(qs))
	for i, q := range qs {
		cmds[i] = pipe.ZRangeByScore(ctx, b.k.samples(q), &redis.ZRangeBy{Min: from, Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, b.fail(ctx, op, err)
	}
	var out []broker.QueueSample
	for i, q := range qs {
		var ofQueue []broker.QueueSample
		for _, m := range cmds[i].Val() {
			s, ok := parseSample(q, m)
			if ok && s.At.UnixMilli() >= sinceMS {
				ofQueue = append(ofQueue, s)
			}
		}
		sort.Slice(ofQueue, func(a, c int) bool { return ofQueue[a].At.Before(ofQueue[c].At) })
		out = append(out, ofQueue...)
	}
	return out, nil
}

// parseSample decodes a member of a samples ZSET; ok is false for one it cannot read
// (written by hand), which is skipped.
func parseSample(queue, m string) (broker.QueueSample, bool) {
	f := strings.Split(m, ":")
	if len(f) != 4 {
		return broker.QueueSample{}, false
	}
	var n [4]int64
	for i, s := range f {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return broker.QueueSample{}, false
		}
		n[i] = v
	}
	return broker.QueueSample{Queue: queue, At: time.UnixMilli(n[0]), Latency: time.Duration(n[1]), Completed: n[2], Failed: n[3]}, true
}

// scriptCall is one call of a script in a pipeline.
type scriptCall struct {
	keys []string
	args []any
}

// evalPipelined runs calls of one script in one pipeline, by EVALSHA, or by EVAL when the
// server lost its script cache (a restart or SCRIPT FLUSH since Open).
func (b *Broker) evalPipelined(ctx context.Context, s *redis.Script, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	run := func(eval func(p redis.Pipeliner, c scriptCall) *redis.Cmd) error {
		pipe := b.rdb.Pipeline()
		for i, c := range calls {
			cmds[i] = eval(pipe, c)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run(func(p redis.Pipeliner, c scriptCall) *redis.Cmd { return s.EvalSha(ctx, p, c.keys, c.args...) })
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = run(func(p redis.Pipeliner, c scriptCall) *redis.Cmd { return s.Eval(ctx, p, c.keys, c.args...) })
	}
	return cmds, err
}
