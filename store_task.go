package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"
)

// A task as stored and its typed, cached storage helpers: the lifecycle writes tasks through
// these, and task's paths read them.

const taskStoragePrefix = "task/"

// Task statuses.
const (
	taskOpen      = "open"
	taskCompleted = "completed"
	taskCancelled = "cancelled"
)

// closedTaskRetention: closed tasks stay readable this long, then the periodic sweep removes them.
const closedTaskRetention = 30 * 24 * time.Hour

// taskEntry is a stored task: a process's owner is asked for new credentials.
type taskEntry struct {
	ID            string `json:"id"`
	ProcessID     string `json:"process_id"`
	Service       string `json:"service"`
	Reason        string `json:"reason"`
	Owner         string `json:"owner"`
	OwnerEntityID string `json:"owner_entity_id"`
	Status        string `json:"status"`
	// CompletedBy is who completed it: the caller's entity id, or its display name without one.
	CompletedBy string    `json:"completed_by,omitempty"`
	CreatedTime time.Time `json:"created_time"`
	ClosedTime  time.Time `json:"closed_time"`
}

// taskEvent is the event that tells of a task.
func taskEvent(typ string, t *taskEntry) notifyEvent {
	return notifyEvent{Type: typ, ProcessID: t.ProcessID, TaskID: t.ID, Service: t.Service, Owner: t.Owner,
		OwnerEntityID: t.OwnerEntityID, Reason: t.Reason}
}

// closedAs is the task completed or cancelled at now; stored, it stays readable for
// closedTaskRetention.
func closedAs(t *taskEntry, status string, now time.Time) *taskEntry {
	closed := *t
	closed.Status, closed.ClosedTime = status, now
	return &closed
}

// newTaskID makes the id of a task a transition may open.
func newTaskID() (string, error) {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return "", fmt.Errorf("making a task id: %w", err)
	}
	return id, nil
}

func (b *backend) getTask(ctx context.Context, s logical.Storage, id string) (*taskEntry, error) {
	return cachedGet(ctx, s, b.tasks, taskStoragePrefix, id, fmt.Sprintf("task %q", id))
}

func (b *backend) putTask(ctx context.Context, s logical.Storage, t *taskEntry) error {
	if err := cachedPut(ctx, s, b.tasks, taskStoragePrefix, t.ID, fmt.Sprintf("task %q", t.ID), t); err != nil {
		return err
	}
	b.noteClosedTask(t)
	return nil
}

func (b *backend) deleteTask(ctx context.Context, s logical.Storage, id string) error {
	return cachedDelete(ctx, s, b.tasks, taskStoragePrefix, id, fmt.Sprintf("task %q", id))
}
