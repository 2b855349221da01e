package main

// rawLimit measures what RabbitMQ itself sustains on this machine: publishing n 100-byte
// persistent messages with publisher confirms (window unconfirmed in flight) to a fresh
// durable queue of type typ (quorum or classic), then consuming the same messages with
// manual acks (prefetch), each timed on its own. The queue is deleted afterwards.

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
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
