package pecreds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// The Task Manager outbox: every task and process event is written to storage in the request
// that changes the state, then delivered by the active node at least once, in order per process,
// as a signed JSON POST.

const (
	outboxStoragePrefix = "outbox/"
	notifyStatsKey      = "notify-stats"

	// defaultNotifyDeadAfter: an event still undelivered this long after it was made is dead.
	defaultNotifyDeadAfter = outbox.DeadAfter
	// notifyDeadAfterEnv shortens that, for tests only (set in the plugin's registration).
	notifyDeadAfterEnv = "PECREDS_NOTIFY_DEAD_AFTER"
)

// notifyEvent is one event, as the outbox keeps it (internal/outbox).
type notifyEvent = outbox.Event

// notifyStats are the counters notify/status shows that the outbox itself cannot tell.
type notifyStats struct {
	Delivered int64  `json:"delivered"`
	LastError string `json:"last_error"`
}

func outboxKey(seq uint64) string { return outbox.Key(outboxStoragePrefix, seq) }

// notifier delivers the outbox: one loop on the active node, woken by new events.
type notifier struct {
	b         *backend
	deadAfter atomic.Int64 // nanoseconds; a test shortens it (PECREDS_NOTIFY_DEAD_AFTER, or directly)
	worker    worker
	// client bounds each call by the request's context (notify_timeout), not by its own timeout.
	client *http.Client

	mu  sync.Mutex // guards seq
	seq uint64     // the last sequence number used; 0: not loaded yet
}

func newNotifier(b *backend) *notifier {
	n := &notifier{b: b, worker: newWorker(), client: newOutboundClient(0)}
	n.deadAfter.Store(int64(defaultNotifyDeadAfter))
	if d, err := time.ParseDuration(os.Getenv(notifyDeadAfterEnv)); err == nil && d > 0 {
		n.deadAfter.Store(int64(d))
	}
	return n
}

// announce tells of a state change: a Vault event, and, with notify_url set, an outbox entry
// written in the caller's request.
func (b *backend) announce(ctx context.Context, s logical.Storage, ev notifyEvent) error {
	b.emit(ctx, "pecreds/"+ev.Type, "process_id", ev.ProcessID, "task_id", ev.TaskID, "service", ev.Service, "owner_entity_id", ev.OwnerEntityID)
	cfg, err := b.getConfig(ctx, s)
	if err != nil || cfg.NotifyURL == "" {
		return err
	}
	return b.notifier.enqueue(ctx, s, ev)
}

func (n *notifier) enqueue(ctx context.Context, s logical.Storage, ev notifyEvent) error {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return fmt.Errorf("making an event id: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seq == 0 {
		keys, err := s.List(ctx, outboxStoragePrefix)
		if err != nil {
			return fmt.Errorf("listing the outbox: %w", err)
		}
		for _, k := range keys {
			if v, err := strconv.ParseUint(k, 10, 64); err == nil && v > n.seq {
				n.seq = v
			}
		}
	}
	now := time.Now().UTC()
	ev.Seq, ev.ID, ev.Time, ev.Since, ev.NextAttempt = n.seq+1, id, now, now, now
	entry, err := logical.StorageEntryJSON(outboxKey(ev.Seq), ev)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing the outbox: %w", err)
	}
	n.seq = ev.Seq
	n.poke()
	return nil
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
			next = time.Now().Add(outbox.MinBackoff)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 10*time.Millisecond)
		}
		timer.Reset(wait)
	}
}

