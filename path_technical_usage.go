package pecreds

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/resolve"
)

// technical/:name/usage: what a change of a technical credential reaches.

func (b *backend) pathTechnicalUsage(ctx context.Context, req *logical.Request, d *framework.FieldData, name string) (*logical.Response, error) {
	registries, err := b.registriesNaming(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	count, ids, err := b.processesReaching(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"name": name, "registries": registries, "processes": count, "process_ids": ids}}, nil
}

// maxUsageIDs bounds the process ids a usage read lists.
const maxUsageIDs = 100

// processesReaching counts the live processes that name the technical credential in any of their
// layers, and lists up to maxUsageIDs of them.
func (b *backend) processesReaching(ctx context.Context, s logical.Storage, technical string) (int, []string, error) {
	ids, err := s.List(ctx, processStoragePrefix)
	if err != nil {
		return 0, nil, fmt.Errorf("listing processes: %w", err)
	}
	count, out := 0, []string{}
	for _, id := range ids {
		p, err := b.getProcess(ctx, s, id)
		if err != nil {
			return 0, nil, err
		}
		if p == nil {
			continue
		}
		layers, err := b.processLayers(ctx, s, p)
		if err != nil {
			return 0, nil, err
		}
		if layersName(layers, technical) {
			count++
			if len(out) < maxUsageIDs {
				out = append(out, id)
			}
		}
	}
	return count, out, nil
}

func layersName(layers []resolve.Layer, technical string) bool {
	for _, l := range layers {
		for _, n := range credential.TechnicalNames(l.Services) {
			if n == technical {
				return true
			}
		}
	}
	return false
}

// registriesNaming lists the registries with a service that names the technical credential.
func (b *backend) registriesNaming(ctx context.Context, s logical.Storage, technical string) ([]string, error) {
	names, err := s.List(ctx, registryStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing registries: %w", err)
	}
	out := []string{}
	for _, n := range names {
		reg, err := b.getRegistry(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if reg == nil {
			continue
		}
		for _, t := range credential.TechnicalNames(reg.Services) {
			if t == technical {
				out = append(out, n)
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
