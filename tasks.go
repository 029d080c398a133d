package pecreds

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The task sweep: a closed task is removed 30 days after it closed. The sweep lists the days of
// the stored retention index (store_task.go) that are due and reads only their tasks; no start
// reads every task. Storage from before the index is indexed once, by the first sweep over it,
// which also mends what a crash between the writes of a change left there before the
// write-ahead log was kept.

// forgetTask removes a task closed long enough ago, through the lifecycle's writer; an index entry
// whose task is gone is dropped. It answers whether the task is gone.
func (b *backend) forgetTask(ctx context.Context, s logical.Storage, key, id string, now time.Time) (bool, error) {
	t, err := b.getTask(ctx, s, id)
	if err != nil {
		return false, err
	}
	if t == nil {
		return true, unindexTask(ctx, s, key)
	}
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	if t, err = b.getTask(ctx, s, id); err != nil || t == nil {
		return t == nil, err
	}
	if t.Status == lifecycle.StatusOpen || retentionKey(t) != key {
		return false, unindexTask(ctx, s, key) // reopened or moved since: not this entry's
	}
	if now.Sub(t.ClosedTime) <= closedTaskRetention {
		return false, nil // due later today
	}
	if _, err = b.change(ctx, s, lifecycle.State{Task: t}, lifecycle.Event{Kind: lifecycle.ForgetTask, Now: now}); err != nil {
		return false, fmt.Errorf("removing task %q: %w", id, err)
	}
	return true, nil
}

// sweepTasks removes the tasks closed 30 days ago: it reads the retention index's due days, and
// their tasks.
func (b *backend) sweepTasks(ctx context.Context, s logical.Storage, now time.Time) error {
	if err := b.indexOldTasks(ctx, s, now); err != nil {
		return err
	}
	days, err := s.List(ctx, taskRetentionPrefix)
	if err != nil {
		return fmt.Errorf("listing the task retention index: %w", err)
	}
	today := retentionDay(now)
	for _, day := range days {
		if strings.TrimSuffix(day, "/") > today {
			continue
		}
		ids, err := s.List(ctx, taskRetentionPrefix+day)
		if err != nil {
			return fmt.Errorf("listing the task retention index: %w", err)
		}
		for _, id := range ids {
			if _, err := b.forgetTask(ctx, s, taskRetentionPrefix+day+id, id, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexOldTasks indexes storage from before the retention index, once: it reads every task,
// indexes the closed ones, and reconciles each with its process. The mark it leaves makes every
// later start skip it (one storage read).
func (b *backend) indexOldTasks(ctx context.Context, s logical.Storage, now time.Time) error {
	if b.tasksIndexed.Load() {
		return nil
	}
	if e, err := s.Get(ctx, taskRetentionIndexed); err != nil || e != nil {
		b.tasksIndexed.Store(err == nil)
		return err
	}
	ids, err := s.List(ctx, taskStoragePrefix)
	if err != nil {
		return fmt.Errorf("listing tasks: %w", err)
	}
	for _, id := range ids {
		t, err := b.getTask(ctx, s, id)
		if err != nil {
			return err
		}
		if t == nil {
			continue
		}
		if t.Status != lifecycle.StatusOpen {
			if err := indexClosedTask(ctx, s, t); err != nil {
				return err
			}
		}
		if err := b.reconcileTask(ctx, s, t, now); err != nil {
			return err
		}
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: taskRetentionIndexed, Value: []byte("{}")}); err != nil {
		return fmt.Errorf("marking the tasks indexed: %w", err)
	}
	b.tasksIndexed.Store(true)
	if len(ids) > 0 {
		b.Logger().Info("tasks indexed for their removal after 30 days", "tasks", len(ids))
	}
	return nil
}

// reconcileTask holds a task and its process together after a crash between the writes of one
// change: an open task its process does not wait for is cancelled; a process still pointing at a
// closed task gets what the closing meant.
func (b *backend) reconcileTask(ctx context.Context, s logical.Storage, t *lifecycle.Task, now time.Time) error {
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	t, err := b.getTask(ctx, s, t.ID) // again, under the lock
	if err != nil || t == nil {
		return err
	}
	p, err := b.getProcess(ctx, s, t.ProcessID)
	if err != nil {
		return err
	}
	kind := lifecycle.Repair
	if t.Status == lifecycle.StatusOpen {
		kind = lifecycle.Orphan
	} else if p == nil {
		return nil
	}
	_, err = b.change(ctx, s, lifecycle.State{Process: p, Task: t}, lifecycle.Event{Kind: kind, Now: now})
	return err
}
