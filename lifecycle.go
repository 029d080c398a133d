package pecreds

import (
	"context"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
)

// A process's lifecycle state (internal/lifecycle) as the root loads it: under the process's
// lock, after any change of it cut short is finished, so a transition always runs on a whole
// state. The writer that carries a transition out is lifecycle_apply.go.

// reload reads a state again: the process, and the task it was about (or the process's open one).
func (b *backend) reload(ctx context.Context, s logical.Storage, st lifecycle.State) (lifecycle.State, error) {
	pid := st.ProcessID()
	p, err := b.getProcess(ctx, s, pid)
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
		if next.Task, err = b.getTask(ctx, s, taskID); err != nil {
			return st, err
		}
	}
	return next, nil
}

// lockLife takes a process's lock and loads its state under it (lifecycle.State{} when the process
// does not exist); the caller runs unlock when its change is applied.
func (b *backend) lockLife(ctx context.Context, s logical.Storage, id string) (st lifecycle.State, unlock func(), err error) {
	lock := locksutil.LockForKey(b.processLocks, id)
	lock.Lock()
	if _, err = b.settle(ctx, s, id); err == nil {
		st, err = b.loadLife(ctx, s, id)
	}
	return st, lock.Unlock, err
}

// loadLife loads a process and its open task (nil, nil when the process does not exist).
func (b *backend) loadLife(ctx context.Context, s logical.Storage, id string) (lifecycle.State, error) {
	p, err := b.getProcess(ctx, s, id)
	if err != nil || p == nil {
		return lifecycle.State{}, err
	}
	st := lifecycle.State{Process: p}
	if p.TaskID != "" {
		if st.Task, err = b.getTask(ctx, s, p.TaskID); err != nil {
			return lifecycle.State{}, err
		}
	}
	return st, nil
}
