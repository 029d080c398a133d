// Package outbox is the Task Manager's outbox without storage or network of its own: the event
// model, the Standard Webhooks signature, an in-memory index of what waits, and delivery — due
// events posted at least once, in order per process, several processes at once, backing off,
// kept as dead past a limit — through a Store and a Poster it is given, at the time it is told.
// So the whole of delivery is unit-tested with a fake store, poster and clock.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pecreds/vault-plugin-pecreds/internal/backoff"
)

const (
	// MinBackoff and MaxBackoff bound the wait after failed deliveries.
	MinBackoff = time.Second
	MaxBackoff = 10 * time.Minute
	// DeadAfter: an event still undelivered this long after delivery started is kept as dead.
	DeadAfter = 24 * time.Hour
)

// Event is one event, as stored in the outbox. The delivered body is its public part.
type Event struct {
	Seq           uint64    `json:"seq"`
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Time          time.Time `json:"time"`
	ProcessID     string    `json:"process_id"`
	TaskID        string    `json:"task_id"`
	Service       string    `json:"service"`
	Owner         string    `json:"owner"`
	OwnerEntityID string    `json:"owner_entity_id"`
	Reason        string    `json:"reason"`
	// Change is the state change that made the event (see Entry.Change); never delivered.
	Change string `json:"change,omitempty"`

	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error"`
	Dead        bool      `json:"dead"`
	// Since is when delivery started (again, after a retry of dead events): the dead limit
	// counts from it.
	Since time.Time `json:"since"`
}

// Body is what the Task Manager receives: never a credential.
func (e *Event) Body() ([]byte, error) {
	return json.Marshal(map[string]any{
		"id": e.ID, "type": e.Type, "time": e.Time.UTC().Format(time.RFC3339Nano),
		"process_id": e.ProcessID, "task_id": e.TaskID, "service": e.Service,
		"owner": e.Owner, "owner_entity_id": e.OwnerEntityID, "reason": e.Reason,
	})
}

// Backoff is the wait after the n-th failed delivery: 1s, 2s, 4s, ... at most 10m.
var Backoff = backoff.Doubling{First: MinBackoff, Limit: MaxBackoff}

// Store is the outbox's storage.
type Store interface {
	// Load reads an event; nil when it is gone.
	Load(ctx context.Context, seq uint64) (*Event, error)
	// Delivered removes a delivered event (and counts it).
	Delivered(ctx context.Context, ev *Event) error
	// Failed stores an event after a failed attempt, with its new schedule.
	Failed(ctx context.Context, ev *Event) error
	// Held stores an event that changed without an attempt (dead behind a dead one).
	Held(ctx context.Context, ev *Event) error
}

// Poster delivers one event. Its error says why in words fit for notify/status: never what the
// receiver answered but its status. ErrPaused says delivery cannot go on now (switched off, or
// nothing to sign with): no attempt is counted and the pass stops.
type Poster interface {
	Post(ctx context.Context, ev *Event) error
}

// ErrPaused: delivery is switched off or cannot be signed; events wait, kept, unattempted.
var ErrPaused = errors.New("delivery is paused")

// Deliverer posts what is due, from the index, through the store and the poster.
type Deliverer struct {
	Index     *Index
	Store     Store
	Poster    Poster
	Now       func() time.Time
	DeadAfter time.Duration
	// Concurrency is how many processes' events are delivered at once (at least 1); each
	// process's events go one at a time, in order.
	Concurrency int
	// Dying is told of an event that just became dead.
	Dying func(ev *Event, err error)
	// Holding, when set, is held while events are marked dead behind a dead one, so that a retry
	// (holding it too) never misses one: nothing stays dead behind an event it requeued.
	Holding sync.Locker
}

// DeliverDue delivers the events due at Now, in order per process: a process's later events wait
// while an earlier one is pending, and behind a dead one until it is retried. Up to Concurrency
// processes are served at once, each until its next event is not due. It answers when to look
// again (zero: nothing is waiting for a time).
func (d *Deliverer) DeliverDue(ctx context.Context) (time.Time, error) {
	plan := d.Index.Plan(d.Now())
	for _, pid := range plan.Blocked {
		if err := d.holdOverdue(ctx, pid); err != nil {
			return time.Time{}, err
		}
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		workers errgroup.Group // an error does not stop the others: each process is its own
		mu      sync.Mutex     // guards paused and next
		paused  bool
		next    = plan.Next
	)
	workers.SetLimit(max(d.Concurrency, 1))
	for _, pid := range plan.Due {
		if ctx.Err() != nil {
			break
		}
		workers.Go(func() error {
			at, err := d.drain(ctx, pid)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrPaused) {
				paused = true
				stop() // the other workers end their current delivery, unattempted
				return nil
			}
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
			return err
		})
	}
	err := workers.Wait() // the first error
	if paused || ctx.Err() != nil {
		return time.Time{}, nil // a config change pokes the loop
	}
	return next, err
}

