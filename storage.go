package pecreds

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// The cached storage every typed helper (getRegistry, putProcess, ...) stands on. Every storage
// access from a plugin is a gRPC round trip to Vault, so reads are served from the backend's
// caches; a cache value of nil records a known absence. Cached values are shared: callers never
// modify them, they store a new value instead.

// cachedGet reads name under prefix through cache. A fill that raced with a write, delete or
// invalidation (cacheGen moved) is not kept, so a stale read never overwrites a newer value.
func cachedGet[T any](ctx context.Context, b *backend, s logical.Storage, cache map[string]*T, prefix, name, what string) (*T, error) {
	b.cacheLock.RLock()
	v, cached := cache[name]
	gen := b.cacheGen
	b.cacheLock.RUnlock()
	if cached {
		return v, nil
	}
	entry, err := s.Get(ctx, prefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if entry != nil {
		v = new(T)
		if err := entry.DecodeJSON(v); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", what, err)
		}
	}
	b.cacheLock.Lock()
	if b.cacheGen == gen {
		cache[name] = v
	}
	b.cacheLock.Unlock()
	return v, nil
}

// cachedPut writes v as name under prefix, and into cache.
func cachedPut[T any](ctx context.Context, b *backend, s logical.Storage, cache map[string]*T, prefix, name, what string, v *T) error {
	entry, err := logical.StorageEntryJSON(prefix+name, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	b.cacheLock.Lock()
	b.cacheGen++
	cache[name] = v
	b.cacheLock.Unlock()
	return nil
}

// cachedDelete deletes name under prefix, and records the absence in cache.
func cachedDelete[T any](ctx context.Context, b *backend, s logical.Storage, cache map[string]*T, prefix, name, what string) error {
	if err := s.Delete(ctx, prefix+name); err != nil {
		return fmt.Errorf("deleting %s: %w", what, err)
	}
	b.cacheLock.Lock()
	b.cacheGen++
	cache[name] = nil
	b.cacheLock.Unlock()
	return nil
}

// listKeys is the handler of a LIST path: the names stored under prefix.
func listKeys(prefix, what string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
		keys, err := req.Storage.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		return logical.ListResponse(keys), nil
	}
}

// existsByName is the ExistenceCheck of a path whose object is named by field: a bad name
// does not exist (the handler answers its 400), and the name is checked before storage is
// touched.
func existsByName[T any](b *backend, field, what string, get func(*backend, context.Context, logical.Storage, string) (*T, error)) framework.ExistenceFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
		name := d.Get(field).(string)
		if credential.ValidateName(what, name) != nil {
			return false, nil
		}
		v, err := get(b, ctx, req.Storage, name)
		return v != nil, err
	}
}