// loadOutbox reads every event, in sequence order.
func loadOutbox(ctx context.Context, s logical.Storage) ([]*notifyEvent, error) {
	keys, err := s.List(ctx, outboxStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the outbox: %w", err)
	}
	sort.Strings(keys) // zero-padded: lexical order is sequence order
	out := make([]*notifyEvent, 0, len(keys))
	for _, k := range keys {
		entry, err := s.Get(ctx, outboxStoragePrefix+k)
		if err != nil {
			return nil, fmt.Errorf("reading the outbox: %w", err)
		}
		if entry == nil {
			continue
		}
		ev := &notifyEvent{}
		if err := entry.DecodeJSON(ev); err != nil {
			return nil, fmt.Errorf("decoding an outbox event: %w", err)
		}
		out = append(out, ev)
	}
	return out, nil
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
	d := outbox.Deliverer{
		Store: outboxStore{n: n, s: s}, Poster: webhookPoster{n: n, cfg: cfg}, Now: time.Now, DeadAfter: time.Duration(n.deadAfter.Load()),
		Dying: func(ev *notifyEvent, err error) {
			n.b.Logger().Warn("notification undeliverable; kept as dead until notify/retry", "event", ev.ID, "type", ev.Type, "process", ev.ProcessID, "error", err)
		},
	}
	return d.DeliverDue(ctx)
}

// outboxStore is the outbox in Vault storage, with the counters notify/status shows.
type outboxStore struct {
	n *notifier
	s logical.Storage
}

func (o outboxStore) Events(ctx context.Context) ([]*notifyEvent, error) { return loadOutbox(ctx, o.s) }

func (o outboxStore) Delivered(ctx context.Context, ev *notifyEvent) error {
	if err := o.s.Delete(ctx, outboxKey(ev.Seq)); err != nil {
		return fmt.Errorf("deleting a delivered event: %w", err)
	}
	return o.n.updateStats(ctx, o.s, func(st *notifyStats) { st.Delivered++ })
}

func (o outboxStore) Failed(ctx context.Context, ev *notifyEvent) error {
	if err := putOutboxEvent(ctx, o.s, ev); err != nil {
		return err
	}
	return o.n.updateStats(ctx, o.s, func(st *notifyStats) { st.LastError = ev.LastError })
}

func (o outboxStore) Held(ctx context.Context, ev *notifyEvent) error {
	return putOutboxEvent(ctx, o.s, ev)
}

func putOutboxEvent(ctx context.Context, s logical.Storage, ev *notifyEvent) error {
	entry, err := logical.StorageEntryJSON(outboxKey(ev.Seq), ev)
	if err != nil {
		return fmt.Errorf("encoding an outbox event: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing an outbox event: %w", err)
	}
	return nil
}

// webhookPoster posts to config's notify_url, signed.
type webhookPoster struct {
	n   *notifier
	cfg *configEntry
}

func (w webhookPoster) Post(ctx context.Context, ev *notifyEvent) error {
	body, err := ev.Body()
	if err != nil {
		return err
	}
	return w.n.post(ctx, w.cfg, ev.ID, body)
}

func (n *notifier) post(ctx context.Context, cfg *configEntry, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.NotifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return errors.New("the notify_url does not make a request") // the parser's error quotes the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Pecreds-Event-Id", id)
	req.Header.Set("X-Pecreds-Signature", outbox.Sign(body, cfg.NotifySecret))
	// The outbound client follows no redirect: a redirected POST would arrive elsewhere, or as
	// a bodiless GET whose 2xx would count an event delivered that never was.
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the Task Manager could not be reached: %s", describeTransportError(err))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the Task Manager answered %s", describeStatus(resp.StatusCode))
	}
	return nil
}

func (n *notifier) getStats(ctx context.Context, s logical.Storage) (*notifyStats, error) {
	entry, err := s.Get(ctx, notifyStatsKey)
	if err != nil {
		return nil, fmt.Errorf("reading notify stats: %w", err)
	}
	st := &notifyStats{}
	if entry != nil {
		if err := entry.DecodeJSON(st); err != nil {
			return nil, fmt.Errorf("decoding notify stats: %w", err)
		}
	}
	return st, nil
}

func (n *notifier) updateStats(ctx context.Context, s logical.Storage, change func(*notifyStats)) error {
	st, err := n.getStats(ctx, s)
	if err != nil {
		return err
	}
	change(st)
	entry, err := logical.StorageEntryJSON(notifyStatsKey, st)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing notify stats: %w", err)
	}
	return nil
}
