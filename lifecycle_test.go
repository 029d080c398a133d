package pecreds

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// failingStorage fails the n-th write (Put or Delete) it sees, and every one after it: the
// plugin lost its Vault in the middle of a change.
type failingStorage struct {
	logical.Storage
	mu     sync.Mutex
	writes int
	failAt int // 0: never
}

var errInjected = errors.New("injected storage failure")

func (f *failingStorage) write() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.failAt > 0 && f.writes >= f.failAt {
		return errInjected
	}
	return nil
}

func (f *failingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if err := f.write(); err != nil {
		return err
	}
	return f.Storage.Put(ctx, e)
}

func (f *failingStorage) Delete(ctx context.Context, key string) error {
	if err := f.write(); err != nil {
		return err
	}
	return f.Storage.Delete(ctx, key)
}

// checkLifeInvariants: an open task's process waits for it; a process waits only for an open task
// of its own; a failed process keeps no current credentials.
func checkLifeInvariants(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	ctx := context.Background()
	taskIDs, _ := s.List(ctx, taskStoragePrefix)
	for _, id := range taskIDs {
		task, err := b.getTask(ctx, s, id)
		if err != nil || task == nil || task.Status != lifecycle.StatusOpen {
			continue
		}
		p, _ := b.getProcess(ctx, s, task.ProcessID)
		if p == nil || p.TaskID != task.ID {
			t.Errorf("open task %s: its process %v does not wait for it", id, p)
		}
	}
	processIDs, _ := s.List(ctx, processStoragePrefix)
	for _, id := range processIDs {
		p, _ := b.getProcess(ctx, s, id)
		if p == nil {
			continue
		}
		if p.TaskID != "" {
			if task, _ := b.getTask(ctx, s, p.TaskID); task == nil || task.Status != lifecycle.StatusOpen || task.ProcessID != p.ID {
				t.Errorf("process %s waits for task %s, which is %v", id, p.TaskID, task)
			}
		}
		if p.Health == lifecycle.Failed {
			if e, _ := s.Get(ctx, legacyCurrentPrefix+id); e != nil || p.HasCurrent || p.Current != nil {
				t.Errorf("failed process %s keeps its current credentials", id)
			}
		}
	}
}

// lifeSnapshot is what a change leaves, ids aside: the process, its tasks and its events.
type lifeSnapshot struct {
	Process string
	Tasks   []string
	Events  []string
}

// snapshotLife reads process p, every task and every event in the outbox; an event twice (by id)
// is an error.
func snapshotLife(t *testing.T, b *backend, s logical.Storage) lifeSnapshot {
	t.Helper()
	ctx := context.Background()
	var snap lifeSnapshot
	snap.Process = "gone"
	if p, _ := b.getProcess(ctx, s, "p"); p != nil {
		snap.Process = fmt.Sprintf("%s waiting=%v current=%v", p.Health, p.TaskID != "", p.HasCurrent)
	}
	taskIDs, _ := s.List(ctx, taskStoragePrefix)
	for _, id := range taskIDs {
		if task, _ := b.getTask(ctx, s, id); task != nil {
			snap.Tasks = append(snap.Tasks, task.Status+" "+task.Reason)
		}
	}
	slices.Sort(snap.Tasks)
	keys, _ := s.List(ctx, outboxStoragePrefix)
	seen := map[string]bool{}
	for _, k := range keys {
		ev, err := loadOutboxEvent(ctx, s, outboxStoragePrefix+k)
		if err != nil || ev == nil {
			continue
		}
		if seen[ev.ID] {
			t.Errorf("event %s (%s) is in the outbox twice", ev.ID, ev.Type)
		}
		seen[ev.ID] = true
		snap.Events = append(snap.Events, ev.Type)
	}
	return snap
}

// waitSettled waits until a restarted backend has rolled every change cut short forward: no
// write-ahead record is left.
func waitSettled(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys, err := s.List(context.Background(), framework.WALPrefix)
		if err == nil && len(keys) == 0 && len(b.changes.processes()) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes still pending after 10 s: %v %v %v", keys, b.changes.processes(), err)
		}
		runtime.Gosched()
	}
}

