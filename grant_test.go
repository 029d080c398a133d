package pecreds

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	grantAccessToken  = "AT-ann-grant-5e1d"
	grantRefreshToken = "RT-ann-grant-c0ff"
)

// grantJSON is ann's grant as an engine host hands it over, with the given changes (a nil value
// leaves a field out).
func grantJSON(t *testing.T, changes map[string]any) string {
	t.Helper()
	g := map[string]any{"type": "oauth2_user", "access_token": grantAccessToken, "refresh_token": grantRefreshToken,
		"expires_in": 120, "scope": "mail.read", "client": "idp"}
	for k, v := range changes {
		if v == nil {
			delete(g, k)
		} else {
			g[k] = v
		}
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setupGrantClient writes the grant's client (an oauth2 technical credential against a loopback
// token server), a password technical credential, and a registry whose mail service uses the
// current credentials only.
func setupGrantClient(t *testing.T, b *backend, s logical.Storage) {
	t.Helper()
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2Input(srv, "app"))
	mustSucceed(t, b, s, logical.CreateOperation, "technical/pw", map[string]any{"type": "password", "username": "svc", "password": "svc-pw"})
	mustSucceed(t, b, s, logical.CreateOperation, "registry/mailer", map[string]any{"services": `[{"name": "mail", "credentials": [{"type": "current"}]}]`})
}

// noGrantSecret fails the test when an answer (its data, warnings or error) holds the grant's
// refresh token; or, unless the answer may carry the access token (resolve), the access token.
func noGrantSecret(t *testing.T, what string, resp *logical.Response, accessAllowed bool) {
	t.Helper()
	if resp == nil {
		return
	}
	body, err := json.Marshal(map[string]any{"data": resp.Data, "warnings": resp.Warnings, "secret": resp.Secret})
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	if resp.IsError() {
		text += resp.Error().Error()
	}
	if strings.Contains(text, grantRefreshToken) || strings.Contains(text, "RT-") {
		t.Errorf("%s: the answer holds the refresh token: %s", what, text)
	}
	if !accessAllowed && strings.Contains(text, "AT-") {
		t.Errorf("%s: the answer holds an access token: %s", what, text)
	}
}

// A grant is refused with a 400 naming the field and the rule wherever it may be kept: at
// instantiation, in a runtime layer, completing a task; and registries do not take one at all.
func TestGrantValidation(t *testing.T) {
	b, s := getTestBackend(t)
	setupGrantClient(t, b, s)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	cases := []struct {
		name    string
		changes map[string]any
		want    []string
	}{
		{"unknown client", map[string]any{"client": "nope"}, []string{`field "client": technical credential "nope" does not exist`, "oauth2 technical credential"}},
		{"client of another type", map[string]any{"client": "pw"}, []string{`field "client": technical credential "pw" is of type password`, "must be of type oauth2"}},
		{"missing client", map[string]any{"client": nil}, []string{`missing field "client"`}},
		{"missing access_token", map[string]any{"access_token": nil}, []string{`missing field "access_token"`}},
		{"expired without a refresh token", map[string]any{"expires_in": nil, "expires_at": past, "refresh_token": nil}, []string{`field "expires_at" is not in the future and there is no "refresh_token"`}},
		{"refresh token expired", map[string]any{"refresh_expires_at": past}, []string{`field "refresh_expires_at" is not in the future`}},
		{"no expiry", map[string]any{"expires_in": nil}, []string{`missing field "expires_at" or "expires_in"`}},
		{"unknown field", map[string]any{"id_token": "x"}, []string{`unknown field "id_token" for type "oauth2_user"`}},
		{"refresh token over the limit", map[string]any{"refresh_token": "RT-" + strings.Repeat("r", 64<<10)}, []string{`field "refresh_token" is`, "64 KiB"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := grantJSON(t, tc.changes)
			id := fmt.Sprintf("p%d", i)
			msg := mustFail(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"current": g}, append([]string{"current: "}, tc.want...)...)
			noGrantSecret(t, "create", logical.ErrorResponse(msg), false)
			if r := request(t, b, s, logical.ReadOperation, "process/"+id, nil); r != nil {
				t.Errorf("a refused instantiation left process %s behind: %v", id, r.Data)
			}
			mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, nil)
			msg = mustFail(t, b, s, logical.UpdateOperation, "process/"+id+"/credentials",
				map[string]any{"services": `[{"name": "mail", "credentials": [` + g + `]}]`}, append([]string{"services[0]"}, tc.want...)...)
			noGrantSecret(t, "runtime write", logical.ErrorResponse(msg), false)
			if got := mustSucceed(t, b, s, logical.ReadOperation, "process/"+id+"/credentials", nil).Data["services"]; len(got.([]map[string]any)) != 0 {
				t.Errorf("a refused runtime write was kept: %v", got)
			}
		})
	}
	mustFail(t, b, s, logical.CreateOperation, "registry/r", map[string]any{"services": `[{"name": "mail", "credentials": [` + grantJSON(t, nil) + `]}]`},
		`type "oauth2_user" is not allowed in a registry's service entry`)
	mustFail(t, b, s, logical.CreateOperation, "technical/g", map[string]any{"type": "oauth2_user"},
		`type "oauth2_user" is not allowed in a technical credential`)
}

