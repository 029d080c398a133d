package pecreds

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// taskReadCounting counts the listings of task/ and the reads of task records.
type taskReadCounting struct {
	logical.Storage
	taskLists, taskReads atomic.Int64
}

func (l *taskReadCounting) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.HasPrefix(prefix, taskStoragePrefix) {
		l.taskLists.Add(1)
	}
	return l.Storage.List(ctx, prefix)
}

func (l *taskReadCounting) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, taskStoragePrefix) {
		l.taskReads.Add(1)
	}
	return l.Storage.Get(ctx, key)
}

// No sweep reads every task, not even the first after a start: it lists the due days of the
// stored retention index and reads only their tasks, and removes a closed task 30 days after it
// closed. Storage from before the index (v0.1.0's) is indexed once, by the first sweep over it.
func TestTaskSweepReadsOnlyWhatItMust(t *testing.T) {
	b, inmem := getTestBackend(t)
	setupLayers(t, b, inmem)
	mustSucceed(t, b, inmem, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	mustSucceed(t, b, inmem, logical.CreateOperation, "process/q", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	open := reportAs(t, b, inmem, "p", "credentials_expired")["task_id"].(string)
	closed := reportAs(t, b, inmem, "q", "credentials_expired")["task_id"].(string)
	mustSucceed(t, b, inmem, logical.UpdateOperation, "task/"+closed+"/cancel", nil)
	if err := b.sweepTasks(context.Background(), inmem, time.Now()); err != nil { // marks the storage indexed
		t.Fatal(err)
	}

	for _, legacy := range []bool{false, true} {
		if legacy { // as v0.1.0 left it: no index, no mark
			keys, _ := logical.CollectKeysWithPrefix(context.Background(), inmem, taskRetentionPrefix)
			for _, k := range append(keys, taskRetentionIndexed) {
				if err := inmem.Delete(context.Background(), k); err != nil {
					t.Fatal(err)
				}
			}
		}
		s := &taskReadCounting{Storage: inmem}
		r := restart(t, s)
		sweep := func(at time.Time) {
			t.Helper()
			if err := r.sweepTasks(context.Background(), s, at); err != nil {
				t.Fatal(err)
			}
		}
		sweep(time.Now())
		sweep(time.Now().Add(29 * 24 * time.Hour))
		lists, reads := s.taskLists.Load(), s.taskReads.Load()
		if !legacy && (lists != 0 || reads != 0) {
			t.Errorf("sweeps after a start listed tasks %d times and read %d: want none", lists, reads)
		}
		if legacy && (lists != 1 || reads != 2) {
			t.Errorf("storage from before the index: tasks listed %d times and read %d, want once each task", lists, reads)
		}
		mustSucceed(t, r, inmem, logical.ReadOperation, "task/"+closed, nil)
		if !legacy {
			if keys, _ := logical.CollectKeysWithPrefix(context.Background(), inmem, taskRetentionPrefix); len(keys) != 1 || !strings.HasSuffix(keys[0], "/"+closed) {
				t.Errorf("the closed task's index entry, written with it: %v", keys)
			}
		}
		if legacy {
			sweep(time.Now().Add(31 * 24 * time.Hour))
			if resp := request(t, r, inmem, logical.ReadOperation, "task/"+closed, nil); resp != nil {
				t.Errorf("a task closed 31 days ago is still there: %v", resp.Data)
			}
			mustSucceed(t, r, inmem, logical.ReadOperation, "task/"+open, nil)
			if keys, _ := logical.CollectKeysWithPrefix(context.Background(), inmem, taskRetentionPrefix); len(keys) != 0 {
				t.Errorf("index entries left: %v", keys)
			}
		}
	}
}
