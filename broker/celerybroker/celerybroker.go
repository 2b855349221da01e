// Package celerybroker watches the queues of Celery, read only, so that brisk queues,
// brisk dashboard, /metrics and brisk autoscale work on a Celery fleet without a change to
// its code: on Redis (celery+redis://host:6379/0, celery+rediss://) by reading kombu's
// structures, and on RabbitMQ (celery+amqp://user:pass@host:5672/vhost, celery+amqps://)
// through the management API.
//
// Import it for its side effect, or use the brisk command:
//
//	import _ "github.com/briskq/brisk/broker/celerybroker"
//
// URL parameters (the others go to go-redis on Redis):
//   - sla=QUEUE:DURATION (repeatable): the SLA of a queue whose name does not state it.
//   - track=1s: how often the broker looks at each queue in the background, for the
//     arrival and completion counts and for the latency estimate without the hook.
//   - queues=a,b (RabbitMQ): the queues to watch, instead of finding them.
//   - management=http://host:15672 (RabbitMQ): the management API, by default on the
//     AMQP host, port 15672 (15671 with https for amqps), with the URL's credentials.
//
// Celery messages carry no publish time. The module python/brisk_celery.py, imported by
// the Celery app, connects a before_task_publish hook that sets the message properties
// published_at (epoch seconds, a float: the convention Judoscale's adapter established)
// and timestamp (AMQP's, whole seconds). With it, queue latency is now − published_at of
// the oldest message (latency_source "published_at"; "timestamp" on RabbitMQ), or from
// its eta when that has passed ("eta"). Without it, latency is estimated from when the
// broker first saw the head message (latency_source "first_seen"): the broker counts the
// messages that arrive in each queue every track interval, so the estimate errs by at
// most one interval for messages that arrived while it watched, and counts a message
// that was already waiting when it started from that start.
//
// Every write (enqueue, retry, delete, pause, declaring an SLA) is refused with an error
// wrapping broker.ErrUnsupported: Celery's own code owns the queues.
package celerybroker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk/brisktype"
	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/watch"
)

func init() {
	broker.Register(openRedis, "celery+redis", "celery+rediss")
	broker.Register(openAMQP, "celery+amqp", "celery+amqps")
}

// defaultTrack is how often a queue is looked at in the background.
const defaultTrack = time.Second

// isCeleryInternal reports the queues Celery uses for itself (remote control, events,
// replies), which are not task queues.
func isCeleryInternal(name string) bool {
	return strings.HasSuffix(name, ".pidbox") || strings.HasPrefix(name, "celeryev.") || strings.HasPrefix(name, "celery@")
}

// message is the part of a Celery (task protocol 2) message that the broker reads: kombu
// keeps it as JSON in Redis.
type message struct {
	Body            string `json:"body"`
	ContentEncoding string `json:"content-encoding"`
	Headers         struct {
		ID        string     `json:"id"`
		Task      string     `json:"task"`
		ETA       *string    `json:"eta"`
		Retries   int        `json:"retries"`
		TimeLimit []*float64 `json:"timelimit"`
	} `json:"headers"`
	Properties struct {
		PublishedAt  *float64 `json:"published_at"`
		BodyEncoding string   `json:"body_encoding"`
		DeliveryTag  string   `json:"delivery_tag"`
		DeliveryInfo struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"delivery_info"`
	} `json:"properties"`
}

// parseMessage reads a message kept by kombu; ok is false for what is not one.
func parseMessage(raw string) (m message, ok bool) {
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return m, false
	}
	return m, m.Headers.ID != "" || m.Properties.DeliveryTag != ""
}

// ready returns when the message became ready to run and how that is known: its eta
// when given (a countdown or eta), else published_at when the hook set it.
func (m *message) ready() (time.Time, string) {
	var published time.Time
	if p := m.Properties.PublishedAt; p != nil && *p > 0 {
		published = time.Unix(0, int64(*p*1e9))
	}
	if m.Headers.ETA != nil {
		if eta, ok := parseETA(*m.Headers.ETA); ok && eta.After(published) {
			return eta, "eta"
		}
	}
	if !published.IsZero() {
		return published, "published_at"
	}
	return time.Time{}, ""
}

// parseETA reads Celery's eta: ISO 8601, with an offset (naive times are UTC).
func parseETA(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999", "2006-01-02 15:04:05.999999-07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// task turns a message into a listed task: its payload is the decoded body (for protocol
// 2, the JSON [args, kwargs, embed]).
func (m *message) task(queue string, state broker.State) *broker.Task {
	t := &broker.Task{TaskInfo: brisktype.TaskInfo{ID: m.Headers.ID, Queue: queue, Type: m.Headers.Task, State: state, Attempt: m.Headers.Retries}}
	t.Payload = []byte(m.Body)
	if m.Properties.BodyEncoding == "base64" {
		if b, err := base64.StdEncoding.DecodeString(m.Body); err == nil {
			t.Payload = b
		}
	}
	if len(m.Headers.TimeLimit) > 0 && m.Headers.TimeLimit[0] != nil {
		t.Timeout = time.Duration(*m.Headers.TimeLimit[0] * float64(time.Second))
	}
	if p := m.Properties.PublishedAt; p != nil {
		t.EnqueuedAt = time.Unix(0, int64(*p*1e9))
	}
	t.ReadyAt, _ = m.ready()
	return t
}

// options are the parameters both kinds of URL share.
type options struct {
	sla   map[string]time.Duration
	track time.Duration
}

func parseOptions(name string, u *url.URL, q url.Values) (options, error) {
	var o options
	var err error
	if o.sla, err = watch.SLAs(q); err != nil {
		return o, fmt.Errorf("brisk: %s: url %q: %w", name, u.Redacted(), err)
	}
	if o.track, err = watch.Duration(q, "track", defaultTrack); err != nil {
		return o, fmt.Errorf("brisk: %s: url %q: %w", name, u.Redacted(), err)
	}
	return o, nil
}

// looker runs a broker's looks at its queues in the background until it is closed.
type looker struct {
	stop, done chan struct{}
	once       sync.Once
}

func newLooker() looker { return looker{stop: make(chan struct{}), done: make(chan struct{})} }

// start runs fn every interval.
func (l *looker) start(interval time.Duration, fn func(context.Context)) {
	go func() {
		defer close(l.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-l.stop
			cancel()
		}()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				fn(ctx)
			}
		}
	}()
}

// close stops the looks, waits for the last to end, then runs after. It is idempotent.
func (l *looker) close(after func() error) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		err = after()
	})
	return err
}

// closed reports whether close was called.
func (l *looker) closed() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}
