package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// processResponseData is a process as its read answers it: never its current credentials.
func processResponseData(p *lifecycle.Process, status string) map[string]any {
	names := make([]string, 0, len(p.Runtime))
	for _, s := range p.Runtime {
		names = append(names, s.Name)
	}
	return map[string]any{
		"id":                  p.ID,
		"definition":          p.Definition,
		"owner":               p.Owner,
		"owner_entity_id":     p.OwnerEntityID,
		"keep_credentials":    p.KeepCredentials,
		"current_credentials": status,
		"health":              p.Health,
		"health_reason":       p.HealthReason,
		"task_id":             p.TaskID,
		"runtime_services":    names,
		"created_time":        p.CreatedTime.Format(time.RFC3339Nano),
		"updated_time":        p.UpdatedTime.Format(time.RFC3339Nano),
	}
}

func pathProcess(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "process/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "processes"},
			Fields: map[string]*framework.FieldSchema{
				"after": {Type: framework.TypeString, Query: true, Description: "List the ids that sort after this one (a page's last id). Defaults to the first."},
				"limit": {Type: framework.TypeInt, Query: true, Description: "The most ids to list, 1 to 10000. Defaults to all of them."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathProcessList,
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys": {Type: framework.TypeStringSlice, Description: "The ids of the live processes."},
					}}}},
				},
			},
			HelpSynopsis:    "List the live processes.",
			HelpDescription: processListHelp,
		},
		{
			Pattern:      "process/" + nameSegment("id") + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "process"},
			Fields:       processFields,
			// Every write is a create, and the handler, holding the process's lock, refuses an id in
			// use (a 400): one storage read per instantiation, not one here and one there.
			ExistenceCheck: func(context.Context, *logical.Request, *framework.FieldData) (bool, error) { return false, nil },
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:     named("id", "process id", b.pathProcessCreate),
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "instantiate"},
					Responses:    map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: processResponseFields}}},
				},
				logical.UpdateOperation: &framework.PathOperation{Callback: named("id", "process id", b.pathProcessCreate)},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("id", "process id", b.pathProcessRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: processResponseFields}}},
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  named("id", "process id", b.pathProcessDelete),
					Responses: map[int][]framework.Response{http.StatusNoContent: {{Description: "No Content"}}},
				},
			},
			HelpSynopsis:    processHelpSynopsis,
			HelpDescription: processHelpDescription,
		},
	}
}

// maxListLimit bounds a page of process ids.
const maxListLimit = 10_000

const processListHelp = `
Lists the ids of the processes whose lease is live, in order. With after and limit it answers a
page: the ids after the given one, at most limit of them; the next page starts after the last id
answered. Without them it answers all.

  $ vault list pecreds/process
  $ curl -H "X-Vault-Token: $VAULT_TOKEN" -X LIST "$VAULT_ADDR/v1/pecreds/process?limit=1000"
  $ curl -H "X-Vault-Token: $VAULT_TOKEN" -X LIST "$VAULT_ADDR/v1/pecreds/process?after=order-41999&limit=1000"

(The vault CLI's list takes no parameters: page through the HTTP API or a client library. Past
the last page, Vault answers an empty list as it always does: a 404.)
`

// pathProcessList answers the live process ids, all or a page of them.
func (b *backend) pathProcessList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	after, limit := d.Get("after").(string), d.Get("limit").(int)
	if _, given := d.GetOk("limit"); given && (limit < 1 || limit > maxListLimit) {
		return badRequest(fmt.Errorf("limit must be between 1 and %d; %d is not", maxListLimit, limit))
	}
	ids, err := req.Storage.List(ctx, processStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	sort.Strings(ids)
	if after != "" {
		ids = ids[sort.SearchStrings(ids, after+"\x00"):]
	}
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return logical.ListResponse(ids), nil
}

func (b *backend) pathProcessCreate(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	lock := locksutil.LockForKey(b.processLocks, id)
	lock.Lock()
	defer lock.Unlock()

	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	// An earlier process of this id whose end was cut short is finished first: rolled forward
	// later, its writes would delete the new one.
	if _, err := b.writerWith(req.Storage, cfg).settle(ctx, id); err != nil {
		return nil, err
	}
	if exists, err := b.processExists(ctx, req.Storage, id); err != nil || exists {
		if err != nil {
			return nil, err
		}
		return badRequest(fmt.Errorf("process %q exists: a process id is used once; revoke its lease or delete it first", id))
	}
	nonce, err := uuid.GenerateUUID()
	if err != nil {
		return nil, fmt.Errorf("making a process nonce: %w", err)
	}
	now := b.deps.now().UTC()
	owner, err := b.ownerEntity(req, d.Get("owner_entity_id").(string))
	if err != nil {
		return badRequest(err)
	}
	p := &lifecycle.Process{
		ID: id, Nonce: nonce, Definition: d.Get("definition").(string), Owner: d.Get("owner").(string),
		OwnerEntityID: owner, KeepCredentials: cfg.KeepCredentials,
		Health: lifecycle.Running, Runtime: []Service{}, CreatedTime: now, UpdatedTime: now,
	}
	resp := &logical.Response{}
	if err := b.checkDefinition(ctx, req.Storage, p.Definition); err != nil {
		return asRefusal(err)
	}
	cur, err := b.parseCurrent(ctx, req.Storage, d, p, resp)
	if err != nil {
		return asRefusal(err)
	}
	ttl, maxTTL, warning := processTTL(d, cfg)
	if warning != "" {
		resp.AddWarning(warning)
	}

	if ttl > 0 {
		p.ExpiresAt = now.Add(ttl)
	}
	if err := b.putNewProcess(ctx, req.Storage, p, cur, cfg.RefreshFraction); err != nil {
		return nil, err
	}
	lease := b.Secret(processSecretType).Response(processResponseData(p, p.CurrentStatus(cur, now)), map[string]any{"process_id": id, "nonce": nonce})
	lease.Secret.TTL, lease.Secret.MaxTTL = ttl, maxTTL
	lease.Warnings = resp.Warnings
	return lease, nil
}

