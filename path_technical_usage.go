package pecreds

import (
	"context"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// technical/:name/usage: what a change of a technical credential reaches.

func (b *backend) pathTechnicalUsage(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	registries, err := b.registriesNaming(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	global := false
	for _, g := range cfg.GlobalRegistries {
		global = global || slices.Contains(registries, g)
	}
	// From the census's index, kept as processes come and go: no process is read here.
	count, ids := b.census.Usage(name, registries, global)
	resp := &logical.Response{Data: map[string]any{"name": name, "registries": registries, "processes": count, "process_ids": ids}}
	if !b.census.Counts().Seeded {
		resp.AddWarning("the plugin is still counting the processes in storage after its start: processes may be short")
	}
	if b.census.Scanning(name) {
		resp.AddWarning("the credential is new, and the plugin is still reading the processes for runtime layers that named it before: processes may be short")
	}
	return resp, nil
}

// registriesNaming lists the registries with a service that names the technical credential, from
// the registry cache (held whole).
func (b *backend) registriesNaming(ctx context.Context, s logical.Storage, technical string) ([]string, error) {
	regs, err := eachWhole(ctx, s, b.registries, registryStoragePrefix, "registries")
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, reg := range regs {
		if slices.Contains(credential.TechnicalNames(reg.Services), technical) {
			out = append(out, reg.Name)
		}
	}
	return out, nil
}
