package credential

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	grantAccess  = "AT-grant-access-3f9c"
	grantRefresh = "RT-grant-refresh-77ab"
)

func grant(extra map[string]any) map[string]any {
	g := map[string]any{"type": "oauth2_user", "access_token": grantAccess, "refresh_token": grantRefresh,
		"expires_in": json.Number("3600"), "client": "idp"}
	for k, v := range extra {
		if v == nil {
			delete(g, k)
		} else {
			g[k] = v
		}
	}
	return g
}

func TestParseGrant(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	cases := []struct {
		name    string
		raw     map[string]any
		use     Use
		want    map[string]any // the redacted view after Settle, when valid
		wantErr []string
	}{
		{name: "expires_in as a JSON number", raw: grant(nil), use: UseCurrent,
			want: map[string]any{"type": "oauth2_user", "expires_at": "2026-05-01T13:00:00Z", "token_type": "Bearer", "client": "idp"}},
		{name: "expires_in as decoded JSON text", raw: grant(map[string]any{"expires_in": 60.0}), use: UseRuntime,
			want: map[string]any{"type": "oauth2_user", "expires_at": "2026-05-01T12:01:00Z", "token_type": "Bearer", "client": "idp"}},
		{name: "expires_in as a string", raw: grant(map[string]any{"expires_in": "60", "scope": "mail.read files.read", "token_type": "DPoP",
			"refresh_expires_at": "2026-06-01T00:00:00Z", "label": "ann"}), use: UseCurrent,
			want: map[string]any{"type": "oauth2_user", "label": "ann", "expires_at": "2026-05-01T12:01:00Z", "token_type": "DPoP", "client": "idp",
				"scope": "mail.read files.read", "refresh_expires_at": "2026-06-01T00:00:00Z"}},
		{name: "expires_at, no refresh token", raw: grant(map[string]any{"expires_in": nil, "refresh_token": nil, "expires_at": "2026-05-01T12:30:00Z"}), use: UseCurrent,
			want: map[string]any{"type": "oauth2_user", "expires_at": "2026-05-01T12:30:00Z", "token_type": "Bearer", "client": "idp"}},
		{name: "expired access token, live refresh token", raw: grant(map[string]any{"expires_in": nil, "expires_at": "2026-05-01T11:00:00Z"}), use: UseCurrent,
			want: map[string]any{"type": "oauth2_user", "expires_at": "2026-05-01T11:00:00Z", "token_type": "Bearer", "client": "idp"}},

		{name: "in a registry", raw: grant(nil), use: UseRegistry, wantErr: []string{`type "oauth2_user" is not allowed in a registry's service entry`}},
		{name: "as a technical credential", raw: grant(nil), use: UseTechnical, wantErr: []string{`type "oauth2_user" is not allowed in a technical credential`}},
		{name: "missing access_token", raw: grant(map[string]any{"access_token": nil}), use: UseCurrent, wantErr: []string{`missing field "access_token"`}},
		{name: "missing client", raw: grant(map[string]any{"client": nil}), use: UseCurrent, wantErr: []string{`missing field "client"`}},
		{name: "bad client name", raw: grant(map[string]any{"client": "-x"}), use: UseCurrent, wantErr: []string{`field "client" "-x" is invalid`}},
		{name: "unknown field", raw: grant(map[string]any{"id_token": "x"}), use: UseCurrent,
			wantErr: []string{`unknown field "id_token" for type "oauth2_user"`, "access_token, refresh_token"}},
		{name: "both expiries", raw: grant(map[string]any{"expires_at": "2026-05-01T13:00:00Z"}), use: UseCurrent,
			wantErr: []string{`"expires_at" and "expires_in" are both given`}},
		{name: "no expiry", raw: grant(map[string]any{"expires_in": nil}), use: UseCurrent,
			wantErr: []string{`missing field "expires_at" or "expires_in"`}},
		{name: "expires_in zero", raw: grant(map[string]any{"expires_in": json.Number("0")}), use: UseCurrent,
			wantErr: []string{`field "expires_in" must be a positive number of seconds`}},
		{name: "expires_in fraction", raw: grant(map[string]any{"expires_in": 1.5}), use: UseCurrent,
			wantErr: []string{`field "expires_in" must be a whole number of seconds`}},
		{name: "expires_in huge", raw: grant(map[string]any{"expires_in": "99999999999999999999"}), use: UseCurrent,
			wantErr: []string{`field "expires_in" must be at most`}},
		{name: "expires_in a list", raw: grant(map[string]any{"expires_in": []any{"1"}}), use: UseCurrent,
			wantErr: []string{`field "expires_in" must be a string, not a list`}},
		{name: "refresh expiry without refresh token", raw: grant(map[string]any{"refresh_token": nil, "refresh_expires_at": "2026-06-01T00:00:00Z"}), use: UseCurrent,
			wantErr: []string{`"refresh_expires_at" is given without "refresh_token"`}},
		{name: "line break in the access token", raw: grant(map[string]any{"access_token": grantAccess + "\r\nX-Evil: 1"}), use: UseCurrent,
			wantErr: []string{`field "access_token" must be printable ASCII`}},
		{name: "control character in the refresh token", raw: grant(map[string]any{"refresh_token": grantRefresh + "\x00"}), use: UseCurrent,
			wantErr: []string{`field "refresh_token" must be printable ASCII`}},
		{name: "bad token_type", raw: grant(map[string]any{"token_type": "Bearer x"}), use: UseCurrent,
			wantErr: []string{`field "token_type" must be letters, digits`}},
		{name: "refresh token over the credential limit", raw: grant(map[string]any{"refresh_token": strings.Repeat("R", MaxCredentialBytes+1)}), use: UseCurrent,
			wantErr: []string{`field "refresh_token" is`, "64 KiB"}},
		{name: "expired, no refresh token", raw: grant(map[string]any{"expires_in": nil, "refresh_token": nil, "expires_at": "2026-05-01T12:00:00Z"}), use: UseCurrent,
			wantErr: []string{`field "expires_at" is not in the future and there is no "refresh_token"`}},
		{name: "refresh token expired", raw: grant(map[string]any{"refresh_expires_at": "2026-05-01T11:59:59Z"}), use: UseCurrent,
			wantErr: []string{`field "refresh_expires_at" is not in the future`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.raw, tc.use)
			if err == nil {
				c, err = c.Settle(now)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("accepted %v", tc.raw)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				for _, secret := range []string{grantAccess, grantRefresh} {
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
				t.Errorf("redacted = %v, want %v", got, tc.want)
			}
			if _, kept := c.Fields["expires_in"]; kept {
				t.Errorf("expires_in is kept after Settle: %v", c.Fields)
			}
		})
	}
}

