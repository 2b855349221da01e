// Package watch holds what the read-only brokers that watch another system's queues
// (Celery's, RQ's) share: the refusal of every write, the estimate of when a message
// arrived from a history of arrival counts, and the SLA URL parameter.
package watch

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/briskq/brisk/broker"
)

// ReadOnly refuses every call that would change the watched system, with an error that
// wraps broker.ErrUnsupported (and broker.ErrInvalid) and names the broker. A watcher
// embeds it and implements the reads itself.
type ReadOnly struct {
	// Name names the broker in errors ("celery+redis", "rq+redis").
	Name string
}

// Refuse is the error of a write op on a read-only broker.
func (r ReadOnly) Refuse(op string) error {
	return fmt.Errorf("brisk: %s: %s refused: this broker only watches queues that another system owns (read only): %w: %w",
		r.Name, op, broker.ErrUnsupported, broker.ErrInvalid)
}

// Enqueue is refused.
func (r ReadOnly) Enqueue(context.Context, []*broker.Task) error { return r.Refuse("enqueue") }

// Reserve is refused: the watched system's own workers take its tasks.
func (r ReadOnly) Reserve(context.Context, broker.ReserveParams) ([]*broker.Task, error) {
	return nil, r.Refuse("reserve")
}

// Extend is refused.
func (r ReadOnly) Extend(context.Context, []broker.Lease, time.Duration) ([]broker.Lease, error) {
	return nil, r.Refuse("extend")
}

// Ack is refused.
func (r ReadOnly) Ack(context.Context, []broker.Lease) error { return r.Refuse("ack") }

// Retry is refused.
func (r ReadOnly) Retry(context.Context, broker.Lease, time.Time, string) error {
	return r.Refuse("retry")
}

// Kill is refused.
func (r ReadOnly) Kill(context.Context, broker.Lease, string) error { return r.Refuse("kill") }

// Release is refused.
func (r ReadOnly) Release(context.Context, []broker.Lease) error { return r.Refuse("release") }

// Wait is refused: no brisk worker serves a watched queue.
func (r ReadOnly) Wait(context.Context, []string, time.Duration) error { return r.Refuse("wait") }

// DeclareQueue is refused; a watched queue's SLA comes from the URL's sla parameter or
// from its name (five_second).
func (r ReadOnly) DeclareQueue(context.Context, broker.QueueConfig) error {
	return r.Refuse("declare queue (give its SLA in the broker URL: ?sla=QUEUE:DURATION)")
}

// RetryDead is refused.
func (r ReadOnly) RetryDead(context.Context, string, []string) (int, error) {
	return 0, r.Refuse("retry dead tasks")
}

// Delete is refused.
func (r ReadOnly) Delete(context.Context, string, broker.State, []string) (int, error) {
	return 0, r.Refuse("delete")
}

// Heartbeat is refused.
func (r ReadOnly) Heartbeat(context.Context, broker.WorkerInfo) error { return r.Refuse("heartbeat") }

// Deregister is refused.
func (r ReadOnly) Deregister(context.Context, string) error { return r.Refuse("deregister") }

// Capabilities declares nothing: a watcher keeps none of the optional behaviours.
func (r ReadOnly) Capabilities() broker.Capabilities { return broker.Capabilities{} }

// Unsupported is the error of a read the watched system cannot answer.
func (r ReadOnly) Unsupported(what string) error {
	return fmt.Errorf("brisk: %s: %s: %w", r.Name, what, broker.ErrUnsupported)
}

// SLAs reads the sla parameters of a watcher's URL: each "QUEUE:DURATION" (repeatable,
// or comma-separated), e.g. ?sla=emails:5s&sla=reports:10m.
func SLAs(q url.Values) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, v := range q["sla"] {
		for _, item := range strings.Split(v, ",") {
			name, d, found := strings.Cut(item, ":")
			dur, err := time.ParseDuration(d)
			if !found || name == "" || err != nil || dur <= 0 {
				return nil, fmt.Errorf("%w: sla=%q is not QUEUE:DURATION (e.g. emails:5s)", broker.ErrInvalid, item)
			}
			out[name] = dur
		}
	}
	return out, nil
}

// Duration reads a duration parameter of a URL, or def when absent.
func Duration(q url.Values, key string, def time.Duration) (time.Duration, error) {
	v := q.Get(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: %s=%q is not a positive duration", broker.ErrInvalid, key, v)
	}
	return d, nil
}

// Arrivals is a history of how many messages had arrived in a queue by each moment it was
// looked at (a cumulative count), from which the moment a given message was first seen
// follows: message number k of the count arrived after the last look that counted fewer
// than k and at or before the first that counted k or more. The error of that estimate
// is at most the time between two looks. Safe for concurrent use.
type Arrivals struct {
	mu      sync.Mutex
	samples []arrivalSample // time order; totals never decrease
}

type arrivalSample struct {
	at    time.Time
	total int64
}

// maxSamples bounds the history: older samples are dropped (their messages then count
// from the oldest kept).
const maxSamples = 1 << 14

// Observe records that total messages had arrived by at. A total below the last one (the
// watched system reset its counters) starts the history again.
func (a *Arrivals) Observe(at time.Time, total int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.samples); n > 0 {
		last := a.samples[n-1]
		switch {
		case total < last.total:
			a.samples = a.samples[:0]
		case total == last.total:
			return // nothing arrived: the first look that saw this total is what counts
		}
	}
	if len(a.samples) == maxSamples {
		a.samples = append(a.samples[:0], a.samples[maxSamples/2:]...)
	}
	a.samples = append(a.samples, arrivalSample{at, total})
}

// FirstSeen returns when message number k (1-based, of the cumulative count) was first
// counted, and forgets the samples that only older messages need (the head of a FIFO
// queue only moves forward). It reports false when no look has counted k messages yet.
func (a *Arrivals) FirstSeen(k int64) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.samples), func(i int) bool { return a.samples[i].total >= k })
	if i == len(a.samples) {
		return time.Time{}, false
	}
	if i > 1 { // keep the sample before i: it bounds the next heads from below
		a.samples = append(a.samples[:0], a.samples[i-1:]...)
		i = 1
	}
	return a.samples[i].at, true
}

// RedisURL turns a watcher's URL (SCHEME+redis://… or SCHEME+rediss://…) into go-redis
// options and the watcher's own parameters (those named in own); the other parameters
// go to go-redis (e.g. dial_timeout).
func RedisURL(u *url.URL, own ...string) (*redis.Options, url.Values, error) {
	_, scheme, found := strings.Cut(u.Scheme, "+")
	if !found || (scheme != "redis" && scheme != "rediss") {
		return nil, nil, fmt.Errorf("%w: url %q: scheme %q is not …+redis or …+rediss", broker.ErrInvalid, u.Redacted(), u.Scheme)
	}
	q := u.Query()
	mine, rest := url.Values{}, url.Values{}
	for k, v := range q {
		if slices.Contains(own, k) {
			mine[k] = v
		} else {
			rest[k] = v
		}
	}
	conn := *u
	conn.Scheme, conn.RawQuery = scheme, rest.Encode()
	opts, err := redis.ParseURL(conn.String())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: url %q: %v (own parameters: %s; the others are go-redis's)",
			broker.ErrInvalid, u.Redacted(), err, strings.Join(own, ", "))
	}
	return opts, mine, nil
}

// Ping checks that a Redis answers, as Open does before it returns.
func Ping(ctx context.Context, name string, rdb *redis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("brisk: %s: %v: %w", name, err, broker.ErrUnavailable)
	}
	return nil
}
