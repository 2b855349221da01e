package broker

import (
	"context"
	"fmt"
	"time"
)

// Leader is implemented by brokers that can elect one leader among processes: a named
// lease held by one holder at a time, with a fencing token that grows at every new
// acquisition, so that a leader that lost its lease (paused, partitioned) can be told
// apart from the one that holds it now. brisk's periodic scheduler runs on it.
type Leader interface {
	// AcquireLeadership makes holder the leader of name until now + ttl when nobody holds
	// it (or the lease has expired), with a new token, and returns the leadership and true.
	// When holder holds it already it is renewed with the same token. When someone else
	// holds it, it returns that leadership and false.
	AcquireLeadership(ctx context.Context, name, holder string, ttl time.Duration) (Leadership, bool, error)
	// RenewLeadership extends l to now + ttl and returns true when l is still held
	// (same holder and token, not expired), else false and changes nothing.
	RenewLeadership(ctx context.Context, l Leadership, ttl time.Duration) (Leadership, bool, error)
	// ReleaseLeadership ends l at once if it is held, so that another process takes
	// over without waiting for the lease to expire; a lease not held is left alone.
	ReleaseLeadership(ctx context.Context, l Leadership) error
	// CurrentLeader returns the current leadership of name, and false when nobody holds
	// it (never acquired, released, or expired).
	CurrentLeader(ctx context.Context, name string) (Leadership, bool, error)
}

// Leadership is one holder's lease on a named leadership.
type Leadership struct {
	Name   string
	Holder string
	// Token is the fencing token: it grows with every new acquisition of Name.
	Token int64
	// Until is when the lease expires unless renewed.
	Until time.Time
}

// ValidateLeadership checks a leadership's name (as a queue name), holder (1–128 bytes)
// and ttl (at least 10 ms).
func ValidateLeadership(name, holder string, ttl time.Duration) error {
	if err := validName(name, false); err != nil {
		return fmt.Errorf("%w: leadership name %q: %s", ErrInvalid, name, err.Error())
	}
	if holder == "" || len(holder) > maxNameLen {
		return fmt.Errorf("%w: leadership %q: holder must be 1–%d bytes", ErrInvalid, name, maxNameLen)
	}
	if ttl < 10*time.Millisecond {
		return fmt.Errorf("%w: leadership %q: ttl %s, must be at least 10ms", ErrInvalid, name, ttl)
	}
	return nil
}
