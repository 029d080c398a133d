package pecreds

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// runQueue calls at most limit() at once, and a limit raised while it waits takes effect at the
// next poke, with no restart: how config's grant_refresh_concurrency applies.
func TestRunQueueFollowsItsLimit(t *testing.T) {
	q := schedule.NewQueue()
	now := time.Now()
	for i := range 6 {
		q.Schedule(fmt.Sprint("n", i), now)
	}
	var (
		limit          atomic.Int64
		mu             sync.Mutex
		inFlight, most int
		release        = make(chan struct{})
	)
	limit.Store(2)
	w := newWorker()
	w.run(func(ctx context.Context) {
		runQueue(ctx, q, &w, time.Now, func() int { return int(limit.Load()) }, func(ctx context.Context, _ string) {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
			}
			mu.Lock()
			inFlight--
			mu.Unlock()
		})
	})
	defer w.stop()
	running := func(n int) {
		t.Helper()
		waitUntil(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == n })
	}
	running(2)
	limit.Store(4)
	w.poke()
	running(4)
	close(release)
	running(0)
	if most != 4 {
		t.Errorf("at most %d at once, want 4", most)
	}
}
