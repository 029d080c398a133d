package pecreds

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// listCounting counts the listings of task/.
type listCounting struct {
	logical.Storage
	taskLists atomic.Int64
}

func (l *listCounting) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.HasPrefix(prefix, taskStoragePrefix) {
		l.taskLists.Add(1)
	}
	return l.Storage.List(ctx, prefix)
}

// After the first sweep of a start, which reads every task once, a sweep reads no task it has no
// reason to: a change cut short between its writes (here the open task written, the process
// not) is reconciled from what it touched, and a closed task is removed at its time from the
// retention order.
func TestTaskSweepReadsOnlyWhatItMust(t *testing.T) {
	b, inmem := getTestBackend(t)
	setupLayers(t, b, inmem)
	s := &listCounting{Storage: inmem}
	sweep := func(now time.Time) {
		t.Helper()
		if err := b.sweepTasks(context.Background(), s, now); err != nil {
			t.Fatal(err)
		}
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	mustSucceed(t, b, s, logical.CreateOperation, "process/q", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	closed := reportAs(t, b, s, "q", "credentials_expired")["task_id"].(string)
	mustSucceed(t, b, s, logical.UpdateOperation, "task/"+closed+"/cancel", nil)
	sweep(time.Now())
	if n := s.taskLists.Load(); n != 1 {
		t.Fatalf("the first sweep listed tasks %d times, want once", n)
	}

	// The report's second write (the process) fails: an open task nobody waits for is left.
	failing := &failingStorage{Storage: s, failAt: 2}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "process/p/report", Storage: failing,
		Data: map[string]any{"service": "crm", "error": "auth_failed"}})
	if err == nil && !resp.IsError() {
		t.Fatalf("the report whose second write failed answered %v", resp)
	}
	sweep(time.Now())
	if n := s.taskLists.Load(); n != 1 {
		t.Errorf("a later sweep listed tasks: %d listings in all", n)
	}
	checkLifeInvariants(t, b, inmem)

	sweep(time.Now().Add(29 * 24 * time.Hour))
	mustSucceed(t, b, s, logical.ReadOperation, "task/"+closed, nil)
	sweep(time.Now().Add(31 * 24 * time.Hour))
	if r := request(t, b, s, logical.ReadOperation, "task/"+closed, nil); r != nil {
		t.Errorf("a task closed 31 days ago is still there: %v", r.Data)
	}
	if n := s.taskLists.Load(); n != 1 {
		t.Errorf("%d listings of tasks in all, want the first sweep's", n)
	}
}
