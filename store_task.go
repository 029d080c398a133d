package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A task's storage: its typed, cached helpers (the lifecycle's writer writes tasks through these,
// and task's paths read them), a closed task's entry in the stored retention index (written and
// deleted with the task), and the id a new task gets.

const taskStoragePrefix = "task/"

// closedTaskRetention: closed tasks stay readable this long, then the periodic sweep removes them.
const closedTaskRetention = 30 * 24 * time.Hour

// The retention index: a closed task has an empty entry under the day its retention ends,
// task-retention/<YYYY-MM-DD>/<id>, so the sweep lists the days that are due and reads only their
// tasks. taskRetentionIndexed marks storage whose closed tasks are all in it: a start never
// reads every task; only the first sweep over storage from before the index does, once.
const (
	taskRetentionPrefix  = "task-retention/"
	taskRetentionIndexed = "task-retention-indexed"
)

// retentionKey is a closed task's entry in the retention index.
func retentionKey(t *lifecycle.Task) string {
	return taskRetentionPrefix + retentionDay(t.ClosedTime.Add(closedTaskRetention)) + "/" + t.ID
}

func retentionDay(at time.Time) string { return at.UTC().Format(time.DateOnly) }

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

// putTask writes a task, and a closed one's entry in the retention index.
func (b *backend) putTask(ctx context.Context, s logical.Storage, t *lifecycle.Task) error {
	if err := cachedPut(ctx, s, b.tasks, taskStoragePrefix, t.ID, fmt.Sprintf("task %q", t.ID), t); err != nil {
		return err
	}
	if t.Status == lifecycle.StatusOpen {
		return nil
	}
	return indexClosedTask(ctx, s, t)
}

func indexClosedTask(ctx context.Context, s logical.Storage, t *lifecycle.Task) error {
	if err := s.Put(ctx, &logical.StorageEntry{Key: retentionKey(t), Value: []byte("{}")}); err != nil {
		return fmt.Errorf("indexing closed task %q: %w", t.ID, err)
	}
	return nil
}

// deleteTask deletes a task, then its entry in the retention index: one left behind is
// dropped by the next sweep.
func (b *backend) deleteTask(ctx context.Context, s logical.Storage, t *lifecycle.Task) error {
	if err := cachedDelete(ctx, s, b.tasks, taskStoragePrefix, t.ID, fmt.Sprintf("task %q", t.ID)); err != nil {
		return err
	}
	return unindexTask(ctx, s, retentionKey(t))
}

func unindexTask(ctx context.Context, s logical.Storage, key string) error {
	if err := s.Delete(ctx, key); err != nil {
		return fmt.Errorf("removing a task from the retention index: %w", err)
	}
	return nil
}
