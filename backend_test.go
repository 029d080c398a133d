package pecreds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

func getTestBackend(t *testing.T) (*backend, logical.Storage) {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.System = testSystemView{StaticSystemView: logical.StaticSystemView{
		DefaultLeaseTTLVal: 24 * time.Hour,
		MaxLeaseTTLVal:     8760 * time.Hour, // as dev.sh tunes the mount
	}}
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	b := raw.(*backend)
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: conf.StorageView}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return b, conf.StorageView
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