// PerProcessPerPass bounds how many events of one process a pass delivers, so that a process
// with many waiting never holds up the next pass (where other processes' new events are).
const PerProcessPerPass = 16

// drain delivers a process's events while its first is due, up to PerProcessPerPass; it answers
// when its first falls due again (zero: delivered all, or dead).
func (d *Deliverer) drain(ctx context.Context, pid string) (time.Time, error) {
	for sent := 0; ctx.Err() == nil; sent++ {
		head, ok := d.Index.Head(pid)
		switch {
		case !ok:
			return time.Time{}, nil
		case head.Dead:
			return time.Time{}, d.holdOverdue(ctx, pid)
		case head.NextAttempt.After(d.Now()):
			return head.NextAttempt, nil
		case sent == PerProcessPerPass:
			return d.Now(), nil // more are due: the next pass goes on at once
		}
		ev, err := d.Store.Load(ctx, head.Seq)
		if err != nil {
			return time.Time{}, err
		}
		if ev == nil { // gone from storage (evicted meanwhile): nothing to deliver
			d.Index.Remove(pid, head.Seq)
			continue
		}
		if err := d.deliverOne(ctx, ev); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, nil
}

// holdOverdue marks dead, without an attempt, a process's events that waited behind its dead
// first event past their own limit.
func (d *Deliverer) holdOverdue(ctx context.Context, pid string) error {
	if d.Holding != nil {
		d.Holding.Lock()
		defer d.Holding.Unlock()
	}
	for _, e := range d.Index.Overdue(pid, d.Now(), d.DeadAfter) {
		ev, err := d.Store.Load(ctx, e.Seq)
		if err != nil || ev == nil {
			return err
		}
		ev.Dead = true
		if ev.LastError == "" {
			ev.LastError = "an earlier event of its process is dead"
		}
		if err := d.Store.Held(ctx, ev); err != nil {
			return err
		}
		d.Index.Update(ev.Entry())
	}
	return nil
}

// deliverOne posts one event: delivered, it leaves the outbox; failed, it backs off, and past
// the dead limit it is kept as dead.
func (d *Deliverer) deliverOne(ctx context.Context, ev *Event) error {
	hurries := d.Index.Hurries()
	postErr := d.Poster.Post(ctx, ev)
	if errors.Is(postErr, ErrPaused) {
		return postErr
	}
	if ctx.Err() != nil {
		return nil // stopping: an interrupted delivery is not an attempt
	}
	if postErr == nil {
		if err := d.Store.Delivered(ctx, ev); err != nil {
			return err
		}
		d.Index.Remove(ev.ProcessID, ev.Seq)
		return nil
	}
	now := d.Now().UTC()
	ev.Attempts++
	ev.LastError = postErr.Error()
	ev.NextAttempt = now.Add(Backoff.After(ev.Attempts))
	if d.Index.Hurries() != hurries {
		// Hurried while it was posted (a new notify_url, an operator's retry): this attempt
		// may have gone to the receiver being replaced, so it is tried again at once.
		ev.NextAttempt = now
	}
	if now.Sub(ev.Since) >= d.DeadAfter {
		ev.Dead = true
		if d.Dying != nil {
			d.Dying(ev, postErr)
		}
	}
	if err := d.Store.Failed(ctx, ev); err != nil {
		return err
	}
	d.Index.Update(ev.Entry())
	return nil
}

// Retry queues a dead event again, with its id, in its place in its process's order; its dead
// limit counts from now.
func Retry(ev *Event, now time.Time) {
	ev.Dead, ev.Attempts, ev.NextAttempt, ev.Since = false, 0, now, now
}

// Key is an event's storage key under prefix: zero-padded, so lexical order is sequence order.
func Key(prefix string, seq uint64) string { return fmt.Sprintf("%s%020d", prefix, seq) }
