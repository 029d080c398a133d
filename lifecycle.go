package pecreds

import (
	"context"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A process's lifecycle state (internal/lifecycle) as the root loads it: under the process's
// lock, after any change of it cut short is finished, so a transition always runs on a whole
// state. The writer (its storage and the config it read once) is defined in changes.go, with
// its writes; lifecycle_apply.go carries a transition out.

// lockLife is writer, then lock, for a caller that needs no config of its own.
func (b *backend) lockLife(ctx context.Context, s logical.Storage, id string) (*writer, lifecycle.State, func(), error) {
	w, err := b.writer(ctx, s)
	if err != nil {
		return nil, lifecycle.State{}, func() {}, err
	}
	st, unlock, err := w.lock(ctx, id)
	return w, st, unlock, err
}

// reload reads a state again: the process, and the task it was about (or the process's open one).
func (w *writer) reload(ctx context.Context, st lifecycle.State) (lifecycle.State, error) {
	pid := st.ProcessID()
	p, err := w.b.getProcess(ctx, w.s, pid)
	if err != nil {
		return st, err
	}
	taskID := ""
	if st.Task != nil {
		taskID = st.Task.ID
	} else if p != nil {
		taskID = p.TaskID
	}
	next := lifecycle.State{Process: p}
	if taskID != "" {
		if next.Task, err = w.b.getTask(ctx, w.s, taskID); err != nil {
			return st, err
		}
	}
	return next, nil
}

// lock takes a process's lock and loads its state under it (lifecycle.State{} when the process
// does not exist); the caller runs unlock when its change is applied.
func (w *writer) lock(ctx context.Context, id string) (st lifecycle.State, unlock func(), err error) {
	lock := locksutil.LockForKey(w.b.processLocks, id)
	lock.Lock()
	if _, err = w.settle(ctx, id); err == nil {
		st, err = w.load(ctx, id)
	}
	return st, lock.Unlock, err
}

// load loads a process and its open task (nil, nil when the process does not exist).
func (w *writer) load(ctx context.Context, id string) (lifecycle.State, error) {
	p, err := w.b.getProcess(ctx, w.s, id)
	if err != nil || p == nil {
		return lifecycle.State{}, err
	}
	st := lifecycle.State{Process: p}
	if p.TaskID != "" {
		if st.Task, err = w.b.getTask(ctx, w.s, p.TaskID); err != nil {
			return lifecycle.State{}, err
		}
	}
	return st, nil
}
