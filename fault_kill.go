//go:build pecreds_faults

package pecreds

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/hashicorp/vault/sdk/logical"
)

// The tests' build of the plugin (-tags pecreds_faults, tests/main_test.go) links in a kill
// switch: the plugin kills itself with SIGKILL just before, or just after, the n-th storage write
// of its requests, as a test asks in the file named at link time (-ldflags -X faultKillFile).
// The production build has none of this file.

// faultKillFile is the file a test arms the switch with: "<nonce> before|after <n>". The plugin
// removes it as it dies, so that Vault's retry of the request, on the restarted plugin, runs.
var faultKillFile string

func init() {
	wrapForTests = func(b *backend) logical.Backend { return &killSwitch{backend: b} }
}

type killSwitch struct{ *backend }

func (k *killSwitch) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Storage != nil && req.Operation != logical.RollbackOperation {
		req.Storage = &killingStorage{Storage: req.Storage}
	}
	return k.backend.HandleRequest(ctx, req)
}

type killingStorage struct{ logical.Storage }

var killCount struct {
	sync.Mutex
	nonce  string
	writes int
}

func (s *killingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	killPoint("before")
	err := s.Storage.Put(ctx, e)
	killPoint("after")
	return err
}

func (s *killingStorage) Delete(ctx context.Context, key string) error {
	killPoint("before")
	err := s.Storage.Delete(ctx, key)
	killPoint("after")
	return err
}

func killPoint(phase string) {
	raw, err := os.ReadFile(faultKillFile)
	if err != nil {
		return
	}
	var nonce, when string
	var n int
	if _, err := fmt.Sscan(string(raw), &nonce, &when, &n); err != nil {
		return
	}
	killCount.Lock()
	defer killCount.Unlock()
	if nonce != killCount.nonce {
		killCount.nonce, killCount.writes = nonce, 0
	}
	if phase == "before" {
		killCount.writes++
	}
	if killCount.writes == n && when == phase {
		_ = os.Remove(faultKillFile)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns: the signal is on its way
	}
}
