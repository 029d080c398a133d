package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// taskResponseData is a task as its read answers it.
func taskResponseData(t *lifecycle.Task) map[string]any {
	return map[string]any{
		"id": t.ID, "process_id": t.ProcessID, "service": t.Service, "reason": t.Reason,
		"owner": t.Owner, "owner_entity_id": t.OwnerEntityID, "status": t.Status, "completed_by": t.CompletedBy,
		"created_time": t.CreatedTime.Format(time.RFC3339Nano), "closed_time": formatTime(t.ClosedTime),
	}
}

func pathTask(b *backend) []*framework.Path {
	idField := &framework.FieldSchema{Type: framework.TypeString, Description: "The task id."}
	return []*framework.Path{
		{
			Pattern:      "task/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "tasks"},
			Fields: map[string]*framework.FieldSchema{
				"owner_entity_id": {Type: framework.TypeString, Query: true, Description: "List only the open tasks of this identity entity. Defaults to every open task."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathTaskList,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys": {Type: framework.TypeStringSlice, Description: "The ids of the open tasks."},
					}}}},
				},
			},
			HelpSynopsis:    "List the open credential-update tasks.",
			HelpDescription: "Lists the ids of the open tasks, optionally only those of one owner: LIST pecreds/task?owner_entity_id=<entity>.",
		},
		{
			Pattern:        "task/" + nameSegment("id") + "/cancel$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "cancel", OperationSuffix: "task"},
			ExistenceCheck: actionExists,
			Fields:         map[string]*framework.FieldSchema{"id": idField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  b.pathTaskCancel,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: taskResponseFields}}},
				},
			},
			HelpSynopsis:    "Cancel a credential-update task: the process fails.",
			HelpDescription: "An operator's act: closes the task as cancelled and sets its process failed. Any token allowed by policy may do it.",
		},
		{
			Pattern:      "task/" + nameSegment("id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "task"},
			Fields:       map[string]*framework.FieldSchema{"id": idField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("id", "task id", b.pathTaskRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: taskResponseFields}}},
				},
			},
			HelpSynopsis:    "Read a credential-update task.",
			HelpDescription: "Shows the task's process, service, reason, owner and status (open, completed, cancelled). Closed tasks stay readable for 30 days.",
		},
	}
}

func (b *backend) pathTaskList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	open, err := b.openTaskIDs(ctx, req.Storage, d.Get("owner_entity_id").(string))
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(open), nil
}

// openTaskIDs are the open tasks' ids (of one owner entity, or all), in order: from the census,
// without reading a task; in the first moments after a start, while it counts, from storage.
func (b *backend) openTaskIDs(ctx context.Context, s logical.Storage, owner string) ([]string, error) {
	if ids, known := b.census.OpenTasks(owner); known {
		return ids, nil
	}
	ids, err := s.List(ctx, taskStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	open := []string{}
	for _, id := range ids {
		t, err := b.getTask(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if t != nil && t.Status == lifecycle.StatusOpen && (owner == "" || t.OwnerEntityID == owner) {
			open = append(open, id)
		}
	}
	sort.Strings(open)
	return open, nil
}

func (b *backend) pathTaskRead(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	t, err := b.getTask(ctx, req.Storage, id)
	if err != nil || t == nil {
		return nil, err
	}
	return &logical.Response{Data: taskResponseData(t)}, nil
}

// openTask looks up an open task for complete and cancel: 404 unknown, 400 closed.
func (b *backend) openTask(ctx context.Context, s logical.Storage, id string) (*lifecycle.Task, *logical.Response, error) {
	if err := credential.ValidateName("task id", id); err != nil {
		resp, _ := badRequest(err)
		return nil, resp, nil
	}
	t, err := b.getTask(ctx, s, id)
	if err != nil {
		return nil, nil, err
	}
	if t == nil {
		return nil, nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("task %q does not exist", id))
	}
	if t.Status != lifecycle.StatusOpen {
		resp, _ := badRequest(fmt.Errorf("task %q is %s already", id, t.Status))
		return nil, resp, nil
	}
	return t, nil, nil
}

func (b *backend) pathTaskCancel(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	st, unlock, resp, err := b.lockedTask(ctx, req.Storage, d.Get("id").(string))
	if unlock == nil {
		return resp, err
	}
	defer unlock()
	next, err := b.change(ctx, req.Storage, st, lifecycle.Event{Kind: lifecycle.Cancel})
	if err != nil {
		return asRefusal(err)
	}
	return &logical.Response{Data: taskResponseData(next.Task)}, nil
}

// lockedTask is the prelude of complete and cancel: an open task and its process, loaded under
// the process's lock and the task checked again there, so that two completions, or a completion
// and a cancellation, never both go through. unlock is nil when resp or err is the answer.
func (b *backend) lockedTask(ctx context.Context, s logical.Storage, id string) (st lifecycle.State, unlock func(), resp *logical.Response, err error) {
	t, resp, err := b.openTask(ctx, s, id)
	if t == nil {
		return st, nil, resp, err
	}
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	if t, resp, err = b.openTask(ctx, s, id); t == nil {
		lock.Unlock()
		return st, nil, resp, err
	}
	p, err := b.getProcess(ctx, s, t.ProcessID)
	if err != nil {
		lock.Unlock()
		return st, nil, nil, err
	}
	return lifecycle.State{Process: p, Task: t}, lock.Unlock, nil, nil
}

var taskResponseFields = map[string]*framework.FieldSchema{
	"id":              {Type: framework.TypeString, Description: "The task id.", Required: true},
	"process_id":      {Type: framework.TypeString, Description: "The process that waits for it.", Required: true},
	"service":         {Type: framework.TypeString, Description: "The service whose call failed.", Required: true},
	"reason":          {Type: framework.TypeString, Description: "Why new credentials are needed: the error class, lost, expired or expiring.", Required: true},
	"owner":           {Type: framework.TypeString, Description: "The process owner's name.", Required: true},
	"owner_entity_id": {Type: framework.TypeString, Description: "The identity entity that may complete it.", Required: true},
	"status":          {Type: framework.TypeString, Description: "open, completed or cancelled.", Required: true},
	"created_time":    {Type: framework.TypeTime, Description: "When it was opened.", Required: true},
	"closed_time":     {Type: framework.TypeString, Description: "When it was completed or cancelled; empty while open.", Required: true},
	"completed_by":    {Type: framework.TypeString, Description: "Who completed it: the caller's identity entity id, or its display name when it has none; empty unless completed.", Required: true},
}
