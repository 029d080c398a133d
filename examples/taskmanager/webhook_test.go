package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// deliver posts a webhook as pecreds does, signed with secret (at time at).
func deliver(t *testing.T, srvURL, secret, id, body string, at time.Time) int {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, at, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srvURL+"/hooks/pecreds", strings.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebhooksVerifiedAndShownToTheirOwner(t *testing.T) {
	srv, _ := testApp(t)
	ev := `{"id":"ev-1","type":"task-created","time":"2030-01-02T03:04:05Z","process_id":"order-7","task_id":"t1","service":"crm","owner":"ann","owner_entity_id":"ent-ann","reason":"auth_failed"}`
	now := time.Now()
	if got := deliver(t, srv.URL, testSecret, "ev-1", ev, now); got != http.StatusNoContent {
		t.Fatalf("a signed delivery: %d", got)
	}
	if got := deliver(t, srv.URL, testSecret, "ev-1", ev, now); got != http.StatusNoContent { // pecreds retries
		t.Fatalf("a retried delivery: %d", got)
	}
	other := "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	forged := strings.ReplaceAll(ev, "ev-1", "ev-2")
	if got := deliver(t, srv.URL, other, "ev-2", forged, now); got != http.StatusUnauthorized {
		t.Errorf("a delivery signed with another secret: %d", got)
	}
	if got := deliver(t, srv.URL, testSecret, "ev-3", strings.ReplaceAll(ev, "ev-1", "ev-3"), now.Add(-time.Hour)); got != http.StatusUnauthorized {
		t.Errorf("a replayed delivery of an hour ago: %d", got)
	}
	if got := deliver(t, srv.URL, testSecret, "ev-4", `{"id":"ev-4","type":"x","reason":"`+strings.Repeat("x", maxWebhookBytes)+`"}`, now); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a delivery past %d bytes: %d", maxWebhookBytes, got)
	}
	body := page(t, srv, signIn(t, srv))
	if strings.Count(body, "task-created") != 1 || !strings.Contains(body, "task t1") {
		t.Errorf("ann's notices: %s", body)
	}
}
