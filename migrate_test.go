package pecreds

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// v010Process is a process record as v0.1.0 wrote it: no current credentials in it.
type v010Process struct {
	ID              string    `json:"id"`
	Nonce           string    `json:"nonce"`
	Definition      string    `json:"definition"`
	Owner           string    `json:"owner"`
	OwnerEntityID   string    `json:"owner_entity_id"`
	KeepCredentials string    `json:"keep_credentials"`
	HasCurrent      bool      `json:"has_current"`
	Health          string    `json:"health"`
	HealthReason    string    `json:"health_reason"`
	TaskID          string    `json:"task_id"`
	Runtime         []Service `json:"runtime"`
	CreatedTime     time.Time `json:"created_time"`
	UpdatedTime     time.Time `json:"updated_time"`
}

func putJSON(t *testing.T, s logical.Storage, key string, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), &logical.StorageEntry{Key: key, Value: raw}); err != nil {
		t.Fatal(err)
	}
}

// Storage as v0.1.0 left it — each persistent process's current credentials under
// process-current/<id>, and one such record whose process had ended — is read by this version
// at once (a resolve answers the credentials before any migration), then migrated in the
// background: the credentials move into their process's record, the old keys go, the orphan
// included, and the answers stay the same across another restart.
func TestUpgradeFromV010Layout(t *testing.T) {
	s := &logical.InmemStorage{}
	b := startTestBackend(t, testDeps(), s)
	setupLayers(t, b, s) // registries and config, as v0.1.0 stored them too
	b.Cleanup(context.Background())
	now := time.Now().UTC()
	for _, id := range []string{"p1", "p2"} {
		putJSON(t, s, processStoragePrefix+id, v010Process{ID: id, Nonce: "n-" + id, Definition: "orders", Owner: "ann",
			KeepCredentials: lifecycle.KeepPersistent, HasCurrent: true, Health: lifecycle.Running, CreatedTime: now, UpdatedTime: now})
		putJSON(t, s, legacyCurrentPrefix+id, Credential{Type: "password", Fields: map[string]string{"username": "ann-" + id, "password": "pw-" + id}})
	}
	putJSON(t, s, legacyCurrentPrefix+"gone", Credential{Type: "password", Fields: map[string]string{"username": "x", "password": "orphan-pw"}})

	// A backend that has not migrated yet reads the old layout.
	raw, err := factoryWith(testDeps())(context.Background(), testBackendConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	early := raw.(*backend)
	t.Cleanup(func() { early.Cleanup(context.Background()) })
	if got := mustSucceed(t, early, s, logical.ReadOperation, "process/p1/resolve/crm", nil).Data; got["username"] != "ann-p1" {
		t.Fatalf("before the migration: %v", got)
	}

	b = restart(t, s) // initialize runs the migration
	waitUntil(t, 10*time.Second, func() bool { return b.migrated.Load() })
	if keys, _ := s.List(context.Background(), legacyCurrentPrefix); len(keys) != 0 {
		t.Errorf("old keys left: %v", keys)
	}
	for _, id := range []string{"p1", "p2"} {
		entry, _ := s.Get(context.Background(), processStoragePrefix+id)
		var p lifecycle.Process
		if entry == nil || json.Unmarshal(entry.Value, &p) != nil || p.Current == nil || p.Current.Fields["password"] != "pw-"+id {
			t.Errorf("process %s after the migration: %+v", id, p)
		}
		if got := mustSucceed(t, b, s, logical.ReadOperation, "process/"+id+"/resolve/crm", nil).Data; got["username"] != "ann-"+id {
			t.Errorf("process %s resolves %v", id, got)
		}
		if got := mustSucceed(t, b, s, logical.ReadOperation, "process/"+id, nil).Data; got["current_credentials"] != "kept" || got["current"] != nil {
			t.Errorf("process %s reads %v", id, got)
		}
	}
	b = restart(t, s)
	if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p2/resolve/crm", nil).Data; got["username"] != "ann-p2" {
		t.Errorf("after another restart: %v", got)
	}
}
