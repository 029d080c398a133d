package pecreds

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The outbox's admission: each new event is written in the request that makes it, within two
// bounds — a few events a process (the newest state wins), and notify_max_events in all.

// overflowLogEvery bounds how often a full outbox is logged.
const overflowLogEvery = time.Minute

// enqueue writes an event to the outbox: one storage write (two when an older event makes room),
// however many wait. A process's oldest event behind its first gives way past
// maxPendingPerProcess, so no engine host's processes push out another's. A full outbox keeps no
// new event: the state change still happens, and
// notify/status counts it under overflowed.
func (n *notifier) enqueue(ctx context.Context, s logical.Storage, cfg *configEntry, ev outbox.Event) error {
	if ev.ID == "" {
		id, err := uuid.GenerateUUID()
		if err != nil {
			return fmt.Errorf("making an event id: %w", err)
		}
		ev.ID = id
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	x, err := n.loadLocked(ctx, s)
	if err != nil {
		return err
	}
	if x.Has(ev.ProcessID, ev.ID) {
		return nil // enqueued before a change cut short was rolled forward (changes.go)
	}
	if old, crowded := x.Crowded(ev.ProcessID, maxPendingPerProcess); crowded {
		if err := n.giveWayLocked(ctx, s, x, old); err != nil {
			return err
		}
	}
	if x.Len() >= cfg.NotifyMaxEvents {
		if admitted, err := n.makeRoomLocked(ctx, s, x, ev); err != nil || !admitted {
			return err
		}
	}
	now := n.b.deps.now().UTC()
	ev.Seq, ev.Time, ev.Since, ev.NextAttempt = x.NextSeq(), now, now, now
	if err := putOutboxEvent(ctx, s, &ev); err != nil {
		return err
	}
	x.Add(ev.Entry())
	n.poke()
	return nil
}

// makeRoomLocked frees a place in a full outbox by dropping its oldest dead event; with none dead,
// the new event is not kept. Either way an event is lost to the bound, and overflowed counts it:
// the Task Manager reconciles when it grows.
func (n *notifier) makeRoomLocked(ctx context.Context, s logical.Storage, x *outbox.Index, ev outbox.Event) (bool, error) {
	old, dropDead := x.OldestDead()
	if dropDead {
		if err := s.Delete(ctx, outboxKey(old.Seq)); err != nil {
			return false, fmt.Errorf("dropping a dead event from the full outbox: %w", err)
		}
		x.Remove(old.ProcessID, old.Seq)
	}
	if err := n.updateStats(ctx, s, func(st *notifyStats) { st.Overflowed++ }); err != nil {
		return false, err
	}
	if n.b.deps.now().Sub(n.lastOverflowLog) >= overflowLogEvery {
		n.lastOverflowLog = n.b.deps.now()
		what := "new events are not kept"
		if dropDead {
			what = "the oldest dead events are dropped to make room"
		}
		n.b.Logger().Error("the notification outbox is full (notify_max_events): "+what+"; the Task Manager must reconcile by listing task/",
			"held", x.Len(), "type", ev.Type, "process", ev.ProcessID)
	}
	return dropDead, nil
}

// giveWayLocked drops a process's oldest event behind its first, for its newest: what the Task
// Manager needs is the process's state now, and overflowed counts the loss.
func (n *notifier) giveWayLocked(ctx context.Context, s logical.Storage, x *outbox.Index, old outbox.Entry) error {
	if err := s.Delete(ctx, outboxKey(old.Seq)); err != nil {
		return fmt.Errorf("dropping a superseded event: %w", err)
	}
	x.Remove(old.ProcessID, old.Seq)
	return n.updateStats(ctx, s, func(st *notifyStats) { st.Overflowed++ })
}
