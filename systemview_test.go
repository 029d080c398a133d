package pecreds

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// countingView answers a replication state that a test changes, counting the asks.
type countingView struct {
	logical.StaticSystemView
	asks int
}

func (v *countingView) ReplicationState() consts.ReplicationState {
	v.asks++
	return v.StaticSystemView.ReplicationStateVal
}

func TestSystemViewAsksReplicationStateOncePerPeriod(t *testing.T) {
	inner := &countingView{}
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	v := newSystemView(inner)
	v.now = func() time.Time { return now }

	for i := 0; i < 100; i++ {
		if got := v.ReplicationState(); got != 0 {
			t.Fatalf("state %v, want none", got)
		}
	}
	if inner.asks != 1 {
		t.Fatalf("100 requests within a period asked Vault %d times, want 1", inner.asks)
	}

	// Vault's answer changes: within the period the kept one stands, after it the new one.
	inner.ReplicationStateVal = consts.ReplicationPerformanceStandby
	now = now.Add(replicationStateEvery - time.Millisecond)
	if v.ReplicationState().HasState(consts.ReplicationPerformanceStandby) || inner.asks != 1 {
		t.Fatalf("asked again within the period (%d asks)", inner.asks)
	}
	now = now.Add(time.Millisecond)
	if !v.ReplicationState().HasState(consts.ReplicationPerformanceStandby) || inner.asks != 2 {
		t.Fatalf("a period on, the new state was not asked for (%d asks)", inner.asks)
	}

	// A clock set back asks again rather than keeping an answer from the future.
	now = now.Add(-time.Hour)
	v.ReplicationState()
	if inner.asks != 3 {
		t.Fatalf("after the clock went back, %d asks, want 3", inner.asks)
	}

	// Everything else is Vault's own answer.
	inner.DefaultLeaseTTLVal = time.Hour
	if v.DefaultLeaseTTL() != time.Hour {
		t.Fatal("DefaultLeaseTTL did not reach the wrapped view")
	}
}

// The kept state is safe because no operation asks the framework to refuse it on a performance
// standby: marking one so would make a second-old state matter, and systemView must be revisited.
func TestNoOperationForwardsOnPerformanceStandby(t *testing.T) {
	b, _ := getTestBackend(t)
	for _, p := range b.Paths {
		for op, handler := range p.Operations {
			if props := handler.Properties(); props.ForwardPerformanceStandby || props.ForwardPerformanceSecondary {
				t.Errorf("%s %s forwards on performance standbys or secondaries; systemView keeps the replication state a second", op, p.Pattern)
			}
		}
	}
}
