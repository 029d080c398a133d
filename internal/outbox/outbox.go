// Package outbox is the Task Manager's outbox without storage or network of its own: the event
// model, the signature, and delivery — due events posted at least once, in order per process,
// backing off, kept as dead past a limit — through a Store and a Poster it is given, at the time
// it is told. So the whole of delivery is unit-tested with a fake store, poster and clock.
package outbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
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

// Sign is the X-Pecreds-Signature header: sha256=<hex HMAC-SHA256 of the body>.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Backoff is the wait after the n-th failed delivery: 1s, 2s, 4s, ... at most 10m.
func Backoff(n int) time.Duration {
	d := MinBackoff
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// Store is the outbox's storage.
type Store interface {
	// Events answers every event in the outbox, pending and dead, in sequence order.
	Events(ctx context.Context) ([]*Event, error)
	// Delivered removes a delivered event (and counts it).
	Delivered(ctx context.Context, ev *Event) error
	// Failed stores an event after a failed attempt, with its new schedule.
	Failed(ctx context.Context, ev *Event) error
	// Held stores an event that changed without an attempt (dead behind a dead one).
	Held(ctx context.Context, ev *Event) error
}

// Poster delivers one event. Its error says why in words fit for notify/status: never what the
// receiver answered but its status.
type Poster interface {
	Post(ctx context.Context, ev *Event) error
}

// Deliverer posts what is due.
type Deliverer struct {
	Store     Store
	Poster    Poster
	Now       func() time.Time
	DeadAfter time.Duration
	// Dying is told of an event that just became dead.
	Dying func(ev *Event, err error)
}

// DeliverDue delivers the events due at Now, in order per process: a process's later events wait
// while an earlier one is pending, and behind a dead one until it is retried. It answers when to
// look again (zero: nothing pending).
func (d *Deliverer) DeliverDue(ctx context.Context) (time.Time, error) {
	events, err := d.Store.Events(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	blocked := map[string]bool{}
	deadBefore := map[string]bool{} // a process with a dead event: the later ones wait for a retry
	for _, ev := range events {
		switch {
		case ev.Dead:
			blocked[ev.ProcessID], deadBefore[ev.ProcessID] = true, true
			continue
		case blocked[ev.ProcessID] && deadBefore[ev.ProcessID] && d.Now().Sub(ev.Since) >= d.DeadAfter:
			// Held behind a dead event past its own limit: dead too, never tried out of order.
			ev.Dead = true
			if ev.LastError == "" {
				ev.LastError = "an earlier event of its process is dead"
			}
			if err := d.Store.Held(ctx, ev); err != nil {
				return time.Time{}, err
			}
			continue
		case blocked[ev.ProcessID]:
			continue
		case ev.NextAttempt.After(d.Now()):
			blocked[ev.ProcessID] = true
			later(ev.NextAttempt)
			continue
		case ctx.Err() != nil:
			return time.Time{}, nil
		}
		delivered, err := d.deliverOne(ctx, ev)
		if err != nil {
			return time.Time{}, err
		}
		if !delivered {
			blocked[ev.ProcessID] = true
			if ev.Dead {
				deadBefore[ev.ProcessID] = true
			} else {
				later(ev.NextAttempt)
			}
		}
	}
	return next, nil
}

// deliverOne posts one event: delivered, it leaves the outbox; failed, it backs off, and past
// the dead limit it is kept as dead.
func (d *Deliverer) deliverOne(ctx context.Context, ev *Event) (bool, error) {
	postErr := d.Poster.Post(ctx, ev)
	if ctx.Err() != nil {
		return false, nil // stopping: an interrupted delivery is not an attempt
	}
	if postErr == nil {
		return true, d.Store.Delivered(ctx, ev)
	}
	now := d.Now().UTC()
	ev.Attempts++
	ev.LastError = postErr.Error()
	ev.NextAttempt = now.Add(Backoff(ev.Attempts))
	if now.Sub(ev.Since) >= d.DeadAfter {
		ev.Dead = true
		if d.Dying != nil {
			d.Dying(ev, postErr)
		}
	}
	return false, d.Store.Failed(ctx, ev)
}

// Retry queues every dead event again, with its id, in its place in its process's order; its
// dead limit counts from now. It answers the events to store.
func Retry(events []*Event, now time.Time) []*Event {
	var requeued []*Event
	for _, ev := range events {
		if ev.Dead {
			ev.Dead, ev.Attempts, ev.NextAttempt, ev.Since = false, 0, now, now
			requeued = append(requeued, ev)
		}
	}
	return requeued
}

// Counts is what notify/status shows of the outbox itself.
type Counts struct {
	Pending, Dead int
	OldestPending time.Time
}

// Count counts the events.
func Count(events []*Event) Counts {
	var c Counts
	for _, ev := range events {
		if ev.Dead {
			c.Dead++
			continue
		}
		c.Pending++
		if c.OldestPending.IsZero() || ev.Time.Before(c.OldestPending) {
			c.OldestPending = ev.Time
		}
	}
	return c
}

// Key is an event's storage key under prefix: zero-padded, so lexical order is sequence order.
func Key(prefix string, seq uint64) string { return fmt.Sprintf("%s%020d", prefix, seq) }
