package pecreds

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// The runtime layer: services a process adds while it runs (the engine's credentials activity).
// They mask the definition and global registries for the same service name.

func pathProcessCredentials(b *backend) []*framework.Path {
	idField := &framework.FieldSchema{Type: framework.TypeString, Description: "The process id."}
	return []*framework.Path{
		{
			Pattern:      "process/" + nameSegment("id") + "/credentials/" + nameSegment("service") + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "runtime-service"},
			Fields: map[string]*framework.FieldSchema{
				"id":      idField,
				"service": {Type: framework.TypeString, Description: "The runtime service to remove."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  b.pathRuntimeServiceDelete,
					Responses: map[int][]framework.Response{http.StatusNoContent: {{Description: "No Content"}}},
				},
			},
			HelpSynopsis:    "Remove one service from a process's runtime layer.",
			HelpDescription: "Removes the service from the runtime layer; the process resolves it through its definition and the global registries again.",
		},
		{
			Pattern:        "process/" + nameSegment("id") + "/credentials$",
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "runtime-credentials"},
			ExistenceCheck: actionExists,
			Fields: map[string]*framework.FieldSchema{
				"id": idField,
				"services": {Type: framework.TypeSlice, Description: "Services to add to the runtime layer, in the registry's form " +
					"(a JSON list, or JSON text holding one). Merged by name: a service replaces the runtime service of the same name. " +
					"At most 1,000 runtime services and 1 MiB as stored in all. Required."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:  named("id", "process id", b.pathRuntimeCredentialsWrite),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: runtimeResponseFields}}},
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("id", "process id", b.pathRuntimeCredentialsRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: runtimeResponseFields}}},
				},
			},
			HelpSynopsis: "Add services to a process's runtime layer, or read it (redacted).",
			HelpDescription: `The runtime layer is the most specific layer of resolution: a service here masks the
definition registry's and the global registries' service of the same name.

  $ vault write pecreds/process/order-42/credentials services=@runtime.json
  $ vault read pecreds/process/order-42/credentials
  $ vault delete pecreds/process/order-42/credentials/crm

A read shows every non-secret field; secret values are never shown.

A user's grant (oauth2_user with a refresh token) written here is kept fresh in its place, as the
process's current grant is: refreshed on the active node before its access token expires, the
rotated refresh token stored in the process's record first. Writing the service again replaces it;
one its provider ends (invalid_grant) is a failure of class credentials_expired of that credential
(config's error_health_mapping; no task: write the service again, then resume).`,
		},
	}
}

func (b *backend) pathRuntimeCredentialsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	raw, ok := d.Raw["services"]
	if !ok {
		return badRequest(fmt.Errorf("services is required: the runtime services to add"))
	}
	added, err := credential.ParseServices(raw, credential.UseRuntime)
	if err != nil {
		return badRequest(err)
	}
	if added, err = b.settleRuntime(ctx, req.Storage, added); err != nil {
		return asRefusal(err)
	}
	lock := locksutil.LockForKey(b.processLocks, id)
	lock.Lock()
	defer lock.Unlock()
	p, err := b.liveProcess(ctx, req.Storage, id)
	if err != nil {
		return nil, err
	}
	merged := mergeServices(p.Runtime, added)
	if len(merged) > credential.MaxServices {
		return badRequest(fmt.Errorf("services: the runtime layer would hold %d services; the limit is %d", len(merged), credential.MaxServices))
	}
	if err := credential.CheckLayer("services: the runtime layer", merged); err != nil {
		return badRequest(err)
	}
	next, err := b.change(ctx, req.Storage, lifecycle.State{Process: p}, lifecycle.Event{Kind: lifecycle.Runtime, Runtime: merged})
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: runtimeData(next.Process)}
	missing, err := b.missingTechnicals(ctx, req.Storage, added)
	if err != nil {
		return nil, err
	}
	for _, m := range missing {
		resp.AddWarning(fmt.Sprintf("technical credential %q does not exist yet; entries naming it are skipped until it is written", m))
	}
	return resp, nil
}

// mergeServices replaces services of the same name and appends new ones, keeping order.
func mergeServices(current, added []Service) []Service {
	out := append([]Service{}, current...)
	for _, a := range added {
		replaced := false
		for i := range out {
			if out[i].Name == a.Name {
				out[i], replaced = a, true
				break
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return out
}

func runtimeData(p *lifecycle.Process) map[string]any {
	services := make([]map[string]any, 0, len(p.Runtime))
	for _, s := range p.Runtime {
		services = append(services, s.Redacted())
	}
	return map[string]any{"id": p.ID, "services": services}
}

func (b *backend) pathRuntimeCredentialsRead(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	p, err := b.getProcess(ctx, req.Storage, id)
	if err != nil || p == nil {
		return nil, err
	}
	return &logical.Response{Data: runtimeData(p)}, nil
}

func (b *backend) pathRuntimeServiceDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id, service := d.Get("id").(string), d.Get("service").(string)
	if err := credential.ValidateName("process id", id); err != nil {
		return badRequest(err)
	}
	if err := credential.ValidateName("service name", service); err != nil {
		return badRequest(err)
	}
	w, st, unlock, err := b.lockLife(ctx, req.Storage, id)
	defer unlock()
	if err != nil || st.Process == nil {
		return nil, err
	}
	kept := make([]Service, 0, len(st.Process.Runtime))
	for _, s := range st.Process.Runtime {
		if s.Name != service {
			kept = append(kept, s)
		}
	}
	if len(kept) == len(st.Process.Runtime) {
		return nil, nil
	}
	_, err = w.change(ctx, st, lifecycle.Event{Kind: lifecycle.Runtime, Runtime: kept})
	return nil, err
}

var runtimeResponseFields = map[string]*framework.FieldSchema{
	"id":       {Type: framework.TypeString, Description: "The process id.", Required: true},
	"services": {Type: framework.TypeSlice, Description: "The runtime services, without secret values.", Required: true},
}
