package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// /readyz reads the credential check's last result: probes never run the
// check (which may call ECS metadata or STS); the background loop does, at
// its own pace, and stops when told.
func TestCredCheckRunsOffTheProbePath(t *testing.T) {
	var calls atomic.Int32
	fail := atomic.Bool{}
	fail.Store(true)
	c := &credCheck{
		check: func(context.Context) (string, error) {
			calls.Add(1)
			if fail.Load() {
				return "", errors.New("metadata unreachable")
			}
			return "worker RAM role", nil
		},
		okEvery: time.Hour, failEvery: 50 * time.Millisecond,
		checked: make(chan struct{}),
	}
	var firstErr error
	c.first = func(_ string, err error) { firstErr = err }

	// Before the first check, a probe waits for it only until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if _, err := c.result(ctx); err == nil {
		t.Fatal("a result before any check")
	}
	cancel()

	stop := c.start()
	for range 100 {
		if _, err := c.result(context.Background()); err == nil {
			t.Fatal("ready while the check fails")
		}
	}
	if firstErr == nil {
		t.Error("the first result was not reported")
	}
	if n := calls.Load(); n > 3 {
		t.Errorf("100 probes ran the check %d times", n)
	}
	fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d, err := c.result(context.Background()); err == nil && d == "worker RAM role" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the check never saw the credentials recover")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	n := calls.Load()
	time.Sleep(120 * time.Millisecond)
	if calls.Load() != n {
		t.Error("checks went on after stop")
	}
}
