package credential

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pecreds/vault-plugin-pecreds/internal/testcert"
)

// The fuzz targets of the credential model: scripts/test.sh runs each for a bounded time. They
// check that decoding never panics, that what is accepted is consistent, and that no error carries
// a secret field's value.

func FuzzParseCredential(f *testing.F) {
	for _, seed := range []string{
		`{"type":"password","username":"u","password":"p"}`,
		`{"type":"token","token":"t","expires_at":"2030-01-01T00:00:00Z"}`,
		`{"type":"api_key","key":"k","header":"X"}`,
		`{"type":"oauth2","token_url":"https://x/t","client_id":"c","client_secret":"s","scopes":["a"]}`,
		`{"type":"oauth2","token_url":"https://x/t","client_id":"c","auth_method":"private_key_jwt","key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"}`,
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
		use := []Use{UseTechnical, UseRegistry, UseCurrent}[int(which)%3]
		c, err := Parse(raw, use)
		if err != nil {
			if obj, ok := raw.(map[string]any); ok {
				for _, k := range []string{"password", "token", "key", "client_secret", "private_key"} {
					if v, ok := obj[k].(string); ok && len(v) >= 8 && strings.Contains(err.Error(), v) && echoes(raw, use, k, v) {
						t.Fatalf("the error carries the %s: %v", k, err)
					}
				}
			}
			return
		}
		// What is accepted parses again from its own API form, to the same credential.
		again, err := Parse(c.Material(), use)
		if err != nil {
			t.Fatalf("accepted %s but not its own material %v: %v", data, c.Material(), err)
		}
		if a, b := mustJSON(t, c), mustJSON(t, again); a != b {
			t.Fatalf("round trip changed the credential: %s != %s", a, b)
		}
	})
}

// echoes says whether an error's text holds the secret field k's value v because it was given,
// not because the message's own words happen to contain it ("-----BEG" is in the PEM hint): the
// same input with v's letters replaced must then not hold v.
func echoes(raw any, use Use, k, v string) bool {
	obj := raw.(map[string]any)
	other := make(map[string]any, len(obj))
	for key, val := range obj {
		other[key] = val
	}
	other[k] = strings.Map(func(rune) rune { return 'Q' }, v)
	_, err := Parse(other, use)
	return err == nil || !strings.Contains(err.Error(), v)
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
		services, err := ParseServices(raw, UseRegistry)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, s := range services {
			if names[s.Name] || ValidateName("name", s.Name) != nil || len(s.Credentials) == 0 {
				t.Fatalf("accepted a bad service list: %s", data)
			}
			names[s.Name] = true
			_ = s.Redacted()
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

// testCertificate makes a self-signed certificate, its key, and a key of another certificate.
func testCertificate(t *testing.T) (certPEM, keyPEM, otherKeyPEM string) {
	t.Helper()
	certPEM, keyPEM, err := testcert.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, otherKeyPEM, err = testcert.New(); err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, otherKeyPEM
}
