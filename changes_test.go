package pecreds

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// cutShortReport sets up process p over a Task Manager that never answers, and reports its
// current credentials failed through storage that refuses the report's third write: the change
// is recorded and half made.
func cutShortReport(t *testing.T) (*backend, logical.Storage) {
	t.Helper()
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": "http://127.0.0.1:1/hook", "notify_secret": hookSecret})
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	failing := &failingStorage{Storage: s, failAt: 3}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "process/p/report", Storage: failing,
		Data: map[string]any{"service": "crm", "error": "auth_failed"}})
	if err == nil && !resp.IsError() {
		t.Fatalf("a report whose third write failed answered %v", resp)
	}
	if n := request(t, b, s, logical.ReadOperation, "status", nil).Data["changes_pending"]; n != 1 {
		t.Fatalf("changes_pending %v after a change cut short, want 1", n)
	}
	return b, s
}

// checkFinished: no change pending, no write-ahead record left, p broken and waiting for its
// task, and each of the report's events in the outbox once.
func checkFinished(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	if keys, _ := s.List(context.Background(), framework.WALPrefix); len(keys) != 0 || len(b.changes.processes()) != 0 {
		t.Errorf("still pending: records %v, processes %v", keys, b.changes.processes())
	}
	snap := snapshotLife(t, b, s)
	if snap.Process != "broken waiting=true current=true" || len(snap.Events) != 2 || snap.Events[0] != eventProcessBroken || snap.Events[1] != eventTaskCreated {
		t.Errorf("after the change was finished: %+v", snap)
	}
	checkLifeInvariants(t, b, s)
}

// The process's next change finishes the last one first, and runs on the state it left: a second
// report of the same failure opens no second task and sends nothing more.
func TestChangeCutShortIsFinishedByTheNextChange(t *testing.T) {
	b, s := cutShortReport(t)
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "crm", "error": "auth_failed"})
	checkFinished(t, b, s)
}

// A change cut short on a process nothing touches again is finished by Vault's periodic rollback.
func TestWALRollbackFinishesAChangeCutShort(t *testing.T) {
	b, s := cutShortReport(t)
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: s,
		Data: map[string]any{"immediate": true}}) // the age Vault waits for, waived
	if err != nil || resp.IsError() {
		t.Fatalf("rollback: %v %v", resp, err)
	}
	checkFinished(t, b, s)
}
