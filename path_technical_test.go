package pecreds

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/oauth"
	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

func startTokenServer(t *testing.T) *tokenserver.Server {
	t.Helper()
	srv, err := tokenserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func oauth2Input(srv *tokenserver.Server, client string) map[string]any {
	return map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": client, "client_secret": client + "-secret", "scopes": "read,write"}
}

func TestTechnicalStaticTypes(t *testing.T) {
	b, s := getTestBackend(t)
	cert, key, _ := testCertificate(t)
	inputs := map[string]map[string]any{
		"pw":   {"type": "password", "username": "svc", "password": "tech-pw-1"},
		"tok":  {"type": "token", "token": "tech-tok-2", "expires_at": "2031-01-01T00:00:00Z"},
		"key":  {"type": "api_key", "key": "tech-key-3"},
		"cert": {"type": "certificate", "certificate": cert, "private_key": key},
	}
	for name, in := range inputs {
		resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/"+name, in)
		if resp.Data["version"] != 1 {
			t.Errorf("%s: version %v", name, resp.Data["version"])
		}
		read := mustSucceed(t, b, s, logical.ReadOperation, "technical/"+name, nil)
		body, _ := json.Marshal(read.Data)
		for _, secret := range []string{"tech-pw-1", "tech-tok-2", "tech-key-3", key} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s: read shows a secret: %s", name, body)
			}
		}
		creds := mustSucceed(t, b, s, logical.ReadOperation, "technical/"+name+"/creds", nil)
		if _, ok := creds.Data["ttl"]; ok {
			t.Errorf("%s: static material carries a ttl", name)
		}
		mustFail(t, b, s, logical.UpdateOperation, "technical/"+name+"/rotate", nil, "static", "writing technical/"+name)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/pw/creds", nil).Data["password"]; got != "tech-pw-1" {
		t.Errorf("creds password = %v", got)
	}

	// An update without type merges: the password alone changes.
	mustSucceed(t, b, s, logical.UpdateOperation, "technical/pw", map[string]any{"password": "tech-pw-1b"})
	creds := mustSucceed(t, b, s, logical.ReadOperation, "technical/pw/creds", nil).Data
	if creds["password"] != "tech-pw-1b" || creds["username"] != "svc" {
		t.Errorf("after a partial update: %v", creds)
	}
	list := mustSucceed(t, b, s, logical.ListOperation, "technical/", nil).Data["keys"].([]string)
	if len(list) != 4 {
		t.Errorf("list %v", list)
	}
	mustSucceed(t, b, s, logical.DeleteOperation, "technical/pw", nil)
	if resp := request(t, b, s, logical.ReadOperation, "technical/pw", nil); resp != nil {
		t.Errorf("read after delete: %v", resp.Data)
	}
}

func TestTechnicalRejects(t *testing.T) {
	b, s := getTestBackend(t)
	mustFail(t, b, s, logical.CreateOperation, "technical/x", map[string]any{"type": "current"}, `type "current" is not allowed in a technical credential`)
	mustFail(t, b, s, logical.CreateOperation, "technical/x", map[string]any{"type": "password", "username": "u"}, `missing field "password"`)
	mustFail(t, b, s, logical.CreateOperation, "technical/x", map[string]any{"username": "u"}, `field "type" is required`)
	mustFail(t, b, s, logical.CreateOperation, "technical/-x", map[string]any{"type": "api_key", "key": "k"}, `technical credential name "-x" is invalid`)
	mustFail(t, b, s, logical.ReadOperation, "technical/-x/creds", nil, `technical credential name "-x" is invalid`)
	mustFailCode(t, b, s, logical.UpdateOperation, "technical/nobody/rotate", http.StatusNotFound)
}

func TestTechnicalOAuth2(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)

	resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2Input(srv, "app"))
	if srv.Requests("app") != 1 || resp.Data["last_error"] != "" || resp.Data["expires_at"] == "" {
		t.Fatalf("create: %d requests, answer %v", srv.Requests("app"), resp.Data)
	}
	body, _ := json.Marshal(resp.Data)
	if strings.Contains(string(body), "app-secret") || strings.Contains(string(body), "tok-app") {
		t.Errorf("the answer shows a secret or the token: %s", body)
	}
	creds := mustSucceed(t, b, s, logical.ReadOperation, "technical/idp/creds", nil).Data
	if creds["access_token"] != srv.Issues("app")[0].Token || creds["rotation_period"] != int64(3600) {
		t.Errorf("creds %v", creds)
	}
	if srv.Issues("app")[0].Scopes != "read write" {
		t.Errorf("scopes sent: %q", srv.Issues("app")[0].Scopes)
	}

	mustSucceed(t, b, s, logical.UpdateOperation, "technical/idp/rotate", nil)
	if srv.Requests("app") != 2 {
		t.Errorf("rotate made %d requests in all", srv.Requests("app"))
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "technical/idp/creds", nil).Data["access_token"]; got != srv.Issues("app")[1].Token {
		t.Errorf("after rotate the creds are %v", got)
	}

	// A wrong secret: stored all the same, with last_error and a warning naming the status.
	resp = mustSucceed(t, b, s, logical.CreateOperation, "technical/bad", map[string]any{
		"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "app", "client_secret": "wrong-secret"})
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Data["last_error"].(string), "401") {
		t.Errorf("failed first request: warnings %v, data %v", resp.Warnings, resp.Data)
	}
	msg := mustFailCode(t, b, s, logical.ReadOperation, "technical/bad/creds", http.StatusServiceUnavailable)
	if !strings.Contains(msg, `"bad"`) || !strings.Contains(msg, "401") || strings.Contains(msg, "wrong-secret") {
		t.Errorf("creds error %q", msg)
	}
	// Fixing the secret makes the next demand succeed.
	mustSucceed(t, b, s, logical.UpdateOperation, "technical/bad", map[string]any{"client_secret": "app-secret"})
	mustSucceed(t, b, s, logical.ReadOperation, "technical/bad/creds", nil)
}