// checkDefinition: a process's definition, when given, is a registry that exists (a refusal
// otherwise; any other error is storage's).
func (b *backend) checkDefinition(ctx context.Context, s logical.Storage, name string) error {
	if name == "" {
		return nil
	}
	if err := credential.ValidateName("definition", name); err != nil {
		return lifecycle.Refusal{Reason: err.Error()}
	}
	reg, err := b.getRegistry(ctx, s, name)
	if err != nil || reg != nil {
		return err
	}
	return lifecycle.Refusal{Reason: fmt.Sprintf("definition: registry %q does not exist; write registry/%s first", name, name)}
}

// parseCurrent reads the current credentials given at instantiation: kept per the process's mode
// (nil when not given, or when the mode keeps none, which resp warns of). Bad input is a
// lifecycle.Refusal, checked whatever the mode.
func (b *backend) parseCurrent(ctx context.Context, s logical.Storage, d *framework.FieldData, p *lifecycle.Process, resp *logical.Response) (*Credential, error) {
	raw, ok := d.Raw["current"]
	if !ok || raw == nil {
		return nil, nil
	}
	c, err := credential.Parse(raw, credential.UseCurrent)
	if err != nil {
		return nil, lifecycle.Refusal{Reason: fmt.Sprintf("current: %v", err)}
	}
	if c, err = b.settleCurrent(ctx, s, "current", c); err != nil {
		return nil, err
	}
	if p.KeepCredentials == lifecycle.KeepNone {
		resp.AddWarning("keep_credentials is none: the current credentials were not kept, and current entries are skipped")
		return nil, nil
	}
	p.HasCurrent = true
	return &c, nil
}

// ownerEntity is a new process's owner: the given owner_entity_id, which must name an enabled
// identity entity (else the process's tasks could never be completed by their owner; the system
// view's lookup is Vault's own), or the calling token's entity.
func (b *backend) ownerEntity(req *logical.Request, id string) (string, error) {
	if id == "" {
		return req.EntityID, nil
	}
	ent, err := b.System().EntityInfo(id)
	switch {
	case err != nil:
		return "", fmt.Errorf("owner_entity_id: the identity entity %q could not be looked up", id)
	case ent == nil:
		return "", fmt.Errorf("owner_entity_id: no identity entity %q exists: give the id of the user's entity (vault read identity/entity/name/<user>)", id)
	case ent.Disabled:
		return "", fmt.Errorf("owner_entity_id: the identity entity %q is disabled", id)
	}
	return id, nil
}

// processTTL is the lease TTL of a new process: the given ttl, else process_ttl, capped at
// process_max_ttl (0: the mount's maximum, which Vault applies itself).
func processTTL(d *framework.FieldData, cfg *configEntry) (ttl, maxTTL time.Duration, warning string) {
	ttl, maxTTL = cfg.ProcessTTL, cfg.ProcessMaxTTL
	if v, ok := d.GetOk("ttl"); ok && v.(int) > 0 {
		ttl = time.Duration(v.(int)) * time.Second
	}
	if maxTTL > 0 && ttl > maxTTL {
		warning = fmt.Sprintf("ttl %s exceeds process_max_ttl %s: the lease is capped at %s", ttl, maxTTL, maxTTL)
		ttl = maxTTL
	}
	return ttl, maxTTL, warning
}

func (b *backend) pathProcessRead(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	p, err := b.getProcess(ctx, req.Storage, id)
	if err != nil || p == nil {
		return nil, err
	}
	cur, err := b.getCurrent(ctx, req.Storage, p)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: processResponseData(p, p.CurrentStatus(cur, b.deps.now()))}, nil
}

func (b *backend) pathProcessDelete(ctx context.Context, req *logical.Request, d *framework.FieldData, id string) (*logical.Response, error) {
	return nil, b.endProcess(ctx, req.Storage, id, "")
}
