package outbox

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// gatePoster holds every post until `width` are in flight at once (or a deadline passes), and
// records the most seen together and the order per process.
type gatePoster struct {
	mu       sync.Mutex
	inFlight int
	most     int
	order    map[string][]string
	width    int
	arrived  chan struct{}
	once     sync.Once
}

func (g *gatePoster) Post(_ context.Context, ev *Event) error {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	g.order[ev.ProcessID] = append(g.order[ev.ProcessID], ev.ID)
	full := g.inFlight >= g.width
	g.mu.Unlock()
	if full {
		g.once.Do(func() { close(g.arrived) })
	} else {
		select {
		case <-g.arrived:
		case <-time.After(2 * time.Second): // only when concurrency is below width: the test fails
		}
	}
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return nil
}

func TestDeliveriesToDifferentProcessesRunConcurrentlyInOrderEach(t *testing.T) {
	var ids []string
	for n := 1; n <= 3; n++ {
		for _, p := range "abcd" {
			ids = append(ids, fmt.Sprintf("%c%d", p, n))
		}
	}
	store, _, _, d, _ := setup(ids...)
	g := &gatePoster{order: map[string][]string{}, width: 4, arrived: make(chan struct{})}
	d.Poster, d.Concurrency = g, 4
	if _, err := d.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g.most != 4 {
		t.Errorf("at most %d deliveries at once, want 4", g.most)
	}
	for _, p := range "abcd" {
		want := fmt.Sprintf("%c1 %c2 %c3", p, p, p)
		if got := strings.Join(g.order[string(p)], " "); got != want {
			t.Errorf("process %c: %q, want %q", p, got, want)
		}
	}
	if len(store.events) != 0 || d.Index.Len() != 0 {
		t.Errorf("left %d in storage, %d indexed", len(store.events), d.Index.Len())
	}
}

func TestIndexCountsAndEviction(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	x := NewIndex([]Entry{
		{Seq: 5, ProcessID: "b", Time: t0.Add(5 * time.Minute)},
		{Seq: 2, ProcessID: "a", Time: t0.Add(2 * time.Minute), Dead: true},
		{Seq: 3, ProcessID: "a", Time: t0.Add(3 * time.Minute)},
		{Seq: 4, ProcessID: "c", Time: t0.Add(4 * time.Minute), Dead: true},
	})
	if x.NextSeq() != 6 {
		t.Error("sequence numbers must continue after the highest stored")
	}
	c := x.Counts()
	if x.Len() != 4 || c.Pending != 2 || c.Dead != 2 || !c.OldestPending.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("counts %+v, len %d", c, x.Len())
	}
	if e, ok := x.OldestDead(); !ok || e.Seq != 2 {
		t.Errorf("oldest dead %+v", e)
	}
	x.Remove("a", 2)
	if e, _ := x.OldestDead(); e.Seq != 4 {
		t.Errorf("after eviction, oldest dead %+v", e)
	}
	if h, _ := x.Head("a"); h.Seq != 3 {
		t.Errorf("a's head after eviction: %+v", h)
	}
	plan := x.Plan(t0)
	if strings.Join(plan.Due, ",") != "a,b" || strings.Join(plan.Blocked, ",") != "c" {
		t.Errorf("plan %+v", plan)
	}
	x.Remove("c", 4)
	x.Add(Entry{Seq: x.NextSeq(), ProcessID: "b", Time: t0})
	if q := x.queues["b"]; len(q) != 2 || q[1].Seq != 7 {
		t.Errorf("b's queue %+v", q)
	}
	if _, ok := x.OldestDead(); ok || x.Counts().Dead != 0 {
		t.Error("no dead event is left")
	}
}

// The signature verifies with the Standard Webhooks reference library, under either key of a
// rotation's overlap; a tampered body, id or timestamp does not.
func TestSignatureVerifiesWithTheReferenceLibrary(t *testing.T) {
	newSecret, err := NewSecret(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	oldSecret := SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	newKey, err1 := ParseSecret("notify_secret", newSecret)
	oldKey, err2 := ParseSecret("notify_secret", oldSecret)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	body := []byte(`{"id":"msg_1","type":"task-created"}`)
	at := time.Now()
	headers := http.Header{}
	headers.Set(HeaderID, "msg_1")
	headers.Set(HeaderTimestamp, fmt.Sprint(at.Unix()))
	headers.Set(HeaderSignature, Sign("msg_1", at, body, newKey, oldKey))
	if n := strings.Count(headers.Get(HeaderSignature), "v1,"); n != 2 {
		t.Fatalf("%d signatures", n)
	}
	for _, secret := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, headers); err != nil {
			t.Errorf("does not verify: %v", err)
		}
		if err := wh.Verify([]byte(`{"id":"msg_1","type":"task-cancelled"}`), headers); err == nil {
			t.Error("a tampered body verifies")
		}
		for _, h := range []struct{ name, value string }{{HeaderID, "msg_2"}, {HeaderTimestamp, fmt.Sprint(at.Unix() - 1)}} {
			tampered := headers.Clone()
			tampered.Set(h.name, h.value)
			if wh.Verify(body, tampered) == nil {
				t.Errorf("a changed %s verifies", h.name)
			}
		}
	}
	stranger, _ := standardwebhooks.NewWebhook(SecretPrefix + "c3RyYW5nZXItc3RyYW5nZXItc3RyYW5nZXI=")
	if stranger.Verify(body, headers) == nil {
		t.Error("another secret verifies")
	}
}

