package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"
)

// A process's storage: its record (process/<id>) and its current credentials
// (process-current/<id>, or the plugin's memory for transient processes), through the caches.

// getProcess returns a process, or nil when it does not exist. The answer is shared with the
// cache: callers must not modify it.
func (b *backend) getProcess(ctx context.Context, s logical.Storage, id string) (*processEntry, error) {
	return cachedGet(ctx, s, b.processes, processStoragePrefix, id, fmt.Sprintf("process %q", id))
}

// liveProcess is getProcess for the paths that act on a process: a missing one is a 404 that
// names it, not a silent empty answer.
func (b *backend) liveProcess(ctx context.Context, s logical.Storage, id string) (*processEntry, error) {
	p, err := b.getProcess(ctx, s, id)
	if err == nil && p == nil {
		err = logical.CodedError(http.StatusNotFound, fmt.Sprintf("process %q does not exist", id))
	}
	return p, err
}

// processExists says whether a process lives: from the census when it is sure (no storage read),
// else from storage. The caller holds the process's lock.
func (b *backend) processExists(ctx context.Context, s logical.Storage, id string) (bool, error) {
	if exists, known := b.census.Exists(id); known {
		return exists, nil
	}
	p, err := b.getProcess(ctx, s, id)
	return p != nil, err
}

// liveProcessCold is liveProcess for resolve: when neither the process nor its current
// credentials are cached, it reads both at once, so a cold resolve waits for one storage round
// trip, not two in a row (the credentials' read is a guess: a process that keeps none wastes it).
func (b *backend) liveProcessCold(ctx context.Context, s logical.Storage, id string) (*processEntry, error) {
	_, processCached, _ := b.processes.Lookup(id)
	_, currentCached, _ := b.currents.Lookup(id)
	if processCached || currentCached {
		return b.liveProcess(ctx, s, id)
	}
	var beside errgroup.Group
	beside.Go(func() error {
		_, _ = cachedGet(ctx, s, b.currents, currentStoragePrefix, id, fmt.Sprintf("the current credentials of process %q", id))
		return nil // a guess: the request reads them again, and answers a failure, if it needs them
	})
	p, err := b.liveProcess(ctx, s, id)
	_ = beside.Wait()
	return p, err
}

// putProcess stores a process; after its creation, only lifecycle.go's apply calls it.
// It is the one place a process record is written, so the census (status, usage) hears of it.
func (b *backend) putProcess(ctx context.Context, s logical.Storage, p *processEntry) error {
	if err := cachedPut(ctx, s, b.processes, processStoragePrefix, p.ID, fmt.Sprintf("process %q", p.ID), p); err != nil {
		return err
	}
	b.census.Set(summarize(p))
	return nil
}

// putNewProcess writes a new process and its current credentials side by side: a create is the
// write an engine makes most, and each write is a round trip to Vault. When either write fails,
// both are removed again, so a refused create leaves nothing behind: no process pointing at
// credentials not kept, and no credentials without their process.
func (b *backend) putNewProcess(ctx context.Context, s logical.Storage, p *processEntry, cur *Credential) error {
	var beside errgroup.Group
	if cur != nil {
		beside.Go(func() error { return b.putCurrent(ctx, s, p, *cur) })
	}
	err := errors.Join(b.putProcess(ctx, s, p), beside.Wait())
	if err == nil {
		return nil
	}
	if cur != nil {
		err = errors.Join(err, b.deleteCurrent(ctx, s, p.ID))
	}
	return errors.Join(err, b.deleteProcess(ctx, s, p.ID))
}

func (b *backend) deleteProcess(ctx context.Context, s logical.Storage, id string) error {
	if err := cachedDelete(ctx, s, b.processes, processStoragePrefix, id, fmt.Sprintf("process %q", id)); err != nil {
		return err
	}
	b.census.Delete(id)
	return nil
}

// getCurrent returns the current credentials the plugin holds for a process: from storage
// (persistent) or memory (transient); nil when it holds none.
func (b *backend) getCurrent(ctx context.Context, s logical.Storage, p *processEntry) (*Credential, error) {
	if !p.HasCurrent {
		return nil, nil
	}
	if p.KeepCredentials == keepTransient {
		b.cacheLock.RLock()
		defer b.cacheLock.RUnlock()
		return b.transientCurrent[p.ID], nil
	}
	return cachedGet(ctx, s, b.currents, currentStoragePrefix, p.ID, fmt.Sprintf("the current credentials of process %q", p.ID))
}

// putCurrent keeps a process's current credentials per its mode.
func (b *backend) putCurrent(ctx context.Context, s logical.Storage, p *processEntry, c Credential) error {
	switch p.KeepCredentials {
	case keepTransient:
		b.cacheLock.Lock()
		b.cacheGen++
		b.transientCurrent[p.ID] = &c
		b.cacheLock.Unlock()
	case keepPersistent:
		return cachedPut(ctx, s, b.currents, currentStoragePrefix, p.ID, fmt.Sprintf("the current credentials of process %q", p.ID), &c)
	}
	return nil
}

func (b *backend) deleteCurrent(ctx context.Context, s logical.Storage, id string) error {
	b.cacheLock.Lock()
	delete(b.transientCurrent, id)
	b.cacheLock.Unlock()
	return cachedDelete(ctx, s, b.currents, currentStoragePrefix, id, fmt.Sprintf("the current credentials of process %q", id))
}
