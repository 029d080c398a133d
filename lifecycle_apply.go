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
func (w *writer) apply(ctx context.Context, pid string, list []lifecycle.Effect) error {
	if w.b.storageWrites(list) <= 1 {
		return w.applyWrites(ctx, list)
	}
	pc, err := w.record(ctx, pid, list)
	if err != nil {
		return err
	}
	if err := w.applyWrites(ctx, list); err != nil {
		return err // pending: the process's next change, a restart or Vault's rollback finishes it
	}
	return w.finish(ctx, pc)
}

// change runs one event on a loaded state — the caller holds the process's lock — and answers
// the next state. A change of the process cut short before is finished first, and the event runs
// on the state it left. A refusal comes back as it is, for the handler's 400.
func (w *writer) change(ctx context.Context, st lifecycle.State, ev lifecycle.Event) (lifecycle.State, error) {
	if ev.Now.IsZero() {
		ev.Now = w.b.deps.now().UTC()
	}
	pid := st.ProcessID()
	settled, err := w.settle(ctx, pid)
	if err == nil && settled {
		st, err = w.reload(ctx, st)
	}
	if err != nil {
		return st, err
	}
	next, list, err := lifecycle.Transition(st, ev)
	if err != nil {
		return st, err
	}
	if err := w.apply(ctx, pid, list); err != nil {
		return st, err
	}
	return next, nil
}

// change is writer, then change, for a caller that needs no config of its own.
func (b *backend) change(ctx context.Context, s logical.Storage, st lifecycle.State, ev lifecycle.Event) (lifecycle.State, error) {
	w, err := b.writer(ctx, s)
	if err != nil {
		return st, err
	}
	return w.change(ctx, st, ev)
}
