package pecreds

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The Task Manager outbox: every task and process event is written to storage in the request
// that changes the state, then delivered by the active node at least once, in order per process,
// as a JSON POST signed per Standard Webhooks (notify_webhook.go).

const (
	outboxStoragePrefix = "outbox/"
	notifyStatsKey      = "notify-stats"
)

// notifyStats are the counters notify/status shows that the outbox itself cannot tell. They are
// kept in storage, and in memory once loaded.
type notifyStats struct {
	Delivered     int64     `json:"delivered"`
	Overflowed    int64     `json:"overflowed"`
	LastError     string    `json:"last_error"`
	LastErrorTime time.Time `json:"last_error_time"`
	LastDelivered time.Time `json:"last_delivered_time"`
}

func outboxKey(seq uint64) string { return outbox.Key(outboxStoragePrefix, seq) }

// notifier delivers the outbox: one loop on the active node, woken by new events, serving up to
// notify_concurrency processes at once from an in-memory index of what waits.
type notifier struct {
	b      *backend
	worker worker
	// client bounds each call by the request's context (notify_timeout), not by its own timeout.
	client *http.Client

	mu              sync.Mutex    // guards index loading, admission (the bound), retry
	index           *outbox.Index // nil: not loaded yet
	lastOverflowLog time.Time

	statsMu sync.Mutex // guards stats and their storage entry
	stats   notifyStats
}

func newNotifier(b *backend) *notifier {
	return &notifier{b: b, worker: newWorker(), client: newOutboundClient(0)}
}

// announce tells of a state change: a Vault event, and, with the writer's config's notify_url
// set, an outbox entry written in the caller's request.
func (b *backend) announce(ctx context.Context, s logical.Storage, cfg *configEntry, ev outbox.Event) error {
	b.emit(ctx, "pecreds/"+ev.Type, "process_id", ev.ProcessID, "task_id", ev.TaskID, "service", ev.Service, "owner_entity_id", ev.OwnerEntityID)
	if cfg.NotifyURL == "" {
		return nil
	}
	return b.notifier.enqueue(ctx, s, cfg, ev)
}

func (n *notifier) poke() { n.worker.poke() }

func (n *notifier) start(s logical.Storage) {
	n.worker.run(func(ctx context.Context) { n.loop(ctx, s) })
}

func (n *notifier) stop() { n.worker.stop() }

func (n *notifier) loop(ctx context.Context, s logical.Storage) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.worker.wake:
		case <-timer.C:
		}
		next, err := n.deliverDue(ctx, s)
		if err != nil && ctx.Err() == nil {
			n.b.Logger().Error("delivering notifications", "error", err)
			next = n.b.deps.now().Add(outbox.MinBackoff)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(n.b.deps.now()), 10*time.Millisecond)
		}
		timer.Reset(wait)
	}
}

// loaded is the outbox index, read from storage on first use (once per plugin start).
func (n *notifier) loaded(ctx context.Context, s logical.Storage) (*outbox.Index, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.loadLocked(ctx, s)
}

func (n *notifier) loadLocked(ctx context.Context, s logical.Storage) (*outbox.Index, error) {
	if n.index != nil {
		return n.index, nil
	}
	keys, err := s.List(ctx, outboxStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the outbox: %w", err)
	}
	entries := make([]outbox.Entry, 0, len(keys))
	for _, k := range keys {
		ev, err := loadOutboxEvent(ctx, s, outboxStoragePrefix+k)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			entries = append(entries, ev.Entry())
		}
	}
	if err := n.loadStats(ctx, s); err != nil {
		return nil, err
	}
	n.index = outbox.NewIndex(entries)
	n.index.SetHeld(n.b.changes.holds)
	return n.index, nil
}

func loadOutboxEvent(ctx context.Context, s logical.Storage, key string) (*outbox.Event, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	ev := &outbox.Event{}
	if err := entry.DecodeJSON(ev); err != nil {
		return nil, fmt.Errorf("decoding an outbox event: %w", err)
	}
	return ev, nil
}

// deliverDue delivers what is due (internal/outbox decides), through this node's storage and the
// webhook. It answers when to look again (zero: nothing pending).
func (n *notifier) deliverDue(ctx context.Context, s logical.Storage) (time.Time, error) {
	if !n.b.WriteSafeReplicationState() {
		return time.Time{}, nil
	}
	cfg, err := n.b.getConfig(ctx, s)
	if err != nil || cfg.NotifyURL == "" {
		return time.Time{}, err // switched off: events wait, kept, until a notify_url is set again
	}
	x, err := n.loaded(ctx, s)
	if err != nil {
		return time.Time{}, err
	}
	d := outbox.Deliverer{
		Index: x, Store: outboxStore{n: n, s: s}, Poster: webhookPoster{n: n, s: s},
		Now: n.b.deps.now, DeadAfter: n.b.deps.notifyDeadAfter, Concurrency: cfg.NotifyConcurrency, Holding: &n.mu,
		Dying: func(ev *outbox.Event, err error) {
			n.b.Logger().Warn("notification undeliverable; kept as dead until notify/retry", "event", ev.ID, "type", ev.Type, "process", ev.ProcessID, "error", err)
		},
	}
	return d.DeliverDue(ctx)
}

// hurry makes the pending events that wait out a backoff due now and wakes the delivery: a new
// notify_url or an operator's retry (the receiver is back) need not wait up to 10 minutes. It
// answers how many; on a node that does not deliver, none.
func (n *notifier) hurry(ctx context.Context, s logical.Storage) (int, error) {
	if !n.b.WriteSafeReplicationState() {
		return 0, nil
	}
	x, err := n.loaded(ctx, s)
	if err != nil {
		return 0, err
	}
	due := x.Hurry(n.b.deps.now())
	n.poke()
	return due, nil
}

