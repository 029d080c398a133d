package pecreds

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/outbox"
)

// One engine host's process that changes state again and again holds at most a few pending
// events (its first and its newest among them), so it cannot fill the outbox and push out
// another host's events.
func TestAttackOneProcessCannotFillTheOutbox(t *testing.T) {
	b, s := getTestBackend(t)
	h := startHook(t, hookSecret)
	h.setFailing(true) // nothing leaves: every event stays pending
	mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"notify_url": h.URL + "/hook", "notify_secret": hookSecret, "notify_max_events": 10})
	ctx := context.Background()
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := b.notifier.enqueue(ctx, s, cfg, outbox.Event{Type: "process-broken", ProcessID: "noisy", Reason: "auth_failed"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.notifier.enqueue(ctx, s, cfg, outbox.Event{Type: "task-opened", ProcessID: "quiet", Reason: "the-last"}); err != nil {
		t.Fatal(err)
	}
	x, err := b.notifier.loaded(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if head, ok := x.Head("quiet"); !ok {
		t.Fatal("the other process's event was pushed out")
	} else if head.Seq != 51 {
		t.Errorf("quiet's event has seq %d", head.Seq)
	}
	if head, _ := x.Head("noisy"); head.Seq != 1 {
		t.Errorf("noisy's first event gave way: head is seq %d", head.Seq)
	}
	keys, err := s.List(ctx, outboxStoragePrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != maxPendingPerProcess+1 || !strings.HasSuffix(keys[len(keys)-2], "50") {
		t.Errorf("the outbox holds %d events (want %d, noisy's newest among them): %v", len(keys), maxPendingPerProcess+1, keys)
	}
	st := mustSucceed(t, b, s, logical.ReadOperation, "notify/status", nil).Data
	if st["pending"] != maxPendingPerProcess+1 || st["overflowed"] != int64(50-maxPendingPerProcess) {
		t.Errorf("notify/status: %v", st)
	}
}

// The largest event the bounded inputs allow fits the 4 KiB an event may take (an owner of "<",
// which JSON writes as 6 bytes each, among them).
func TestLargestEventFitsItsBound(t *testing.T) {
	name := strings.Repeat("n", credential.MaxNameLength)
	ev := outbox.Event{ID: "00000000-0000-0000-0000-000000000000", Type: "process-credentials-updated", ProcessID: name, TaskID: name,
		Service: name, Owner: strings.Repeat("<", credential.MaxOwnerBytes), OwnerEntityID: name, Reason: name}
	body, err := ev.Body()
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > credential.MaxEventBytes {
		t.Errorf("the largest event takes %d bytes; the bound is %d", len(body), credential.MaxEventBytes)
	}
}
