package temporal_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pecreds/vault-plugin-pecreds/integrations/temporal"
)

// The bridge answers only deliveries signed with the mount's secret, and acts only on the events
// that mean a process runs again: the rest are acknowledged without a call to Temporal (it has no
// client here: a call would panic).
func TestWebhookBridgeVerifiesAndIgnoresOtherEvents(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	if _, err := temporal.NewWebhookBridge(nil, "not-a-secret"); err == nil || strings.Contains(err.Error(), "not-a-secret") {
		t.Errorf("a bad secret: %v, want an error that does not echo it", err)
	}
	bridge, err := temporal.NewWebhookBridge(nil, secret)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("QUJD", 8))
	post := func(hook *standardwebhooks.Webhook, method, body string) int {
		return postAs(t, bridge, hook, "msg_1", method, body)
	}
	completed := `{"type": "task-completed", "process_id": "order-42.r1"}`
	for name, c := range map[string]struct {
		code int
		got  int
	}{
		"signed with another secret":   {http.StatusUnauthorized, post(other, http.MethodPost, completed)},
		"not a POST":                   {http.StatusMethodNotAllowed, post(signer, http.MethodGet, completed)},
		"process-broken, acknowledged": {http.StatusNoContent, post(signer, http.MethodPost, `{"type": "process-broken", "process_id": "order-42.r1"}`)},
		"task-created, acknowledged":   {http.StatusNoContent, post(signer, http.MethodPost, `{"type": "task-created", "process_id": "order-42.r1"}`)},
	} {
		if c.got != c.code {
			t.Errorf("%s: %d, want %d", name, c.got, c.code)
		}
	}
}

// postAs delivers body to the bridge as a delivery of id, signed with hook now, and answers the status.
func postAs(t *testing.T, bridge *temporal.WebhookBridge, hook *standardwebhooks.Webhook, id, method, body string) int {
	t.Helper()
	req := httptest.NewRequest(method, "/pecreds", strings.NewReader(body))
	now := time.Now()
	sig, err := hook.Sign(id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	w := httptest.NewRecorder()
	bridge.ServeHTTP(w, req)
	return w.Code
}

// A delivery is acted on once: the same webhook-id again (a captured delivery replayed within its
// signature's window) is acknowledged without a call to Temporal (there is no client here: a
// call would panic), however many times it comes.
func TestWebhookBridgeActsOnADeliveryOnce(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	bridge, err := temporal.NewWebhookBridge(nil, secret)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := standardwebhooks.NewWebhook(secret)
	if code := postAs(t, bridge, signer, "msg_7", http.MethodPost, `{"type": "process-broken", "process_id": "order-42.r1"}`); code != http.StatusNoContent {
		t.Fatalf("first delivery: %d", code)
	}
	for range 1000 {
		if code := postAs(t, bridge, signer, "msg_7", http.MethodPost, `{"type": "task-completed", "process_id": "order-42.r1"}`); code != http.StatusNoContent {
			t.Fatalf("a replay: %d, want 204 and nothing done", code)
		}
	}
}
