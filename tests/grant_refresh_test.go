package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/tests/internal/hydra"
)

// TestProcessGrantRefreshHydra: a process whose current credentials are a real grant of Ory Hydra
// (authorization-code flow, 10-second access tokens, refresh-token rotation with reuse detection
// and no grace period), resolved for 30 seconds, serves an access token that Hydra's introspection
// calls active — but for the moment of each refresh, when Hydra has ended the old access token and
// the new one is being stored — the plugin refreshes it before it expires and never sends a spent
// refresh token (Hydra would revoke the whole grant, and no token would be active again). A grant revoked at Hydra (/oauth2/revoke)
// ends, at the plugin's next refresh, in a broken process with a task for its owner.
func TestProcessGrantRefreshHydra(t *testing.T) {
	ctx := context.Background()
	h := startHydra(t, "hydra-grant-refresh", 0)
	mount := newMount(t)
	client, err := h.CreateClient(ctx, hydra.AuthBasic)
	if err != nil {
		t.Fatal(err)
	}
	rememberSecrets(client.Secret)
	// The client has the code and refresh grants only: its own client-credentials token is
	// refused, and the technical credential is stored with a warning, as it is for any first
	// token request that fails. Grants authenticate through it all the same.
	if _, err := env.client.Logical().Write(mount+"/technical/idp", map[string]any{"type": "oauth2", "token_url": h.TokenURL(),
		"client_id": client.ID, "client_secret": client.Secret}); err != nil {
		t.Fatal(err)
	}
	write(t, mount+"/registry/orders", map[string]any{"services": `[{"name": "crm", "credentials": [{"type": "current"}]}]`})

	start := func(id, user string) hydra.Token {
		t.Helper()
		tok := mustAuthorize(t, h, client, user)
		rememberSecrets(tok.AccessToken, tok.RefreshToken)
		write(t, mount+"/process/"+id, map[string]any{"definition": "orders", "owner": user, "current": map[string]any{
			"type": "oauth2_user", "access_token": tok.AccessToken, "refresh_token": tok.RefreshToken,
			"expires_in": tok.ExpiresIn, "scope": tok.Scope, "client": "idp"}})
		return tok
	}

	t.Run("kept fresh", func(t *testing.T) {
		start("g1", "ann")
		served, windows := map[string]bool{}, 0
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			got := read(t, mount+"/process/g1/resolve/crm").Data
			at, _ := got["access_token"].(string)
			if mustIntrospect(t, h, at).Active {
				served[at] = true
				continue
			}
			// Hydra ends the previous access token when it answers a refresh, before the plugin
			// can have stored the new one: within that window (one token request and one storage
			// write) the old token is inactive, and right after it the new one is served.
			var again string
			waitFor(t, 2*time.Second, func() bool {
				again, _ = read(t, mount+"/process/g1/resolve/crm").Data["access_token"].(string)
				return again != at
			})
			if !mustIntrospect(t, h, again).Active {
				t.Fatalf("resolve served an access token Hydra calls inactive (expires_at %v)", got["expires_at"])
			}
			windows++
			served[again] = true
		}
		// 30 s of 10-second tokens refreshed at 0.67 of their life: the first and four or so more.
		if len(served) < 4 {
			t.Errorf("%d access tokens served in 30 s, want at least 4", len(served))
		}
		t.Logf("%d access tokens served; %d resolves fell in a refresh's window", len(served), windows)
		if p := read(t, mount+"/process/g1").Data; p["health"] != "running" || p["current_credentials"] != "kept" {
			t.Errorf("process %v", p)
		}
	})

	// A grant in the runtime layer (the engine's credentials activity) is kept fresh in its place.
	t.Run("runtime layer", func(t *testing.T) {
		write(t, mount+"/process/g3", map[string]any{"definition": "orders", "owner": "cy"})
		tok := mustAuthorize(t, h, client, "cy")
		rememberSecrets(tok.AccessToken, tok.RefreshToken)
		write(t, mount+"/process/g3/credentials", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{
			"type": "oauth2_user", "access_token": tok.AccessToken, "refresh_token": tok.RefreshToken, "expires_in": tok.ExpiresIn, "client": "idp"}}}}})
		served, every := map[string]bool{}, time.NewTicker(500*time.Millisecond)
		defer every.Stop()
		for end := time.Now().Add(25 * time.Second); time.Now().Before(end); <-every.C {
			got := read(t, mount+"/process/g3/resolve/crm").Data
			if got["source"] != "runtime" {
				t.Fatalf("resolved from %v, want the runtime layer", got["source"])
			}
			at, _ := got["access_token"].(string)
			if mustIntrospect(t, h, at).Active {
				served[at] = true
			}
		}
		// 25 s of 10-second tokens: three at least, each active when served. A refresh token
		// sent twice would have made Hydra revoke the grant, and no later token active.
		if len(served) < 3 {
			t.Errorf("%d active access tokens served in 25 s from the runtime layer, want at least 3", len(served))
		}
	})

	t.Run("revoked", func(t *testing.T) {
		tok := start("g2", "bob")
		if err := h.Revoke(ctx, client, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, func() bool { return read(t, mount+"/process/g2").Data["health"] == "broken" })
		p := read(t, mount+"/process/g2").Data
		taskID, _ := p["task_id"].(string)
		if taskID == "" || !strings.Contains(p["health_reason"].(string), "invalid_grant") {
			t.Fatalf("process %v: want broken with a task, by invalid_grant", p)
		}
		if task := read(t, mount+"/task/"+taskID).Data; task["reason"] != "credentials_expired" || task["status"] != "open" {
			t.Errorf("task %v", task)
		}
	})
}