// A grant's material is what a call needs and nothing more: never its refresh token, client,
// scope or refresh expiry.
func TestGrantMaterial(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c, err := Parse(grant(map[string]any{"scope": "s", "refresh_expires_at": "2026-06-01T00:00:00Z", "label": "l"}), UseCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.Settle(now); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "oauth2_user", "token_type": "Bearer", "access_token": grantAccess, "expires_at": "2026-05-01T13:00:00Z"}
	if got := c.Material(); !reflect.DeepEqual(got, want) {
		t.Errorf("material = %v, want %v", got, want)
	}
	if c.Fields["refresh_token"] != grantRefresh {
		t.Errorf("the refresh token is not kept: %v", c.Fields)
	}
}

// Settle copies: the parsed credential's fields are not changed under a caller that still holds them.
func TestSettleCopies(t *testing.T) {
	c, err := Parse(grant(nil), UseCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Settle(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Fields["expires_in"]; !ok {
		t.Errorf("Settle changed the parsed credential's fields")
	}
}

// A grant that was never settled states no expiry, and fails closed: it counts as expired.
func TestUnsettledGrantIsExpired(t *testing.T) {
	c, err := Parse(grant(nil), UseCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expired(time.Now()) {
		t.Errorf("an unsettled grant is not expired")
	}
	tok, err := Parse(map[string]any{"type": "token", "token": "t"}, UseCurrent)
	if err != nil || tok.Expired(time.Now()) {
		t.Errorf("a token without expiry expired (err %v)", err)
	}
}

func TestSettleServices(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	raw := []any{map[string]any{"name": "mail", "credentials": []any{
		map[string]any{"type": "password", "username": "u", "password": "p"},
		grant(nil),
	}}}
	services, err := ParseServices(raw, UseRuntime)
	if err != nil {
		t.Fatal(err)
	}
	settled, err := SettleServices(services, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := settled[0].Credentials[1].Fields["expires_at"]; got != "2026-05-01T13:00:00Z" {
		t.Errorf("expires_at = %q", got)
	}
	if _, ok := services[0].Credentials[1].Fields["expires_in"]; !ok {
		t.Errorf("SettleServices changed its input")
	}
	if got := GrantClients(settled[0].Credentials); !reflect.DeepEqual(got, []string{"idp"}) {
		t.Errorf("GrantClients = %v", got)
	}

	dead := []any{map[string]any{"name": "mail", "credentials": []any{
		grant(map[string]any{"expires_in": nil, "refresh_token": nil, "expires_at": "2026-05-01T11:00:00Z"}),
	}}}
	services, err = ParseServices(dead, UseRuntime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SettleServices(services, now); err == nil || !strings.Contains(err.Error(), "services[0] (mail).credentials[0]: field \"expires_at\"") {
		t.Errorf("SettleServices(dead grant) = %v", err)
	}
	if _, err := ParseServices(raw, UseRegistry); err == nil || !strings.Contains(err.Error(), `type "oauth2_user" is not allowed in a registry's service entry`) {
		t.Errorf("ParseServices(grant, registry) = %v", err)
	}
}
