package credential

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseServices(t *testing.T) {
	cur := []any{map[string]any{"type": "current"}}
	svc := func(name string, extra ...any) map[string]any {
		m := map[string]any{"name": name, "credentials": cur}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	many := func(n int, item func(i int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = item(i)
		}
		return out
	}

	valid := []struct {
		name string
		raw  any
		n    int
	}{
		{"nil", nil, 0},
		{"empty", []any{}, 0},
		{"one", []any{svc("crm", "url", "https://crm.example.com/api", "realm", "EU", "description", "the CRM")}, 1},
		{"URL with port", []any{svc("db", "url", "postgres://db.example.com:5432/orders")}, 1},
		{"the limit", many(MaxServices, func(i int) any { return svc(fmt.Sprintf("s%d", i)) }), MaxServices},
		{"32 credentials", []any{map[string]any{"name": "x", "credentials": many(maxServiceCredential, func(int) any { return map[string]any{"type": "current"} })}}, 1},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServices(tc.raw, UseRegistry)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n {
				t.Errorf("got %d services, want %d", len(got), tc.n)
			}
		})
	}

	invalid := []struct {
		name string
		raw  any
		want string
	}{
		{"not a list", map[string]any{}, "services: must be a JSON list"},
		{"a string", `[]`, "services: must be a JSON list, not a string"},
		{"over the limit", many(MaxServices+1, func(i int) any { return svc(fmt.Sprintf("s%d", i)) }), "1001 services given; the limit is 1000"},
		{"duplicate name", []any{svc("crm"), svc("crm")}, `services[1]: name "crm" is already used by services[0]`},
		{"missing name", []any{map[string]any{"credentials": cur}}, `services[0]: field "name" is required`},
		{"bad name", []any{svc("a b")}, `services[0]: field "name" "a b" is invalid`},
		{"unknown field", []any{svc("crm", "uri", "x")}, `services[0] (crm): unknown field "uri"`},
		{"relative url", []any{svc("crm", "url", "/api")}, `services[0] (crm): field "url" must be an absolute URL`},
		{"url with query", []any{svc("crm", "url", "https://x/api?a=1")}, `field "url" must not have a query`},
		{"url with encoded slash", []any{svc("crm", "url", "https://x/a%2Fb")}, `field "url" must not hold an encoded slash ("%2F") in its path`},
		{"url with backslash", []any{svc("crm", "url", `https://x/a\b`)}, `field "url" must not hold a backslash`},
		{"url with user", []any{svc("crm", "url", "https://u:p@x/api")}, `field "url" must not carry user info`},
		{"no credentials", []any{map[string]any{"name": "crm"}}, `services[0] (crm): missing field "credentials"`},
		{"empty credentials", []any{map[string]any{"name": "crm", "credentials": []any{}}}, `field "credentials" is empty`},
		{"33 credentials", []any{map[string]any{"name": "x", "credentials": many(maxServiceCredential+1, func(int) any { return map[string]any{"type": "current"} })}},
			`field "credentials" has 33 entries; the limit is 32`},
		{"bad credential", []any{svc("crm", "credentials", []any{map[string]any{"type": "current"}, map[string]any{"type": "password", "username": "u"}})},
			`services[0] (crm): credentials[1]: missing field "password"`},
		{"item not an object", []any{"crm"}, `services[0]: must be a JSON object, not a string`},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseServices(tc.raw, UseRegistry)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
