package pecreds

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

const ordersJSON = `[
 {"name": "crm", "url": "https://crm.example.com/api", "credentials": [
   {"type": "current"},
   {"type": "password", "username": "svc-orders", "password": "pw-secret-1"},
   {"type": "technical", "name": "crm-service"}]},
 {"name": "docs", "credentials": [{"type": "api_key", "key": "key-secret-2", "header": "X-Docs-Key"}]}
]`

func TestRegistryLifecycle(t *testing.T) {
	b, s := getTestBackend(t)

	resp := mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{
		"description": "Order handling", "services": ordersJSON, "cas": 0,
	})
	if resp.Data["version"] != 1 {
		t.Fatalf("create answered version %v", resp.Data["version"])
	}
	mustFail(t, b, s, logical.UpdateOperation, "registry/orders", map[string]any{"cas": 0}, "check-and-set failed", "cas=0", "version 1")
	mustFail(t, b, s, logical.UpdateOperation, "registry/orders", map[string]any{"cas": 5}, "cas=5 does not match the current version 1")

	// An update without services keeps them.
	resp = mustSucceed(t, b, s, logical.UpdateOperation, "registry/orders", map[string]any{"description": "v2", "cas": 1})
	if resp.Data["version"] != 2 {
		t.Fatalf("update answered version %v", resp.Data["version"])
	}
	read := mustSucceed(t, b, s, logical.ReadOperation, "registry/orders", nil)
	if read.Data["description"] != "v2" || read.Data["version"] != 2 {
		t.Errorf("read %v", read.Data)
	}
	services := read.Data["services"].([]map[string]any)
	if len(services) != 2 || services[0]["url"] != "https://crm.example.com/api" {
		t.Errorf("services %v", services)
	}
	body, _ := json.Marshal(read.Data)
	for _, secret := range []string{"pw-secret-1", "key-secret-2"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("read carries the secret %q: %s", secret, body)
		}
	}
	if !strings.Contains(string(body), `"username":"svc-orders"`) || !strings.Contains(string(body), `"header":"X-Docs-Key"`) {
		t.Errorf("read lost a non-secret field: %s", body)
	}

	list := mustSucceed(t, b, s, logical.ListOperation, "registry/", nil)
	if keys := list.Data["keys"].([]string); len(keys) != 1 || keys[0] != "orders" {
		t.Errorf("list %v", list.Data)
	}

	mustSucceed(t, b, s, logical.DeleteOperation, "registry/orders", nil)
	if resp := request(t, b, s, logical.ReadOperation, "registry/orders", nil); resp != nil {
		t.Errorf("read after delete: %v", resp.Data)
	}
	// After a delete, cas=0 creates again at version 1.
	resp = mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{"cas": 0})
	if resp.Data["version"] != 1 {
		t.Errorf("re-create answered version %v", resp.Data["version"])
	}
}

func TestRegistryRejects(t *testing.T) {
	cases := []struct {
		name string
		path string
		data map[string]any
		want []string
	}{
		{"bad name", "registry/-orders", nil, []string{`registry name "-orders" is invalid`}},
		{"name with slash", "registry/a/b", nil, []string{`registry name "a/b" is invalid`}},
		{"long name", "registry/" + strings.Repeat("x", 129), nil, []string{"the limit is 128"}},
		{"unknown type", "registry/r", map[string]any{"services": `[{"name":"s","credentials":[{"type":"magic"}]}]`},
			[]string{`services[0] (s): credentials[0]: unknown type "magic"`}},
		{"unknown field", "registry/r", map[string]any{"services": `[{"name":"s","credentials":[{"type":"password","username":"u","password":"p","pass":"x"}]}]`},
			[]string{`unknown field "pass"`}},
		{"missing field", "registry/r", map[string]any{"services": `[{"name":"s","credentials":[{"type":"api_key"}]}]`},
			[]string{`missing field "key"`}},
		{"services not a list", "registry/r", map[string]any{"services": "crm"}, []string{"services: the text given is not valid JSON"}},
		{"negative cas", "registry/r", map[string]any{"cas": -1}, []string{"cas must be 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, s := getTestBackend(t)
			mustFail(t, b, s, logical.UpdateOperation, tc.path, tc.data, tc.want...)
			if tc.data == nil {
				mustFail(t, b, s, logical.ReadOperation, tc.path, nil, tc.want...)
				mustFail(t, b, s, logical.DeleteOperation, tc.path, nil, tc.want...)
			}
			if keys, _ := s.List(context.Background(), registryStoragePrefix); len(keys) != 0 {
				t.Errorf("a rejected write left %v in storage", keys)
			}
		})
	}
}

func TestRegistryExistenceCheck(t *testing.T) {
	b, s := getTestBackend(t)
	ctx := context.Background()
	check := func(path string) bool {
		t.Helper()
		_, exists, err := b.HandleExistenceCheck(ctx, &logical.Request{Operation: logical.CreateOperation, Path: path, Storage: s})
		if err != nil {
			t.Fatal(err)
		}
		return exists
	}
	if check("registry/orders") {
		t.Error("a missing registry exists")
	}
	if check("registry/bad name") {
		t.Error("a bad name exists")
	}
	mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", nil)
	if !check("registry/orders") {
		t.Error("a written registry does not exist")
	}
}

func TestRegistryInvalidate(t *testing.T) {
	b, s := getTestBackend(t)
	ctx := context.Background()
	mustSucceed(t, b, s, logical.CreateOperation, "registry/orders", map[string]any{"description": "one"})
	// Another node rewrites the registry underneath this one.
	entry, _ := logical.StorageEntryJSON("registry/orders", &registryEntry{Name: "orders", Description: "two", Version: 2})
	if err := s.Put(ctx, entry); err != nil {
		t.Fatal(err)
	}
	if got := mustSucceed(t, b, s, logical.ReadOperation, "registry/orders", nil).Data["description"]; got != "one" {
		t.Fatalf("the cache should still serve the old value, got %v", got)
	}
	b.invalidate(ctx, "registry/orders")
	if got := mustSucceed(t, b, s, logical.ReadOperation, "registry/orders", nil).Data["description"]; got != "two" {
		t.Errorf("after invalidate description = %v", got)
	}
}
