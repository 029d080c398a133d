package pecreds

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// hook is a webhook receiver: it checks signatures, records bodies, and can be told to fail.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	failing  bool
	received []string
}

func startHook(t *testing.T, secret string) *hook {
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.failing || r.Header.Get("X-Pecreds-Signature") != outbox.Sign(body, secret) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.received = append(h.received, r.Header.Get("X-Pecreds-Event-Id"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) count() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.received) }

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
	b, s := getTestBackend(t)
	h := startHook(t, "hook-key")
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": h.URL + "/hook", "notify_secret": "hook-key"})
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "orders", "current": annJSON, "owner_entity_id": "ent-ann"})
	reportAs(t, b, s, "p", "auth_failed") // process-broken, task-created
	waitUntil(t, 10*time.Second, func() bool { return h.count() == 2 })
	status := func() map[string]any { return mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil).Data }
	waitUntil(t, 10*time.Second, func() bool { return status()["delivered"] == int64(2) && status()["pending"] == 0 })

	h.setFailing(true)
	b.notifier.deadAfter.Store(0)                                                                                             // the first failure is past the limit: dead at once
	mustSucceed(t, b, s, logical.UpdateOperation, "process/p/report", map[string]any{"service": "crm", "error": "forbidden"}) // task-cancelled
	waitUntil(t, 10*time.Second, func() bool { return status()["dead"] == 1 })
	if got := status()["last_error"]; got != "the Task Manager answered HTTP 503 Service Unavailable" {
		t.Errorf("last_error %v", got)
	}
	h.setFailing(false)
	b.notifier.deadAfter.Store(int64(time.Hour))
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
