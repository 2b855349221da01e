package rabbitbroker

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// declarePrefix declares the store's exchanges: one headers exchange per delay level, bound
// to the next lower one for messages whose bit at that level is 0, and the out exchange.
func (b *Broker) declarePrefix(s *session) error {
	ch := s.ops
	if err := ch.ExchangeDeclare(b.n.outExchange(), amqp.ExchangeHeaders, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %s: %w", b.n.outExchange(), err)
	}
	for k := 0; k < delayLevels; k++ {
		if err := ch.ExchangeDeclare(b.n.levelExchange(k), amqp.ExchangeHeaders, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %s: %w", b.n.levelExchange(k), err)
		}
	}
	for k := 0; k < delayLevels; k++ {
		next := b.n.outExchange()
		if k > 0 {
			next = b.n.levelExchange(k - 1)
		}
		args := amqp.Table{"x-match": "all", bitHeader(k): "0"}
		if err := ch.ExchangeBind(next, "", b.n.levelExchange(k), false, args); err != nil {
			return fmt.Errorf("binding exchange %s to %s: %w", b.n.levelExchange(k), next, err)
		}
	}
	s.prefixOK = true
	return nil
}

// queueArgs are the arguments of a ready or dead queue.
func (b *Broker) queueArgs() amqp.Table {
	return amqp.Table{"x-queue-type": string(b.opts.QueueType)}
}

// ensureQueue declares the ready and dead queues of brisk queue q on the session's
// connection, once, and binds the ready queue to the out exchange of the delay levels.
func (b *Broker) ensureQueue(ctx context.Context, s *session, q string) error {
	s.topoMu.Lock()
	done := s.declared[q]
	s.topoMu.Unlock()
	if done {
		return nil
	}
	err := s.withOps(func(ch *amqp.Channel) error {
		for _, name := range []string{b.n.ready(q), b.n.dead(q)} {
			if _, err := ch.QueueDeclare(name, true, false, false, false, b.queueArgs()); err != nil {
				return fmt.Errorf("declaring queue %s: %w", name, err)
			}
		}
		args := amqp.Table{"x-match": "all", hDelayQueue: q}
		if err := ch.QueueBind(b.n.ready(q), "", b.n.outExchange(), false, args); err != nil {
			return fmt.Errorf("binding queue %s: %w", b.n.ready(q), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.topoMu.Lock()
	s.declared[q] = true
	s.topoMu.Unlock()
	return nil
}

// ensureLevels declares the delay queues of brisk queue q for the levels set in bits, once
// per connection, and records new ones in the meta stream so that every broker value counts
// them.
func (b *Broker) ensureLevels(ctx context.Context, s *session, q string, bits uint32) error {
	s.topoMu.Lock()
	missing := bits &^ s.levels[q]
	s.topoMu.Unlock()
	if missing == 0 {
		return nil
	}
	err := s.withOps(func(ch *amqp.Channel) error {
		for k := 0; k < delayLevels; k++ {
			if missing&(1<<k) == 0 {
				continue
			}
			next := b.n.outExchange()
			if k > 0 {
				next = b.n.levelExchange(k - 1)
			}
			args := amqp.Table{
				"x-queue-type":           "classic",
				"x-message-ttl":          levelTTL(k).Milliseconds(),
				"x-dead-letter-exchange": next,
			}
			if b.opts.QueueType == Quorum {
				// A quorum queue dead-letters at least once: it keeps an expired message
				// until the next level has confirmed it, so a delayed task survives a
				// RabbitMQ stop between two levels (a classic queue's dead-lettering is at
				// most once).
				args["x-queue-type"] = string(Quorum)
				args["x-dead-letter-strategy"] = "at-least-once"
				args["x-overflow"] = "reject-publish"
			}
			name := b.n.level(q, k)
			if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
				return fmt.Errorf("declaring delay queue %s: %w", name, err)
			}
			bind := amqp.Table{"x-match": "all", hDelayQueue: q, bitHeader(k): "1"}
			if err := ch.QueueBind(name, "", b.n.levelExchange(k), false, bind); err != nil {
				return fmt.Errorf("binding delay queue %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.topoMu.Lock()
	s.levels[q] |= missing
	s.topoMu.Unlock()
	b.mu.Lock()
	info := b.queueLocked(q)
	newLevels := missing &^ info.levels
	info.levels |= missing
	b.mu.Unlock()
	if newLevels != 0 {
		return b.appendMeta(ctx, s, metaEntry{Kind: kindLevels, Queue: q, Levels: newLevels})
	}
	return nil
}

// withOps runs f on the session's operations channel, one call at a time, and opens a new
// channel when f's error closed it.
func (s *session) withOps(f func(ch *amqp.Channel) error) error {
	s.opsMu.Lock()
	defer s.opsMu.Unlock()
	if s.ops == nil || s.ops.IsClosed() {
		ch, err := s.conn.Channel()
		if err != nil {
			return err
		}
		s.ops = ch
	}
	err := f(s.ops)
	if err != nil && s.ops.IsClosed() {
		s.ops = nil
	}
	return err
}

// queueLocked returns the registry entry of q, creating it (not yet known to Stats).
func (b *Broker) queueLocked(q string) *queueInfo {
	info := b.queues[q]
	if info == nil {
		info = &queueInfo{}
		b.queues[q] = info
	}
	return info
}