func TestParseSecretNamesTheRuleNeverTheValue(t *testing.T) {
	cases := map[string]string{
		"plain-old-hmac-key-9":                "does not begin with whsec_",
		"whsec_not*base64!":                   "not base64",
		"whsec_c2hvcnQ=":                      "encodes 5 bytes",
		"whsec_" + strings.Repeat("QUFB", 30): "encodes 90 bytes",
	}
	for secret, why := range cases {
		_, err := ParseSecret("notify_secret", secret)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "notify_secret must be whsec_") {
			t.Errorf("%s: %v", why, err)
			continue
		}
		if strings.Contains(err.Error(), strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("the error echoes the value: %v", err)
		}
	}
}

// A process with many events waiting is served a bounded number per pass, so the next pass (and
// other processes' new events) comes soon; the pass asks to be run again at once.
func TestAPassServesABoundedNumberPerProcess(t *testing.T) {
	ids := make([]string, 0, PerProcessPerPass+5)
	for i := 0; i < PerProcessPerPass+5; i++ {
		ids = append(ids, fmt.Sprintf("a%d", i))
	}
	store, p, c, d, _ := setup(ids...)
	next, err := d.DeliverDue(context.Background())
	if err != nil || len(p.attempts) != PerProcessPerPass || !next.Equal(c.t) {
		t.Fatalf("first pass: %d attempts, next %s (now %s), %v", len(p.attempts), next, c.t, err)
	}
	if next, _ = d.DeliverDue(context.Background()); !next.IsZero() || len(store.delivered) != len(ids) {
		t.Errorf("second pass: delivered %d of %d, next %s", len(store.delivered), len(ids), next)
	}
	for i, id := range store.delivered {
		if id != ids[i] {
			t.Fatalf("out of order: %v", store.delivered)
		}
	}
}

// A process with limit events gives way by its oldest behind the first: the first (perhaps being
// posted) and the newest stay.
func TestCrowdedGivesWayBehindTheFirst(t *testing.T) {
	var entries []Entry
	for seq := uint64(1); seq <= 3; seq++ {
		entries = append(entries, Entry{Seq: seq, ProcessID: "p"})
	}
	entries = append(entries, Entry{Seq: 4, ProcessID: "q"})
	x := NewIndex(entries)
	if _, crowded := x.Crowded("p", 4); crowded {
		t.Error("3 events crowd a limit of 4")
	}
	if _, crowded := x.Crowded("q", 1); crowded {
		t.Error("a lone first event gives way")
	}
	e, crowded := x.Crowded("p", 3)
	if !crowded || e.Seq != 2 {
		t.Errorf("gives way: %+v %v, want seq 2", e, crowded)
	}
}

// An event of a change not done yet is not delivered, nor any behind it of its process; once the
// change is done, they go in order. Has finds an event by id whatever its state.
func TestHeldChangeWaits(t *testing.T) {
	pending := map[string]bool{"c1": true}
	now := time.Now()
	x := NewIndex([]Entry{
		{Seq: 1, ID: "e1", ProcessID: "a", Change: "c1", NextAttempt: now},
		{Seq: 2, ID: "e2", ProcessID: "a", NextAttempt: now},
		{Seq: 3, ID: "e3", ProcessID: "b", Change: "c0", NextAttempt: now},
	})
	x.SetHeld(func(change string) bool { return pending[change] })
	if plan := x.Plan(now); fmt.Sprint(plan.Due) != "[b]" || !plan.Next.IsZero() {
		t.Errorf("with change c1 pending, due %v next %v; want [b] and no time", plan.Due, plan.Next)
	}
	if _, ok := x.Head("a"); ok {
		t.Error("a process whose first event waits for its change has a head to deliver")
	}
	if !x.Has("a", "e1") || x.Has("a", "e3") {
		t.Error("Has does not find events by process and id")
	}
	delete(pending, "c1")
	if plan := x.Plan(now); fmt.Sprint(plan.Due) != "[a b]" {
		t.Errorf("once c1 is done, due %v; want [a b]", plan.Due)
	}
}

// Hurry makes the pending events that wait out a backoff due now, and only those: dead events
// stay dead, and events already due keep their time.
func TestHurryMakesBackedOffEventsDueNow(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	x := NewIndex([]Entry{
		{Seq: 1, ProcessID: "a", NextAttempt: now.Add(10 * time.Minute)},
		{Seq: 2, ProcessID: "a", NextAttempt: now.Add(-time.Hour)},
		{Seq: 3, ProcessID: "b", NextAttempt: now.Add(time.Second)},
		{Seq: 4, ProcessID: "c", NextAttempt: now.Add(time.Hour), Dead: true},
		{Seq: 5, ProcessID: "d", NextAttempt: now.Add(-time.Minute)},
	})
	if p := x.Plan(now); len(p.Due) != 1 || p.Due[0] != "d" {
		t.Fatalf("before: due %v", p.Due)
	}
	if n := x.Hurry(now); n != 2 {
		t.Errorf("hurried %d, want 2", n)
	}
	p := x.Plan(now)
	if strings.Join(p.Due, ",") != "a,b,d" || len(p.Blocked) != 1 || p.Blocked[0] != "c" || !p.Next.IsZero() {
		t.Errorf("after: %+v", p)
	}
	if head, _ := x.Head("d"); !head.NextAttempt.Equal(now.Add(-time.Minute)) {
		t.Errorf("a due event's time changed: %v", head.NextAttempt)
	}
	if x.Hurry(now) != 0 {
		t.Errorf("a second hurry found more")
	}
}
