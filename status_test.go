package pecreds

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func statusOf(t *testing.T, b *backend, s logical.Storage) map[string]any {
	t.Helper()
	var data map[string]any
	waitUntil(t, 5*time.Second, func() bool {
		data = mustSucceed(t, b, s, logical.ReadOperation, "status", nil).Data
		return data["counts_complete"] == true
	})
	return data
}

// status counts after creates, reports, a completion, an end and a cancel; the same after a
// reload, counted again from storage.
func TestStatusCountsAcrossChangesAndReload(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	for _, id := range []string{"a", "b", "c", "d"} {
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": "none"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/e", map[string]any{"definition": "orders"})
	reportAs(t, b, s, "a", "auth_failed") // broken, a task
	reportAs(t, b, s, "b", "auth_failed")
	task := reportAs(t, b, s, "c", "auth_failed")["task_id"].(string)
	completeAs(t, b, s, task, "ent-ann") // c runs again
	reportAs(t, b, s, "d", "forbidden")  // failed
	mustSucceed(t, b, s, logical.DeleteOperation, "process/b", nil)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/static", map[string]any{"type": "password", "username": "u", "password": "p"})

	want := map[string]any{
		"processes":             4,
		"processes_by_health":   map[string]int{"running": 2, "broken": 1, "failed": 1},
		"processes_by_keep":     map[string]int{"persistent": 3, "none": 1},
		"open_tasks":            1,
		"technical_credentials": map[string]int{"ok": 2, "failing": 0, "expired": 0},
	}
	for _, backend := range []*backend{b, restart(t, s)} {
		got := statusOf(t, backend, s)
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
	}
}

// technical/:name/usage answers from the census's index: by definition, by runtime layer, every
// process for a global registry; the same after a reload.
func TestUsageIndexAcrossChangesAndReload(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s) // registry orders names crm-service
	mustSucceed(t, b, s, logical.CreateOperation, "registry/plain", map[string]any{"services": `[{"name": "x", "credentials": [{"type": "api_key", "key": "k"}]}]`})
	for _, id := range []string{"o1", "o2"} {
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders"})
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "plain"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p2", map[string]any{"definition": "plain"})
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p1/credentials", map[string]any{"services": `[{"name": "y", "credentials": [{"type": "technical", "name": "crm-service"}]}]`})
	usage := func(b *backend) (any, any) {
		d := mustSucceed(t, b, s, logical.ReadOperation, "technical/crm-service/usage", nil).Data
		return d["processes"], d["process_ids"]
	}
	if n, ids := usage(b); n != 3 || !reflect.DeepEqual(ids, []string{"o1", "o2", "p1"}) {
		t.Errorf("usage %v %v", n, ids)
	}
	mustSucceed(t, b, s, logical.DeleteOperation, "process/o2", nil)
	mustSucceed(t, b, s, logical.DeleteOperation, "process/p1/credentials/y", nil)
	if n, ids := usage(b); n != 1 || !reflect.DeepEqual(ids, []string{"o1"}) {
		t.Errorf("after a delete and a runtime change: %v %v", n, ids)
	}
	r := restart(t, s)
	statusOf(t, r, s)
	if n, ids := usage(r); n != 1 || !reflect.DeepEqual(ids, []string{"o1"}) {
		t.Errorf("after a reload: %v %v", n, ids)
	}
	// A global registry naming it: every live process reaches it.
	mustSucceed(t, r, s, logical.UpdateOperation, "config", map[string]any{"global_registries": "orders"})
	if n, _ := usage(r); n != 3 {
		t.Errorf("through a global registry: %v", n)
	}
}

// completeAs completes a task as the given entity, with new credentials.
func completeAs(t *testing.T, b *backend, s logical.Storage, taskID, entity string) {
	t.Helper()
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "task/" + taskID + "/complete", Storage: s, EntityID: entity,
		Data: map[string]any{"credentials": `{"type": "password", "username": "ann", "password": "new-pw"}`},
	})
	if err != nil || resp.IsError() {
		t.Fatalf("completing %s: %v %v", taskID, err, resp)
	}
}
