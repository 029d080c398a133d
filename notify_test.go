package pecreds

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// hook is a webhook receiver: it verifies deliveries with the Standard Webhooks reference library
// under the secrets it is given (any one verifying is enough), records every attempt, and can be
// told to fail.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	failing  bool
	attempts []delivery
}

type delivery struct {
	body     []byte
	header   http.Header
	verified bool
	accepted bool // verified, and answered 2xx
}

// hookSecret is a Standard Webhooks secret: whsec_ + base64 of 24 bytes.
const hookSecret = "whsec_aG9vay1zZWNyZXQtaG9vay1zZWNyZXQtaG9vaw=="

func startHook(t *testing.T, secrets ...string) *hook {
	t.Helper()
	var verifiers []*standardwebhooks.Webhook
	for _, secret := range secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, wh)
	}
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d := delivery{body: body, header: r.Header.Clone()}
		for _, wh := range verifiers {
			d.verified = d.verified || wh.Verify(body, r.Header) == nil
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		d.accepted = d.verified && !h.failing
		h.attempts = append(h.attempts, d)
		if !d.accepted {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

// delivered are the accepted deliveries.
func (h *hook) delivered() []delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []delivery
	for _, d := range h.attempts {
		if d.accepted {
			out = append(out, d)
		}
	}
	return out
}

func (h *hook) count() int { return len(h.delivered()) }

// attempted is how many posts reached the receiver, accepted or not.
func (h *hook) attempted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.attempts)
}

func (h *hook) rejected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, d := range h.attempts {
		if !d.verified {
			n++
		}
	}
	return n
}

func (h *hook) setFailing(f bool) { h.mu.Lock(); h.failing = f; h.mu.Unlock() }

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("the condition did not hold within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The outbox's Vault glue: events of a state change are signed, delivered, counted; a failing
// receiver shows in notify/status; dead events are retried.
func TestNotifyDeliveryStatusAndRetry(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	h := startHook(t, hookSecret)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": h.URL + "/hook", "notify_secret": hookSecret})
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "p", "auth_failed") // process-broken, task-created
	waitUntil(t, 10*time.Second, func() bool { return h.count() == 2 })
	status := func() map[string]any { return mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil).Data }
	waitUntil(t, 10*time.Second, func() bool { return status()["delivered"] == int64(2) && status()["pending"] == 0 })

	h.setFailing(true)
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "crm", "error": "forbidden"}) // task-cancelled
	clock.advance(outbox.DeadAfter)                                                                                           // its next attempt finds it past the limit
	b.notifier.poke()
	waitUntil(t, 10*time.Second, func() bool { return status()["dead"] == 1 })
	if got := status()["last_error"]; got != "the Task Manager answered HTTP 503 Service Unavailable" {
		t.Errorf("last_error %v", got)
	}
	h.setFailing(false)
	clock.advance(-outbox.DeadAfter) // back to the receiver's time: it checks each signature's
	if got := mustSucceed(t, b, s, logical.UpdateOperation, "notify/retry", nil).Data["requeued"]; got != 1 {
		t.Errorf("requeued %v", got)
	}
	waitUntil(t, 10*time.Second, func() bool { return h.count() == 3 })
}

// A failing technical token is refreshed once and the engine retries; the fresh token failing
// too breaks the process for an operator's resume (no task: its owner cannot fix it).
func TestTechnicalRetryThenBrokenThenResume(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "app", "client_secret": "app-secret"})
	mustSucceed(t, b, s, logical.CreateOperation, "registry/tech", map[string]any{"services": `[{"name": "crm", "credentials": [{"type": "technical", "name": "idp"}]}]`})
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "tech"})
	if got := reportAs(t, b, s, "p", "auth_failed"); got["action"] != "retry" || srv.Requests("app") != 2 {
		t.Fatalf("first report %v, %d token requests", got, srv.Requests("app"))
	}
	got := reportAs(t, b, s, "p", "auth_failed")
	if got["health"] != "broken" || got["task_id"] != "" {
		t.Fatalf("the fresh token failing too: %v", got)
	}
	mustFailCode(t, b, s, logical.UpdateOperation, "process/nobody/resume", http.StatusNotFound)
	resp := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/resume", nil).Data
	if resp["health"] != "running" || resp["health_reason"] != "" {
		t.Errorf("after resume %v", resp)
	}
	mustFail(t, b, s, logical.UpdateOperation, "process/p/resume", nil, `process "p" is running, not broken`)
}

