package pecreds

import (
	"encoding/json"
	"strings"
	"testing"
)

// The fuzz targets: scripts/test.sh runs each for a bounded time. They check that decoding never
// panics, that what is accepted is consistent, and that no error carries a secret field's value.

func FuzzParseCredential(f *testing.F) {
	for _, seed := range []string{
		`{"type":"password","username":"u","password":"p"}`,
		`{"type":"token","token":"t","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"type":"api_key","key":"k","header":"X"}`,
		`{"type":"oauth2","token_url":"https://x/t","client_id":"c","client_secret":"s","scopes":["a"]}`,
		`{"type":"certificate","certificate":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----","private_key":"x"}`,
		`{"type":"technical","name":"n"}`, `{"type":"current"}`, `{"type":5}`, `[]`, `null`,
	} {
		f.Add([]byte(seed), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		var raw any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		use := []credentialUse{useTechnical, useRegistry, useCurrent}[int(which)%3]
		c, err := parseCredential(raw, use)
		if err != nil {
			if obj, ok := raw.(map[string]any); ok {
				for _, k := range []string{"password", "token", "key", "client_secret", "private_key"} {
					if v, ok := obj[k].(string); ok && len(v) >= 8 && strings.Contains(err.Error(), v) {
						t.Fatalf("the error carries the %s: %v", k, err)
					}
				}
			}
			return
		}
		// What is accepted parses again from its own API form, to the same credential.
		again, err := parseCredential(c.Material(), use)
		if err != nil {
			t.Fatalf("accepted %s but not its own material %v: %v", data, c.Material(), err)
		}
		if a, b := mustJSON(t, c), mustJSON(t, again); a != b {
			t.Fatalf("round trip changed the credential: %s != %s", a, b)
		}
	})
}

func FuzzParseServices(f *testing.F) {
	for _, seed := range []string{
		`[{"name":"crm","url":"https://h/api","realm":"EU","credentials":[{"type":"current"}]}]`,
		`[{"name":"a","credentials":[{"type":"technical","name":"x"},{"type":"api_key","key":"k"}]}]`,
		`[{"name":"a","url":"mailto:x","credentials":[]}]`, `{}`, `[1]`, `[{"name":"a"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var raw any
		if json.Unmarshal(data, &raw) != nil {
			return
		}
		services, err := parseServices(raw)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, s := range services {
			if names[s.Name] || validateName("name", s.Name) != nil || len(s.Credentials) == 0 {
				t.Fatalf("accepted a bad service list: %s", data)
			}
			names[s.Name] = true
			_ = s.Redacted()
		}
	})
}

func FuzzMatchURL(f *testing.F) {
	f.Add("https://crm.example.com/api", "", "https://crm.example.com/api/x", "")
	f.Add("https://h:8443/a/b", "EU", "https://H:8443/a/b/c?x#y", "EU")
	f.Add("http://[::1]/x", "", "http://[::1]:80/x", "")
	f.Add("postgres://db/orders", "", "postgres://db:5432/orders/t", "R")
	f.Fuzz(func(t *testing.T, serviceURL, serviceRealm, requestURL, realm string) {
		services := effectiveServices([]layer{{Source: "definition:d", Services: []Service{
			{Name: "s", URL: serviceURL, Realm: serviceRealm, Credentials: []Credential{{Type: "current"}}},
		}}})
		s, _, _, err := matchURL(services, requestURL, realm)
		if err != nil {
			return
		}
		if realm != "" && serviceRealm != "" && serviceRealm != realm {
			t.Fatalf("a service of realm %q matched a request of realm %q", serviceRealm, realm)
		}
		req, _ := parseEndpoint(requestURL)
		svc, _ := parseEndpoint(s.URL)
		// Normalized paths hold no dot segment, and normalizing again changes nothing.
		for _, seg := range strings.Split(req.path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q normalized to %q, which keeps a dot segment", requestURL, req.path)
			}
		}
		if again := normalizePath(req.path); again != req.path && again != req.path+"/" {
			t.Fatalf("normalizing %q again gives %q", req.path, again)
		}
		if req.host != svc.host || req.port != svc.port || req.scheme != svc.scheme || !pathCovers(svc.path, req.path) {
			t.Fatalf("%q matched %q", requestURL, s.URL)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
