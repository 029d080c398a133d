package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// Completing a task, the boundary between a process and the people who fix its credentials: the
// owner's complete fails closed, a Task Manager's complete-on-behalf is granted by policy alone,
// and task/mine shows a user their own tasks.

func taskCompletePath(b *backend, verb string, callback framework.OperationFunc, synopsis, description string) *framework.Path {
	return &framework.Path{
		Pattern:        "task/" + nameSegment("id") + "/" + verb + "$",
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: verb, OperationSuffix: "task"},
		ExistenceCheck: actionExists,
		Fields: map[string]*framework.FieldSchema{
			"id": {Type: framework.TypeString, Description: "The task id."},
			"credentials": {Type: framework.TypeMap, Description: "The owner's new credentials: a credential object " +
				"({type: password|token|api_key|certificate, ...}) or JSON text holding one. Required."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  callback,
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: taskResponseFields}}},
			},
		},
		HelpSynopsis:    synopsis,
		HelpDescription: description,
	}
}

func (b *backend) pathTaskMine(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if req.EntityID == "" {
		return logical.ListResponse([]string{}), nil
	}
	ids, err := b.openTaskIDs(ctx, req.Storage, req.EntityID)
	if err != nil {
		return nil, err
	}
	keys, info := []string{}, map[string]any{}
	for _, id := range ids { // the caller's own open tasks only
		t, err := b.getTask(ctx, req.Storage, id)
		if err != nil {
			return nil, err
		}
		if t != nil && t.Status == lifecycle.StatusOpen && t.OwnerEntityID == req.EntityID {
			keys = append(keys, id)
			info[id] = map[string]any{"process_id": t.ProcessID, "service": t.Service, "reason": t.Reason, "created": formatTime(t.CreatedTime)}
		}
	}
	sort.Strings(keys)
	return logical.ListResponseWithInfo(keys, info), nil
}

// pathTaskComplete is the owner's completion: it fails closed, so only a token of the task's
// owner entity gets through, and nobody when the task has none.
func (b *backend) pathTaskComplete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.completeTask(ctx, req, d, func(t *lifecycle.Task) error {
		switch {
		case t.OwnerEntityID == "":
			return logical.CodedError(http.StatusForbidden, fmt.Sprintf("task %q has no owner entity (its process was started by a token without one), so no one may complete it here: a Task Manager completes it through task/%s/complete-on-behalf", t.ID, t.ID))
		case req.EntityID != t.OwnerEntityID:
			return logical.CodedError(http.StatusForbidden, fmt.Sprintf("only the task's owner may complete task %q: the calling token is not of the owner's identity entity", t.ID))
		}
		return nil
	})
}

// pathTaskCompleteOnBehalf is a Task Manager's completion: its policy is the check.
func (b *backend) pathTaskCompleteOnBehalf(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.completeTask(ctx, req, d, func(*lifecycle.Task) error { return nil })
}

// completeTask replaces the process's current credentials with the new ones, sets it running and
// closes the task, when allowed says the caller may.
func (b *backend) completeTask(ctx context.Context, req *logical.Request, d *framework.FieldData, allowed func(*lifecycle.Task) error) (*logical.Response, error) {
	st, unlock, resp, err := b.lockedTask(ctx, req.Storage, d.Get("id").(string))
	if unlock == nil {
		return resp, err
	}
	defer unlock()
	if err := allowed(st.Task); err != nil {
		return nil, err
	}
	raw, ok := d.Raw["credentials"]
	if !ok || raw == nil {
		return badRequest(fmt.Errorf("credentials is required: the owner's new credentials"))
	}
	cred, err := credential.Parse(raw, credential.UseCurrent)
	if err != nil {
		return badRequest(fmt.Errorf("credentials: %v", err))
	}
	by := req.EntityID
	if by == "" {
		by = req.DisplayName
	}
	next, err := b.change(ctx, req.Storage, st, lifecycle.Event{Kind: lifecycle.Complete, Credential: &cred, CompletedBy: by})
	if err != nil {
		return asRefusal(err)
	}
	return &logical.Response{Data: taskResponseData(next.Task)}, nil
}
