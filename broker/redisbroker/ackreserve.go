package redisbroker

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// AckReserve acks leases and reserves tasks in one round trip: the ack script of each
// queue of acks and the reserve script of p's first queue go out in one pipeline (on a
// cluster, one per node). When the first queue gives fewer than p.Limit tasks, the other
// queues are tried as Reserve tries them, one call each.
func (b *Broker) AckReserve(ctx context.Context, acks []broker.Lease, p broker.ReserveParams) ([]*broker.Task, error, error) {
	if len(acks) == 0 {
		tasks, err := b.Reserve(ctx, p)
		return tasks, nil, err
	}
	if b.closed.Load() {
		return nil, errClosed("ack"), errClosed("reserve")
	}
	if err := broker.ValidateReserve(p); err != nil {
		return nil, b.Ack(ctx, acks), fmt.Errorf("brisk: redis: reserve: %w", err)
	}
	order, groups := byQueue(acks)
	for _, q := range order {
		if err := checkLeaseQueue("ack", groups[q][0]); err != nil {
			tasks, rerr := b.Reserve(ctx, p)
			return tasks, err, rerr
		}
	}

	pipe := b.rdb.Pipeline()
	ackCmds := make([]*redis.Cmd, len(order))
	for i, q := range order {
		keys, args := b.ackCall(q, groups[q], nil)
		ackCmds[i] = ackScript.EvalSha(ctx, pipe, keys, args...)
	}
	first := b.newReserveCall(p.Queues[0], p.Limit, p)
	reserveCmd := reserveScript.EvalSha(ctx, pipe, first.keys, first.args...)
	_, _ = pipe.Exec(ctx) // each command carries its own result

	// A script the server does not know (it restarted) did not run: run it again, loading it.
	var lost []broker.Lease
	var ackErr error
	for i, q := range order {
		ids, err := ackCmds[i].Int64Slice()
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			keys, args := b.ackCall(q, groups[q], nil)
			ids, err = ackScript.Run(ctx, b.rdb, keys, args...).Int64Slice()
		}
		if err != nil {
			ackErr = b.fail(ctx, fmt.Sprintf("ack %d task(s) of queue %q", len(groups[q]), q), err)
			break
		}
		lost = append(lost, pick(groups[q], ids)...)
	}
	if ackErr == nil {
		ackErr = ackLost(lost, len(acks))
	}

	res, err := reserveCmd.Slice()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		res, err = reserveScript.Run(ctx, b.rdb, first.keys, first.args...).Slice()
	}
	if err != nil {
		return nil, ackErr, b.reserveFailed(ctx, first.queue, nil, err)
	}
	out, err := broker.ReserveRest(ctx, b, p, b.decodeReserve(ctx, first, res))
	if err != nil {
		b.handBack(ctx, out)
		return nil, ackErr, err
	}
	return out, ackErr, nil
}
