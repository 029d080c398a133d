package pecreds

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/cache"
	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// The cached storage every typed helper (getRegistry, putProcess, ...) stands on. Every storage
// access from a plugin is a gRPC round trip to Vault, so reads are served from the backend's
// caches (internal/cache): a Whole one is filled with its whole prefix on first use, after which a
// miss is an absence; a Bounded one reads storage on a miss and keeps what exists. Cached values
// are shared: callers never modify them, they store a new value instead.

// cachedGet reads name under prefix through c. A fill that raced with a write, delete or
// invalidation of the same name is not kept (the cache's ticket), so a stale read never
// overwrites a newer value.
func cachedGet[T any](ctx context.Context, s logical.Storage, c cache.Cache[T], prefix, name, what string) (*T, error) {
	v, known, ticket := c.Lookup(name)
	if known {
		return v, nil
	}
	if whole, ok := c.(*cache.Whole[T]); ok {
		if err := fillWhole(ctx, s, whole, prefix, what, ticket); err != nil {
			return nil, err
		}
		if v, known, _ = whole.Lookup(name); known {
			return v, nil
		}
	}
	v, err := readJSON[T](ctx, s, prefix+name, what)
	if err != nil {
		return nil, err
	}
	c.Offer(name, v, ticket) // an absence is never held
	return v, nil
}

// fillWhole reads every entry under prefix into a Whole cache, unless something changed meanwhile
// (then the caller reads its one entry directly).
func fillWhole[T any](ctx context.Context, s logical.Storage, whole *cache.Whole[T], prefix, what string, ticket cache.Ticket) error {
	names, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing %s: %w", prefix, err)
	}
	all := make(map[string]*T, len(names))
	for _, n := range names {
		v, err := readJSON[T](ctx, s, prefix+n, what)
		if err != nil {
			return err
		}
		if v != nil {
			all[n] = v
		}
	}
	whole.FillIf(all, ticket)
	return nil
}

// eachWhole answers every entry of a Whole cache, in name order, filling it first if need be.
func eachWhole[T any](ctx context.Context, s logical.Storage, whole *cache.Whole[T], prefix, what string) ([]*T, error) {
	var out []*T
	for !whole.Each(func(_ string, v *T) { out = append(out, v) }) {
		if err := fillWhole(ctx, s, whole, prefix, what, whole.Ticket()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readJSON reads and decodes one storage entry; nil when absent.
func readJSON[T any](ctx context.Context, s logical.Storage, key, what string) (*T, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if entry == nil {
		return nil, nil
	}
	v := new(T)
	if err := entry.DecodeJSON(v); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	return v, nil
}

// cachedPut writes v as name under prefix, and into c.
func cachedPut[T any](ctx context.Context, s logical.Storage, c cache.Cache[T], prefix, name, what string, v *T) error {
	entry, err := logical.StorageEntryJSON(prefix+name, v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	c.Put(name, v)
	return nil
}

// cachedDelete deletes name under prefix, and from c.
func cachedDelete[T any](ctx context.Context, s logical.Storage, c cache.Cache[T], prefix, name, what string) error {
	if err := s.Delete(ctx, prefix+name); err != nil {
		return fmt.Errorf("deleting %s: %w", what, err)
	}
	c.Put(name, nil)
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
