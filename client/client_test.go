package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/client"
)

// Unit tests of the client against a stand-in Vault (httptest): what goes on the wire, and what
// never does. tests/client_test.go runs the client against a real Vault.

// seen is one request the stand-in got.
type seen struct {
	method, requestURI string
	header             http.Header
	body               map[string]any
}

// fakeVault answers a process start with a lease, a revoke with 204, and anything else with
// answer (nil: 204). It records every request.
type fakeVault struct {
	mu     sync.Mutex
	got    []seen
	answer func(w http.ResponseWriter, r *http.Request) bool
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := seen{method: r.Method, requestURI: r.RequestURI, header: r.Header.Clone()}
	_ = json.Unmarshal(body, &s.body)
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
	if f.answer != nil && f.answer(w, r) {
		return
	}
	if r.URL.Path == "/v1/sys/wrapping/lookup" { // a wrapping token of a resolve, as ResolveWrapped makes
		_, _ = io.WriteString(w, `{"data": {"creation_path": "pecreds/process/p/resolve/crm", "creation_ttl": 60}}`)
		return
	}
	if r.URL.Path == "/v1/pecreds/process/p" && r.Method == http.MethodPut {
		_, _ = io.WriteString(w, `{"lease_id": "pecreds/process/p/L1", "renewable": false, "lease_duration": 3600, "data": {"id": "p"}}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeVault) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.got...)
}

// start is a client of the stand-in and a started process "p".
func start(t *testing.T, f *fakeVault) (*client.Client, *client.Process) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	v, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.SetToken("test-token")
	c := client.New(v, "pecreds")
	p, err := c.Start(context.Background(), client.StartInput{ID: "p", Owner: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return c, p
}

func wantBadRequest(t *testing.T, err error, want string) {
	t.Helper()
	var bad *client.BadRequestError
	if !errors.As(err, &bad) || !strings.Contains(err.Error(), want) {
		t.Errorf("want a bad request naming %q, got %v", want, err)
	}
}

// A name that breaks the server's rule never reaches a path: ".." or "/" in an id or a service
// would otherwise climb to another path (technical/<name>/creds).
func TestNamesCheckedBeforeAnyCall(t *testing.T) {
	f := &fakeVault{}
	c, p := start(t, f)
	before := len(f.requests())
	ctx := context.Background()
	for _, bad := range []string{"", "..", "../../technical/crm/creds", "a/b", ".hidden", "-x", "x y", "a%2Fb", "a\\b", strings.Repeat("x", 129)} {
		_, err := c.Start(ctx, client.StartInput{ID: bad})
		wantBadRequest(t, err, "process id")
		_, err = c.Start(ctx, client.StartInput{ID: "q", Definition: "../" + bad})
		wantBadRequest(t, err, "definition")
		_, err = p.Resolve(ctx, bad)
		wantBadRequest(t, err, "service")
		_, err = p.Report(ctx, bad, client.AuthFailed)
		wantBadRequest(t, err, "service")
	}
	p2 := p // an id changed after Start is checked again
	p2.ID = "../technical/crm"
	_, err := p2.State(ctx)
	wantBadRequest(t, err, "process id")
	_, err = p2.Resolve(ctx, "creds")
	wantBadRequest(t, err, "process id")
	_, err = p2.ResolveURL(ctx, "https://crm.example.com/")
	wantBadRequest(t, err, "process id")
	wantBadRequest(t, p2.AddRuntime(ctx, nil), "process id")
	_, err = p2.Preflight(ctx, 0)
	wantBadRequest(t, err, "process id")
	if got := f.requests()[before:]; len(got) != 0 {
		t.Errorf("bad names reached the server: %+v", got)
	}
}

// A resolve by URL is a write: the URL (its query may hold a secret) is in the body, never in
// the request line.
func TestResolveURLGoesInTheBody(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/pecreds/process/p/resolve" {
			return false
		}
		_, _ = io.WriteString(w, `{"data": {"service": "crm", "source": "runtime", "index": 1, "type": "api_key", "key": "k"}}`)
		return true
	}}
	_, p := start(t, f)
	const u = "https://crm.example.com/api/customers?access_token=s3cret-in-query"
	creds, err := p.ResolveURL(context.Background(), u, client.WithRealm("EU"), client.WithExplain(), client.WithType("api_key"))
	if err != nil || creds.Service != "crm" || creds.Index != 1 || creds.Fields["key"] != "k" {
		t.Fatalf("resolve: %+v %v", creds, err)
	}
	last := f.requests()[len(f.requests())-1]
	if last.method != http.MethodPut || last.requestURI != "/v1/pecreds/process/p/resolve" {
		t.Errorf("request line: %s %s", last.method, last.requestURI)
	}
	if last.body["url"] != u || last.body["realm"] != "EU" || last.body["explain"] != true || last.body["type"] != "api_key" {
		t.Errorf("body: %v", last.body)
	}
}

// Vault's and the transport's errors quote the request URL; the client's errors keep no query.
func TestErrorsCarryNoQuery(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/pecreds/process/p/resolve/hang-up"):
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		case strings.HasPrefix(r.URL.Path, "/v1/pecreds/process/p/resolve"):
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"errors": ["try again"]}`)
		default:
			return false
		}
		return true
	}}
	_, p := start(t, f)
	ctx := context.Background()
	var errs []error
	_, err := p.Resolve(ctx, "crm", client.WithType("password"), client.WithExplain())
	errs = append(errs, err)
	_, err = p.Resolve(ctx, "hang-up", client.WithType("password"))
	errs = append(errs, err)
	_, err = p.ResolveURL(ctx, "https://crm.example.com/x?access_token=s3cret-in-query")
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d succeeded", i)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "?") || strings.Contains(msg, "password") || strings.Contains(msg, "s3cret") {
			t.Errorf("call %d: the error carries the query: %s", i, msg)
		}
	}
	var re *api.ResponseError
	if !errors.As(errs[0], &re) || re.StatusCode != http.StatusServiceUnavailable || !strings.Contains(re.URL, "/resolve/crm") {
		t.Errorf("a 503 is still Vault's ResponseError with its status and path: %#v", errs[0])
	}
}

