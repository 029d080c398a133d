package pecreds

import (
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

// The client authentication of oauth2 technical credentials (auth_method), against the loopback
// token endpoint, which holds each client to its registered method and verifies private_key_jwt
// assertions with the client's public key.

// signingKey is a throw-away private_key_jwt key: the public half for the endpoint, the PEM for
// the credential.
type signingKey struct {
	pub crypto.PublicKey
	pem string
}

func newRSAKey(t *testing.T, pkcs1 bool) signingKey {
	t.Helper()
	k, p, err := testcert.RSAKey(2048, pkcs1)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{k.Public(), p}
}

func newECKey(t *testing.T, sec1 bool) signingKey {
	t.Helper()
	k, p, err := testcert.ECKey(elliptic.P256(), sec1)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{k.Public(), p}
}

func jwtInput(srv *tokenserver.Server, client string, key signingKey, kid string) map[string]any {
	in := map[string]any{"type": "oauth2", "token_url": srv.TokenURL(), "client_id": client, "auth_method": "private_key_jwt", "private_key": key.pem}
	if kid != "" {
		in["key_id"] = kid
	}
	return in
}

// lastIssue is the endpoint's record of a client's last token request.
func lastIssue(t *testing.T, srv *tokenserver.Server, client string) tokenserver.Issue {
	t.Helper()
	issues := srv.Issues(client)
	if len(issues) == 0 {
		t.Fatalf("%s made no token request", client)
	}
	return issues[len(issues)-1]
}

// TestTechnicalAuthMethods: each auth_method gets a token from an endpoint that accepts the
// client by that method only; the read shows auth_method and key_id, never the key or the secret.
func TestTechnicalAuthMethods(t *testing.T) {
	srv := startTokenServer(t)
	b, s := getTestBackend(t)
	rsaKey, ecKey := newRSAKey(t, false), newECKey(t, true)
	type method struct {
		client, method, alg, kid string
		in                       map[string]any
		secret                   string // what the read must not show
	}
	var methods []method
	for _, m := range credential.AuthMethods { // a method added to the model must be tested here
		switch m {
		case credential.AuthClientSecretBasic, credential.AuthClientSecretPost:
			client := "c-" + m
			srv.SetClient(client, client+"-secret")
			srv.RequireMethod(client, m)
			in := oauth2Input(srv, client)
			in["auth_method"] = m
			methods = append(methods, method{client: client, method: m, in: in, secret: client + "-secret"})
		case credential.AuthPrivateKeyJWT:
			srv.SetClientKey("c-rsa", rsaKey.pub)
			srv.SetClientKey("c-ec", ecKey.pub)
			methods = append(methods,
				method{client: "c-rsa", method: m, alg: "RS256", kid: "rsa-2026", in: jwtInput(srv, "c-rsa", rsaKey, "rsa-2026"), secret: rsaKey.pem},
				method{client: "c-ec", method: m, alg: "ES256", in: jwtInput(srv, "c-ec", ecKey, ""), secret: ecKey.pem})
		default:
			t.Fatalf("auth method %q has no case in this test", m)
		}
	}
	// The default is client_secret_basic.
	srv.SetClient("c-default", "c-default-secret")
	srv.RequireMethod("c-default", tokenserver.MethodBasic)
	methods = append(methods, method{client: "c-default", method: tokenserver.MethodBasic, in: oauth2Input(srv, "c-default"), secret: "c-default-secret"})

	for _, m := range methods {
		t.Run(m.client, func(t *testing.T) {
			resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/"+m.client, m.in)
			is := lastIssue(t, srv, m.client)
			if srv.Requests(m.client) != 1 || is.Refused != "" || is.Method != m.method || is.Alg != m.alg || is.KeyID != m.kid {
				t.Fatalf("%d requests; the last %+v; answer %v", srv.Requests(m.client), is, resp.Data)
			}
			if resp.Data["last_error"] != "" || len(resp.Warnings) != 0 {
				t.Errorf("create: %v %v", resp.Data, resp.Warnings)
			}
			creds := mustSucceed(t, b, s, logical.ReadOperation, "technical/"+m.client+"/creds", nil).Data
			if creds["access_token"] != is.Token {
				t.Errorf("creds %v, want the token %s", creds, is.Token)
			}
			read := mustSucceed(t, b, s, logical.ReadOperation, "technical/"+m.client, nil).Data
			if read["auth_method"] != m.method || (m.kid != "" && read["key_id"] != m.kid) || (m.kid == "" && read["key_id"] != nil) {
				t.Errorf("read %v", read)
			}
			body, _ := json.Marshal(read)
			if strings.Contains(string(body), m.secret) || strings.Contains(string(body), "PRIVATE KEY") {
				t.Errorf("the read shows a secret: %s", body)
			}
			// A rotation signs a fresh assertion: the endpoint refuses a replayed jti.
			mustSucceed(t, b, s, logical.UpdateOperation, "technical/"+m.client+"/rotate", nil)
			if is := lastIssue(t, srv, m.client); srv.Requests(m.client) != 2 || is.Refused != "" {
				t.Errorf("rotate: %d requests, the last %+v", srv.Requests(m.client), is)
			}
		})
	}
}

// TestTechnicalAuthMethodMismatch is the provider's answer to a client that authenticates by
// another method than it was registered for: 401 invalid_client, stored all the same with
// last_error naming the status and the code; writing auth_method alone fixes it at once.
func TestTechnicalAuthMethodMismatch(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("poster", "poster-secret")
	srv.RequireMethod("poster", tokenserver.MethodPost)
	b, s := getTestBackend(t)
	resp := mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", oauth2Input(srv, "poster"))
	if got := resp.Data["last_error"]; got != "the token endpoint answered HTTP 401 Unauthorized (error invalid_client)" || len(resp.Warnings) != 1 {
		t.Fatalf("last_error %q, warnings %v", got, resp.Warnings)
	}
	if is := lastIssue(t, srv, "poster"); is.Method != tokenserver.MethodBasic || is.Refused == "" {
		t.Fatalf("the first request: %+v", is)
	}
	resp = mustSucceed(t, b, s, logical.UpdateOperation, "technical/idp", map[string]any{"auth_method": "client_secret_post"})
	if srv.Requests("poster") != 2 || resp.Data["last_error"] != "" || resp.Data["auth_method"] != "client_secret_post" {
		t.Fatalf("after auth_method=client_secret_post: %d requests, answer %v", srv.Requests("poster"), resp.Data)
	}
	if is := lastIssue(t, srv, "poster"); is.Method != tokenserver.MethodPost || is.Refused != "" {
		t.Errorf("the second request: %+v", is)
	}
}

// TestTechnicalAuthMethodChanges: a change of auth_method, private_key or key_id fetches a token
// at once with the new settings; a switch of method leaves the other kind's stored secret behind;
// a client secret's rotation alone does not fetch.
func TestTechnicalAuthMethodChanges(t *testing.T) {
	srv := startTokenServer(t)
	srv.SetClient("app", "app-secret")
	b, s := getTestBackend(t)
	mustSucceed(t, b, s, logical.CreateOperation, "technical/idp", map[string]any{
		"type": "oauth2", "token_url": srv.TokenURL(), "client_id": "app", "client_secret": "app-secret"})
	first, second := newECKey(t, false), newRSAKey(t, true)
	srv.SetClientKey("app", first.pub)

	step := func(what string, in map[string]any, wantMethod, wantAlg, wantKid string) {
		t.Helper()
		before := srv.Requests("app")
		resp := mustSucceed(t, b, s, logical.UpdateOperation, "technical/idp", in)
		is := lastIssue(t, srv, "app")
		if srv.Requests("app") != before+1 || is.Refused != "" || is.Method != wantMethod || is.Alg != wantAlg || is.KeyID != wantKid {
			t.Fatalf("%s: %d requests (want %d), the last %+v, answer %v %v", what, srv.Requests("app"), before+1, is, resp.Data, resp.Warnings)
		}
		if resp.Data["auth_method"] != wantMethod || resp.Data["last_error"] != "" {
			t.Errorf("%s: answer %v", what, resp.Data)
		}
	}
	// The stored client secret is left behind: the write gives none, and none is sent.
	step("to private_key_jwt", map[string]any{"auth_method": "private_key_jwt", "private_key": first.pem}, tokenserver.MethodPrivateKeyJWT, "ES256", "")
	srv.SetClientKey("app", second.pub)
	step("a new key", map[string]any{"private_key": second.pem}, tokenserver.MethodPrivateKeyJWT, "RS256", "")
	step("a key id", map[string]any{"key_id": "k2"}, tokenserver.MethodPrivateKeyJWT, "RS256", "k2")
	srv.RequireMethod("app", tokenserver.MethodPost)
	step("to client_secret_post", map[string]any{"auth_method": "client_secret_post", "client_secret": "app-secret"}, tokenserver.MethodPost, "", "")
	if read := mustSucceed(t, b, s, logical.ReadOperation, "technical/idp", nil).Data; read["key_id"] != nil {
		t.Errorf("the key id outlived private_key_jwt: %v", read)
	}
	e, err := b.getTechnical(t.Context(), s, "idp")
	if err != nil || e.Credential.Fields["private_key"] != "" || e.Credential.Fields["key_id"] != "" {
		t.Fatalf("the stored credential keeps the key: %v", err)
	}
	before := srv.Requests("app")
	mustSucceed(t, b, s, logical.UpdateOperation, "technical/idp", map[string]any{"client_secret": "app-secret-2"})
	if srv.Requests("app") != before {
		t.Errorf("a client secret's rotation fetched a token")
	}
}

// TestTechnicalAuthMethodRefusals: each refusal is a 400 naming the field and the rule, stores
// nothing and sends nothing.
func TestTechnicalAuthMethodRefusals(t *testing.T) {
	srv := startTokenServer(t)
	b, s := getTestBackend(t)
	key := newECKey(t, false)
	_, p384PEM, err := testcert.ECKey(elliptic.P384(), false)
	if err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, b, s, logical.CreateOperation, "technical/basic", oauth2Input(srv, "basic"))
	mustSucceed(t, b, s, logical.CreateOperation, "technical/jwt", jwtInput(srv, "jwt", key, "k1"))
	with := func(in map[string]any, extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range in {
			out[k] = v
		}
		for k, v := range extra {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	requests := func() int { return srv.Requests("basic") + srv.Requests("jwt") + srv.Requests("new") }
	before := requests()
	for _, tc := range []struct {
		name, path string
		op         logical.Operation
		in         map[string]any
		want       []string
	}{
		{"unknown method", "technical/new", logical.CreateOperation, with(oauth2Input(srv, "new"), map[string]any{"auth_method": "client_secret_jwt"}),
			[]string{`field "auth_method" must be one of client_secret_basic, client_secret_post, private_key_jwt`}},
		{"jwt without a key", "technical/new", logical.CreateOperation, with(jwtInput(srv, "new", key, ""), map[string]any{"private_key": nil}),
			[]string{`missing field "private_key"`, "private_key_jwt"}},
		{"a key that does not parse", "technical/new", logical.CreateOperation,
			with(jwtInput(srv, "new", key, ""), map[string]any{"private_key": strings.Replace(key.pem, "M", "A", 3)}),
			[]string{`field "private_key" is not a valid private key`}},
		{"a key on another curve", "technical/new", logical.CreateOperation, with(jwtInput(srv, "new", key, ""), map[string]any{"private_key": p384PEM}),
			[]string{`field "private_key" is an EC key on P-384`}},
		{"a key too large", "technical/new", logical.CreateOperation,
			with(jwtInput(srv, "new", key, ""), map[string]any{"private_key": strings.Repeat("K", 70<<10)}),
			[]string{`field "private_key" is 71680 bytes long; the limit is 65536 bytes (64 KiB)`}},
		{"jwt with a client secret", "technical/new", logical.CreateOperation, with(jwtInput(srv, "new", key, ""), map[string]any{"client_secret": "s3cret"}),
			[]string{`field "client_secret" must not be given with auth_method private_key_jwt`}},
		{"basic with a key", "technical/new", logical.CreateOperation, with(oauth2Input(srv, "new"), map[string]any{"private_key": key.pem}),
			[]string{`field "private_key" must not be given with auth_method client_secret_basic`}},
		{"post with a key id", "technical/new", logical.CreateOperation, with(oauth2Input(srv, "new"), map[string]any{"auth_method": "client_secret_post", "key_id": "k"}),
			[]string{`field "key_id" must not be given with auth_method client_secret_post`}},
		{"a key added to a basic client", "technical/basic", logical.UpdateOperation, map[string]any{"private_key": key.pem},
			[]string{`field "private_key" must not be given with auth_method client_secret_basic`}},
		{"a secret added to a jwt client", "technical/jwt", logical.UpdateOperation, map[string]any{"client_secret": "s3cret"},
			[]string{`field "client_secret" must not be given with auth_method private_key_jwt`}},
		{"to jwt without a key", "technical/basic", logical.UpdateOperation, map[string]any{"auth_method": "private_key_jwt"},
			[]string{`missing field "private_key"`}},
		{"to post without a secret", "technical/jwt", logical.UpdateOperation, map[string]any{"auth_method": "client_secret_post"},
			[]string{`missing field "client_secret"`}},
		{"the stored key for a new endpoint", "technical/jwt", logical.UpdateOperation, map[string]any{"token_url": "https://attacker.example.com/token"},
			[]string{"private_key is required when token_url changes", "never signs for a new endpoint"}},
		{"the stored key for another client", "technical/jwt", logical.UpdateOperation, map[string]any{"client_id": "other"},
			[]string{"private_key is required when client_id changes"}},
		{"the stored secret for a new endpoint by another method", "technical/basic", logical.UpdateOperation,
			map[string]any{"auth_method": "client_secret_post", "token_url": "https://attacker.example.com/token"},
			[]string{"client_secret is required when token_url changes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			versions := map[string]any{}
			for _, n := range []string{"basic", "jwt"} {
				versions[n] = mustSucceed(t, b, s, logical.ReadOperation, "technical/"+n, nil).Data["version"]
			}
			msg := mustFail(t, b, s, tc.op, tc.path, tc.in, tc.want...)
			if strings.Contains(msg, "s3cret") || strings.Contains(msg, "PRIVATE KEY") || strings.Contains(msg, "KKKKKKKK") {
				t.Errorf("the refusal quotes a secret: %s", msg)
			}
			if resp := request(t, b, s, logical.ReadOperation, "technical/new", nil); resp != nil {
				t.Errorf("a refused create stored the credential")
			}
			for _, n := range []string{"basic", "jwt"} {
				if v := mustSucceed(t, b, s, logical.ReadOperation, "technical/"+n, nil).Data["version"]; v != versions[n] {
					t.Errorf("a refused write changed %s: version %v, was %v", n, v, versions[n])
				}
			}
		})
	}
	if n := requests(); n != before {
		t.Errorf("refused writes made %d token requests", n-before)
	}
}

// syncBuffer is a log output the backend's goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventLog records the events a backend sends, as text.
type eventLog struct{ syncBuffer }

func (e *eventLog) SendEvent(_ context.Context, typ logical.EventType, ev *logical.EventData) error {
	fmt.Fprintf(e, "%s %v\n", typ, ev.GetMetadata().AsMap())
	return nil
}

// TestTechnicalPrivateKeyNeverShown is the attack test of private_key_jwt: whatever is done with
// the credential — created, read, listed, rotated, refused by the endpoint, rewritten wrong, its
// token served — no answer, error, warning, event or log line (at trace level) carries the private
// key, and an endpoint that reflects the request never gets the client assertion into one either.
func TestTechnicalPrivateKeyNeverShown(t *testing.T) {
	srv := startTokenServer(t)
	key, other := newRSAKey(t, false), newRSAKey(t, false)
	srv.SetClientKey("app", other.pub) // the endpoint knows another key: every request is refused
	reflector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_description": r.PostForm.Encode(), "seen": r.PostForm})
	}))
	t.Cleanup(reflector.Close)

	logs, events := &syncBuffer{}, &eventLog{}
	s := &logical.InmemStorage{}
	conf := testBackendConfig(s)
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	conf.EventsSender = events
	raw, err := factoryWith(testDeps())(t.Context(), conf)
	if err != nil {
		t.Fatal(err)
	}
	b := raw.(*backend)
	if err := b.Initialize(t.Context(), &logical.InitializationRequest{Storage: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })

	var seen []string // every answer, error and warning, as text
	record := func(op logical.Operation, path string, data map[string]any) *logical.Response {
		resp, err := b.HandleRequest(t.Context(), &logical.Request{Operation: op, Path: path, Storage: s, Data: data})
		body, _ := json.Marshal(resp)
		seen = append(seen, string(body), fmt.Sprint(err))
		return resp
	}
	resp := record(logical.CreateOperation, "technical/idp", jwtInput(srv, "app", key, "k1"))
	if resp == nil || resp.IsError() || !strings.Contains(fmt.Sprint(resp.Data["last_error"]), "invalid_client") {
		t.Fatalf("create against an endpoint that knows another key: %#v", resp)
	}
	record(logical.ReadOperation, "technical/idp", nil)
	record(logical.ListOperation, "technical/", nil)
	record(logical.ReadOperation, "technical/idp/creds", nil)
	record(logical.UpdateOperation, "technical/idp/rotate", nil)
	// Wrong rewrites: a broken key, the key with a secret method, a new endpoint without the key.
	record(logical.UpdateOperation, "technical/idp", map[string]any{"private_key": key.pem[:len(key.pem)/2] + "\n-----END PRIVATE KEY-----\n"})
	record(logical.UpdateOperation, "technical/idp", map[string]any{"auth_method": "client_secret_post", "client_secret": "cs", "private_key": key.pem})
	record(logical.UpdateOperation, "technical/idp", map[string]any{"token_url": reflector.URL + "/token"})
	record(logical.UpdateOperation, "technical/idp", map[string]any{"private_key": []any{key.pem}})
	// The reflector echoes the request (the assertion among it) in its answer.
	resp = record(logical.UpdateOperation, "technical/idp", map[string]any{"token_url": reflector.URL + "/token", "private_key": key.pem})
	if resp == nil || !strings.Contains(fmt.Sprint(resp.Data["last_error"]), "HTTP 401") {
		t.Fatalf("against the reflector: %#v", resp)
	}
	record(logical.ReadOperation, "technical/idp", nil)
	record(logical.ReadOperation, "technical/idp/creds", nil)
	// The endpoint learns the key: the token is served, and still no key anywhere.
	srv.SetClientKey("app", key.pub)
	resp = record(logical.UpdateOperation, "technical/idp", map[string]any{"token_url": srv.TokenURL(), "private_key": key.pem})
	if resp == nil || resp.Data["last_error"] != "" {
		t.Fatalf("with the right key: %#v", resp)
	}
	record(logical.ReadOperation, "technical/idp/creds", nil)
	record(logical.ReadOperation, "technical/idp", nil)

	everything := strings.Join(seen, "\n") + "\n" + logs.String() + "\n" + events.String()
	needles := append(keyLines(key.pem), "client_assertion", "eyJ") // a JWT's header starts eyJ
	for what, text := range map[string]string{"answers": strings.Join(seen, "\n"), "logs": logs.String(), "events": events.String()} {
		for _, needle := range needles {
			if strings.Contains(text, needle) {
				t.Errorf("the %s carry %q...", what, needle[:min(len(needle), 12)])
			}
		}
	}
	// The scan saw what it scans: the failures were logged and sent as events.
	if !strings.Contains(logs.String(), "token request failed") || !strings.Contains(events.String(), eventTechnicalRefreshFailed) ||
		!strings.Contains(everything, "HTTP 401") {
		t.Errorf("the scan saw no failure:\nlogs %s\nevents %s", logs.String(), events.String())
	}
}

// keyLines are a PEM's lines, the BEGIN line and each line of its base64 body: a leak of any
// part of the key as it was written shows as one of them.
func keyLines(p string) []string {
	var lines []string
	for _, l := range strings.Split(p, "\n") {
		if l != "" && !strings.HasPrefix(l, "-----END") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestTechnicalAuthMethodHelp: path-help, the user's manual, describes auth_method, its values
// and default, and the key's form and limit.
func TestTechnicalAuthMethodHelp(t *testing.T) {
	b, s := getTestBackend(t)
	resp, err := b.HandleRequest(t.Context(), &logical.Request{Operation: logical.HelpOperation, Path: "technical/idp", Storage: s})
	if err != nil || resp == nil {
		t.Fatalf("help: %v", err)
	}
	help, _ := resp.Data["help"].(string)
	for _, want := range []string{
		"auth_method", "Defaults to client_secret_basic", "client_secret_post", "private_key_jwt", "RFC 7523",
		"key_id", "kid", "EC P-256", "at least 2048 bits", "At most 64 KiB. Secret: never read back.",
		"private_key=@client-key.pem", "a secret of the other kind is refused",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help does not say %q", want)
		}
	}
}
