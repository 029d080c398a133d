package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// responseData is a registry as its read answers it: its services redacted (store_registry.go
// holds the stored registry).
func (r *registryEntry) responseData() map[string]any {
	services := make([]map[string]any, 0, len(r.Services))
	for _, s := range r.Services {
		services = append(services, s.Redacted())
	}
	return map[string]any{
		"name":         r.Name,
		"description":  r.Description,
		"services":     services,
		"version":      r.Version,
		"created_time": r.CreatedTime.Format(time.RFC3339Nano),
		"updated_time": r.UpdatedTime.Format(time.RFC3339Nano),
	}
}

func pathRegistry(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "registry/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "registries"},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: listKeys(registryStoragePrefix, "registries"),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
						"keys": {Type: framework.TypeStringSlice, Description: "The registry names."},
					}}}},
				},
			},
			HelpSynopsis:    "List the credentials registries.",
			HelpDescription: "Lists the names of the registries: one per process definition, plus the global ones.",
		},
		{
			// Any segment matches, so that a bad name is a 400 that says why, not Vault's 404.
			Pattern:        "registry/" + framework.MatchAllRegex("name"),
			DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "registry"},
			Fields:         registryFields,
			ExistenceCheck: existsByName(b, "name", "registry name", (*backend).getRegistry),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  named("name", "registry name", b.pathRegistryRead),
					Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: registryResponseFields}}},
				},
				logical.CreateOperation: registryWriteOperation(b),
				logical.UpdateOperation: registryWriteOperation(b),
				logical.DeleteOperation: &framework.PathOperation{
					Callback:  named("name", "registry name", b.pathRegistryDelete),
					Responses: map[int][]framework.Response{http.StatusNoContent: {{Description: "No Content"}}},
				},
			},
			HelpSynopsis:    registryHelpSynopsis,
			HelpDescription: registryHelpDescription,
		},
	}
}

func registryWriteOperation(b *backend) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     named("name", "registry name", b.pathRegistryCreateUpdate),
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "write"},
		Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: map[string]*framework.FieldSchema{
			"name":    {Type: framework.TypeString, Description: "The registry's name.", Required: true},
			"version": {Type: framework.TypeInt, Description: "The registry's version after this write.", Required: true},
		}}}},
	}
}