// An empty answer (204) to a report or a preflight is ErrNotFound, not a crash.
func TestEmptyAnswersAreNotFound(t *testing.T) {
	_, p := start(t, &fakeVault{})
	ctx := context.Background()
	if _, err := p.Report(ctx, "crm", client.AuthFailed); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("report: %v", err)
	}
	if _, err := p.Preflight(ctx, 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("preflight: %v", err)
	}
}

// Create leaves the lease to another program: no renewal from this client, the lease id
// answered; RenewLease renews it by id with the increment asked; a handle from Process resolves
// for an existing process, and its Close ends it by its id (DELETE), a process already gone
// included.
func TestCreateRenewAndEndByID(t *testing.T) {
	f := &fakeVault{answer: func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/v1/sys/leases/renew":
			_, _ = io.WriteString(w, `{"lease_id": "pecreds/process/p/L1", "renewable": true, "lease_duration": 600}`)
		case r.Method == http.MethodDelete && r.URL.Path == "/v1/pecreds/process/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors": []}`)
		default:
			return false
		}
		return true
	}}
	c, _ := start(t, f)
	ctx := context.Background()
	before := len(f.requests())
	lease, err := c.Create(ctx, client.StartInput{ID: "p", Owner: "ann", Current: client.Password("ann", "pw")})
	if err != nil || lease != "pecreds/process/p/L1" {
		t.Fatalf("create: %q %v", lease, err)
	}
	ttl, err := c.RenewLease(ctx, lease, 10*time.Minute)
	if err != nil || ttl != 10*time.Minute {
		t.Fatalf("renew: %s %v", ttl, err)
	}
	if err := c.Process("p").Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.End(ctx, "gone"); err != nil {
		t.Errorf("ending a process already gone: %v", err)
	}
	if err := c.End(ctx, "../sys"); err == nil {
		t.Error("End took a bad id")
	}
	got := f.requests()[before:]
	want := []string{"PUT /v1/pecreds/process/p", "PUT /v1/sys/leases/renew", "DELETE /v1/pecreds/process/p", "DELETE /v1/pecreds/process/gone"}
	if len(got) != len(want) {
		t.Fatalf("requests %+v, want %v", got, want)
	}
	for i, g := range got {
		if g.method+" "+g.requestURI != want[i] {
			t.Errorf("request %d: %s %s, want %s", i, g.method, g.requestURI, want[i])
		}
	}
	if got[1].body["lease_id"] != lease || got[1].body["increment"] != float64(600) {
		t.Errorf("renew body: %v", got[1].body)
	}
}
