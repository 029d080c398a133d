package pecreds

import (
	"sync/atomic"
	"testing"
	"time"
)

// Side calls never wait for a free goroutine: with every kept one busy, Go still returns at once
// and the call runs on a new one; each call runs exactly once; after stop, calls still run.
func TestSideCallsAllRun(t *testing.T) {
	c := newSideCalls()
	t.Cleanup(c.stop)
	const calls = 3 * sideCallWorkers // more than the workers, all held busy
	release := make(chan struct{})
	started := make(chan struct{}, calls)
	var ran atomic.Int64
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		for i := 0; i < calls; i++ {
			c.Go(func() { started <- struct{}{}; <-release; ran.Add(1) })
		}
	}()
	within(t, queued, "Go blocked while every side-call goroutine was busy")
	for i := 0; i < calls; i++ {
		within(t, started, "a side call queued behind busy goroutines did not start")
	}
	close(release)
	waitUntil(t, 10*time.Second, func() bool { return ran.Load() == calls })

	c.stop()
	c.stop() // twice is harmless
	after := make(chan struct{})
	c.Go(func() { close(after) })
	within(t, after, "a side call after stop did not run")
	if n := ran.Load(); n != calls {
		t.Errorf("%d side calls ran, want %d", n, calls)
	}
}

// within fails the test unless ch yields (or is closed) within 10 seconds.
func within(t *testing.T, ch <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
	}
}
