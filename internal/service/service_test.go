package service

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartStop(t *testing.T) {
	var b Base
	b.Init("test", nil, nil)
	b.Stop() // never started: a no-op
	var ran atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.StartLoop(ctx, func(ctx context.Context) {
		ran.Add(1)
		<-ctx.Done()
	}); err != nil {
		t.Fatal(err)
	}
	cancel() // the caller's cancellation does not stop the loop
	select {
	case <-b.Done():
		t.Fatal("the loop ended when the start context was cancelled")
	case <-time.After(20 * time.Millisecond):
	}
	if err := b.StartLoop(context.Background(), func(context.Context) {}); !errors.Is(err, ErrStarted) {
		t.Errorf("second StartLoop: %v, want ErrStarted", err)
	}
	b.Stop()
	b.Stop()
	<-b.Done()
	if ran.Load() != 1 {
		t.Errorf("loop ran %d times", ran.Load())
	}
	if b.Clock.Now().IsZero() || b.Logger == nil {
		t.Error("Init left the clock or logger unset")
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, time.Millisecond) {
		t.Error("Sleep of 1ms reported a cancellation")
	}
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep on a cancelled context reported the whole wait")
	}
}
