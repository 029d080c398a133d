package pecreds

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

func getTestBackend(t *testing.T) (*backend, logical.Storage) {
	t.Helper()
	return getTestBackendWith(t, testDeps())
}

// testDeps are the production dependencies with the waits of a test: a token request is waited
// on for at most a second, and may follow the last one at once.
func testDeps() deps {
	d := defaultDeps()
	d.tokenWait = time.Second
	d.minFetchInterval = 0 // tests of the interval set their own
	return d
}

// getTestBackendWith builds a backend from the given dependencies over fresh storage.
func getTestBackendWith(t *testing.T, d deps) (*backend, logical.Storage) {
	t.Helper()
	s := &logical.InmemStorage{}
	return startTestBackend(t, d, s), s
}

// restart starts a new backend over existing storage, as a plugin restart or a fail-over does.
func restart(t *testing.T, s logical.Storage) *backend {
	t.Helper()
	return startTestBackend(t, testDeps(), s)
}

// startTestBackend is the one builder of the unit tests' backends: d's dependencies over s,
// initialized as Vault does, cleaned up when the test ends.
func startTestBackend(t *testing.T, d deps, s logical.Storage) *backend {
	t.Helper()
	raw, err := factoryWith(d)(context.Background(), testBackendConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	b := raw.(*backend)
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return b
}

// testBackendConfig is the unit tests' backend configuration over s.
func testBackendConfig(s logical.Storage) *logical.BackendConfig {
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.System = testSystemView{StaticSystemView: logical.StaticSystemView{
		DefaultLeaseTTLVal: 24 * time.Hour,
		MaxLeaseTTLVal:     8760 * time.Hour, // as dev.sh tunes the mount
	}}
	return conf
}

// testSystemView knows the identity entities the unit tests name: ent-ann and ent-bob.
type testSystemView struct{ logical.StaticSystemView }

func (testSystemView) EntityInfo(id string) (*logical.Entity, error) {
	if id == "ent-ann" || id == "ent-bob" {
		return &logical.Entity{ID: id, Name: id}, nil
	}
	return nil, nil
}

// request runs one request and validates a successful answer against the path's declared
// response schema.
func request(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) *logical.Response {
	t.Helper()
	req := &logical.Request{Operation: op, Path: path, Storage: s, Data: data}
	resp, err := b.HandleRequest(context.Background(), req)
	if err != nil {
		t.Fatalf("%s %s: unexpected error: %v", op, path, err)
	}
	if resp != nil && !resp.IsError() {
		schema.ValidateResponse(t, schema.GetResponseSchema(t, b.Route(path), op), resp, true)
	}
	return resp
}

// mustSucceed fails the test unless the request answered without an error.
func mustSucceed(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any) *logical.Response {
	t.Helper()
	resp := request(t, b, s, op, path, data)
	if resp != nil && resp.IsError() {
		t.Fatalf("%s %s: %v", op, path, resp.Error())
	}
	return resp
}

// mustFail fails the test unless the request answered a 400 whose message holds every want.
func mustFail(t *testing.T, b *backend, s logical.Storage, op logical.Operation, path string, data map[string]any, want ...string) string {
	t.Helper()
	resp := request(t, b, s, op, path, data)
	if resp == nil || !resp.IsError() {
		t.Fatalf("%s %s: expected a 400, got %#v", op, path, resp)
	}
	msg := resp.Error().Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s %s: error %q does not mention %q", op, path, msg, w)
		}
	}
	return msg
}

// testCertificate makes a self-signed certificate and its key, and a second, unrelated key.
func testCertificate(t *testing.T) (certPEM, keyPEM, otherKeyPEM string) {
	t.Helper()
	certPEM, keyPEM, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	_, otherKeyPEM, err = testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, otherKeyPEM
}

// TestRouting: every kind of request reaches its own path, and patterns of different families
// (the first segment: process, config, registry, ...) never match the same request, so the order
// of the families in Paths changes no routing; within a family, order matters (task/mine).
func TestRouting(t *testing.T) {
	b, _ := getTestBackend(t)
	family := func(s string) string {
		return strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(s, "^"), "/", 2)[0], "$")
	}
	for request, pattern := range map[string]string{
		"process/p1":                 `^process/(?P<id>[^/]+)$`,
		"process/":                   `^process/?$`,
		"process/p1/resolve/crm":     `^process/(?P<id>[^/]+)/resolve/(?P<service>[^/]+)$`,
		"process/p1/resolve":         `^process/(?P<id>[^/]+)/resolve$`,
		"process/p1/report":          `^process/(?P<id>[^/]+)/report$`,
		"process/p1/preflight":       `^process/(?P<id>[^/]+)/preflight$`,
		"process/p1/resume":          `^process/(?P<id>[^/]+)/resume$`,
		"process/p1/credentials":     `^process/(?P<id>[^/]+)/credentials$`,
		"process/p1/credentials/crm": `^process/(?P<id>[^/]+)/credentials/(?P<service>[^/]+)$`,
		"config":                     `^config$`,
		"registry/":                  `^registry/?$`,
		"registry/orders":            `^registry/(?P<name>.*)$`,
		"technical/":                 `^technical/?$`,
		"technical/crm/creds":        `^technical/(?P<name>[^/]+)/creds$`,
		"technical/crm":              `^technical/(?P<name>.*)$`,
		"task/":                      `^task/?$`,
		"task/mine":                  `^task/mine/?$`,
		"task/T1":                    `^task/(?P<id>[^/]+)$`,
		"task/T1/complete":           `^task/(?P<id>[^/]+)/complete$`,
		"task/T1/complete-on-behalf": `^task/(?P<id>[^/]+)/complete-on-behalf$`,
		"notify/status":              `^notify/status$`,
		"status":                     `^status$`,
	} {
		if got := b.Route(request); got == nil || got.Pattern != pattern {
			t.Errorf("%s routes to %v, want %s", request, got, pattern)
		}
		for _, p := range b.Paths {
			if regexp.MustCompile(p.Pattern).MatchString(request) && family(p.Pattern) != family(request) {
				t.Errorf("%s also matches %s, of another family", request, p.Pattern)
			}
		}
	}
}

// "vault path-help pecreds/" is an overview of every path: each pattern of the backend, with its
// named segments as <name>, is in the backend's help.
func TestBackendHelpNamesEveryPath(t *testing.T) {
	b, _ := getTestBackend(t)
	group := regexp.MustCompile(`\(\?P<(\w+)>[^)]*\)`)
	for _, p := range b.Paths {
		path := group.ReplaceAllString(p.Pattern, "<$1>")
		path = strings.TrimSuffix(strings.TrimSuffix(path, "$"), "/?")
		path = strings.ReplaceAll(path, "<service>", "<svc>")
		if path == "registry" || path == "technical" || path == "process" || path == "task" {
			path += "/" // the lists
		}
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(path) + `( |$)`).MatchString(b.Help) {
			t.Errorf("the backend's help does not list %s (pattern %s)", path, p.Pattern)
		}
	}
}