// Every write of each change fails in turn — the plugin lost its Vault, or was killed, at that
// point — and a new backend starts over the same storage: it rolls the change forward from the
// write-ahead log, so what is left is the state before the change (its record was never
// written) or the whole state after it, with each event once.
func TestLifecycleCrashAfterEachWrite(t *testing.T) {
	ann := `{"type": "password", "username": "ann", "password": "ann-pw"}`
	type step struct {
		op   logical.Operation
		path string
		data map[string]any
	}
	report := func(service, class string) step {
		return step{logical.UpdateOperation, "process/p/report", map[string]any{"service": service, "error": class}}
	}
	create := func(current string) step {
		return step{logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": current, "owner_entity_id": "ent-ann"}}
	}
	taskOf := func(b *backend, s logical.Storage) string {
		p, _ := b.getProcess(context.Background(), s, "p")
		return p.TaskID
	}
	fixed := func(st step) func(*backend, logical.Storage) step {
		return func(*backend, logical.Storage) step { return st }
	}
	expiring := `{"type": "token", "token": "t", "expires_at": "` + time.Now().Add(30*24*time.Hour).UTC().Format(time.RFC3339) + `"}`
	scenarios := []struct {
		name  string
		setup []step
		last  func(b *backend, s logical.Storage) step
	}{
		{"create", nil, fixed(create(ann))},
		{"report opens a task", []step{create(ann)}, fixed(report("crm", "auth_failed"))},
		{"report breaks for an operator", []step{create(ann)}, fixed(report("erp", "auth_failed"))},
		{"report fails a broken process", []step{create(ann), report("crm", "auth_failed")}, fixed(report("crm", "forbidden"))},
		{"complete", []step{create(ann), report("crm", "auth_failed")}, func(b *backend, s logical.Storage) step {
			return step{logical.UpdateOperation, "task/" + taskOf(b, s) + "/complete-on-behalf", map[string]any{"credentials": ann}}
		}},
		{"cancel", []step{create(ann), report("crm", "auth_failed")}, func(b *backend, s logical.Storage) step {
			return step{logical.UpdateOperation, "task/" + taskOf(b, s) + "/cancel", nil}
		}},
		{"resume", []step{create(ann), report("erp", "auth_failed")}, fixed(step{logical.UpdateOperation, "process/p/resume", nil})},
		{"end", []step{create(ann), report("crm", "auth_failed")}, fixed(step{logical.DeleteOperation, "process/p", nil})},
		{"preflight opens a task", []step{create(expiring)}, fixed(step{logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "8760h", "open_tasks": true}})},
	}
	for _, sc := range scenarios {
		var before, after lifeSnapshot
		for failAt := 0; ; failAt++ {
			b, inmem := getTestBackend(t)
			run := func(s logical.Storage, st step) (*logical.Response, error) {
				return b.HandleRequest(context.Background(), &logical.Request{Operation: st.op, Path: st.path, Storage: s, Data: st.data})
			}
			for _, st := range append([]step{
				{logical.UpdateOperation, "config", map[string]any{"notify_url": "http://127.0.0.1:1/hook", "notify_secret": hookSecret}},
				{logical.CreateOperation, "registry/orders", map[string]any{"services": `[{"name": "crm", "credentials": [{"type": "current"}]},
					{"name": "erp", "credentials": [{"type": "password", "username": "svc", "password": "svc-pw"}]}]`}},
			}, sc.setup...) {
				if resp, err := run(inmem, st); err != nil || resp.IsError() {
					t.Fatalf("%s: setup %s: %v %v", sc.name, st.path, resp, err)
				}
			}
			if failAt == 0 {
				before = snapshotLife(t, b, inmem)
			}
			failing := &failingStorage{Storage: inmem, failAt: failAt}
			resp, err := run(failing, sc.last(b, inmem))
			if failAt == 0 {
				if err != nil || resp.IsError() {
					t.Fatalf("%s: %v %v", sc.name, resp, err)
				}
				after = snapshotLife(t, b, inmem)
				if reflect.DeepEqual(before, after) {
					t.Fatalf("%s: the change changed nothing: %+v", sc.name, after)
				}
				continue
			}
			if failing.writes < failAt {
				t.Logf("%s: %d writes, each failed in turn", sc.name, failAt-1)
				break // every write has had its failure
			}
			if err == nil && !resp.IsError() {
				t.Errorf("%s, write %d failed: the request answered success", sc.name, failAt)
			}
			b.Cleanup(context.Background())
			restarted := restart(t, inmem)
			waitSettled(t, restarted, inmem)
			if err := restarted.periodic(context.Background(), &logical.Request{Storage: inmem}); err != nil {
				t.Fatalf("%s: the sweep after write %d failed: %v", sc.name, failAt, err)
			}
			checkLifeInvariants(t, restarted, inmem)
			got := snapshotLife(t, restarted, inmem)
			want := after
			if failAt == 1 {
				want = before // the first write is the change's record, or its only write
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, write %d of %d failed, then a restart:\n got  %+v\n want %+v", sc.name, failAt, failing.writes, got, want)
			}
		}
	}
}
