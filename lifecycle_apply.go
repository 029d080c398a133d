package pecreds

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// Applying the state machine's effects (internal/lifecycle): the one writer of processes and tasks
// after their creation.

// apply carries a transition's effects out, in order. It is the only writer of processes and
// tasks after their creation. A change of more than one storage write is recorded first in the
// write-ahead log (changes.go): cut short, it is rolled forward, never left half-made.
func (b *backend) apply(ctx context.Context, s logical.Storage, pid string, list []lifecycle.Effect) error {
	if b.storageWrites(list) <= 1 {
		return b.applyWrites(ctx, s, list)
	}
	pc, err := b.record(ctx, s, pid, list)
	if err != nil {
		return err
	}
	if err := b.applyWrites(ctx, s, list); err != nil {
		return err // pending: the process's next change, a restart or Vault's rollback finishes it
	}
	return b.finish(ctx, s, pc)
}

// change runs one event on a loaded state — the caller holds the process's lock — and answers
// the next state. A change of the process cut short before is finished first, and the event runs
// on the state it left. A refusal comes back as it is, for the handler's 400.
func (b *backend) change(ctx context.Context, s logical.Storage, st lifecycle.State, ev lifecycle.Event) (lifecycle.State, error) {
	if ev.Now.IsZero() {
		ev.Now = b.deps.now().UTC()
	}
	pid := st.ProcessID()
	settled, err := b.settle(ctx, s, pid)
	if err == nil && settled {
		st, err = b.reload(ctx, s, st)
	}
	if err != nil {
		return st, err
	}
	next, list, err := lifecycle.Transition(st, ev)
	if err != nil {
		return st, err
	}
	if err := b.apply(ctx, s, pid, list); err != nil {
		return st, err
	}
	return next, nil
}
