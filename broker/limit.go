package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/briskq/brisk/brisktype"
)

// Limiter is implemented by brokers that keep rate and concurrency limits and apply them
// inside Reserve, so that they hold across every worker and process on the store.
//
// A Limit applies to one queue, or to one task type within one queue (a type's limit does
// not span queues: on Redis Cluster each queue lives in its own slot, and a check across
// slots could not be atomic with the reserve). Reserve takes only what the limits allow
// and goes on to the next queue of ReserveParams, so a worker never waits for a token
// while another queue has work; when a queue has ready tasks that its limits hold back,
// Wait returns when the next token is due (or, for a concurrency limit, when a slot
// frees: an ack, retry, kill, release or cancel in any process, or a lease expiry).
type Limiter interface {
	// SetLimit stores l (replacing the limit of the same Queue and Type); the queue is
	// created if needed. A new rate limit starts with a full bucket.
	SetLimit(ctx context.Context, l Limit) error
	// DeleteLimit removes the limit of queue and typ ("" for the queue's own); an
	// unknown one is an error wrapping ErrNotFound.
	DeleteLimit(ctx context.Context, queue, typ string) error
	// Limits lists every limit, sorted by queue then type.
	Limits(ctx context.Context) ([]Limit, error)
}

// Limit caps how fast and how many tasks of a queue (Type "") or of one task type within
// a queue are reserved (brisktype.Limit).
type Limit = brisktype.Limit

// Limits beyond which a limit is surely a mistake.
const (
	maxLimitRate = 1_000_000_000
	minLimitPer  = time.Millisecond
)

// ValidateLimit checks a limit and returns it with Burst defaulted: names valid, Rate,
// Burst and MaxRunning not negative, at least one of Rate and MaxRunning set, Per at
// least 1 ms when Rate is set.
func ValidateLimit(l Limit) (Limit, error) {
	if err := ValidateQueueName(l.Queue); err != nil {
		return l, fmt.Errorf("limit: %w", err)
	}
	if l.Type != "" {
		if err := ValidateTypeName(l.Type); err != nil {
			return l, fmt.Errorf("limit of queue %q: %w", l.Queue, err)
		}
	}
	what := fmt.Sprintf("limit of queue %q", l.Queue)
	if l.Type != "" {
		what += fmt.Sprintf(" type %q", l.Type)
	}
	switch {
	case l.Rate < 0 || l.Burst < 0 || l.MaxRunning < 0 || l.Per < 0:
		return l, fmt.Errorf("%w: %s: rate %d, per %s, burst %d and max running %d must not be negative", ErrInvalid, what, l.Rate, l.Per, l.Burst, l.MaxRunning)
	case l.Rate == 0 && l.MaxRunning == 0:
		return l, fmt.Errorf("%w: %s: set a rate (N per period) or a max running count, or both", ErrInvalid, what)
	case l.Rate == 0 && (l.Per != 0 || l.Burst != 0):
		return l, fmt.Errorf("%w: %s: a period or burst without a rate", ErrInvalid, what)
	case l.Rate > maxLimitRate || l.Burst > maxLimitRate || l.MaxRunning > maxLimitRate:
		return l, fmt.Errorf("%w: %s: rate, burst and max running must be at most %d", ErrInvalid, what, maxLimitRate)
	case l.Rate > 0 && l.Per < minLimitPer:
		return l, fmt.Errorf("%w: %s: period %s, must be at least %s", ErrInvalid, what, l.Per, minLimitPer)
	}
	if l.Rate > 0 && l.Burst == 0 {
		l.Burst = l.Rate
	}
	return l, nil
}

// TokenBucket is the state of a rate limit's bucket: Tokens at At. Brokers that keep it
// in their engine's own language (Lua) follow the same arithmetic.
type TokenBucket struct {
	Tokens float64
	At     time.Time
}

// Refill returns the bucket at now under l: tokens added at Rate per Per since At, at
// most Burst. A zero bucket (never used) is full.
func (tb TokenBucket) Refill(l Limit, now time.Time) TokenBucket {
	if tb.At.IsZero() {
		return TokenBucket{Tokens: float64(l.Burst), At: now}
	}
	if d := now.Sub(tb.At); d > 0 { // a clock behind the last writer's adds nothing
		tb.Tokens = min(float64(l.Burst), tb.Tokens+float64(d)*float64(l.Rate)/float64(l.Per))
		tb.At = now
	}
	return tb
}

// NextToken returns when the bucket (as refilled at At) holds one whole token.
func (tb TokenBucket) NextToken(l Limit) time.Time {
	if tb.Tokens >= 1 {
		return tb.At
	}
	return tb.At.Add(time.Duration((1 - tb.Tokens) * float64(l.Per) / float64(l.Rate)))
}
