package pecreds

import (
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateEvery is how long the backend keeps the replication state it asked Vault for.
const replicationStateEvery = time.Second

// systemView keeps Vault's answer to ReplicationState for a moment. The SDK's framework asks it
// before every request (to refuse, on a performance standby, the operations marked
// ForwardPerformanceStandby), and for an external plugin each ask is a gRPC round trip to Vault:
// one in five of a process create's. pecreds marks no operation so; its one reader of the state
// is activeOnly (status answered by the active node), for which a state a second old is fine.
type systemView struct {
	logical.SystemView
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	state consts.ReplicationState
	asked time.Time
}

func newSystemView(v logical.SystemView) *systemView {
	return &systemView{SystemView: v, every: replicationStateEvery, now: time.Now}
}

// ReplicationState answers Vault's, asked at most once a period.
func (v *systemView) ReplicationState() consts.ReplicationState {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if v.asked.IsZero() || now.Sub(v.asked) >= v.every || now.Before(v.asked) {
		v.state, v.asked = v.SystemView.ReplicationState(), now
	}
	return v.state
}
