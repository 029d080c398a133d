package lifecycle

import (
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// A process and a task as stored: their JSON is the storage format, so a field's tag never
// changes (process_test.go holds records as they are stored).

// keep_credentials modes: how a process keeps the current credentials it is given.
const (
	KeepPersistent = "persistent"
	KeepTransient  = "transient"
	KeepNone       = "none"
)

// Task statuses.
const (
	StatusOpen      = "open"
	StatusCompleted = "completed"
	StatusCancelled = "cancelled"
)

// The types of the events that tell of a process or a task: Vault events ("pecreds/" + type) and
// the Task Manager's.
const (
	ProcessBroken  = "process-broken"
	ProcessResumed = "process-resumed"
	TaskCreated    = "task-created"
	TaskCompleted  = "task-completed"
	TaskCancelled  = "task-cancelled"
)

// Process is a stored process, with its current credentials when they are persistent (transient
// ones live in the plugin's memory).
type Process struct {
	ID string `json:"id"`
	// Nonce tells this process from an earlier one of the same id: a lease acts only on the
	// process it was issued for.
	Nonce           string `json:"nonce"`
	Definition      string `json:"definition"`
	Owner           string `json:"owner"`
	OwnerEntityID   string `json:"owner_entity_id"`
	KeepCredentials string `json:"keep_credentials"`
	// HasCurrent: current credentials were given and kept per the mode.
	HasCurrent   bool   `json:"has_current"`
	Health       string `json:"health"`
	HealthReason string `json:"health_reason"`
	TaskID       string `json:"task_id"`
	// Why a broken process is broken (broken.go): its current credentials failed (the owner's
	// task resumes it), and/or something its owner cannot fix did (a technical credential, a
	// service: OperatorReason says what, and only an operator's resume clears it).
	BrokenByCurrent bool                 `json:"broken_by_current,omitempty"`
	OperatorReason  string               `json:"operator_reason,omitempty"`
	Runtime         []credential.Service `json:"runtime"`
	// Retried holds, per technical credential, the token generation this process was told to
	// retry with after reporting a failure: the same generation failing again is final.
	Retried map[string]int `json:"retried,omitempty"`
	// Current is the process's current credentials when its mode is persistent: one record, one
	// write per create. Storage written by v0.1.0 kept them apart, under process-current/<id>.
	// Never in an answer: the process's read names what it shows.
	Current *credential.Credential `json:"current,omitempty"`
	// ExpiresAt is when its lease ends at the latest, as the plugin granted it (at create, moved
	// by each renewal; zero: not known, as for a process created before v0.2.0). A process still
	// there well past it has a lease Vault never registered (a crash between the create's write
	// and the lease) or failed to revoke: the periodic sweep ends it.
	ExpiresAt   time.Time `json:"expires_at,omitempty"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

// CurrentStatus says what resolution can make of the current credentials: kept, lost, expired,
// refreshing or none. cur is what the plugin holds (nil: nothing).
func (p *Process) CurrentStatus(cur *credential.Credential, now time.Time) string {
	switch {
	case !p.HasCurrent || p.KeepCredentials == KeepNone:
		return resolve.CurrentNone
	case cur == nil:
		return resolve.CurrentLost
	case cur.Expired(now) && cur.Type == credential.GrantType && cur.Fields["refresh_token"] != "" && !(p.Health == Broken && p.BrokenByCurrent):
		// The plugin refreshes it; a refused refresh broke the process, and then it has expired.
		return resolve.CurrentRefreshing
	case cur.Expired(now):
		return resolve.CurrentExpired
	}
	return resolve.CurrentKept
}

// Task is a stored task: a process's owner is asked for new credentials.
type Task struct {
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

// newTask is the task an event opens for p.
func newTask(p *Process, ev Event) *Task {
	return &Task{ID: ev.NewTaskID, ProcessID: p.ID, Service: ev.Service, Reason: ev.Reason, Owner: p.Owner,
		OwnerEntityID: p.OwnerEntityID, Status: StatusOpen, CreatedTime: ev.Now}
}

// closedAs is the task completed or cancelled at now.
func closedAs(t *Task, status string, now time.Time) *Task {
	closed := *t
	closed.Status, closed.ClosedTime = status, now
	return &closed
}

// taskEvent is the event that tells of a task.
func taskEvent(typ string, t *Task) outbox.Event {
	return outbox.Event{Type: typ, ProcessID: t.ProcessID, TaskID: t.ID, Service: t.Service, Owner: t.Owner,
		OwnerEntityID: t.OwnerEntityID, Reason: t.Reason}
}
