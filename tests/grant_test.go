package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A user's delegated grant (oauth2_user) against a real Vault: the refresh token never leaves the
// plugin. TestMain's scan of the server's trace log covers every value rememberSecrets saw.

// grantOf is a user's grant as an engine host hands it over at the user's login: its tokens are
// remembered for the log scan and answered for the checks.
func grantOf(t *testing.T, user, client string, expiresIn int) (grant map[string]any, access, refresh string) {
	t.Helper()
	access, refresh = user+"-grant-access-token-"+client, user+"-grant-refresh-token-"+client
	rememberSecrets(access, refresh)
	return map[string]any{"type": "oauth2_user", "access_token": access, "refresh_token": refresh,
		"expires_in": expiresIn, "scope": "mail.read", "client": client}, access, refresh
}

// holdsAny says which of values text holds.
func holdsAny(text string, values ...string) []string {
	var found []string
	for _, v := range values {
		if strings.Contains(text, v) {
			found = append(found, v)
		}
	}
	return found
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProcessGrantRefreshTokenNeverLeaves: a process created with a grant as its current
// credentials is resolved (flat, all, explain, by URL), read, listed (API and CLI), reported
// broken (a task, webhook events), its task completed with a new grant through the CLI; a grant
// whose refresh the provider refuses (it never issued that refresh token: invalid_grant) breaks the
// process with a task, and its access token, once expired, is never served. No answer, error
// or event holds a refresh token; resolve holds the access token with its type and expiry only.
func TestProcessGrantRefreshTokenNeverLeaves(t *testing.T) {
	mount, r := notifyMount(t) // registry orders: crm through the current credentials
	srv := startTokenServer(t)
	createOAuth2(t, mount, "idp", srv, "grants")
	write(t, mount+"/technical/pw", map[string]any{"type": "password", "username": "svc", "password": "grant-test-svc-pw"})
	rememberSecrets("grant-test-svc-pw")

	grant, access, refresh := grantOf(t, "ann", "idp", 3600)
	created := write(t, mount+"/process/g1", map[string]any{"definition": "orders", "owner": "ann", "current": grant})
	refreshes := []string{refresh}
	noRefresh := func(what, text string) {
		t.Helper()
		if leaked := holdsAny(text, refreshes...); len(leaked) > 0 {
			t.Errorf("%s holds a refresh token: %s", what, text)
		}
	}
	noTokens := func(what, text string) {
		t.Helper()
		noRefresh(what, text)
		if strings.Contains(text, "-grant-access-token-") {
			t.Errorf("%s holds an access token: %s", what, text)
		}
	}
	noTokens("the lease answer", asJSON(t, created))

	got := read(t, mount+"/process/g1/resolve/crm")
	noRefresh("resolve", asJSON(t, got))
	keys := []string{}
	for k := range got.Data {
		keys = append(keys, k)
	}
	if got.Data["access_token"] != access || got.Data["token_type"] != "Bearer" || got.Data["type"] != "oauth2_user" || len(got.Data) != 7 {
		t.Errorf("resolve answers %v (keys %v): want service, source, index, type, token_type, access_token, expires_at", got.Data, keys)
	}
	if exp := mustParseTime(t, got.Data["expires_at"].(string)); exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("expires_at %v is not an hour from now (expires_in 3600)", exp)
	}
	for _, args := range [][]string{
		{"read", "-format=json", mount + "/process/g1/resolve/crm", "all=true"},
		{"read", "-format=json", mount + "/process/g1/resolve/crm", "explain=true"},
		{"read", "-format=json", mount + "/process/g1/resolve/crm", "type=oauth2_user"},
	} {
		noRefresh(strings.Join(args, " "), mustCLI(t, args...))
	}
	for _, args := range [][]string{
		{"read", "-format=json", mount + "/process/g1"},
		{"list", "-format=json", mount + "/process"},
		{"read", "-format=json", mount + "/process/g1/credentials"},
		{"read", "-format=json", mount + "/status"},
		{"write", "-format=json", mount + "/process/g1/preflight", "duration=2h"},
	} {
		noTokens(strings.Join(args, " "), mustCLI(t, args...))
	}

	// Refusals name the field and the rule, never a value.
	for _, c := range []struct {
		client string
		want   []string
	}{
		{"ghost", []string{`current: field "client": technical credential "ghost" does not exist`}},
		{"pw", []string{`current: field "client": technical credential "pw" is of type password`}},
	} {
		bad, _, badRefresh := grantOf(t, "bob", c.client, 3600)
		refreshes = append(refreshes, badRefresh)
		_, err := env.client.Logical().Write(mount+"/process/g-bad", map[string]any{"current": bad})
		msg := badRequest(t, err, c.want...)
		noTokens("a refusal", msg)
	}
	dead, _, deadRefresh := grantOf(t, "bob", "idp", 3600)
	delete(dead, "expires_in")
	delete(dead, "refresh_token")
	dead["expires_at"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	refreshes = append(refreshes, deadRefresh)
	_, err := env.client.Logical().Write(mount+"/process/g-bad", map[string]any{"current": dead})
	noTokens("a refusal", badRequest(t, err, `field "expires_at" is not in the future and there is no "refresh_token"`))

	// Reported broken: a task for the owner, webhook events.
	taskID := write(t, mount+"/process/g1/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data["task_id"].(string)
	noTokens("the task", mustCLI(t, "read", "-format=json", mount+"/task/"+taskID))
	noTokens("the task list", mustCLI(t, "list", "-format=json", mount+"/task"))
	newGrant, newAccess, newRefresh := grantOf(t, "ann-again", "idp", 3600)
	refreshes = append(refreshes, newRefresh)
	file := filepath.Join(t.TempDir(), "grant.json")
	if err := os.WriteFile(file, []byte(asJSON(t, newGrant)), 0o600); err != nil {
		t.Fatal(err)
	}
	noTokens("completing the task", mustCLI(t, "write", "-format=json", mount+"/task/"+taskID+"/complete-on-behalf", "credentials=@"+file))
	if got := read(t, mount+"/process/g1/resolve/crm").Data["access_token"]; got != newAccess {
		t.Errorf("after completion resolves %v", got)
	}

	// An access token that expires is never served: the process breaks with a task.
	short, shortAccess, shortRefresh := grantOf(t, "cy", "idp", 2)
	refreshes = append(refreshes, shortRefresh)
	write(t, mount+"/process/g2", map[string]any{"definition": "orders", "owner": "cy", "current": short})
	waitFor(t, 30*time.Second, func() bool { return read(t, mount+"/process/g2").Data["current_credentials"] == "expired" })
	_, err = env.client.Logical().Read(mount + "/process/g2/resolve/crm")
	msg := badRequest(t, err, "is broken", "expired")
	noTokens("the expired resolve", msg)
	if strings.Contains(msg, shortAccess) {
		t.Errorf("the expired resolve names the access token: %s", msg)
	}

	// process-broken, task-created, task-completed (g1); process-broken, task-created (g2).
	for _, e := range r.waitFor(t, 5, 20*time.Second) {
		noTokens("a webhook event", e.Raw)
	}
}
