package pecreds

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A process's own expiry. A create writes the process and only then does Vault register its
// lease: a crash in between leaves a process no lease will ever revoke. Each process carries when
// its lease ends at the latest (lifecycle.Process.ExpiresAt, moved by each renewal), kept in
// time order in memory (filled as processes are written, path_process_storage.go, and by the
// census's read of storage after a start: no extra read); the periodic sweep ends those a grace
// period past it — never by reading every record.

// sweepExpired ends the processes a grace period past their own expiry: their leases are gone,
// or were never registered. Each is decided again under its lock, from storage.
func (b *backend) sweepExpired(ctx context.Context, s logical.Storage, now time.Time) error {
	for {
		id, _ := b.expiries.PopDue(now)
		if id == "" {
			return nil
		}
		if err := b.endIfExpired(ctx, s, id, now); err != nil {
			b.noteExpiryRetry(id, now)
			return err
		}
	}
}

func (b *backend) endIfExpired(ctx context.Context, s logical.Storage, id string, now time.Time) error {
	w, st, unlock, err := b.lockLife(ctx, s, id)
	defer unlock()
	if err != nil || st.Process == nil {
		return err
	}
	if p := st.Process; p.ExpiresAt.IsZero() || now.Before(p.ExpiresAt.Add(expiryGrace)) {
		b.noteExpiry(p) // renewed meanwhile
		return nil
	}
	b.Logger().Warn("process ended: its lease expired long ago, or Vault never registered it", "process", id, "expired_at", formatTime(st.Process.ExpiresAt))
	_, err = w.change(ctx, st, lifecycle.Event{Kind: lifecycle.End})
	return err
}

// noteExpiryRetry puts a process whose end failed back, for the next sweep.
func (b *backend) noteExpiryRetry(id string, now time.Time) {
	b.expiries.Schedule(id, now.Add(time.Minute))
}