func (b *backend) pathRegistryRead(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	reg, err := b.getRegistry(ctx, req.Storage, name)
	if err != nil || reg == nil {
		return nil, err
	}
	data := reg.responseData()
	if data["missing_technical"], err = b.missingTechnicals(ctx, req.Storage, reg.Services); err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRegistryCreateUpdate(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	lock := locksutil.LockForKey(b.registryLocks, name)
	lock.Lock()
	defer lock.Unlock()

	current, err := b.getRegistry(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if err := checkCAS(d, current); err != nil {
		return badRequest(err)
	}

	now := b.deps.now().UTC()
	next := &registryEntry{Name: name, Version: 1, CreatedTime: now, UpdatedTime: now}
	if current != nil {
		next.Description = current.Description
		next.Services = current.Services
		next.Version = current.Version + 1
		next.CreatedTime = current.CreatedTime
	}
	if v, ok := d.GetOk("description"); ok {
		next.Description = v.(string)
	}
	if raw, ok := d.Raw["services"]; ok {
		if next.Services, err = credential.ParseServices(raw, credential.UseRegistry); err != nil {
			return badRequest(err)
		}
	}
	if next.Services == nil {
		next.Services = []Service{}
	}
	if err := credential.CheckLayer("services: the registry", next.Services); err != nil {
		return badRequest(err)
	}
	if err := b.putRegistry(ctx, req.Storage, next); err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{"name": name, "version": next.Version}}
	missing, err := b.missingTechnicals(ctx, req.Storage, next.Services)
	if err != nil {
		return nil, err
	}
	for _, m := range missing {
		resp.AddWarning(fmt.Sprintf("technical credential %q does not exist yet; entries naming it are skipped until it is written", m))
	}
	return resp, nil
}

// missingTechnicals lists the technical credentials that services name and that do not exist.
func (b *backend) missingTechnicals(ctx context.Context, s logical.Storage, services []Service) ([]string, error) {
	missing := []string{}
	for _, n := range credential.TechnicalNames(services) {
		e, err := b.getTechnical(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if e == nil {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// checkCAS applies check-and-set as KV v2 does: without cas a write is unconditional; cas=0
// writes only if the registry does not exist; otherwise cas must equal the current version.
func checkCAS(d *framework.FieldData, current *registryEntry) error {
	raw, ok := d.GetOk("cas")
	if !ok {
		return nil
	}
	cas := raw.(int)
	version := 0
	if current != nil {
		version = current.Version
	}
	switch {
	case cas < 0:
		return fmt.Errorf("cas must be 0 (create only) or the current version, not %d", cas)
	case cas == 0 && current != nil:
		return fmt.Errorf("check-and-set failed: cas=0 writes only a new registry, and %q exists at version %d", current.Name, version)
	case cas != version:
		return fmt.Errorf("check-and-set failed: cas=%d does not match the current version %d", cas, version)
	}
	return nil
}

func (b *backend) pathRegistryDelete(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	lock := locksutil.LockForKey(b.registryLocks, name)
	lock.Lock()
	defer lock.Unlock()
	return nil, b.deleteRegistry(ctx, req.Storage, name)
}

var registryFields = map[string]*framework.FieldSchema{
	"name": {
		Type:        framework.TypeString,
		Description: "The registry's name: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit. Usually the process definition's name.",
	},
	"description": {
		Type:        framework.TypeString,
		Description: "Free text about the registry, at most 1 KiB. Defaults to empty; an update without it keeps the current one.",
	},
	"services": {
		Type: framework.TypeSlice,
		Description: `The external services, a JSON list (or JSON text holding one) of at most 1,000 objects ` +
			`{name, description, url, realm, credentials}. name is unique in the registry; url (optional) is an ` +
			`absolute URL whose scheme, host, port and path prefix identify the service; realm (optional) narrows URL ` +
			`matching; description is free text of at most 1 KiB; credentials is the ordered list (1 to 32) of credentials to try, each {type, label, ...fields}, at most 64 KiB each (a label at most 1 KiB). ` +
			`Types: password {username, password, domain}, token {token, token_type=Bearer, expires_at}, ` +
			`api_key {key, header=X-API-Key}, certificate {certificate, private_key, ca_chain} (PEM, at most 64 KiB each; ` +
			`the key must match), technical {name} (a credential of the technical credentials manager) and current ` +
			`(the process's user credentials). At most 1 MiB as stored. Defaults to an empty list on create; an update without it keeps the current services.`,
	},
	"cas": {
		Type: framework.TypeInt,
		Description: "Check-and-set, as in KV v2: 0 writes only if the registry does not exist yet; any other " +
			"value must equal the current version. Defaults to an unconditional write.",
	},
}

var registryResponseFields = map[string]*framework.FieldSchema{
	"name":              {Type: framework.TypeString, Description: "The registry's name.", Required: true},
	"description":       {Type: framework.TypeString, Description: "Free text about the registry.", Required: true},
	"services":          {Type: framework.TypeSlice, Description: "The services, their credentials without secret values.", Required: true},
	"version":           {Type: framework.TypeInt, Description: "The registry's version: 1 at creation, one more at every write.", Required: true},
	"created_time":      {Type: framework.TypeTime, Description: "When the registry was created.", Required: true},
	"updated_time":      {Type: framework.TypeTime, Description: "When the registry was last written.", Required: true},
	"missing_technical": {Type: framework.TypeStringSlice, Description: "The technical credentials that services name but that do not exist: dangling references, skipped by resolution.", Required: true},
}

const registryHelpSynopsis = "Manage a credentials registry: the services a process definition (or everyone) calls, and their credentials."

const registryHelpDescription = `
A registry lists external services and, for each, an ordered list of credentials. There is one
registry per process definition (a process names it as its "definition") and any number of global
registries (named in config's global_registries). A process resolves a service through its runtime
layer, then its definition registry, then the global registries in order.

Write the whole registry from a JSON file, or change single fields:

  $ vault write pecreds/registry/orders @orders.json
  $ vault write pecreds/registry/orders description="Order handling" cas=3
  $ vault read pecreds/registry/orders

orders.json:

  {"description": "Order handling",
   "services": [
     {"name": "crm", "url": "https://crm.example.com/api",
      "credentials": [{"type": "current"}, {"type": "technical", "name": "crm-service"}]}]}

A write answers the registry's new version. With cas, the write applies only if cas equals the
current version (0: only if the registry does not exist yet), so concurrent editors cannot
overwrite each other. Reads show every non-secret field; secret values (password, token, key,
private_key) are never shown. Bad input is rejected whole with a message that names the service,
the credential and the rule.
`
