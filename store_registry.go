package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A registry as stored and its typed, cached storage helpers: process creation, resolution and
// the usage count read them beside registry's own paths.

const registryStoragePrefix = "registry/"

// registryEntry is a stored registry. Version starts at 1 and grows by one with every write;
// a delete removes the registry and its version with it, as in KV v2 without history.
type registryEntry struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Services    []Service `json:"services"`
	Version     int       `json:"version"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

// getRegistry returns a registry, or nil when it does not exist. The answer is shared with the
// cache: callers must not modify it.
func (b *backend) getRegistry(ctx context.Context, s logical.Storage, name string) (*registryEntry, error) {
	return cachedGet(ctx, s, b.registries, registryStoragePrefix, name, fmt.Sprintf("registry %q", name))
}

func (b *backend) putRegistry(ctx context.Context, s logical.Storage, reg *registryEntry) error {
	return cachedPut(ctx, s, b.registries, registryStoragePrefix, reg.Name, fmt.Sprintf("registry %q", reg.Name), reg)
}

func (b *backend) deleteRegistry(ctx context.Context, s logical.Storage, name string) error {
	return cachedDelete(ctx, s, b.registries, registryStoragePrefix, name, fmt.Sprintf("registry %q", name))
}
