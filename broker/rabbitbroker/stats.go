package rabbitbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/briskq/brisk/broker"
)

// Where the figures of Stats come from:
//
//   - Pending: the ready queue's message count (queue.declare, exact at the call) plus the
//     deliveries this broker value holds unreserved in its buffer. A delivery that reaches
//     the buffer while the queue is counted may be in both (RabbitMQ sent it after it
//     answered the count): the count is then taken again, up to three times (readyCount).
//   - Scheduled: the message counts of the queue's delay queues (exact at the call, but a
//     message moving between two levels is counted in neither for a millisecond).
//   - Dead: the dead queue's message count (exact at the call).
//   - Running: the ready queue's unacked messages from the management API (refreshed by
//     RabbitMQ every 5 s by default; deliveries buffered unreserved by any consumer count),
//     less what this broker value buffers; without the management API, the tasks this
//     broker value holds, with a note.
//   - Latency: 0 when nothing is pending. Otherwise, for a classic queue, the age of the
//     head's ReadyAt (whole seconds) from the management API; for a quorum queue (whose head
//     RabbitMQ 3.10 does not report, and which cannot be peeked without counting a delivery)
//     from a lower bound of the head's ReadyAt: every consumer that receives a message knows
//     that the head is no older than that message, and every broker value that sees the
//     queue empty knows that the head is younger than that moment; broker values publish
//     their bounds to the live stream every 100 ms. The latency is therefore an upper bound:
//     exact to within the gap between two consecutive tasks while workers are busy, and too
//     high when no worker has received anything since the queue last emptied. When nothing
//     bounds it, the note says the latency is unknown.

// management reads queue figures from the RabbitMQ management HTTP API.
type management struct {
	base   *url.URL
	vhost  string
	client *http.Client
}

func newManagement(raw, amqpURL string, timeout time.Duration) *management {
	u, _ := url.Parse(raw) // checked by withDefaults
	vhost := "/"
	if a, err := url.Parse(amqpURL); err == nil && len(a.Path) > 1 {
		vhost, _ = url.PathUnescape(a.Path[1:])
	}
	return &management{base: u, vhost: vhost, client: &http.Client{Timeout: timeout, Transport: &http.Transport{}}}
}

// mgmtQueue is what Stats reads of one queue.
type mgmtQueue struct {
	Name          string `json:"name"`
	Unacked       int64  `json:"messages_unacknowledged"`
	HeadTimestamp *int64 `json:"head_message_timestamp"`
}