// A process keeps its user's grant; resolve answers the access token with its type and expiry and
// nothing else, never once it has expired; no answer holds the refresh token: not the lease,
// reads, lists, explain, the broken resolve's error, tasks, the webhook's events. Completing the
// task with a new grant (validated as at instantiation) resumes the process.
func TestGrantResolveAndReplace(t *testing.T) {
	for _, keep := range []string{"persistent", "transient"} {
		t.Run(keep, func(t *testing.T) {
			clock := newFakeClock()
			d := testDeps()
			d.now = clock.now
			b, s := getTestBackendWith(t, d)
			h := startHook(t, hookSecret)
			mustSucceed(t, b, s, logical.UpdateOperation, "config", map[string]any{"keep_credentials": keep, "notify_url": h.URL + "/hook", "notify_secret": hookSecret})
			setupGrantClient(t, b, s)

			lease := mustSucceed(t, b, s, logical.CreateOperation, "process/p", map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann", "current": grantJSON(t, nil)})
			noGrantSecret(t, "lease", lease, false)
			wantExpiry := clock.now().Add(120 * time.Second).UTC().Truncate(time.Second).Format(time.RFC3339)
			got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/mail", nil)
			noGrantSecret(t, "resolve", got, true)
			want := map[string]any{"service": "mail", "source": "definition:mailer", "index": 0, "type": "oauth2_user",
				"token_type": "Bearer", "access_token": grantAccessToken, "expires_at": wantExpiry}
			if fmt.Sprint(got.Data) != fmt.Sprint(want) {
				t.Errorf("resolve = %v, want %v", got.Data, want)
			}
			for _, q := range []map[string]any{{"all": true}, {"explain": true}, {"type": "oauth2_user"}} {
				noGrantSecret(t, fmt.Sprint("resolve ", q), mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/mail", q), true)
			}
			noGrantSecret(t, "resolve by url", request(t, b, s, logical.UpdateOperation, "process/p/resolve", map[string]any{"url": "https://mail.example.com/x"}), false)
			read := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil)
			noGrantSecret(t, "read", read, false)
			if read.Data["current_credentials"] != "kept" {
				t.Errorf("current_credentials %v", read.Data["current_credentials"])
			}
			noGrantSecret(t, "list", mustSucceed(t, b, s, logical.ListOperation, "process/", nil), false)
			noGrantSecret(t, "status", mustSucceed(t, b, s, logical.ReadOperation, "status", nil), false)
			noGrantSecret(t, "preflight", mustSucceed(t, b, s, logical.UpdateOperation, "process/p/preflight", map[string]any{"duration": "1h"}), false)

			// The access token expires, and its provider refuses the refresh (this token server
			// never issued that refresh token: invalid_grant): the grant has ended, the access
			// token is never served, and the owner is asked for a new grant.
			clock.advance(121 * time.Second) // within the webhook receiver's tolerance of the signing time
			b.grants.worker.poke()
			waitUntil(t, 10*time.Second, func() bool {
				return mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data["health"] == "broken"
			})
			if got := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data["current_credentials"]; got != "expired" {
				t.Errorf("current_credentials after expiry %v", got)
			}
			msg := mustFail(t, b, s, logical.ReadOperation, "process/p/resolve/mail", map[string]any{"explain": true}, "is broken", "expired")
			noGrantSecret(t, "expired resolve", logical.ErrorResponse(msg), false)
			taskID := mustSucceed(t, b, s, logical.ReadOperation, "process/p", nil).Data["task_id"].(string)
			noGrantSecret(t, "task read", mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil), false)
			noGrantSecret(t, "task list", mustSucceed(t, b, s, logical.ListOperation, "task/", nil), false)

			complete := func(g string) *logical.Response {
				resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation,
					Path: "task/" + taskID + "/complete", Storage: s, EntityID: "ent-ann", Data: map[string]any{"credentials": g}})
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			if resp := complete(grantJSON(t, map[string]any{"client": "pw"})); !resp.IsError() || !strings.Contains(resp.Error().Error(), `credentials: field "client": technical credential "pw" is of type password`) {
				t.Errorf("completing with a grant of a password client: %v", resp)
			}
			if resp := complete(grantJSON(t, map[string]any{"expires_in": nil, "refresh_token": nil, "expires_at": clock.now().UTC().Format(time.RFC3339)})); !resp.IsError() || !strings.Contains(resp.Error().Error(), `credentials: field "expires_at" is not in the future`) {
				t.Errorf("completing with an expired grant: %v", resp)
			}
			if got := mustSucceed(t, b, s, logical.ReadOperation, "task/"+taskID, nil).Data["status"]; got != "open" {
				t.Fatalf("a refused completion changed the task: %v", got)
			}
			resp := complete(grantJSON(t, map[string]any{"access_token": "AT-new", "refresh_token": "RT-new", "expires_in": "3600"}))
			noGrantSecret(t, "complete", resp, false)
			if resp.IsError() || resp.Data["status"] != "completed" {
				t.Fatalf("completing: %v", resp)
			}
			got = mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/mail", nil)
			if got.Data["access_token"] != "AT-new" || got.Data["expires_at"] != clock.now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339) {
				t.Errorf("after completion resolve = %v", got.Data)
			}
			noGrantSecret(t, "resolve after completion", got, true)

			// The refresh token is kept (for refreshes), and only there.
			p, err := b.getProcess(context.Background(), s, "p")
			if err != nil {
				t.Fatal(err)
			}
			cur, err := b.getCurrent(context.Background(), s, p)
			if err != nil || cur == nil || cur.Fields["refresh_token"] != "RT-new" {
				t.Errorf("kept current %v (%v)", cur, err)
			}

			waitUntil(t, 10*time.Second, func() bool { return h.count() == 3 }) // process-broken, task-created, task-completed
			for _, dl := range h.delivered() {
				if strings.Contains(string(dl.body), "RT-") || strings.Contains(string(dl.body), "AT-") {
					t.Errorf("a webhook event holds a token: %s", dl.body)
				}
			}
		})
	}
}

