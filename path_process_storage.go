package pecreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/census"
	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A process's storage: its record (process/<id>) and its current credentials
// (process-current/<id>, or the plugin's memory for transient processes), through the caches;
// and what memory keeps of it at each write: its summary for the census, its place in the expiry
// order (expiry.go).

const processStoragePrefix = "process/"

// legacyCurrentPrefix is v0.1.0's key of a process's current credentials.
const legacyCurrentPrefix = "process-current/"

// summarize is what the census keeps of a process.
func summarize(p *lifecycle.Process) census.Process {
	return census.Process{ID: p.ID, Definition: p.Definition, Health: p.Health, Keep: p.KeepCredentials,
		OpenTask: p.TaskID != "", Technicals: credential.TechnicalNames(p.Runtime), TaskID: p.TaskID, OwnerEntityID: p.OwnerEntityID}
}

// getProcess returns a process, or nil when it does not exist. The answer is shared with the
// cache: callers must not modify it.
func (b *backend) getProcess(ctx context.Context, s logical.Storage, id string) (*lifecycle.Process, error) {
	return cachedGet(ctx, s, b.processes, processStoragePrefix, id, fmt.Sprintf("process %q", id))
}

// liveProcess is getProcess for the paths that act on a process: a missing one is a 404 that
// names it, not a silent empty answer.
func (b *backend) liveProcess(ctx context.Context, s logical.Storage, id string) (*lifecycle.Process, error) {
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

// liveProcessCold is liveProcess for resolve: one record holds the process and its persistent
// current credentials, so a cold resolve waits for one storage read.
func (b *backend) liveProcessCold(ctx context.Context, s logical.Storage, id string) (*lifecycle.Process, error) {
	return b.liveProcess(ctx, s, id)
}

// putProcess stores a process; after its creation, only the lifecycle's writer (apply) calls it.
// It is the one place a process record is written, so the census (status, usage) hears of it,
// and the grant refresher, which refreshes at fraction (config's refresh_fraction) of a lifetime.
func (b *backend) putProcess(ctx context.Context, s logical.Storage, p *lifecycle.Process, fraction float64) error {
	if err := cachedPut(ctx, s, b.processes, processStoragePrefix, p.ID, fmt.Sprintf("process %q", p.ID), p); err != nil {
		return err
	}
	b.census.Set(summarize(p))
	b.noteExpiry(p)
	b.grants.noteProcess(p, fraction)
	return nil
}

// putNewProcess writes a new process with its current credentials: in its own record when they
// are persistent (one write), in memory when transient. A refused write leaves nothing behind.
func (b *backend) putNewProcess(ctx context.Context, s logical.Storage, p *lifecycle.Process, cur *Credential, fraction float64) error {
	if cur != nil && p.KeepCredentials == lifecycle.KeepPersistent {
		p.Current = cur
	}
	if cur != nil && p.KeepCredentials == lifecycle.KeepTransient {
		if err := b.putCurrent(p, *cur, fraction); err != nil {
			return err
		}
	}
	if err := b.putProcess(ctx, s, p, fraction); err != nil {
		return errors.Join(err, b.deleteCurrent(ctx, s, p))
	}
	return nil
}

// expiryGrace: a process is ended this long after its own expiry, so that Vault's revocation of
// the lease (which ends it too) always comes first when the lease exists.
const expiryGrace = time.Hour

// noteExpiry places a process in the expiry order (nowhere when its expiry is not known).
func (b *backend) noteExpiry(p *lifecycle.Process) {
	if p.ExpiresAt.IsZero() {
		b.expiries.Unschedule(p.ID)
		return
	}
	b.expiries.Schedule(p.ID, p.ExpiresAt.Add(expiryGrace))
}

func (b *backend) deleteProcess(ctx context.Context, s logical.Storage, id string) error {
	if err := cachedDelete(ctx, s, b.processes, processStoragePrefix, id, fmt.Sprintf("process %q", id)); err != nil {
		return err
	}
	b.census.Delete(id)
	b.expiries.Unschedule(id)
	b.grants.forgetProcess(id)
	return nil
}

// getCurrent returns the current credentials the plugin holds for a process: from its record
// (persistent; for storage written by v0.1.0 not yet migrated, from process-current/<id>) or from
// memory (transient); nil when it holds none.
func (b *backend) getCurrent(ctx context.Context, s logical.Storage, p *lifecycle.Process) (*Credential, error) {
	switch {
	case !p.HasCurrent:
		return nil, nil
	case p.KeepCredentials == lifecycle.KeepTransient:
		b.cacheLock.RLock()
		defer b.cacheLock.RUnlock()
		return b.transientCurrent[p.ID], nil
	case p.Current != nil:
		return p.Current, nil
	}
	return readJSON[Credential](ctx, s, legacyCurrentPrefix+p.ID, fmt.Sprintf("the current credentials of process %q", p.ID))
}

// putCurrent keeps a transient process's current credentials in memory; a persistent process's
// are in its record (the lifecycle sets them there, and the record's write stores them).
func (b *backend) putCurrent(p *lifecycle.Process, c Credential, fraction float64) error {
	if p.KeepCredentials == lifecycle.KeepTransient {
		b.cacheLock.Lock()
		b.cacheGen++
		b.transientCurrent[p.ID] = &c
		b.cacheLock.Unlock()
		b.grants.note(p.ID, &c, fraction)
	}
	return nil
}

// deleteCurrent wipes what the plugin holds of a process's current credentials outside its
// record: the transient copy, and — until the migration from v0.1.0's layout is done — the old
// record.
func (b *backend) deleteCurrent(ctx context.Context, s logical.Storage, p *lifecycle.Process) error {
	b.cacheLock.Lock()
	delete(b.transientCurrent, p.ID)
	b.cacheLock.Unlock()
	if p.KeepCredentials == lifecycle.KeepTransient {
		b.grants.forget(p.ID)
	}
	if b.migrated.Load() || p.KeepCredentials != lifecycle.KeepPersistent {
		return nil
	}
	if err := s.Delete(ctx, legacyCurrentPrefix+p.ID); err != nil {
		return fmt.Errorf("deleting the current credentials of process %q: %w", p.ID, err)
	}
	return nil
}
