package pecreds

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// The task sweep's memory. A change that fails between its writes marks the tasks it touched
// dirty, and the next sweep reconciles just those with their processes; a closed task waits in a
// time order for its removal, 30 days after it closed. The first sweep after a start reads every
// task once, to rebuild both (a change cut short by a crash left no mark in memory).
type taskSweep struct {
	scanned   atomic.Bool
	retention *schedule.Queue
	mu        sync.Mutex // guards dirty
	dirty     map[string]bool
}

func newTaskSweep() *taskSweep {
	return &taskSweep{retention: schedule.NewQueue(), dirty: map[string]bool{}}
}

// markDirtyTasks marks tasks a failed change touched, for the next sweep.
func (b *backend) markDirtyTasks(ids ...string) {
	b.taskSweep.mu.Lock()
	defer b.taskSweep.mu.Unlock()
	for _, id := range ids {
		if id != "" {
			b.taskSweep.dirty[id] = true
		}
	}
}

func (b *backend) takeDirtyTasks() []string {
	b.taskSweep.mu.Lock()
	defer b.taskSweep.mu.Unlock()
	ids := make([]string, 0, len(b.taskSweep.dirty))
	for id := range b.taskSweep.dirty {
		ids = append(ids, id)
	}
	b.taskSweep.dirty = map[string]bool{}
	return ids
}

// touchedTasks are the tasks a change's effects write or its state names.
func touchedTasks(st lifeState, list []effect) []string {
	var ids []string
	if st.Task != nil {
		ids = append(ids, st.Task.ID)
	}
	if st.Process != nil {
		ids = append(ids, st.Process.TaskID)
	}
	for _, e := range list {
		if e.Task != nil {
			ids = append(ids, e.Task.ID)
		}
		if e.Process != nil {
			ids = append(ids, e.Process.TaskID)
		}
	}
	return ids
}

// noteClosedTask places a closed task in the retention order.
func (b *backend) noteClosedTask(t *taskEntry) {
	if t.Status != taskOpen {
		b.taskSweep.retention.Schedule(t.ID, t.ClosedTime.Add(closedTaskRetention))
	}
}

// forgetTask removes a task closed long enough ago, through the lifecycle's writer.
func (b *backend) forgetTask(ctx context.Context, s logical.Storage, id string, now time.Time) error {
	t, err := b.getTask(ctx, s, id)
	if err != nil || t == nil {
		return err
	}
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	if t, err = b.getTask(ctx, s, id); err != nil || t == nil || t.Status == taskOpen {
		return err
	}
	if now.Sub(t.ClosedTime) <= closedTaskRetention {
		b.noteClosedTask(t)
		return nil
	}
	_, err = b.change(ctx, s, lifeState{Task: t}, lifeEvent{Kind: lifeForgetTask, Now: now})
	if err != nil {
		return fmt.Errorf("removing task %q: %w", id, err)
	}
	return nil
}