// task/mine lists the caller's own open tasks, with what each is about.
func TestTaskMine(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	taskID := reportAs(t, b, s, "p", "auth_failed")["task_id"].(string)
	list := func(entity string) *logical.Response {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ListOperation, Path: "task/mine/", Storage: s, EntityID: entity})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ann := list("ent-ann").Data
	info := ann["key_info"].(map[string]any)[taskID].(map[string]any)
	if keys := ann["keys"].([]string); len(keys) != 1 || keys[0] != taskID || info["process_id"] != "p" || info["service"] != "crm" || info["reason"] != "auth_failed" {
		t.Errorf("ann's tasks %v", ann)
	}
	for _, entity := range []string{"ent-bob", ""} {
		if keys, _ := list(entity).Data["keys"].([]string); len(keys) != 0 {
			t.Errorf("%q sees %v", entity, keys)
		}
	}
}

// A rotation answers the new secret once; during the overlap every delivery carries both
// signatures, so a receiver holding either verifies; with no overlap, only the new one signs.
func TestNotifyRotationSignsWithBothSecretsDuringTheOverlap(t *testing.T) {
	b, s := getTestBackend(t)
	h := startHook(t, hookSecret)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": h.URL + "/hook", "notify_secret": hookSecret})
	setupLayers(t, b, s)
	rotated := mustSucceed(t, b, s, logical.UpdateOperation, "notify/rotate-secret", nil).Data
	newSecret, _ := rotated["notify_secret"].(string)
	until, _ := time.Parse(time.RFC3339, rotated["previous_secret_until"].(string))
	if !strings.HasPrefix(newSecret, "whsec_") || newSecret == hookSecret || time.Until(until) < 23*time.Hour {
		t.Fatalf("rotate answered %v", rotated)
	}
	if cfg := mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data; cfg["notify_previous_secret_until"] != rotated["previous_secret_until"] {
		t.Errorf("config read: %v", cfg)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "p", "auth_failed") // two events
	waitUntil(t, 10*time.Second, func() bool { return h.count() == 2 })
	newHook, _ := standardwebhooks.NewWebhook(newSecret)
	for _, d := range h.delivered() {
		if n := strings.Count(d.header.Get("webhook-signature"), "v1,"); n != 2 {
			t.Errorf("%d signatures during the overlap", n)
		}
		if err := newHook.Verify(d.body, d.header); err != nil {
			t.Errorf("the new secret does not verify: %v", err)
		}
	}

	// No overlap: the next rotation's deliveries carry the new signature only, so a receiver
	// still holding the first secret rejects them.
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret_overlap": 0})
	third := mustSucceed(t, b, s, logical.UpdateOperation, "notify/rotate-secret", nil).Data
	if third["previous_secret_until"] != "" {
		t.Errorf("no overlap, yet %v", third)
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "crm", "error": "forbidden"}) // task-cancelled
	waitUntil(t, 10*time.Second, func() bool { return h.rejected() > 0 })
	h.mu.Lock()
	last := h.attempts[len(h.attempts)-1]
	h.mu.Unlock()
	thirdHook, _ := standardwebhooks.NewWebhook(third["notify_secret"].(string))
	if n := strings.Count(last.header.Get("webhook-signature"), "v1,"); n != 1 || thirdHook.Verify(last.body, last.header) != nil {
		t.Errorf("after a rotation without overlap: %q", last.header.Get("webhook-signature"))
	}
}

// A full outbox keeps no new event but the state change still happens, counted as overflowed;
// once events are dead, the oldest of them makes room, and is counted too.
func TestNotifyFullOutboxOverflowsThenEvictsTheOldestDead(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	h := startHook(t, hookSecret)
	h.setFailing(true)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": h.URL + "/hook", "notify_secret": hookSecret, "notify_max_events": 3})
	setupLayers(t, b, s)
	breakIt := func(id string) map[string]any {
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
		return reportAs(t, b, s, id, "auth_failed")
	}
	status := func() map[string]any { return mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil).Data }
	breakIt("p1")
	if got := breakIt("p2"); got["health"] != "broken" || got["task_id"] == "" {
		t.Fatalf("the state change must happen even when its event is not kept: %v", got)
	}
	if st := status(); st["pending"] != 3 || st["overflowed"] != int64(1) {
		t.Fatalf("a full outbox: %v", st)
	}
	clock.advance(outbox.DeadAfter) // the next attempts find every event past the limit
	b.notifier.poke()
	waitUntil(t, 10*time.Second, func() bool { return status()["dead"] == 3 })
	breakIt("p3") // two events, each making room by dropping the oldest dead one: lost, so counted
	if st := status(); st["dead"] != 1 || st["pending"] != 2 || st["overflowed"] != int64(3) {
		t.Errorf("after making room: %v", st)
	}
}

