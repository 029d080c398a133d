package pecreds

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// countingView answers a replication state that a test changes, counting the asks.
type countingView struct {
	logical.StaticSystemView
	mu    sync.Mutex
	state consts.ReplicationState
	asks  int
}

func (v *countingView) ReplicationState() consts.ReplicationState {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.asks++
	return v.state
}

func (v *countingView) set(s consts.ReplicationState) { v.mu.Lock(); v.state = s; v.mu.Unlock() }

func (v *countingView) count() int { v.mu.Lock(); defer v.mu.Unlock(); return v.asks }

func TestRoutingViewAsksReplicationStateOncePerPeriod(t *testing.T) {
	inner := &countingView{}
	clock := newFakeClock()
	v := newRoutingView(inner, clock.now)

	for i := 0; i < 100; i++ {
		if got := v.ReplicationState(); got != 0 {
			t.Fatalf("state %v, want none", got)
		}
	}
	if inner.count() != 1 {
		t.Fatalf("100 requests within a period asked Vault %d times, want 1", inner.count())
	}

	// Vault's answer changes: within the period the kept one stands, after it the new one.
	inner.set(consts.ReplicationPerformanceStandby)
	clock.advance(replicationStateEvery - time.Millisecond)
	if v.ReplicationState().HasState(consts.ReplicationPerformanceStandby) || inner.count() != 1 {
		t.Fatalf("asked again within the period (%d asks)", inner.count())
	}
	clock.advance(time.Millisecond)
	if !v.ReplicationState().HasState(consts.ReplicationPerformanceStandby) || inner.count() != 2 {
		t.Fatalf("a period on, the new state was not asked for (%d asks)", inner.count())
	}

	// A clock set back asks again rather than keeping an answer from the future.
	clock.advance(-time.Hour)
	v.ReplicationState()
	if inner.count() != 3 {
		t.Fatalf("after the clock went back, %d asks, want 3", inner.count())
	}

	// Everything else is Vault's own answer.
	inner.DefaultLeaseTTLVal = time.Hour
	if v.DefaultLeaseTTL() != time.Hour {
		t.Fatal("DefaultLeaseTTL did not reach the wrapped view")
	}
}

// What the plugin decides by the replication state follows Vault's answer at once, even while
// the framework's view keeps an older one: a node that just became a performance standby writes
// nothing from background work and sends status to the active node.
func TestWriteSafeReplicationStateNeverReadsTheKeptState(t *testing.T) {
	inner := &countingView{}
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b := newBackend(d)
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.System = inner
	if _, err := setUp(context.Background(), conf, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })

	if b.System().ReplicationState() != 0 || !b.WriteSafeReplicationState() {
		t.Fatal("an active node is not write-safe")
	}
	inner.set(consts.ReplicationPerformanceStandby) // within the framework view's period
	if b.System().ReplicationState().HasState(consts.ReplicationPerformanceStandby) {
		t.Fatal("the framework's view did not keep its answer (the test proves nothing)")
	}
	if b.WriteSafeReplicationState() {
		t.Error("WriteSafeReplicationState read the kept state: a performance standby was write-safe")
	}
	if err := b.activeOnly(); err != logical.ErrPerfStandbyPleaseForward {
		t.Errorf("status on a performance standby: %v, want forwarded", err)
	}
	inner.set(consts.ReplicationDRSecondary)
	if b.WriteSafeReplicationState() {
		t.Error("a DR secondary was write-safe")
	}
}

// The kept state decides nothing because no operation asks the framework to refuse it on a
// performance standby or secondary: marking one so would make a second-old state matter, and
// routingView must be revisited.
func TestNoOperationForwardsOnPerformanceStandby(t *testing.T) {
	b, _ := getTestBackend(t)
	for _, p := range b.Paths {
		for op, handler := range p.Operations {
			if props := handler.Properties(); props.ForwardPerformanceStandby || props.ForwardPerformanceSecondary {
				t.Errorf("%s %s forwards on performance standbys or secondaries; routingView keeps the replication state a second", op, p.Pattern)
			}
		}
	}
}
