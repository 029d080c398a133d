package pecreds

import (
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// The one departure from the SDK's defaults that a benchmark keeps (BENCHMARKS.md, "Departures
// from the SDK's defaults"): the system view the framework is given keeps Vault's answer to
// ReplicationState for a second. The framework asks it before every request, only to refuse the
// operations marked ForwardPerformanceStandby or ForwardPerformanceSecondary on such a node, and
// for an external plugin each ask is a gRPC round trip to Vault. pecreds marks no operation so
// (TestNoOperationForwardsOnPerformanceStandby), so the kept answer decides nothing. Everything
// the plugin itself decides by the replication state — WriteSafeReplicationState, activeOnly —
// asks Vault every time (replicationState).

// replicationStateEvery is how long the framework's view keeps the replication state.
const replicationStateEvery = time.Second

// routingView keeps Vault's answer to ReplicationState for a moment; everything else is Vault's.
type routingView struct {
	logical.SystemView
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	state consts.ReplicationState
	asked time.Time
}

func newRoutingView(v logical.SystemView, now func() time.Time) *routingView {
	return &routingView{SystemView: v, every: replicationStateEvery, now: now}
}

// ReplicationState answers Vault's, asked at most once a period.
func (v *routingView) ReplicationState() consts.ReplicationState {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if v.asked.IsZero() || now.Sub(v.asked) >= v.every || now.Before(v.asked) {
		v.state, v.asked = v.SystemView.ReplicationState(), now
	}
	return v.state
}

// replicationState is Vault's answer now, never a kept one.
func (b *backend) replicationState() consts.ReplicationState {
	if v, ok := b.System().(*routingView); ok {
		return v.SystemView.ReplicationState()
	}
	return b.System().ReplicationState()
}

// WriteSafeReplicationState is the framework's rule (the active node of a primary, or a local
// mount on a performance secondary) on Vault's answer now: background writes and the start of
// background work never follow a state a second old.
func (b *backend) WriteSafeReplicationState() bool {
	state := b.replicationState()
	return (b.System().LocalMount() || !state.HasState(consts.ReplicationPerformanceSecondary)) &&
		!state.HasState(consts.ReplicationDRSecondary) &&
		!state.HasState(consts.ReplicationPerformanceStandby)
}
