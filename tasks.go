package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The task sweep: a closed task is removed 30 days after it closed, from a time order kept in
// memory as tasks are written (store_task.go); the first sweep after a start reads every task
// once, to rebuild that order and to mend what a crash between the writes of a change left in
// storage written before the write-ahead log.

// forgetTask removes a task closed long enough ago, through the lifecycle's writer.
func (b *backend) forgetTask(ctx context.Context, s logical.Storage, id string, now time.Time) error {
	t, err := b.getTask(ctx, s, id)
	if err != nil || t == nil {
		return err
	}
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	if t, err = b.getTask(ctx, s, id); err != nil || t == nil || t.Status == lifecycle.StatusOpen {
		return err
	}
	if now.Sub(t.ClosedTime) <= closedTaskRetention {
		b.noteClosedTask(t)
		return nil
	}
	_, err = b.change(ctx, s, lifecycle.State{Task: t}, lifecycle.Event{Kind: lifecycle.ForgetTask, Now: now})
	if err != nil {
		return fmt.Errorf("removing task %q: %w", id, err)
	}
	return nil
}

// sweepTasks removes tasks closed 30 days ago without reading every task each time:
// the first sweep after a start reads them all once; later ones remove the closed tasks whose
// time is due.
func (b *backend) sweepTasks(ctx context.Context, s logical.Storage, now time.Time) error {
	if !b.taskSweep.scanned.Load() {
		if err := b.scanTasks(ctx, s, now); err != nil {
			return err
		}
		b.taskSweep.scanned.Store(true)
	}
	for {
		id, _ := b.taskSweep.retention.PopDue(now)
		if id == "" {
			return nil
		}
		if err := b.forgetTask(ctx, s, id, now); err != nil {
			b.taskSweep.retention.Schedule(id, now.Add(time.Minute))
			return err
		}
	}
}

// scanTasks reads every task once: each is reconciled with its process, and a closed one placed
// in the retention order.
func (b *backend) scanTasks(ctx context.Context, s logical.Storage, now time.Time) error {
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
		b.noteClosedTask(t)
		if err := b.reconcileTask(ctx, s, t, now); err != nil {
			return err
		}
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
