package celerybroker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/briskq/brisk/broker"
	"github.com/briskq/brisk/internal/watch"
)

// amqpBroker watches Celery's queues on RabbitMQ through the management API: a queue's
// ready messages are pending, its unacknowledged ones running, and its
// head_message_timestamp (the AMQP timestamp of the oldest ready message, which the hook
// sets) gives the latency.
type amqpBroker struct {
	watch.ReadOnly
	api    string // http(s)://host:port/api
	vhost  string
	user   string
	pass   string
	only   []string // the queues=… parameter, or nil to find them
	opts   options
	client *http.Client

	mu     sync.Mutex
	queues map[string]*amqpQueue

	looker
}

var _ broker.Broker = (*amqpBroker)(nil)

// amqpQueue is what the broker keeps of one queue between looks.
type amqpQueue struct {
	arrivals watch.Arrivals
}

// mgmtQueue is a queue as GET /api/queues/{vhost} describes it.
type mgmtQueue struct {
	Name                 string   `json:"name"`
	Ready                int64    `json:"messages_ready"`
	Unacked              int64    `json:"messages_unacknowledged"`
	HeadMessageTimestamp *float64 `json:"head_message_timestamp"`
	Exclusive            bool     `json:"exclusive"`
	AutoDelete           bool     `json:"auto_delete"`
	MessageStats         struct {
		Publish    int64 `json:"publish"`
		Ack        int64 `json:"ack"`
		DeliverGet int64 `json:"deliver_get"`
	} `json:"message_stats"`
}

func openAMQP(ctx context.Context, u *url.URL) (broker.Broker, error) {
	name := "celery+amqp"
	q := u.Query()
	o, err := parseOptions(name, u, q)
	if err != nil {
		return nil, err
	}
	for k := range q {
		switch k {
		case "sla", "track", "queues", "management":
		default:
			return nil, fmt.Errorf("brisk: %s: url %q: unknown parameter %q (want sla, track, queues, management): %w", name, u.Redacted(), k, broker.ErrInvalid)
		}
	}
	b := &amqpBroker{
		ReadOnly: watch.ReadOnly{Name: name}, opts: o, user: "guest", pass: "guest", vhost: "/",
		client: &http.Client{Timeout: 10 * time.Second}, queues: map[string]*amqpQueue{},
		looker: newLooker(),
	}
	if u.User != nil {
		b.user = u.User.Username()
		b.pass, _ = u.User.Password()
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		b.vhost = p
	}
	if v := q.Get("queues"); v != "" {
		b.only = strings.Split(v, ",")
	}
	mgmt := q.Get("management")
	if mgmt == "" {
		scheme, port := "http", "15672"
		if u.Scheme == "celery+amqps" {
			scheme, port = "https", "15671"
		}
		mgmt = scheme + "://" + net.JoinHostPort(u.Hostname(), port)
	}
	mu, err := url.Parse(mgmt)
	if err != nil || (mu.Scheme != "http" && mu.Scheme != "https") || mu.Host == "" {
		return nil, fmt.Errorf("brisk: %s: url %q: management=%q is not an http(s) URL: %w", name, u.Redacted(), mgmt, broker.ErrInvalid)
	}
	b.api = strings.TrimSuffix(mgmt, "/") + "/api"
	if _, err := b.list(ctx); err != nil {
		return nil, err
	}
	b.start(o.track, func(ctx context.Context) { _, _ = b.list(ctx) })
	return b, nil
}

// Close stops the background looks. It is idempotent.
func (b *amqpBroker) Close() error {
	return b.close(func() error { b.client.CloseIdleConnections(); return nil })
}

// get reads one resource of the management API as JSON into v.
func (b *amqpBroker) get(ctx context.Context, path string, v any) error {
	if b.closed() {
		return fmt.Errorf("brisk: %s: %w", b.Name, broker.ErrClosed)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.api+path, nil)
	if err != nil {
		return fmt.Errorf("brisk: %s: %v: %w", b.Name, err, broker.ErrInvalid)
	}
	req.SetBasicAuth(b.user, b.pass)
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("brisk: %s: management API %s: %v (is the rabbitmq_management plugin enabled?): %w", b.Name, b.api, err, broker.ErrUnavailable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("brisk: %s: management API: %v: %w", b.Name, err, broker.ErrUnavailable)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("brisk: %s: management API %s refused the credentials of the URL (user %q): %w", b.Name, b.api, b.user, broker.ErrUnavailable)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("brisk: %s: management API: %s not found (no vhost %q?): %w", b.Name, path, b.vhost, broker.ErrUnavailable)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("brisk: %s: management API %s: HTTP %d: %w", b.Name, path, resp.StatusCode, broker.ErrUnavailable)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("brisk: %s: management API %s: %v: %w", b.Name, path, err, broker.ErrUnavailable)
	}
	return nil
}

