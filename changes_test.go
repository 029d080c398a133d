package pecreds

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
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
	if snap.Process != "broken waiting=true current=true" || len(snap.Events) != 2 || snap.Events[0] != lifecycle.ProcessBroken || snap.Events[1] != lifecycle.TaskCreated {
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

// storedChange is a change's write-ahead record as v0.2.0 stores it: one write of every kind.
const storedChange = `{"id":"c1","process_id":"order-42","writes":[{"kind":0,"event":{"seq":0,"id":"e1","type":"task-completed","time":"0001-01-01T00:00:00Z","process_id":"order-42","task_id":"T-1","service":"","owner":"","owner_entity_id":"","reason":"","change":"c1","attempts":0,"next_attempt":"0001-01-01T00:00:00Z","last_error":"","dead":false,"since":"0001-01-01T00:00:00Z"}},{"kind":2,"process":{"id":"p","nonce":"","definition":"","owner":"","owner_entity_id":"","keep_credentials":"","has_current":false,"health":"running","health_reason":"","task_id":"","runtime":[],"expires_at":"0001-01-01T00:00:00Z","created_time":"2026-11-29T12:00:00.123456789Z","updated_time":"2026-11-29T12:00:00.123456789Z"}},{"kind":3,"task":{"id":"T-1","process_id":"order-42","service":"crm","reason":"auth_failed","owner":"ann","owner_entity_id":"ent-ann","status":"completed","completed_by":"ent-ann","created_time":"2026-11-29T12:00:00.123456789Z","closed_time":"2026-11-29T13:00:00.123456789Z"}},{"kind":4,"process":{"id":"p","nonce":"","definition":"","owner":"","owner_entity_id":"","keep_credentials":"","has_current":false,"health":"running","health_reason":"","task_id":"","runtime":[],"expires_at":"0001-01-01T00:00:00Z","created_time":"2026-11-29T12:00:00.123456789Z","updated_time":"2026-11-29T12:00:00.123456789Z"}},{"kind":5,"process":{"id":"p","nonce":"","definition":"","owner":"","owner_entity_id":"","keep_credentials":"","has_current":false,"health":"running","health_reason":"","task_id":"","runtime":[],"expires_at":"0001-01-01T00:00:00Z","created_time":"2026-11-29T12:00:00.123456789Z","updated_time":"2026-11-29T12:00:00.123456789Z"}},{"kind":6,"task":{"id":"T-2","process_id":"p","service":"","reason":"","owner":"","owner_entity_id":"","status":"open","created_time":"2026-11-29T12:00:00.123456789Z","closed_time":"0001-01-01T00:00:00Z"}}]}`

// A change recorded before an upgrade is rolled forward after it: its record decodes, and
// encodes again to the same bytes, effect kinds and all.
func TestStoredChangeRoundTrip(t *testing.T) {
	var data any
	if err := json.Unmarshal([]byte(storedChange), &data); err != nil {
		t.Fatal(err)
	}
	w, err := decodeChange(data) // as the write-ahead log hands it back
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != storedChange {
		t.Errorf("encoded again differently:\n got  %s\n want %s", again, storedChange)
	}
	if got := describeWrites(w); got != "announce:task-completed delete-current put-task:completed put-process delete-process delete-task" {
		t.Errorf("the writes read back as %q", got)
	}
}

// describeWrites names a change's writes in order, as the writer runs them.
func describeWrites(w walChange) string {
	names := map[lifecycle.EffectKind]string{lifecycle.Announce: "announce", lifecycle.PutCurrent: "put-current",
		lifecycle.DeleteCurrent: "delete-current", lifecycle.PutTask: "put-task", lifecycle.PutProcess: "put-process",
		lifecycle.DeleteProcess: "delete-process", lifecycle.DeleteTask: "delete-task"}
	var out []string
	for _, e := range w.effects() {
		name := names[e.Kind]
		switch e.Kind {
		case lifecycle.Announce:
			name += ":" + e.Event.Type
		case lifecycle.PutTask:
			if e.Task != nil {
				name += ":" + e.Task.Status
			}
		}
		out = append(out, name)
	}
	return strings.Join(out, " ")
}

// A process whose end was cut short after its record was deleted, and a new process of the same
// id: the create finishes the end first, so rolling it forward never deletes the new process.
func TestCreateAfterAnEndCutShortKeepsTheNewProcess(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	create := func() {
		mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	}
	create()
	reportAs(t, b, s, "p", "auth_failed") // an open task, so the end writes more than once
	for failAt := 2; ; failAt++ {
		failing := &failingStorage{Storage: s, failAt: failAt}
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.DeleteOperation, Path: "process/p", Storage: failing})
		if err == nil && !resp.IsError() {
			t.Fatal("no write of the end left the process record deleted and the change pending")
		}
		if p, _ := b.getProcess(context.Background(), s, "p"); p == nil {
			break // the record is gone, the end is pending
		}
		b.Cleanup(context.Background())
		b = restart(t, s) // rolls the end forward; start again with a process that has a task
		waitSettled(t, b, s)
		create()
		reportAs(t, b, s, "p", "auth_failed")
	}
	create()
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "crm", "error": "unavailable"})
	if p := request(t, b, s, logical.ReadOperation, "process/p", nil); p == nil || p.Data["health"] != "running" {
		t.Fatalf("the new process after the old one's end was finished: %v", p)
	}
	checkFinishedNothingPending(t, b, s)
	checkLifeInvariants(t, b, s)
}

func checkFinishedNothingPending(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	if keys, _ := s.List(context.Background(), framework.WALPrefix); len(keys) != 0 || len(b.changes.processes()) != 0 {
		t.Errorf("still pending: records %v, processes %v", keys, b.changes.processes())
	}
}
