package wake

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNotifyWakesTheQueuesWaiters(t *testing.T) {
	t.Parallel()
	h := New()
	a, removeA := h.Add([]string{"a"})
	ab, removeAB := h.Add([]string{"a", "b"})
	defer removeAB()
	h.Notify("b")
	select {
	case <-a:
		t.Fatal("a waiter of a was woken by b")
	default:
	}
	select {
	case <-ab:
	default:
		t.Fatal("a waiter of a and b was not woken by b")
	}
	removeA()
	h.Notify("a")
	select {
	case <-a:
		t.Fatal("a removed waiter was woken")
	default:
	}
	h.NotifyAll(true)
	if !h.Up() {
		t.Error("Up after NotifyAll(true) = false")
	}
	select {
	case <-ab:
	default:
		t.Fatal("NotifyAll did not wake a waiter")
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	none := func(context.Context) (time.Time, error) { return time.Time{}, nil }
	h := New()
	h.NotifyAll(true)

	start := time.Now()
	due := func(context.Context) (time.Time, error) { return start.Add(50 * time.Millisecond), nil }
	if err := h.Wait(ctx, []string{"q"}, time.Minute, nil, due); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Errorf("Wait until a due time: %v after %s", err, time.Since(start))
	}
	past := func(context.Context) (time.Time, error) { return start.Add(-time.Second), nil }
	if err := h.Wait(ctx, []string{"q"}, time.Minute, nil, past); err != nil {
		t.Errorf("Wait with something due: %v", err)
	}
	boom := errors.New("boom")
	if err := h.Wait(ctx, []string{"q"}, time.Minute, nil, func(context.Context) (time.Time, error) { return time.Time{}, boom }); err != boom {
		t.Errorf("Wait when nextDue fails: %v, want its error", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		h.Notify("q")
	}()
	if err := h.Wait(ctx, []string{"q"}, time.Minute, nil, none); err != nil {
		t.Errorf("Wait woken by Notify: %v", err)
	}
	closed := make(chan struct{})
	close(closed)
	if err := h.Wait(ctx, []string{"q"}, time.Minute, closed, none); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait when closed: %v, want ErrClosed", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := h.Wait(cctx, []string{"q"}, time.Minute, nil, none); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its context's deadline: %v", err)
	}
	// While the subscription is down a Wait polls: it returns long before its max.
	h.NotifyAll(false)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.Wait(dctx, []string{"q"}, time.Hour, nil, none); err != nil {
		t.Errorf("Wait while down: %v, want a return after about %s", err, DownPoll)
	}
}
