package tests

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMalformedRequestsAre4xx sends a battery of malformed requests across every path family:
// each must be answered 4xx, never 5xx, and the plugin must still serve afterwards.
func TestMalformedRequestsAre4xx(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "mal")})
	long := strings.Repeat("x", 200)
	cases := []struct{ method, path, body string }{
		// config
		{"POST", "config", `{"keep_credentials": 7}`},
		{"POST", "config", `{"process_ttl": "forever"}`},
		{"POST", "config", `{"refresh_fraction": "lots"}`},
		{"POST", "config", `{"error_health_mapping": "[1,2"}`},
		{"POST", "config", `{"error_health_mapping": {"auth_failed": ["broken"]}}`},
		{"POST", "config", `{"global_registries": [{"a": 1}]}`},
		{"POST", "config", `{"notify_url": "ftp://x", "notify_secret": "s"}`},
		{"POST", "config", `{"task_manager": "maybe"}`},
		// (A truncated JSON body such as `{` is refused by Vault's own HTTP layer, with a 500, before
		// any plugin sees it: Vault's behaviour, not the plugin's, so it is not in this battery.)
		// registry
		{"POST", "registry/r", `{"services": {"name": "x"}}`},
		{"POST", "registry/r", `{"services": [null]}`},
		{"POST", "registry/r", `{"services": [{"name": "x", "credentials": "current"}]}`},
		{"POST", "registry/r", `{"services": [{"name": "x", "credentials": [{"type": ["current"]}]}]}`},
		{"POST", "registry/r", `{"services": [{"name": "x", "url": 5, "credentials": [{"type": "current"}]}]}`},
		{"POST", "registry/r", `{"services": [{"name": "x", "url": "::not a url", "credentials": [{"type": "current"}]}]}`},
		{"POST", "registry/r", `{"cas": "one"}`},
		{"POST", "registry/" + long, `{}`},
		{"POST", "registry/..", `{}`},
		{"GET", "registry/%00bad", ``},
		{"DELETE", "registry/bad%20name", ``},
		// technical
		{"POST", "technical/t", `{"type": "oauth2", "token_url": "not a url", "client_id": "c", "client_secret": "s"}`},
		{"POST", "technical/t", `{"type": "certificate", "certificate": "x", "private_key": "y"}`},
		{"POST", "technical/t", `{"type": "technical", "name": "x"}`},
		{"POST", "technical/t", `{"type": {}}`},
		{"POST", "technical/t", `{"scopes": {"a": 1}, "type": "oauth2"}`},
		{"GET", "technical/-t/creds", ``},
		{"POST", "technical/missing/rotate", `{}`},
		{"GET", "technical/a.b/usage/extra", ``},
		// process
		{"POST", "process/p", `{"definition": "orders"}`},
		{"POST", "process/q", `{"current": [1, 2]}`},
		{"POST", "process/q", `{"current": {"type": "password"}}`},
		{"POST", "process/q", `{"ttl": "soon"}`},
		{"POST", "process/q", `{"definition": "-bad"}`},
		{"POST", "process/p/credentials", `{"services": "[{"}`},
		{"POST", "process/p/credentials", `{}`},
		{"DELETE", "process/p/credentials/bad%20service", ``},
		{"GET", "process/p/resolve/bad%20service", ``},
		{"GET", "process/p/resolve?url=relative/path", ``},
		{"GET", "process/p/resolve?all=perhaps&url=https://crm.example.com/api", ``},
		{"GET", "process/missing/resolve/crm", ``},
		{"POST", "process/p/report", `{"service": "crm"}`},
		{"POST", "process/p/report", `{"service": "crm", "error": "with space"}`},
		{"POST", "process/missing/report", `{"service": "crm", "error": "auth_failed"}`},
		{"POST", "process/p/preflight", `{"duration": "-5s"}`},
		{"POST", "process/p/resume", `{}`},
		{"POST", "process/missing/resume", `{}`},
		// task
		{"POST", "task/missing/complete", `{"credentials": {"type": "current"}}`},
		{"POST", "task/missing/cancel", `{}`},
		{"GET", "task/bad%20id", ``},
		{"PUT", "task/x/complete", `not json at all`},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	httpClient := &http.Client{}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, env.addr+"/v1/"+mount+"/"+c.path, bytes.NewBufferString(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Vault-Token", rootToken)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, resp.StatusCode, body)
		}
	}
	// Still serving, state intact.
	if got := read(t, mount+"/process/p/resolve/crm").Data["username"]; got != "mal" {
		t.Errorf("after the battery: %v", got)
	}
	if got := read(t, mount+"/config").Data["keep_credentials"]; got != "persistent" {
		t.Errorf("config changed: %v", got)
	}
	t.Logf("%d malformed requests sent", len(cases))
}
