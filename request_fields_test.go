package pecreds

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// storedKeys lists what storage holds under prefix.
func storedKeys(t *testing.T, s logical.Storage, prefix string) []string {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A typo is refused, not ignored: an unknown top-level field on a write is a 400 naming it and the
// nearest known field, and nothing is made.
func TestAttackUnknownFieldIsRefused(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	for _, tc := range []struct {
		path          string
		data          map[string]any
		field, nearby string
		prefix        string
	}{
		{"process/p10", map[string]any{"defintion": "orders", "owner": "ann"}, "defintion", "definition", "process/"},
		{"registry/x", map[string]any{"service": `[{"name":"s","credentials":[{"type":"current"}]}]`}, "service", "services", "registry/x"},
		{"technical/t", map[string]any{"type": "password", "username": "u", "pasword": "p"}, "pasword", "password", "technical/"},
		{"config", map[string]any{"keep_credential": "none"}, "keep_credential", "keep_credentials", ""},
		{"process/p1/report", map[string]any{"service": "crm", "error": "auth_failed", "mesage": "x"}, "mesage", "message", ""},
	} {
		before := storedKeys(t, s, tc.prefix)
		mustFail(t, b, s, logical.UpdateOperation, tc.path, tc.data, `unknown field "`+tc.field+`"`, `did you mean "`+tc.nearby+`"`)
		if after := storedKeys(t, s, tc.prefix); len(after) != len(before) {
			t.Errorf("%s: a refused write changed storage: %v -> %v", tc.path, before, after)
		}
	}
	// The fields a path captures are not offered as body fields.
	msg := mustFail(t, b, s, logical.UpdateOperation, "process/p10", map[string]any{"x": "1"}, `unknown field "x"`)
	if strings.Contains(msg, `"id"`) || strings.Contains(msg, " id,") {
		t.Errorf("the path's own id is offered as a field: %q", msg)
	}
	// A path that takes no body field refuses any.
	mustFail(t, b, s, logical.UpdateOperation, "notify/retry", map[string]any{"all": true}, `unknown field "all": this path takes no fields`)
	// The config a typo would have changed is unchanged.
	if got := mustSucceed(t, b, s, logical.ReadOperation, "config", nil).Data["keep_credentials"]; got != "persistent" {
		t.Errorf("keep_credentials %v", got)
	}
	// A technical credential's type-dependent fields are all declared: a write with them works.
	mustSucceed(t, b, s, logical.CreateOperation, "technical/api", map[string]any{"type": "api_key", "key": "k", "header": "X-Key", "label": "l"})
}

// An empty value where a name is expected is a 400, not "none".
func TestAttackEmptyNameIsRefused(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustFail(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": ""}, "definition is empty")
	mustFail(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "owner_entity_id": ""}, "owner_entity_id is empty")
	if keys := storedKeys(t, s, processStoragePrefix); len(keys) != 0 {
		t.Errorf("a refused create stored %v", keys)
	}
	created := mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"owner": "ann"}) // left out: none
	// Vault renews a lease with the data its create was given, empty fields and all, on the
	// create's path: the rules are the user's writes', not Vault's own requests'.
	renew := &logical.Request{Operation: logical.RenewOperation, Path: "process/p1", Storage: s, Secret: created.Secret,
		Data: map[string]any{"owner": "ann", "owner_entity_id": "", "definition": ""}}
	if resp, err := b.HandleRequest(context.Background(), renew); err != nil || resp.IsError() {
		t.Errorf("renewal: %v %v", resp, err)
	}
}

// The framework's conversion error quotes the value it could not convert; every field's type
// error names the field and the type instead, on every path.
func TestAttackTypeErrorsNeverEchoTheValue(t *testing.T) {
	b, s := getTestBackend(t)
	setupLayers(t, b, s)
	mustSucceed(t, b, s, logical.CreateOperation, "process/p1", map[string]any{"definition": "orders", "current": annJSON})
	const marker = "https://user:echo-marker-secret@idp.example.com/token"
	capture := regexp.MustCompile(`\(\?P<([a-z_]+)>[^)]*\)`)
	checked := 0
	for _, p := range b.Paths {
		reqPath := strings.NewReplacer("^", "", "$", "", "/?", "").Replace(capture.ReplaceAllStringFunc(p.Pattern, func(m string) string {
			if strings.HasPrefix(m, "(?P<id>") {
				return "p1"
			}
			return "crm"
		}))
		for _, op := range []logical.Operation{logical.UpdateOperation, logical.ReadOperation} {
			if p.Operations[op] == nil {
				continue
			}
			for _, field := range bodyFields(p) {
				var wrong any = []any{marker}
				if t := p.Fields[field].Type; t == framework.TypeSlice || t == framework.TypeCommaStringSlice || t == framework.TypeStringSlice {
					wrong = map[string]any{"k": map[string]any{"v": marker}}
				}
				resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: reqPath, Storage: s, Data: map[string]any{field: wrong}})
				text := ""
				if err != nil {
					text = err.Error()
				}
				if resp != nil && resp.Error() != nil {
					text += resp.Error().Error()
				}
				if strings.Contains(text, "echo-marker") {
					t.Errorf("%s %s %s: the answer echoes the value: %q", op, reqPath, field, text)
				}
				if op == logical.UpdateOperation && err == nil && (resp == nil || !resp.IsError()) {
					t.Errorf("%s %s %s: a value of the wrong type was accepted", op, reqPath, field)
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d fields checked", checked)
	}
	// The two of the issue, word for word.
	mustFail(t, b, s, logical.CreateOperation, "technical/idp", map[string]any{"type": "oauth2", "token_url": []any{marker}, "client_id": "c", "client_secret": "s"},
		"token_url must be a string, not a list")
	mustFail(t, b, s, logical.UpdateOperation, "process/p1/report", map[string]any{"service": "crm", "error": "unavailable", "message": map[string]any{"m": marker}},
		"message must be a string, not an object")
}
