package pecreds

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/lifecycle"
	"github.com/pecreds/vault-plugin-pecreds/internal/schedule"
)

// The task sweep's memory: a closed task waits in a time order for its removal, 30 days after it
// closed. The first sweep after a start reads every task once, to rebuild it (and to mend what a
// crash between the writes of a change left in storage written before the write-ahead log).
type taskSweep struct {
	scanned   atomic.Bool
	retention *schedule.Queue
}

func newTaskSweep() *taskSweep {
	return &taskSweep{retention: schedule.NewQueue()}
}

// forgetTask removes a task closed long enough ago, through the lifecycle's writer.
func (b *backend) forgetTask(ctx context.Context, s logical.Storage, id string, now time.Time) error {
	t, err := b.getTask(ctx, s, id)
	if err != nil || t == nil {
		return err
	}
	lock := locksutil.LockForKey(b.processLocks, t.ProcessID)
	lock.Lock()
	defer lock.Unlock()
	if t, err = b.getTask(ctx, s, id); err != nil || t == nil || t.Status == lifecycle.StatusOpen {
		return err
	}
	if now.Sub(t.ClosedTime) <= closedTaskRetention {
		b.noteClosedTask(t)
		return nil
	}
	_, err = b.change(ctx, s, lifecycle.State{Task: t}, lifecycle.Event{Kind: lifecycle.ForgetTask, Now: now})
	if err != nil {
		return fmt.Errorf("removing task %q: %w", id, err)
	}
	return nil
}