// retryBatch is how many dead events retry requeues while holding the outbox, between which new
// events get in.
const retryBatch = 100

// retry queues every dead event again, in its place in its process's order, a batch at a time
// under the outbox lock (which the delivery's hold of overdue events takes too), until none is
// left dead: an event held dead meanwhile behind one requeued is requeued as well.
func (n *notifier) retry(ctx context.Context, s logical.Storage) (int, error) {
	x, err := n.loaded(ctx, s)
	if err != nil {
		return 0, err
	}
	requeued, seen := 0, map[uint64]bool{} // each event once: one that dies again meanwhile waits for the next retry
	for {
		done, more, err := n.retryBatch(ctx, s, x, seen)
		requeued += done
		if err != nil || !more {
			n.poke()
			return requeued, err
		}
	}
}

// retryBatch requeues up to retryBatch dead events; more says whether any was left to look at.
func (n *notifier) retryBatch(ctx context.Context, s logical.Storage, x *outbox.Index, seen map[uint64]bool) (done int, more bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var dead []outbox.Entry
	for _, e := range x.Dead() {
		if !seen[e.Seq] && len(dead) < retryBatch {
			dead = append(dead, e)
		}
	}
	if len(dead) == 0 {
		return 0, false, nil
	}
	now := n.b.deps.now().UTC()
	for _, e := range dead {
		seen[e.Seq] = true
		ev, err := loadOutboxEvent(ctx, s, outboxKey(e.Seq))
		switch {
		case err != nil:
			return done, false, err
		case ev == nil:
			x.Remove(e.ProcessID, e.Seq) // gone from storage: the index follows
			continue
		case ev.Dead:
			outbox.Retry(ev, now)
			if err := putOutboxEvent(ctx, s, ev); err != nil {
				return done, false, err
			}
			done++
		}
		x.Update(ev.Entry()) // storage's state, requeued or not
	}
	return done, true, nil
}

// outboxStore is the outbox in Vault storage, with the counters notify/status shows.
type outboxStore struct {
	n *notifier
	s logical.Storage
}

func (o outboxStore) Load(ctx context.Context, seq uint64) (*outbox.Event, error) {
	return loadOutboxEvent(ctx, o.s, outboxKey(seq))
}

func (o outboxStore) Delivered(ctx context.Context, ev *outbox.Event) error {
	if err := o.s.Delete(ctx, outboxKey(ev.Seq)); err != nil {
		return fmt.Errorf("deleting a delivered event: %w", err)
	}
	o.countBestEffort(ctx, func(st *notifyStats) { st.Delivered++; st.LastDelivered = o.n.b.deps.now().UTC() })
	return nil
}

func (o outboxStore) Failed(ctx context.Context, ev *outbox.Event) error {
	if err := putOutboxEvent(ctx, o.s, ev); err != nil {
		return err
	}
	o.countBestEffort(ctx, func(st *notifyStats) { st.LastError, st.LastErrorTime = ev.LastError, o.n.b.deps.now().UTC() })
	return nil
}

// countBestEffort updates the counters after the event's own write: a failure to count is
// logged, never a reason to treat the event's new state as not stored.
func (o outboxStore) countBestEffort(ctx context.Context, change func(*notifyStats)) {
	if err := o.n.updateStats(ctx, o.s, change); err != nil {
		o.n.b.Logger().Warn("notify/status counters not written", "error", err)
	}
}

func (o outboxStore) Held(ctx context.Context, ev *outbox.Event) error {
	return putOutboxEvent(ctx, o.s, ev)
}

func putOutboxEvent(ctx context.Context, s logical.Storage, ev *outbox.Event) error {
	entry, err := logical.StorageEntryJSON(outboxKey(ev.Seq), ev)
	if err != nil {
		return fmt.Errorf("encoding an outbox event: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing an outbox event: %w", err)
	}
	return nil
}

// loadStats reads the counters into memory; the caller holds n.mu, on first use.
func (n *notifier) loadStats(ctx context.Context, s logical.Storage) error {
	entry, err := s.Get(ctx, notifyStatsKey)
	if err != nil {
		return fmt.Errorf("reading notify stats: %w", err)
	}
	st := notifyStats{}
	if entry != nil {
		if err := entry.DecodeJSON(&st); err != nil {
			return fmt.Errorf("decoding notify stats: %w", err)
		}
	}
	n.statsMu.Lock()
	n.stats = st
	n.statsMu.Unlock()
	return nil
}

// counts are the outbox's own counts and the stored counters, as status paths show them.
func (n *notifier) counts(ctx context.Context, s logical.Storage) (outbox.Counts, notifyStats, error) {
	x, err := n.loaded(ctx, s)
	if err != nil {
		return outbox.Counts{}, notifyStats{}, err
	}
	return x.Counts(), n.currentStats(), nil
}

// currentStats is a copy of the counters.
func (n *notifier) currentStats() notifyStats {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	return n.stats
}

// updateStats changes the counters and writes them: one storage write, no read.
func (n *notifier) updateStats(ctx context.Context, s logical.Storage, change func(*notifyStats)) error {
	n.statsMu.Lock()
	defer n.statsMu.Unlock()
	next := n.stats
	change(&next)
	entry, err := logical.StorageEntryJSON(notifyStatsKey, next)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing notify stats: %w", err)
	}
	n.stats = next
	return nil
}
