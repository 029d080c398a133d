package credential

import (
	"fmt"
	"strings"
	"testing"
)

// Each input is bounded in bytes; the error names the field and the limit, never the value.
func TestByteLimits(t *testing.T) {
	big := func(n int) string { return strings.Repeat("s", n) }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a secret past 64 KiB", parseErr(map[string]any{"type": "password", "username": "u", "password": big(MaxCredentialBytes)}),
			"the limit is 65536 bytes (64 KiB) a credential"},
		{"a credential past 64 KiB in several fields", parseErr(map[string]any{"type": "password", "username": big(40 << 10), "password": big(30 << 10)}),
			"the limit is 65536 bytes (64 KiB) a credential"},
		{"a label past 1 KiB", parseErr(map[string]any{"type": "current", "label": big(MaxTextBytes + 1)}),
			`field "label" is 1025 bytes long; the limit is 1024 bytes (1 KiB)`},
		{"a service description past 1 KiB", servicesErr([]any{map[string]any{"name": "s", "description": big(MaxTextBytes + 1), "credentials": []any{map[string]any{"type": "current"}}}}),
			`field "description" is 1025 bytes long; the limit is 1024 bytes (1 KiB)`},
		{"services past 1 MiB", servicesErr(manyServices(20, 60<<10)), "the limit is 1048576 bytes (1 MiB)"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
		if tc.err != nil && strings.Contains(tc.err.Error(), "sss") {
			t.Errorf("%s: the error echoes the value", tc.name)
		}
	}
	// At the limits: accepted.
	if _, err := Parse(map[string]any{"type": "password", "username": "u", "password": big(60 << 10), "label": big(MaxTextBytes)}, UseCurrent); err != nil {
		t.Errorf("a 60 KiB secret and a 1 KiB label: %v", err)
	}
	if _, err := ParseServices(manyServices(15, 60<<10), UseRegistry); err != nil {
		t.Errorf("15 services of 60 KiB: %v", err)
	}
}

func parseErr(raw map[string]any) error {
	_, err := Parse(raw, UseAnywhere)
	return err
}

func servicesErr(raw []any) error {
	_, err := ParseServices(raw, UseRegistry)
	return err
}

// manyServices makes n services, each with one api_key of size bytes.
func manyServices(n, size int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = map[string]any{"name": fmt.Sprintf("s%d", i), "credentials": []any{map[string]any{"type": "api_key", "key": strings.Repeat("k", size)}}}
	}
	return out
}

// CheckLayer measures services as stored: the bound a merged runtime layer must keep.
func TestCheckLayer(t *testing.T) {
	one := Service{Name: "s", Credentials: []Credential{{Type: "api_key", Fields: map[string]string{"key": strings.Repeat("k", 60<<10)}}}}
	var layer []Service
	for len(layer) < 18 {
		layer = append(layer, one)
	}
	if err := CheckLayer("services", layer[:16]); err != nil {
		t.Errorf("16 services of 60 KiB: %v", err)
	}
	if err := CheckLayer("services", layer); err == nil || !strings.Contains(err.Error(), "services would take") || !strings.Contains(err.Error(), "1 MiB") {
		t.Errorf("18 services of 60 KiB: %v", err)
	}
}
