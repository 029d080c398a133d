package pecreds

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A process whose lease Vault never registered (a crash after the create's write) is ended by the
// periodic sweep once it is an hour past its own expiry — its current credentials wiped, its open
// task cancelled — and not before; a renewal moves its expiry; a process that keeps being renewed
// lives on; and the order survives a restart, rebuilt from the census's read of storage.
func TestProcessOwnExpiry(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	setupLayers(t, b, s)
	sweep := func() {
		t.Helper()
		if err := b.periodic(context.Background(), &logical.Request{Storage: s}); err != nil {
			t.Fatal(err)
		}
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/orphan", map[string]any{"definition": "orders", "current": annJSON, "ttl": "600", "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "orphan", "auth_failed") // broken, with an open task
	kept := mustSucceed(t, b, s, logical.CreateOperation, "process/kept", map[string]any{"definition": "orders", "ttl": "600"})
	renew := func(lease *logical.Response) {
		t.Helper()
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: s, Secret: lease.Secret})
		if err != nil || resp.IsError() {
			t.Fatalf("renew: %v %v", resp, err)
		}
	}

	clock.advance(50 * time.Minute) // past the 10-minute TTL, within the hour's grace
	renew(kept)
	sweep()
	if request(t, b, s, logical.ReadOperation, "process/orphan", nil) == nil {
		t.Fatal("ended before the grace period was over")
	}

	b = startTestBackend(t, d, s) // a restart: the order is rebuilt from storage
	waitUntil(t, 10*time.Second, func() bool { return b.census.Counts().Seeded })
	clock.advance(25 * time.Minute) // the orphan 75 minutes past its expiry; kept renewed 25 minutes ago
	sweep()
	if r := request(t, b, s, logical.ReadOperation, "process/orphan", nil); r != nil {
		t.Errorf("the orphan lives on: %v", r.Data)
	}
	if e, _ := s.Get(context.Background(), processStoragePrefix+"orphan"); e != nil {
		t.Error("the orphan's record (with its current credentials) is still stored")
	}
	if open := mustSucceed(t, b, s, logical.ListOperation, "task/", nil).Data["keys"]; open != nil {
		t.Errorf("the orphan's task is still open: %v", open)
	}
	if request(t, b, s, logical.ReadOperation, "process/kept", nil) == nil {
		t.Error("a renewed process was ended")
	}
}
