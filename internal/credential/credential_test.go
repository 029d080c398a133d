package credential

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCredential(t *testing.T) {
	cert, key, otherKey := testCertificate(t)
	bigPEM := "-----BEGIN CERTIFICATE-----\n" + strings.Repeat("A", maxPEMBytes) + "\n-----END CERTIFICATE-----\n"

	cases := []struct {
		name    string
		raw     any
		use     Use
		want    map[string]any // the redacted view, when valid
		wantErr []string       // substrings of the error, when invalid
	}{
		{name: "password", use: UseRegistry,
			raw:  map[string]any{"type": "password", "username": "ann", "password": "s3cret", "label": "main"},
			want: map[string]any{"type": "password", "username": "ann", "label": "main"}},
		{name: "password with domain", use: UseCurrent,
			raw:  map[string]any{"type": "password", "username": "ann", "password": "s3cret", "domain": "CORP"},
			want: map[string]any{"type": "password", "username": "ann", "domain": "CORP"}},
		{name: "token default type", use: UseTechnical,
			raw:  map[string]any{"type": "token", "token": "t0k", "expires_at": "2030-01-02T03:04:05Z"},
			want: map[string]any{"type": "token", "token_type": "Bearer", "expires_at": "2030-01-02T03:04:05Z"}},
		{name: "api key default header", use: UseRegistry,
			raw:  map[string]any{"type": "api_key", "key": "k"},
			want: map[string]any{"type": "api_key", "header": "X-API-Key"}},
		{name: "certificate", use: UseRegistry,
			raw:  map[string]any{"type": "certificate", "certificate": cert, "private_key": key, "ca_chain": cert},
			want: map[string]any{"type": "certificate", "certificate": cert, "ca_chain": cert}},
		{name: "oauth2 with scopes", use: UseTechnical,
			raw:  map[string]any{"type": "oauth2", "token_url": "https://idp.example.com/token", "client_id": "c", "client_secret": "cs", "scopes": []any{"a", "b"}},
			want: map[string]any{"type": "oauth2", "token_url": "https://idp.example.com/token", "client_id": "c", "auth_method": "client_secret_basic", "scopes": []string{"a", "b"}}},
		{name: "oauth2 comma scopes", use: UseTechnical,
			raw:  map[string]any{"type": "oauth2", "token_url": "http://127.0.0.1:9/t", "client_id": "c", "client_secret": "cs", "scopes": "a, b"},
			want: map[string]any{"type": "oauth2", "token_url": "http://127.0.0.1:9/t", "client_id": "c", "auth_method": "client_secret_basic", "scopes": []string{"a", "b"}}},
		{name: "technical", use: UseRegistry,
			raw:  map[string]any{"type": "technical", "name": "crm-service"},
			want: map[string]any{"type": "technical", "name": "crm-service"}},
		{name: "current", use: UseRegistry,
			raw:  map[string]any{"type": "current"},
			want: map[string]any{"type": "current"}},

		{name: "not an object", use: UseRegistry, raw: []any{}, wantErr: []string{"must be a JSON object"}},
		{name: "a string", use: UseRegistry, raw: `{"type":"current"}`, wantErr: []string{"must be a JSON object, not a string"}},
		{name: "missing type", use: UseRegistry, raw: map[string]any{"username": "x"}, wantErr: []string{`"type" is required`, "password"}},
		{name: "unknown type", use: UseRegistry, raw: map[string]any{"type": "kerberos"}, wantErr: []string{`unknown type "kerberos"`}},
		{name: "oauth2 in a registry", use: UseRegistry,
			raw:     map[string]any{"type": "oauth2", "token_url": "https://x/t", "client_id": "c", "client_secret": "cs"},
			wantErr: []string{`type "oauth2" is not allowed in a registry`}},
		{name: "technical as current", use: UseCurrent, raw: map[string]any{"type": "technical", "name": "x"},
			wantErr: []string{`type "technical" is not allowed in a process's current credentials`}},
		{name: "current in technical", use: UseTechnical, raw: map[string]any{"type": "current"},
			wantErr: []string{`type "current" is not allowed`}},
		{name: "unknown field", use: UseRegistry,
			raw:     map[string]any{"type": "password", "username": "ann", "password": "x", "passwd": "y"},
			wantErr: []string{`unknown field "passwd" for type "password"`, "username, password, domain"}},
		{name: "unknown fields", use: UseRegistry,
			raw:     map[string]any{"type": "current", "b": 1, "a": 2},
			wantErr: []string{`unknown fields "a", "b"`}},
		{name: "missing password", use: UseRegistry, raw: map[string]any{"type": "password", "username": "ann"},
			wantErr: []string{`missing field "password"`}},
		{name: "empty key", use: UseRegistry, raw: map[string]any{"type": "api_key", "key": ""},
			wantErr: []string{`missing field "key"`}},
		{name: "number for a string", use: UseRegistry, raw: map[string]any{"type": "password", "username": 7.0, "password": "x"},
			wantErr: []string{`field "username" must be a string, not a number`}},
		{name: "bad expires_at", use: UseRegistry, raw: map[string]any{"type": "token", "token": "t", "expires_at": "tomorrow"},
			wantErr: []string{`field "expires_at" must be an RFC 3339 time`}},
		{name: "bad token_url", use: UseTechnical,
			raw:     map[string]any{"type": "oauth2", "token_url": "ftp://x/t", "client_id": "c", "client_secret": "cs"},
			wantErr: []string{`field "token_url" must be an absolute https URL`}},
		{name: "bad technical name", use: UseRegistry, raw: map[string]any{"type": "technical", "name": "-x"},
			wantErr: []string{`field "name" "-x" is invalid`}},
		{name: "not PEM", use: UseRegistry, raw: map[string]any{"type": "certificate", "certificate": "hello", "private_key": key},
			wantErr: []string{`field "certificate" must be PEM text`}},
		{name: "PEM over the limit", use: UseRegistry, raw: map[string]any{"type": "certificate", "certificate": bigPEM, "private_key": key},
			wantErr: []string{`field "certificate" is`, "64 KiB"}},
		{name: "key does not match", use: UseRegistry, raw: map[string]any{"type": "certificate", "certificate": cert, "private_key": otherKey},
			wantErr: []string{`field "private_key" does not fit field "certificate"`}},
		{name: "key as certificate", use: UseRegistry, raw: map[string]any{"type": "certificate", "certificate": key, "private_key": key},
			wantErr: []string{`field "certificate": holds a PEM block of type "PRIVATE KEY"`}},
		{name: "scopes of numbers", use: UseTechnical,
			raw:     map[string]any{"type": "oauth2", "token_url": "https://x/t", "client_id": "c", "client_secret": "cs", "scopes": []any{1.0}},
			wantErr: []string{`field "scopes"[0] must be a string`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.raw, tc.use)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted %v", tc.raw)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				for _, secret := range []string{"s3cret", key, otherKey} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q carries a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if got := c.Redacted(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("redacted view\n got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestCredentialMaterialKeepsSecrets(t *testing.T) {
	c, err := Parse(map[string]any{"type": "password", "username": "ann", "password": "s3cret"}, UseCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Material()["password"]; got != "s3cret" {
		t.Errorf("material password = %v", got)
	}
	if _, ok := c.Redacted()["password"]; ok {
		t.Error("redacted view shows the password")
	}
}

func TestEveryTypeHasAUse(t *testing.T) {
	seen := map[string]bool{}
	for _, ct := range credentialTypes {
		if ct.uses == 0 {
			t.Errorf("type %q is allowed nowhere", ct.name)
		}
		if seen[ct.name] {
			t.Errorf("type %q listed twice", ct.name)
		}
		seen[ct.name] = true
		for _, f := range ct.fields {
			if f.name == "type" || f.name == "label" {
				t.Errorf("type %q redefines the common field %q", ct.name, f.name)
			}
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "orders", "Order.v2_x-1", "9", strings.Repeat("a", 128)} {
		if err := ValidateName("name", ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                       "is required",
		"-a":                     "is invalid",
		".a":                     "is invalid",
		"a/b":                    "is invalid",
		"a b":                    "is invalid",
		"é":                      "is invalid",
		strings.Repeat("a", 129): "the limit is 128",
	} {
		err := ValidateName("name", bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", bad, err, want)
		}
	}
}
