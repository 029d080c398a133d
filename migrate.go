package pecreds

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// Upgrade from v0.1.0's storage. v0.1.0 kept a persistent process's current credentials apart from
// its record, under process-current/<id>; since v0.2.0 they live in the record itself (one write
// per create, one read per cold resolve). Until a process is migrated, getCurrent reads the old
// key; the active node migrates every process once in the background after it starts (each under
// the process's lock: fold the credentials into the record, then delete the old key), and deletes
// old keys whose process has ended.

// migrateCurrents folds every v0.1.0 current-credentials record into its process's record. It
// runs once, in the background, on the node that may write; until it is done, ending a process
// also deletes its old key (deleteCurrent).
func (b *backend) migrateCurrents(ctx context.Context, s logical.Storage) {
	ids, err := s.List(ctx, legacyCurrentPrefix)
	if err != nil {
		b.Logger().Error("listing v0.1.0 current credentials to migrate", "error", err)
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := b.migrateCurrent(ctx, s, id); err != nil {
			b.Logger().Error("migrating v0.1.0 current credentials: the next start tries again", "process", id, "error", err)
			return
		}
	}
	b.migrated.Store(true)
	if len(ids) > 0 {
		b.Logger().Info("current credentials migrated into their process records", "processes", len(ids))
	}
}

// migrateCurrent folds one process's old current-credentials record into its process record.
func (b *backend) migrateCurrent(ctx context.Context, s logical.Storage, id string) error {
	w, st, unlock, err := b.lockLife(ctx, s, id)
	defer unlock()
	if err != nil {
		return err
	}
	if p := st.Process; p != nil && p.HasCurrent && p.KeepCredentials == lifecycle.KeepPersistent && p.Current == nil {
		cur, err := readJSON[Credential](ctx, s, legacyCurrentPrefix+id, fmt.Sprintf("the current credentials of process %q", id))
		if err != nil {
			return err
		}
		if _, err := w.change(ctx, st, lifecycle.Event{Kind: lifecycle.FoldCurrent, Credential: cur}); err != nil {
			return err
		}
	}
	if err := s.Delete(ctx, legacyCurrentPrefix+id); err != nil {
		return fmt.Errorf("deleting the migrated current credentials of process %q: %w", id, err)
	}
	return nil
}
