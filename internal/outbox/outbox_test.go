package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is an outbox in memory.
type memStore struct {
	mu        sync.Mutex
	events    map[uint64]*Event
	delivered []string // ids, in delivery order
	failures  []string // ids of failed attempts, in order: what notify/status's last_error follows
}

func (m *memStore) Load(_ context.Context, seq uint64) (*Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev, ok := m.events[seq]
	if !ok {
		return nil, nil
	}
	c := *ev
	return &c, nil
}

func (m *memStore) Delivered(_ context.Context, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.events, ev.Seq)
	m.delivered = append(m.delivered, ev.ID)
	return nil
}

func (m *memStore) Failed(_ context.Context, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *ev
	m.events[ev.Seq] = &c
	m.failures = append(m.failures, ev.ID)
	return nil
}

func (m *memStore) Held(_ context.Context, ev *Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *ev
	m.events[ev.Seq] = &c
	return nil
}

// poster fails the processes it is told to, and records every attempt.
type poster struct {
	mu       sync.Mutex
	failing  map[string]bool
	attempts []string
	cancel   context.CancelFunc // when set, an attempt cancels the context (a stopping plugin)
	during   func()             // when set, runs while an attempt is posted
}

func (p *poster) Post(_ context.Context, ev *Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts = append(p.attempts, ev.ID)
	if p.during != nil {
		p.during()
	}
	if p.cancel != nil {
		p.cancel()
		return errors.New("interrupted")
	}
	if p.failing[ev.ProcessID] {
		return errors.New("the Task Manager answered HTTP 503 Service Unavailable")
	}
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// indexOf indexes what the store holds, as the plugin does when it starts.
func indexOf(m *memStore) *Index {
	var entries []Entry
	for _, ev := range m.events {
		entries = append(entries, ev.Entry())
	}
	return NewIndex(entries)
}

func setup(ids ...string) (*memStore, *poster, *clock, *Deliverer, *[]string) {
	c := &clock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	store := &memStore{events: map[uint64]*Event{}}
	for i, id := range ids { // "a1" is process a's first event
		store.events[uint64(i+1)] = &Event{Seq: uint64(i + 1), ID: id, ProcessID: id[:1], Time: c.t, Since: c.t, NextAttempt: c.t}
	}
	p := &poster{failing: map[string]bool{}}
	var dying []string
	d := &Deliverer{Index: indexOf(store), Store: store, Poster: p, Now: c.now, DeadAfter: DeadAfter, Concurrency: 1,
		Dying: func(ev *Event, _ error) { dying = append(dying, ev.ID) }}
	return store, p, c, d, &dying
}

func TestDeliverInOrderPerProcess(t *testing.T) {
	store, p, c, d, _ := setup("a1", "b1", "a2", "b2", "a3")
	p.failing["a"] = true
	next, err := d.DeliverDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// a1 fails: a2 and a3 wait behind it; b's events go on.
	if got := strings.Join(p.attempts, " "); got != "a1 b1 b2" {
		t.Errorf("attempts %q", got)
	}
	if next != c.t.Add(time.Second) || store.events[1].Attempts != 1 || store.events[1].LastError == "" {
		t.Errorf("next look %s, a1 %+v", next, store.events[1])
	}
	// Not due yet: nothing is tried.
	c.advance(500 * time.Millisecond)
	p.attempts = nil
	if next, _ = d.DeliverDue(context.Background()); len(p.attempts) != 0 || next != c.t.Add(500*time.Millisecond) {
		t.Errorf("before the backoff: attempts %v, next %s", p.attempts, next)
	}
	// The receiver is back: a's events arrive, in order.
	p.failing["a"] = false
	c.advance(time.Second)
	if next, _ = d.DeliverDue(context.Background()); !next.IsZero() {
		t.Errorf("next %s with nothing pending", next)
	}
	if got := strings.Join(store.delivered, " "); got != "b1 b2 a1 a2 a3" {
		t.Errorf("delivered %q", got)
	}
}

func TestBackoffDoublesToTenMinutes(t *testing.T) {
	store, p, c, d, _ := setup("a1")
	p.failing["a"] = true
	var waits []time.Duration
	for i := 0; i < 12; i++ {
		next, _ := d.DeliverDue(context.Background())
		waits = append(waits, next.Sub(c.t))
		c.t = next
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600}
	for i, w := range want {
		if waits[i] != w*time.Second {
			t.Errorf("wait %d: %s, want %ds", i+1, waits[i], w)
		}
	}
	if store.events[1].Attempts != 12 {
		t.Errorf("attempts %d", store.events[1].Attempts)
	}
}

func TestDeadAfterTheLimitHoldsItsProcessUntilRetried(t *testing.T) {
	store, p, c, d, dying := setup("a1", "a2", "b1")
	p.failing["a"], p.failing["b"] = true, true
	_, _ = d.DeliverDue(context.Background())
	c.advance(DeadAfter - time.Minute)
	_, _ = d.DeliverDue(context.Background())
	if store.events[1].Dead || len(*dying) != 0 {
		t.Fatalf("dead before the limit: %+v", store.events[1])
	}
	p.failing["b"] = false
	c.advance(time.Minute)
	_, _ = d.DeliverDue(context.Background())
	// a1 dies at its limit; a2, held behind it as long, dies with it without being tried (and
	// without counting as a failed delivery).
	if !store.events[1].Dead || !store.events[2].Dead || strings.Join(*dying, " ") != "a1" {
		t.Fatalf("at the limit: %+v %+v, dying %v", store.events[1], store.events[2], *dying)
	}
	for _, id := range store.failures {
		if id == "a2" {
			t.Fatal("a2 counted as a failed delivery")
		}
	}
	for _, id := range p.attempts {
		if id == "a2" {
			t.Fatal("a2 was tried while a1 was not delivered")
		}
	}
	// Dead: never tried again until a retry; b goes on.
	p.failing["a"], p.attempts = false, nil
	c.advance(time.Hour)
	if next, _ := d.DeliverDue(context.Background()); !next.IsZero() || len(p.attempts) != 0 {
		t.Errorf("with a dead event: next %s, attempts %v", next, p.attempts)
	}
	if len(store.delivered) != 1 || store.delivered[0] != "b1" {
		t.Errorf("delivered %v", store.delivered)
	}
	// Retried: in its place, its limit counted from now.
	for _, e := range d.Index.Dead() {
		ev, _ := store.Load(context.Background(), e.Seq)
		Retry(ev, c.t)
		_ = store.Held(context.Background(), ev)
		d.Index.Update(ev.Entry())
	}
	if store.events[1].Dead || store.events[2].Dead || store.events[1].Since != c.t || store.events[1].Attempts != 0 {
		t.Errorf("after retry %+v %+v", store.events[1], store.events[2])
	}
	_, _ = d.DeliverDue(context.Background())
	if got := strings.Join(store.delivered, " "); got != "b1 a1 a2" {
		t.Errorf("delivered %q", got)
	}
}

func TestInterruptedDeliveryIsNoAttempt(t *testing.T) {
	store, p, _, d, _ := setup("a1")
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	if _, err := d.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	if store.events[1].Attempts != 0 || store.events[1].LastError != "" {
		t.Errorf("an interrupted delivery counted: %+v", store.events[1])
	}
}

func TestBodyAndKey(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ev := &Event{Seq: 7, ID: "e", Type: "task-created", Time: t0, ProcessID: "p", TaskID: "t", LastError: "internal", Attempts: 3}
	body, err := ev.Body()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	_ = json.Unmarshal(body, &fields)
	if len(fields) != 9 || fields["time"] != "2026-11-29T12:00:00Z" || fields["last_error"] != nil {
		t.Errorf("body %s", body)
	}
	if Key("outbox/", 42) != "outbox/00000000000000000042" {
		t.Error(Key("outbox/", 42))
	}
}

// An attempt that fails while the index is hurried (notify_url changed during the post) does not
// back off: it may have gone to the receiver being replaced, so the pass tries again at once
// (reading the new receiver). That one failing too backs off; so does one with no hurry.
func TestAttemptSpanningAHurryIsTriedAgainAtOnce(t *testing.T) {
	store, p, c, d, _ := setup("a1", "b1")
	p.failing["a"], p.failing["b"] = true, true
	p.during = func() {
		if len(p.attempts) == 1 {
			d.Index.Hurry(c.now())
		}
	}
	if _, err := d.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.attempts, " "); got != "a1 a1 b1" {
		t.Errorf("attempts %q", got)
	}
	if a, b := store.events[1], store.events[2]; !a.NextAttempt.Equal(c.t.Add(2*time.Second)) || a.Attempts != 2 || !b.NextAttempt.Equal(c.t.Add(time.Second)) {
		t.Errorf("a1 next %s (%d attempts), b1 next %s", a.NextAttempt, a.Attempts, b.NextAttempt)
	}
}
