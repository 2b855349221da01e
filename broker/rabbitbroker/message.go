package rabbitbroker

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Headers of a task message. The payload is the body; the task's ID is the message ID and
// its type the message type. Times are Unix nanoseconds.
const (
	hQueue      = "brisk-queue"      // the brisk queue
	hMax        = "brisk-max"        // MaxAttempts
	hTimeout    = "brisk-timeout"    // Timeout in nanoseconds (absent: 0)
	hEnqueued   = "brisk-enqueued"   // EnqueuedAt
	hReady      = "brisk-ready"      // ReadyAt
	hBase       = "brisk-base"       // attempts made before this message was first delivered
	hLastError  = "brisk-last-error" // LastError of the last failed attempt
	hFailed     = "brisk-failed"     // FailedAt
	hHeaders    = "brisk-headers"    // Task.Headers, a table of strings (absent: none)
	hDeathCount = "x-delivery-count" // set by a quorum queue: how often the message was returned
	// hDelayQueue and hBit route a delayed message through the delay levels (delay.go).
	hDelayQueue = "bq"
	hBit        = "b"
)

// publishing encodes a task as a message. base is the number of attempts already made.
func publishing(t *broker.Task, base int) amqp.Publishing {
	h := amqp.Table{
		hQueue:    t.Queue,
		hMax:      int64(t.MaxAttempts),
		hEnqueued: t.EnqueuedAt.UnixNano(),
		hReady:    t.ReadyAt.UnixNano(),
		hBase:     int64(base),
	}
	if t.Timeout > 0 {
		h[hTimeout] = int64(t.Timeout)
	}
	if t.LastError != "" {
		h[hLastError] = t.LastError
	}
	if !t.FailedAt.IsZero() {
		h[hFailed] = t.FailedAt.UnixNano()
	}
	if len(t.Headers) > 0 {
		th := make(amqp.Table, len(t.Headers))
		for k, v := range t.Headers {
			th[k] = v
		}
		h[hHeaders] = th
	}
	return amqp.Publishing{
		MessageId:    t.ID,
		Type:         t.Type,
		Headers:      h,
		Body:         t.Payload,
		DeliveryMode: amqp.Persistent,
		// The AMQP timestamp (whole seconds) is the ReadyAt, so that the management plugin's
		// head_message_timestamp of a classic queue is the head's ReadyAt.
		Timestamp: t.ReadyAt,
	}
}

// decoded is a task read from a message, with the attempts made before its delivery.
type decoded struct {
	task *broker.Task
	// base: attempts counted in the message; returns: how often RabbitMQ handed it back
	// to the queue unacked (a crash, a closed channel, an expired lease).
	base, returns int
}

// attempt is the number of the attempt this delivery is.
func (d decoded) attempt() int { return d.base + d.returns + 1 }

func decode(d *amqp.Delivery, qt QueueType) (decoded, error) {
	h := d.Headers
	t := &broker.Task{}
	t.ID, t.Type, t.Payload = d.MessageId, d.Type, d.Body
	var ok bool
	if t.Queue, ok = h[hQueue].(string); !ok || t.ID == "" {
		return decoded{}, fmt.Errorf("message %q is not a brisk task (no %s header)", d.MessageId, hQueue)
	}
	t.MaxAttempts = int(headerInt(h, hMax))
	t.Timeout = time.Duration(headerInt(h, hTimeout))
	t.EnqueuedAt = headerTime(h, hEnqueued)
	t.ReadyAt = headerTime(h, hReady)
	t.FailedAt = headerTime(h, hFailed)
	t.LastError, _ = h[hLastError].(string)
	if th, ok := h[hHeaders].(amqp.Table); ok && len(th) > 0 {
		t.Headers = make(map[string]string, len(th))
		for k, v := range th {
			switch v := v.(type) {
			case string:
				t.Headers[k] = v
			case []byte:
				t.Headers[k] = string(v)
			}
		}
	}
	out := decoded{task: t, base: int(headerInt(h, hBase))}
	switch {
	case qt == Quorum:
		out.returns = int(headerInt(h, hDeathCount))
	case d.Redelivered:
		out.returns = 1 // a classic queue only says "at least once before"
	}
	if t.Payload == nil {
		t.Payload = []byte{}
	}
	return out, nil
}

// headerInt reads an integer header whatever width the server sent it with.
func headerInt(h amqp.Table, k string) int64 {
	switch v := h[k].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	case int:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	}
	return 0
}

func headerTime(h amqp.Table, k string) time.Time {
	n := headerInt(h, k)
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
