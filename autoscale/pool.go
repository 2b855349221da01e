package autoscale

import (
	"context"
	"fmt"
	"sync"
)

// Pool shares one actuator among the controllers of several queues that the same workers
// serve: each controller applies through For(queue), and the pool applies the largest count
// any of them wants. With one queue it passes decisions through.
type Pool struct {
	act Actuator

	mu      sync.Mutex
	want    map[string]int
	applied int
}

// NewPool returns a pool on act, which keeps initial workers now.
func NewPool(act Actuator, initial int) *Pool {
	return &Pool{act: act, want: map[string]int{}, applied: initial}
}

// Current returns the count last applied.
func (p *Pool) Current() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// For returns the actuator for queue's controller.
func (p *Pool) For(queue string) Actuator {
	return decisionFunc(func(ctx context.Context, d Decision) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.want[queue] = d.Desired
		n := 0
		for _, v := range p.want {
			n = max(n, v)
		}
		if n == p.applied {
			return nil
		}
		pd := d
		pd.Desired = n
		if n != d.Desired {
			pd.Reason = fmt.Sprintf("%s wants %d; the largest of all queues is %d", queue, d.Desired, n)
		}
		if err := p.act.Apply(ctx, pd); err != nil {
			return err
		}
		p.applied = n
		return nil
	})
}

type decisionFunc func(ctx context.Context, d Decision) error

func (f decisionFunc) Apply(ctx context.Context, d Decision) error { return f(ctx, d) }