// Lowering the overlap shortens a running one (0 ends it); clearing the secret clears both.
func TestNotifyOverlapEndsEarlyAndClearingClearsBoth(t *testing.T) {
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret": hookSecret})
	mustSucceed(t, b, s, logical.UpdateOperation, "notify/rotate-secret", nil)
	until := func() any {
		return mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data["notify_previous_secret_until"]
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret_overlap": "1h"})
	if got, _ := time.Parse(time.RFC3339, until().(string)); time.Until(got) > time.Hour {
		t.Errorf("a 1h overlap still runs until %v", got)
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret_overlap": 0})
	cfg, _ := b.getConfig(context.Background(), s)
	if until() != "" || cfg.NotifyPreviousSecret != "" {
		t.Errorf("overlap 0 keeps the previous secret until %v", until())
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret_overlap": "24h"})
	mustSucceed(t, b, s, logical.UpdateOperation, "notify/rotate-secret", nil)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret": ""})
	if cfg, _ := b.getConfig(context.Background(), s); cfg.NotifySecret != "" || cfg.NotifyPreviousSecret != "" {
		t.Error("a cleared secret leaves a secret stored")
	}
}

// A secret of the form before Standard Webhooks (an upgrade) signs nothing: events wait,
// unattempted, and config and notify/status warn; a new secret lets them go.
func TestNotifyOldFormSecretPausesDelivery(t *testing.T) {
	b, s := getTestBackend(t)
	h := startHook(t, hookSecret)
	setupLayers(t, b, s)
	cfg := *defaultConfig()
	cfg.GlobalRegistries = []string{"common"}
	cfg.NotifyURL, cfg.NotifySecret = h.URL+"/hook", "an-old-hmac-key"
	if err := b.putConfig(context.Background(), s, &cfg); err != nil {
		t.Fatal(err)
	}
	b.notifier.stop() // this test drives delivery itself
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "p", "auth_failed")
	if _, err := b.notifier.deliverDue(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	status := mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil)
	if n := h.attempted(); n != 0 || status.Data["pending"] != 2 || status.Data["last_error"] != "" {
		t.Fatalf("with an old-form secret: %d posts, status %v", n, status.Data)
	}
	for _, resp := range []*logical.Response{status, mustSucceed(t, b, s, logical.ReadOperation, "config", nil)} {
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "deliveries are paused") || strings.Contains(resp.Warnings[0], "an-old-hmac-key") {
			t.Errorf("warnings %v", resp.Warnings)
		}
	}
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_secret": hookSecret})
	if _, err := b.notifier.deliverDue(context.Background(), s); err != nil || h.count() != 2 {
		t.Errorf("after a new secret: %d delivered, %v", h.count(), err)
	}
}

// Events waiting out their backoff after failed deliveries go at once when notify_url changes to
// a new receiver, and when an operator calls notify/retry, instead of after up to 10 minutes.
// The clock stands still, so without that nothing would fall due.
func TestNotifyURLChangeAndRetrySendPendingNow(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	broken := startHook(t, hookSecret)
	broken.setFailing(true)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": broken.URL + "/hook", "notify_secret": hookSecret})
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "p", "auth_failed") // process-broken, task-created
	// backingOff: the failed attempt is recorded, and the process's first event waits for a time.
	backingOff := func() bool {
		x, err := b.notifier.loaded(t.Context(), s)
		return err == nil && x.Plan(clock.now()).Next.After(clock.now())
	}
	waitUntil(t, 10*time.Second, backingOff)
	status := func() map[string]any { return mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil).Data }
	if got := status()["pending"]; got != 2 || broken.attempted() != 1 {
		t.Fatalf("pending %v after %d attempts", got, broken.attempted())
	}

	fixed := startHook(t, hookSecret)
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": fixed.URL + "/hook"})
	waitUntil(t, 10*time.Second, func() bool { return fixed.count() == 2 })

	fixed.setFailing(true)
	reportAs(t, b, s, "p", "forbidden") // task-cancelled, fails at the fixed receiver
	waitUntil(t, 10*time.Second, backingOff)
	fixed.setFailing(false)
	got := mustSucceed(t, b, s, logical.UpdateOperation, "notify/retry", nil).Data
	if got["requeued"] != 0 || got["due_now"] != 1 {
		t.Errorf("retry answered %v", got)
	}
	waitUntil(t, 10*time.Second, func() bool { return fixed.count() == 3 })
	if broken.attempted() != 1 {
		t.Errorf("the old receiver was tried %d times", broken.attempted())
	}
}
