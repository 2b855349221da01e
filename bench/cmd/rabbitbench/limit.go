package main

// rawLimit measures what RabbitMQ itself sustains on this machine: publishing n 100-byte
// persistent messages with publisher confirms (window unconfirmed in flight) to a fresh
// durable queue of type typ (quorum or classic), then consuming the same messages with
// manual acks (prefetch), each timed on its own. The queue is deleted afterwards.

import (
	"context"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/internal/workload"
)

// body is a message of a workload task's payload size and shape.
var body = workload.Payload(0, time.Unix(1732406400, 0), time.Unix(1732406400, 0))

// confirmedQueue declares a fresh durable queue of type typ named after kind and returns it
// with a channel in confirm mode whose confirmations arrive on confirms (buffered for
// window), and a function that closes the channel and deletes the queue.
func confirmedQueue(conn *amqp.Connection, kind, typ string, window int) (ch *amqp.Channel, name string, confirms <-chan amqp.Confirmation, done func(), err error) {
	if ch, err = conn.Channel(); err != nil {
		return nil, "", nil, nil, err
	}
	name = fmt.Sprintf("rabbit%s-%s-%d", kind, typ, time.Now().UnixNano())
	done = func() {
		ch.Close()
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(name, false, false, false)
			c.Close()
		}
	}
	if _, err = ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": typ}); err != nil {
		done()
		return nil, "", nil, nil, err
	}
	if err = ch.Confirm(false); err != nil {
		done()
		return nil, "", nil, nil, err
	}
	return ch, name, ch.NotifyPublish(make(chan amqp.Confirmation, window)), done, nil
}

func rawLimit(conn *amqp.Connection, typ string, n, window, prefetch int) (float64, float64, error) {
	ch, name, confirms, done, err := confirmedQueue(conn, "limit", typ, window)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	ctx := context.Background()
	start := time.Now()
	inflight, acked := 0, 0
	for i := 0; i < n; i++ {
		for inflight >= window {
			c := <-confirms
			if !c.Ack {
				return 0, 0, fmt.Errorf("publish %d nacked", c.DeliveryTag)
			}
			inflight--
			acked++
		}
		if err := ch.PublishWithContext(ctx, "", name, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body, Timestamp: time.Now()}); err != nil {
			return 0, 0, err
		}
		inflight++
	}
	for inflight > 0 {
		c := <-confirms
		if !c.Ack {
			return 0, 0, fmt.Errorf("publish %d nacked", c.DeliveryTag)
		}
		inflight--
		acked++
	}
	pub := float64(n) / time.Since(start).Seconds()

	cch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer cch.Close()
	if err := cch.Qos(prefetch, 0, false); err != nil {
		return 0, 0, err
	}
	deliveries, err := cch.Consume(name, "", false, false, false, false, nil)
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	for got := 0; got < n; got++ {
		d := <-deliveries
		if err := d.Ack(false); err != nil {
			return 0, 0, err
		}
	}
	con := float64(n) / time.Since(start).Seconds()
	return pub, con, nil
}

// rawIdle measures RabbitMQ's own idle pickup on this machine, the floor under brisk's W3:
// n 100-byte persistent messages, one every W3Interval (200 ms), each published with a confirm to a
// fresh durable queue of type typ that one consumer (prefetch 1, manual acks) is waiting
// on. A sample is the consumer's receipt minus the time just before the publish. It
// returns the p50 and p99 in milliseconds. The queue is deleted afterwards.
func rawIdle(conn *amqp.Connection, typ string, n int) (float64, float64, error) {
	ch, name, confirms, done, err := confirmedQueue(conn, "idle", typ, 1)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	cch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer cch.Close()
	if err := cch.Qos(1, 0, false); err != nil {
		return 0, 0, err
	}
	deliveries, err := cch.Consume(name, "", false, false, false, false, nil)
	if err != nil {
		return 0, 0, err
	}
	samples := make([]time.Duration, 0, n)
	for range n {
		time.Sleep(workload.W3Interval)
		start := time.Now()
		if err := ch.PublishWithContext(context.Background(), "", name, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body, Timestamp: start}); err != nil {
			return 0, 0, err
		}
		d, ok := <-deliveries
		if !ok {
			return 0, 0, fmt.Errorf("the consumer of %s was cancelled", name)
		}
		samples = append(samples, time.Since(start))
		if err := d.Ack(false); err != nil {
			return 0, 0, err
		}
		if c := <-confirms; !c.Ack {
			return 0, 0, fmt.Errorf("publish %d nacked", c.DeliveryTag)
		}
	}
	slices.Sort(samples)
	return workload.Percentile(samples, 0.5), workload.Percentile(samples, 0.99), nil
}
