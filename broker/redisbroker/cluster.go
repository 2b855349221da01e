package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// connectCluster makes b talk to a Redis Cluster through co (copied, with brisk's
// defaults).
func (b *Broker) connectCluster(co *redis.ClusterOptions) {
	c := *co
	c.ContextTimeoutEnabled = true
	if c.DialerRetries == 0 {
		c.DialerRetries = 2
		c.DialerRetryTimeout = 50 * time.Millisecond
	}
	// MOVED and ASK redirections must be followed (the script did not run); go-redis also
	// resends a command after a connection broke mid-reply, which for a script may apply
	// it twice: see the package documentation.
	b.addr = "cluster " + strings.Join(c.Addrs, ",")
	b.rdb = redis.NewClusterClient(&c)
	b.cluster = true
}

// clusterOptionsOf turns the options of one server into the options of the cluster it
// belongs to, with that server as the seed.
func clusterOptionsOf(o *redis.Options) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:                 []string{o.Addr},
		ClientName:            o.ClientName,
		Dialer:                o.Dialer,
		OnConnect:             o.OnConnect,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		CredentialsProvider:   o.CredentialsProvider,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		DialTimeout:           o.DialTimeout,
		DialerRetries:         o.DialerRetries,
		DialerRetryTimeout:    o.DialerRetryTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		PoolFIFO:              o.PoolFIFO,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
		TLSConfig:             o.TLSConfig,
	}
}

// enqueueAcrossSlots stores a batch whose queues live in different cluster slots, where no
// script may touch them all: it checks every ID first (one pipelined round trip), then
// stores each queue's tasks with one script call per queue (atomic per queue, pipelined).
// When a queue's call fails, the tasks already stored for the other queues are deleted
// again, so that the batch stays all or nothing unless the connection is lost during that
// clean-up (the error then says so).
func (b *Broker) enqueueAcrossSlots(ctx context.Context, order []string, groups map[string][]*broker.Task, total int) error {
	op := fmt.Sprintf("enqueue of %d task(s) in %d queues", total, len(order))
	// 1. Check: no ID may exist in its queue.
	pipe := b.rdb.Pipeline()
	var exists []*redis.IntCmd
	var ids, queueOfID []string
	for _, q := range order {
		for _, t := range groups[q] {
			exists = append(exists, pipe.Exists(ctx, b.k.task(q, t.ID)))
			ids = append(ids, t.ID)
			queueOfID = append(queueOfID, q)
		}
	}
	var held []*redis.StringCmd
	var heldBy []*broker.Task
	for _, q := range order {
		for _, t := range groups[q] {
			if t.Unique.Key != "" {
				held = append(held, pipe.Get(ctx, b.k.uniquePrefix(q)+t.Unique.Key))
				heldBy = append(heldBy, t)
			}
		}
	}
	regArgs := make([]any, len(order))
	for i, q := range order {
		regArgs[i] = q
	}
	pipe.SAdd(ctx, b.k.queues(), regArgs...)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return b.fail(ctx, op, err)
	}
	for i, c := range exists {
		if c.Val() > 0 {
			return fmt.Errorf("brisk: redis: enqueue: %w", &broker.DuplicateError{Queue: queueOfID[i], ID: ids[i]})
		}
	}
	for i, c := range held {
		if holder, err := c.Result(); err == nil {
			t := heldBy[i]
			return fmt.Errorf("brisk: redis: enqueue: %w", &broker.DuplicateError{Queue: t.Queue, ID: holder, Key: t.Unique.Key})
		}
	}
	// 2. Write: one script call per queue, in one pipeline.
	cmds := make([]*redis.Cmd, len(order))
	run := func(eval func(p redis.Pipeliner, keys []string, args []any) *redis.Cmd) error {
		pipe := b.rdb.Pipeline()
		for i, q := range order {
			keys, args := b.enqueueArgs([]string{q}, groups)
			cmds[i] = eval(pipe, keys, args)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run(func(p redis.Pipeliner, keys []string, args []any) *redis.Cmd {
		return enqueueScript.EvalSha(ctx, p, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = run(func(p redis.Pipeliner, keys []string, args []any) *redis.Cmd {
			return enqueueScript.Eval(ctx, p, keys, args...)
		})
	}
	if err == nil {
		b.registerFresh(ctx, order, cmds)
		return nil
	}
	// 3. Undo the queues that were stored.
	var (
		stored []string
		dup    *broker.DuplicateError
	)
	for i, q := range order {
		if cmds[i] != nil && cmds[i].Err() == nil {
			stored = append(stored, q)
		} else if cmds[i] != nil && dup == nil {
			dup = duplicateOf(cmds[i].Err(), []string{q}, groups)
		}
	}
	var cause error
	if dup != nil {
		cause = fmt.Errorf("brisk: redis: enqueue: %w", dup)
	} else {
		cause = b.fail(ctx, op, err)
	}
	if len(stored) == 0 {
		return cause
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, q := range stored {
		ids := make([]string, len(groups[q]))
		for i, t := range groups[q] {
			ids[i] = t.ID
		}
		// StatePending selects the ready ZSET, where scheduled tasks wait too.
		if _, derr := b.Delete(uctx, q, broker.StatePending, ids); derr != nil {
			return fmt.Errorf("%w (and the tasks already stored in queue %q could not be removed again, so the batch is partly stored: %v)", cause, q, derr)
		}
	}
	return cause
}

// pipelined runs fn's commands in one round trip: as a MULTI transaction on one server, as
// a plain pipeline on a cluster, whose worker keys lie in different slots (the callers
// write a worker's record and its index entry, and read both tolerating either missing).
func (b *Broker) pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	if b.cluster {
		return b.rdb.Pipelined(ctx, fn)
	}
	return b.rdb.TxPipelined(ctx, fn)
}