func TestTechnicalSingleFlight(t *testing.T) {
	srv := startTokenServer(t)
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2Input(srv, "sf"))
	// Expire the token; 20 concurrent readers must cause one token request.
	st, _ := b.getTokenState(t.Context(), s, "idp")
	expired := *st
	expired.ExpiresAt = time.Now().Add(-time.Minute)
	if err := b.putTokenState(t.Context(), s, "idp", &expired); err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(200 * time.Millisecond)
	before := srv.Requests("sf")
	var wg sync.WaitGroup
	tokens := make([]any, 20)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "technical/idp/creds", Storage: s})
			if err == nil && resp != nil && !resp.IsError() {
				tokens[i] = resp.Data["access_token"]
			}
		}()
	}
	wg.Wait()
	if got := srv.Requests("sf") - before; got != 1 {
		t.Errorf("20 concurrent reads made %d token requests", got)
	}
	for i, tok := range tokens {
		if tok != tokens[0] || tok == nil {
			t.Errorf("reader %d got %v, reader 0 %v", i, tok, tokens[0])
		}
	}
}

func TestTechnicalUsageAndDanglingReferences(t *testing.T) {
	b, s := getTestBackend(t)
	svc := `[{"name":"crm","credentials":[{"type":"technical","name":"crm-service"}]}]`
	resp := mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{"services": svc})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], `"crm-service" does not exist yet`) {
		t.Errorf("warnings %v", resp.Warnings)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "registry/orders", nil).Data["missing_technical"].([]string); len(got) != 1 {
		t.Errorf("missing_technical %v", got)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "technical/crm-service", map[string]any{"type": "api_key", "key": "k"})
	if got := mustSucceed(t, b, s, logical.ReadOperation, "registry/orders", nil).Data["missing_technical"].([]string); len(got) != 0 {
		t.Errorf("missing_technical after create %v", got)
	}
	usage := mustSucceed(t, b, s, logical.ReadOperation, "technical/crm-service/usage", nil).Data
	if regs := usage["registries"].([]string); len(regs) != 1 || regs[0] != "orders" {
		t.Errorf("usage %v", usage)
	}
}

// mustFailCode fails the test unless the request failed with the HTTP status, and returns the message.
func mustFailCode(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, status int) string {
	t.Helper()
	req := &logical.Request{Operation: op, Path: path, Storage: s}
	resp, err := b.HandleRequest(t.Context(), req)
	code, cerr := logical.RespondErrorCommon(req, resp, err)
	logical.AdjustErrorStatusCode(&code, err) // as Vault's HTTP layer does
	if code != status || cerr == nil {
		t.Fatalf("%s %s: status %d (%v), want %d", op, path, code, cerr, status)
	}
	return cerr.Error()
}

// Concurrent demands for a token that is not valid share one request to the token endpoint, and
// a failing endpoint never makes an expired token served.
func TestTokenSingleFlightAndNeverExpired(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "app", "client_secret": "app-secret"})
	if n := srv.Requests("app"); n != 1 {
		t.Fatalf("%d requests at creation", n)
	}
	expired := &oauth.State{AccessToken: "old", IssuedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour), Generation: 1}
	if err := b.putTokenState(t.Context(), s, "idp", expired); err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(300 * time.Millisecond)
	var wg sync.WaitGroup
	tokens := make([]any, 10)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens[i] = request(t, b, s, logical.ReadOperation, "technical/idp/creds", nil).Data["access_token"]
		}()
	}
	wg.Wait()
	if n := srv.Requests("app"); n != 2 {
		t.Errorf("%d token requests for 10 concurrent demands, want 1 more", n)
	}
	for _, tok := range tokens {
		if tok == "old" || tok != tokens[0] {
			t.Errorf("served %v (first %v)", tok, tokens[0])
		}
	}

	// The endpoint fails and the token expires: no creds, never the expired token.
	srv.FailWith(503)
	if err := b.putTokenState(t.Context(), s, "idp", expired); err != nil {
		t.Fatal(err)
	}
	if msg := mustFailCode(t, b, s, logical.ReadOperation, "technical/idp/creds", http.StatusServiceUnavailable); !strings.Contains(msg, "HTTP 503") || !strings.Contains(msg, "retry after") {
		t.Errorf("creds with a failing endpoint: %s", msg)
	}
}
