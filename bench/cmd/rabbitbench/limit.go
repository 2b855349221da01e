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

func rawLimit(conn *amqp.Connection, typ string, n, window, prefetch int) (float64, float64, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer ch.Close()
	name := fmt.Sprintf("rabbitlimit-%s-%d", typ, time.Now().UnixNano())
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": typ}); err != nil {
		return 0, 0, err
	}
	defer func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(name, false, false, false)
			c.Close()
		}
	}()
	if err := ch.Confirm(false); err != nil {
		return 0, 0, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window))
	body := []byte(`{"i":0,"t":1732406400000000000,"r":1732406400000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
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
// n 100-byte persistent messages, one every 200 ms, each published with a confirm to a
// fresh durable queue of type typ that one consumer (prefetch 1, manual acks) is waiting
// on. A sample is the consumer's receipt minus the time just before the publish. It
// returns the p50 and p99 in milliseconds. The queue is deleted afterwards.
func rawIdle(conn *amqp.Connection, typ string, n int) (float64, float64, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer ch.Close()
	name := fmt.Sprintf("rabbitidle-%s-%d", typ, time.Now().UnixNano())
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": typ}); err != nil {
		return 0, 0, err
	}
	defer func() {
		if c, err := conn.Channel(); err == nil {
			_, _ = c.QueueDelete(name, false, false, false)
			c.Close()
		}
	}()
	if err := ch.Confirm(false); err != nil {
		return 0, 0, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
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
	body := []byte(`{"i":0,"t":1732406400000000000,"r":1732406400000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	samples := make([]time.Duration, 0, n)
	for range n {
		time.Sleep(200 * time.Millisecond)
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
