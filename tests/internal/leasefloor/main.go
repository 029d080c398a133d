// Command leasefloor is the least a Vault secrets plugin can do to answer a leased create, the
// floor BenchmarkCreate measures pecreds's process create against: an external plugin served
// as pecreds is (plugin.ServeMultiplex), whose write of item/<id> stores the request's fields in
// one storage write and answers a lease. Nothing else: no lock, no config, no validation, no
// cache. A write of plain/<id> does the same without the lease, to tell the lease's share of
// the cost from the plugin round trips'. Tests only.
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("leasefloor shutting down", "error", err)
	os.Exit(1)
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{BackendType: logical.TypeLogical}
	write := func(prefix string, leased bool) framework.OperationFunc {
		return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
			id := d.Get("id").(string)
			raw, err := json.Marshal(req.Data)
			if err != nil {
				return nil, err
			}
			if err := req.Storage.Put(ctx, &logical.StorageEntry{Key: prefix + id, Value: raw}); err != nil {
				return nil, err
			}
			if !leased {
				return nil, nil
			}
			resp := b.Secret("item").Response(map[string]any{"id": id}, map[string]any{"id": id})
			resp.Secret.TTL = 24 * time.Hour
			return resp, nil
		}
	}
	path := func(prefix string, leased bool) *framework.Path {
		return &framework.Path{
			Pattern: prefix + framework.GenericNameRegex("id"),
			Fields: map[string]*framework.FieldSchema{
				"id":         {Type: framework.TypeString},
				"definition": {Type: framework.TypeString},
				"current":    {Type: framework.TypeString},
			},
			ExistenceCheck: func(context.Context, *logical.Request, *framework.FieldData) (bool, error) { return false, nil },
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: write(prefix, leased)},
			},
		}
	}
	b.Paths = []*framework.Path{path("item/", true), path("plain/", false)}
	b.Secrets = []*framework.Secret{{
		Type: "item",
		Revoke: func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
			id, _ := req.Secret.InternalData["id"].(string)
			return nil, req.Storage.Delete(ctx, "item/"+id)
		},
	}}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
