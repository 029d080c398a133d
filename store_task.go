package pecreds

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// A task's storage: its typed, cached helpers (the lifecycle's writer writes tasks through these,
// and task's paths read them), a closed task's place in the retention order (kept at each write,
// as a process's expiry is), and the id a new task gets.

const taskStoragePrefix = "task/"

// closedTaskRetention: closed tasks stay readable this long, then the periodic sweep removes them.
const closedTaskRetention = 30 * 24 * time.Hour

// taskSweep is the task sweep's memory (tasks.go): the closed tasks in time order for their
// removal, and whether the first sweep after a start has read every task to rebuild that order.
type taskSweep struct {
	scanned   atomic.Bool
	retention *schedule.Queue
}

func newTaskSweep() *taskSweep {
	return &taskSweep{retention: schedule.NewQueue()}
}

// noteClosedTask places a closed task in the retention order.
func (b *backend) noteClosedTask(t *lifecycle.Task) {
	if t.Status != lifecycle.StatusOpen {
		b.taskSweep.retention.Schedule(t.ID, t.ClosedTime.Add(closedTaskRetention))
	}
}

// newTaskID makes the id of a task a transition may open.
func newTaskID() (string, error) {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return "", fmt.Errorf("making a task id: %w", err)
	}
	return id, nil
}

func (b *backend) getTask(ctx context.Context, s logical.Storage, id string) (*lifecycle.Task, error) {
	return cachedGet(ctx, s, b.tasks, taskStoragePrefix, id, fmt.Sprintf("task %q", id))
}

func (b *backend) putTask(ctx context.Context, s logical.Storage, t *lifecycle.Task) error {
	if err := cachedPut(ctx, s, b.tasks, taskStoragePrefix, t.ID, fmt.Sprintf("task %q", t.ID), t); err != nil {
		return err
	}
	b.noteClosedTask(t)
	return nil
}

func (b *backend) deleteTask(ctx context.Context, s logical.Storage, id string) error {
	return cachedDelete(ctx, s, b.tasks, taskStoragePrefix, id, fmt.Sprintf("task %q", id))
}