// A grant in a runtime layer: its access token, expired, is skipped with the reason while its
// refresh token keeps the grant acceptable; a live one is answered without its refresh token;
// the layer's read shows neither token.
func TestGrantInRuntimeLayer(t *testing.T) {
	clock := newFakeClock()
	d := testDeps()
	d.now = clock.now
	b, s := getTestBackendWith(t, d)
	setupGrantClient(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p", nil)
	past := clock.now().Add(-time.Minute).UTC().Format(time.RFC3339)
	expired := grantJSON(t, map[string]any{"expires_in": nil, "expires_at": past, "access_token": "AT-old", "refresh_token": "RT-old"})
	resp := mustSucceed(t, b, s, logical.UpdateOperation, "process/p/credentials", map[string]any{"services": `[
		{"name": "mail", "credentials": [` + expired + `, ` + grantJSON(t, nil) + `]}]`})
	noGrantSecret(t, "runtime write", resp, false)
	noGrantSecret(t, "runtime read", mustSucceed(t, b, s, logical.ReadOperation, "process/p/credentials", nil), false)
	got := mustSucceed(t, b, s, logical.ReadOperation, "process/p/resolve/mail", map[string]any{"explain": true})
	noGrantSecret(t, "resolve", got, true)
	if got.Data["access_token"] != grantAccessToken || got.Data["index"] != 1 {
		t.Errorf("resolve = %v", got.Data)
	}
	tried := got.Data["explain"].(map[string]any)["tried"]
	if !strings.Contains(fmt.Sprint(tried), "expired at "+past) {
		t.Errorf("tried %v", tried)
	}
	clock.advance(121 * time.Second) // within the webhook receiver's tolerance of the signing time
	msg := mustFail(t, b, s, logical.ReadOperation, "process/p/resolve/mail", nil, "no usable credential", "expired at")
	noGrantSecret(t, "expired resolve", logical.ErrorResponse(msg), false)
}

// Preflight counts a grant the plugin refreshes as expiring only when its refresh token does
// (refresh_expires_at), never for its short-lived access token; one that cannot be refreshed
// expires with its access token.
func TestGrantPreflight(t *testing.T) {
	b, s := getTestBackend(t)
	setupGrantClient(t, b, s)
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	for _, tc := range []struct {
		name     string
		changes  map[string]any
		expiring string // the expires_at preflight reports within 72h; "" for none
	}{
		{"refreshed, no end stated", nil, ""},
		{"refreshed, ends after the horizon", map[string]any{"refresh_expires_at": in(30 * 24 * time.Hour)}, ""},
		{"refreshed, ends within it", map[string]any{"refresh_expires_at": in(48 * time.Hour)}, in(48 * time.Hour)},
		{"no refresh token", map[string]any{"refresh_token": nil, "expires_at": in(time.Hour), "expires_in": nil}, in(time.Hour)},
	} {
		id := strings.ReplaceAll(tc.name, " ", "-")
		id = strings.ReplaceAll(id, ",", "")
		mustSucceed(t, b, s, logical.CreateOperation, "process/"+id, map[string]any{"definition": "mailer", "owner_entity_id": "ent-ann", "current": grantJSON(t, tc.changes)})
		got := mustSucceed(t, b, s, logical.UpdateOperation, "process/"+id+"/preflight", map[string]any{"duration": "72h"}).Data["expiring"]
		items, _ := got.([]map[string]any)
		switch {
		case tc.expiring == "" && len(items) != 0:
			t.Errorf("%s: preflight lists %v", tc.name, items)
		case tc.expiring != "" && (len(items) != 1 || items[0]["expires_at"] != tc.expiring):
			t.Errorf("%s: preflight lists %v, want one item expiring at %s", tc.name, items, tc.expiring)
		}
	}
}