// list reads Celery's queues of the vhost and records their arrival counts. Without the
// queues parameter a queue is Celery's when an exchange of its own name routes to it with
// its own name as routing key, as Celery declares every queue it knows (and it is not one
// of Celery's internal queues, exclusive or auto-deleted).
func (b *amqpBroker) list(ctx context.Context) ([]mgmtQueue, error) {
	vhost := "/" + url.PathEscape(b.vhost)
	var all []mgmtQueue
	if err := b.get(ctx, "/queues"+vhost, &all); err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	if b.only != nil {
		for _, q := range b.only {
			keep[q] = true
		}
	} else {
		var bindings []struct {
			Source          string `json:"source"`
			Destination     string `json:"destination"`
			DestinationType string `json:"destination_type"`
			RoutingKey      string `json:"routing_key"`
		}
		if err := b.get(ctx, "/bindings"+vhost, &bindings); err != nil {
			return nil, err
		}
		for _, bd := range bindings {
			if bd.DestinationType == "queue" && bd.Source == bd.Destination && bd.RoutingKey == bd.Destination {
				keep[bd.Destination] = true
			}
		}
	}
	now := time.Now()
	out := make([]mgmtQueue, 0, len(keep))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range all {
		if !keep[q.Name] || isCeleryInternal(q.Name) || q.Exclusive || q.AutoDelete {
			continue
		}
		aq := b.queues[q.Name]
		if aq == nil {
			aq = &amqpQueue{}
			b.queues[q.Name] = aq
		}
		aq.arrivals.Observe(now, q.MessageStats.Publish)
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stats reads every Celery queue of the vhost: ready messages are pending, unacknowledged
// ones running; the latency comes from head_message_timestamp, else from when the head
// message was first counted (the management API's publish counter).
func (b *amqpBroker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	qs, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]broker.QueueStats, len(qs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range qs {
		st := broker.QueueStats{
			Name: q.Name, SLA: b.opts.sla[q.Name], Pending: q.Ready, Running: q.Unacked,
			Completed: q.MessageStats.Ack,
		}
		if q.Ready > 0 {
			switch {
			case q.HeadMessageTimestamp != nil && *q.HeadMessageTimestamp > 0:
				st.OldestReadyAt, st.LatencySource = time.Unix(int64(*q.HeadMessageTimestamp), 0), "timestamp"
			default:
				// Without redeliveries the head is message number published − ready + 1.
				if first, ok := b.queues[q.Name].arrivals.FirstSeen(q.MessageStats.Publish - q.Ready + 1); ok {
					st.OldestReadyAt, st.LatencySource = first, "first_seen"
				}
			}
			if !st.OldestReadyAt.IsZero() {
				st.Latency = max(0, now.Sub(st.OldestReadyAt))
			}
		}
		out[i] = st
	}
	return out, nil
}

// Tasks is not supported: RabbitMQ shows a message only by taking it from its queue.
func (b *amqpBroker) Tasks(context.Context, broker.ListParams) ([]*broker.Task, error) {
	return nil, b.Unsupported("list the messages of a RabbitMQ queue (reading them would take them)")
}

// Task is not supported, for the same reason.
func (b *amqpBroker) Task(context.Context, string) (*broker.Task, error) {
	return nil, b.Unsupported("find a task by id")
}

// mgmtConsumer is a consumer as GET /api/consumers/{vhost} describes it.
type mgmtConsumer struct {
	Queue struct {
		Name string `json:"name"`
	} `json:"queue"`
	PrefetchCount  int `json:"prefetch_count"`
	ChannelDetails struct {
		ConnectionName string `json:"connection_name"`
		PeerHost       string `json:"peer_host"`
		PeerPort       int    `json:"peer_port"`
	} `json:"channel_details"`
}

// Workers lists the connections that consume Celery's queues, one per worker process
// (Celery's main process holds the consuming connection); since is not checked, a
// consumer being alive by definition. Concurrency is the consumer's prefetch count.
func (b *amqpBroker) Workers(ctx context.Context, _ time.Time) ([]broker.WorkerInfo, error) {
	qs, err := b.list(ctx)
	if err != nil {
		return nil, err
	}
	celery := map[string]bool{}
	for _, q := range qs {
		celery[q.Name] = true
	}
	var cs []mgmtConsumer
	if err := b.get(ctx, "/consumers/"+url.PathEscape(b.vhost), &cs); err != nil {
		return nil, err
	}
	byConn := map[string]*broker.WorkerInfo{}
	var order []string
	for _, c := range cs {
		if !celery[c.Queue.Name] {
			continue
		}
		id := c.ChannelDetails.ConnectionName
		w := byConn[id]
		if w == nil {
			w = &broker.WorkerInfo{ID: id, Host: c.ChannelDetails.PeerHost, LastSeen: time.Now(), Version: "celery"}
			byConn[id] = w
			order = append(order, id)
		}
		w.Queues = append(w.Queues, c.Queue.Name)
		w.Concurrency = max(w.Concurrency, c.PrefetchCount)
	}
	sort.Strings(order)
	out := make([]broker.WorkerInfo, 0, len(order))
	for _, id := range order {
		out = append(out, *byConn[id])
	}
	return out, nil
}
