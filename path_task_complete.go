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

// pathTaskCompletion is the owner's side of tasks: task/mine and the two completions. backend.go
// lists it before pathTask, whose task/:id would take "mine" for a task id.
func pathTaskCompletion(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			// task/mine: the caller's own tasks.
			Pattern:      "task/mine/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "my-tasks"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathTaskMine,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys":     {Type: framework.TypeStringSlice, Description: "The ids of the caller's open tasks."},
						"key_info": {Type: framework.TypeMap, Description: "Per task id: process_id, service, reason and created (RFC 3339)."},
					}}}},
				},
			},
			HelpSynopsis: "List your own open credential-update tasks.",
			HelpDescription: `Lists the open tasks whose owner is the calling token's identity entity, with what each is
about (key_info: process_id, service, reason, created). A token without an entity has none.

  $ vault list -detailed pecreds/task/mine`,
		},
		taskCompletePath(b, "complete", b.pathTaskComplete, "Complete your credential-update task with new credentials: the process resumes.",
			`Replaces the process's current credentials (kept per the process's keep_credentials),
sets the process running again and closes the task — when its current credentials are what broke
it: a process a technical credential broke stays broken until an operator's process/:id/resume. Only a token of the task's owner (the
identity entity the process was started for) may complete it: anyone else gets 403, and so does
everyone when the process has no owner entity (it was started by a token without one, such as
root). A Task Manager that authenticated the owner itself uses task/:id/complete-on-behalf.

  $ vault write pecreds/task/<id>/complete credentials=@new-password.json`),
		taskCompletePath(b, "complete-on-behalf", b.pathTaskCompleteOnBehalf, "Complete a credential-update task for its owner (a Task Manager service).",
			`The same as task/:id/complete, for a Task Manager service that authenticated the owner itself:
pecreds does not check the caller's entity here, so only the Task Manager's policy may grant this
path. The task records who completed it (completed_by).

  $ vault write pecreds/task/<id>/complete-on-behalf credentials=@new-password.json`),
	}
}

func taskCompletePath(b *backend, verb string, callback framework.OperationFunc, synopsis, description string) *framework.Path {
	return &framework.Path{
		Pattern:        "task/" + nameSegment("id") + "/" + verb + "$",
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: verb, OperationSuffix: "task"},
		ExistenceCheck: actionExists,
		Fields: map[string]*framework.FieldSchema{
			"id": {Type: framework.TypeString, Description: "The task id."},
			"credentials": {Type: framework.TypeMap, Description: "The owner's new credentials: a credential object " +
				"({type: password|token|api_key|certificate|oauth2_user, ...}) or JSON text holding one; an oauth2_user grant " +
				"is checked as at instantiation (its client must be an oauth2 technical credential; expires_in becomes expires_at). Required."},
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
	if cred, err = b.settleCurrent(ctx, req.Storage, "credentials", cred); err != nil {
		return asRefusal(err)
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
