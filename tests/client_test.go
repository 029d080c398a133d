package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// The Go client drives a process's whole life against the real Vault, with the engine-host
// policy: start (lease renewed), resolve, report, wait while broken, resume on the owner's
// completion, close; and its typed errors.
func TestGoClientWholeStory(t *testing.T) {
	p := setupPeople(t)
	write(t, p.mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": []map[string]any{{"type": "current"}}},
	}})
	ctx := context.Background()
	c := client.New(p.engine, p.mount)
	rememberSecrets("ann-client-password", "ann-client-new-password", "ann-client-expired-token")

	proc, err := c.Start(ctx, client.StartInput{ID: "gc-1", Definition: "orders", Owner: "ann", OwnerEntityID: p.annEntity,
		Current: client.Password("ann", "ann-client-password"), TTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close(ctx)
	creds, err := proc.Resolve(ctx, "crm", client.WithExplain())
	if err != nil || creds.Fields["username"] != "ann" || creds.Source != "definition:orders" || creds.Type != "password" || creds.Explain == nil {
		t.Fatalf("resolve: %+v %v", creds, err)
	}
	if byURL, err := proc.ResolveURL(ctx, "https://crm.example.com/api/customers/7"); err != nil || byURL.Service != "crm" {
		t.Fatalf("resolve by URL: %+v %v", byURL, err)
	}

	// The lease is renewed in the background: after its 3 s TTL, the process still lives.
	waitFor(t, 15*time.Second, func() bool {
		s, err := env.client.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": proc.LeaseID})
		return err == nil && s.Data["last_renewal"] != nil
	})

	verdict, err := proc.Report(ctx, "crm", client.AuthFailed)
	if err != nil || verdict.Action != client.ActionWait || verdict.TaskID == "" {
		t.Fatalf("report: %+v %v", verdict, err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.WaitRunning(ctx) }()
	if _, err := p.ann.Logical().Write(p.mount+"/task/"+verdict.TaskID+"/complete", map[string]any{"credentials": `{"type": "password", "username": "ann", "password": "ann-client-new-password"}`}); err != nil {
		t.Fatal(err)
	}
	proc.Wake() // the webhook told the engine: look now
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitRunning did not return after the task was completed")
	}
	if creds, err := proc.Resolve(ctx, "crm"); err != nil || creds.Fields["password"] != "ann-client-new-password" {
		t.Fatalf("after the completion: %v", err)
	}

	// Typed errors.
	var bad *client.BadRequestError
	if _, err := proc.Resolve(ctx, "nowhere"); !errors.As(err, &bad) || !strings.Contains(bad.Error(), `no layer defines service "nowhere"`) {
		t.Errorf("an unknown service: %v", err)
	}
	if _, err := c.Start(ctx, client.StartInput{ID: "gc-1", Definition: "orders"}); !errors.As(err, &bad) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("an id in use: %v", err)
	}
	if _, err := client.New(p.ann, p.mount).Start(ctx, client.StartInput{ID: "gc-x"}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("a user's token starting a process: %v", err)
	}
	expired, err := c.Start(ctx, client.StartInput{ID: "gc-2", Definition: "orders", Owner: "ann", OwnerEntityID: p.annEntity,
		Current: map[string]any{"type": "token", "token": "ann-client-expired-token", "expires_at": "2020-01-01T00:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	var broken *client.BrokenError
	if _, err := expired.Resolve(ctx, "crm"); !errors.As(err, &broken) || broken.TaskID == "" {
		t.Errorf("the user's expired password: %v", err)
	}
	if err := expired.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if err := proc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := proc.State(ctx); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("after Close: %v", err)
	}
}