// queues returns the figures of the queues of the vhost whose names start with prefix.
func (m *management) queues(ctx context.Context, prefix string) (map[string]mgmtQueue, error) {
	u := *m.base
	u.User = nil
	u.Path, u.RawPath = "/api/queues/"+m.vhost, "/api/queues/"+url.PathEscape(m.vhost)
	q := url.Values{}
	q.Set("columns", "name,messages_unacknowledged,head_message_timestamp")
	q.Set("name", "^"+regexpQuote(prefix))
	q.Set("use_regex", "true")
	q.Set("page", "1")
	q.Set("page_size", "500")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if m.base.User != nil {
		pw, _ := m.base.User.Password()
		req.SetBasicAuth(m.base.User.Username(), pw)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	var page struct {
		Items []mgmtQueue `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	out := make(map[string]mgmtQueue, len(page.Items))
	for _, it := range page.Items {
		out[it.Name] = it
	}
	return out, nil
}

func regexpQuote(s string) string {
	const special = `\.+*?()|[]{}^$`
	out := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		for j := 0; j < len(special); j++ {
			if s[i] == special[j] {
				out = append(out, '\\')
				break
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Stats returns the figures of every queue declared or enqueued to (see above for where
// each comes from).
func (b *Broker) Stats(ctx context.Context) ([]broker.QueueStats, error) {
	s, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	type known struct {
		name   string
		sla    time.Duration
		levels uint32
	}
	b.mu.Lock()
	var qs []known
	for name, info := range b.queues {
		if info.known {
			qs = append(qs, known{name, info.sla, info.levels})
		}
	}
	b.mu.Unlock()
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })

	var (
		mgmt    map[string]mgmtQueue
		mgmtErr error
	)
	if b.mgmt != nil && len(qs) > 0 {
		mgmt, mgmtErr = b.mgmt.queues(ctx, b.opts.Prefix+".")
	}
	out := make([]broker.QueueStats, 0, len(qs))
	for _, q := range qs {
		if err := b.ensureQueue(ctx, s, q.name); err != nil {
			return nil, b.unavailable("declaring queue "+q.name, err)
		}
		st := broker.QueueStats{Name: q.name, SLA: q.sla}
		var buf bufferSnapshot
		err := s.withOps(func(ch *amqp.Channel) error {
			count := func(name string) (int64, error) {
				qi, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
				return int64(qi.Messages), err
			}
			var err error
			if st.Pending, buf, err = b.readyCount(q.name, count); err != nil {
				return err
			}
			if st.Dead, err = count(b.n.dead(q.name)); err != nil {
				return err
			}
			for k := 0; k < delayLevels; k++ {
				if q.levels&(1<<k) != 0 {
					n, err := count(b.n.level(q.name, k))
					if err != nil {
						return err
					}
					st.Scheduled += n
				}
			}
			return nil
		})
		if err != nil {
			return nil, b.unavailable("counting queue "+q.name, err)
		}
		now := time.Now()
		if st.Pending == 0 {
			b.observeEmpty(q.name, now)
		}
		b.mu.Lock()
		held := int64(0)
		if c := b.consumers[q.name]; c != nil {
			held = int64(c.held)
		}
		head := b.heads[q.name]
		b.mu.Unlock()
		ready := st.Pending
		buffered, oldestBuffered := buf.n, buf.oldest
		st.Pending += buffered

		switch {
		case b.mgmt == nil:
			st.Running = held
			st.Notes = append(st.Notes, "running: this process only (management API off)")
		case mgmtErr != nil:
			st.Running = held
			st.Notes = append(st.Notes, fmt.Sprintf("running: this process only (management API: %v)", mgmtErr))
		default:
			st.Running = max(mgmt[b.n.ready(q.name)].Unacked-buffered, held)
			st.Notes = append(st.Notes, "running: from the management API, up to 5 s old, prefetched tasks included")
		}

		// Latency: the oldest of the head of the ready queue and what this value buffers.
		var oldest time.Time
		if buffered > 0 {
			oldest = oldestBuffered
		}
		if ready > 0 {
			headAt, note := b.headReadyAt(q.name, head, mgmt)
			if note != "" {
				st.Notes = append(st.Notes, note)
			}
			if !headAt.IsZero() && (oldest.IsZero() || headAt.Before(oldest)) {
				oldest = headAt
			}
		}
		if !oldest.IsZero() {
			st.OldestReadyAt = oldest
			st.Latency = max(now.Sub(oldest), 0)
		}
		out = append(out, st)
	}
	return out, nil
}

// headReadyAt returns the ReadyAt of the head of q's ready queue as well as it is known, and
// a note on how.
func (b *Broker) headReadyAt(q string, bound time.Time, mgmt map[string]mgmtQueue) (time.Time, string) {
	if b.opts.QueueType == Classic && mgmt != nil {
		if m, ok := mgmt[b.n.ready(q)]; ok && m.HeadTimestamp != nil {
			return time.Unix(*m.HeadTimestamp, 0), "latency: head timestamp from the management API (whole seconds, up to 5 s old)"
		}
	}
	if bound.IsZero() {
		return time.Time{}, "latency: unknown (no consumer has received from this queue since it was last seen empty)"
	}
	return bound, "latency: an upper bound (the head is no older than the last task a consumer received)"
}

// observeEmpty records that q's ready queue was empty at t: its head is younger.
func (b *Broker) observeEmpty(q string, t time.Time) {
	b.mu.Lock()
	if t.After(b.heads[q]) {
		b.heads[q] = t
	}
	b.mu.Unlock()
}

// reportHeads publishes the head bounds that moved since this value last published them.
func (b *Broker) reportHeads(s *session) {
	b.mu.Lock()
	var es []metaEntry
	for q, h := range b.heads {
		if last := b.reported[q]; h.Sub(last) >= headEvery || (last.IsZero() && !h.IsZero()) {
			b.reported[q] = h
			es = append(es, metaEntry{Kind: kindHead, Queue: q, Head: h.UnixNano()})
		}
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.OutageWait)
	defer cancel()
	for _, e := range es {
		if err := b.appendEntry(ctx, s, streamLive, e); err != nil {
			b.opts.Logger.Warn("brisk: rabbitmq: publishing a head report", "err", err)
			return
		}
	}
}

// bufferSnapshot is what a broker value's consumer of a queue buffers unreserved: how many
// deliveries (with those being published back) and the oldest ReadyAt among them.
type bufferSnapshot struct {
	n        int64
	oldest   time.Time
	received int64 // the consumer's received count at the snapshot
}

// bufferLocked returns the snapshot of q's consumer. b.mu must be held.
func (b *Broker) bufferLocked(q string) bufferSnapshot {
	c := b.consumers[q]
	if c == nil {
		return bufferSnapshot{}
	}
	s := bufferSnapshot{n: int64(len(c.buf) + c.returning), received: c.received}
	for _, bd := range c.buf {
		if r := readyAtOf(&bd.d); s.oldest.IsZero() || r.Before(s.oldest) {
			s.oldest = r
		}
	}
	return s
}

// readyCount returns the message count of q's ready queue by count, with the snapshot of
// what this broker value buffers of q taken right after it. A delivery that reaches the
// buffer while the queue is counted may be in both (RabbitMQ sent it after it answered
// the count), and would be counted pending twice (seen right after acks made room in the
// consumer's window): then the count is taken again, up to three times in all.
func (b *Broker) readyCount(q string, count func(name string) (int64, error)) (int64, bufferSnapshot, error) {
	received := func() int64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		if c := b.consumers[q]; c != nil {
			return c.received
		}
		return 0
	}
	var (
		n     int64
		after bufferSnapshot
	)
	for range 3 {
		before := received()
		var err error
		if n, err = count(b.n.ready(q)); err != nil {
			return 0, bufferSnapshot{}, err
		}
		b.mu.Lock()
		after = b.bufferLocked(q)
		b.mu.Unlock()
		if after.received == before {
			break
		}
	}
	return n, after, nil
}
