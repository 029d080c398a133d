package lifecycle

import (
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

func TestGrantRefreshed(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	grant := func(rt, at string) *credential.Credential {
		return &credential.Credential{Type: credential.GrantType, Fields: map[string]string{"client": "idp", "refresh_token": rt, "access_token": at}}
	}
	old, refreshed, other := grant("rt1", "at1"), grant("rt2", "at2"), grant("rt9", "at9")
	for _, tc := range []struct {
		name    string
		p       Process
		held    *credential.Credential
		effects string
		kept    *credential.Credential
	}{
		{"persistent", Process{Health: Running, HasCurrent: true, KeepCredentials: KeepPersistent, Current: old}, nil, "put-process", refreshed},
		{"persistent, broken by a technical", Process{Health: Broken, HasCurrent: true, KeepCredentials: KeepPersistent, Current: old}, nil, "put-process", refreshed},
		{"persistent, replaced meanwhile", Process{Health: Running, HasCurrent: true, KeepCredentials: KeepPersistent, Current: other}, nil, "", other},
		{"persistent, failed", Process{Health: Failed, KeepCredentials: KeepPersistent}, nil, "", nil},
		{"transient", Process{Health: Running, HasCurrent: true, KeepCredentials: KeepTransient}, old, "put-current", nil},
		{"transient, replaced meanwhile", Process{Health: Running, HasCurrent: true, KeepCredentials: KeepTransient}, other, "", nil},
		{"transient, lost", Process{Health: Running, HasCurrent: true, KeepCredentials: KeepTransient}, nil, "", nil},
		{"none", Process{Health: Running, KeepCredentials: KeepNone}, nil, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.ID = "p"
			next, list, err := Transition(State{Process: &p}, Event{Kind: GrantRefreshed, Now: now, RefreshedFrom: old, Held: tc.held, Credential: refreshed})
			if err != nil || describeEffects(list) != tc.effects {
				t.Fatalf("%q %v", describeEffects(list), err)
			}
			if next.Process.Current != tc.kept {
				t.Errorf("kept %v", next.Process.Current)
			}
			if tc.effects == "put-current" && list[0].Credential != refreshed {
				t.Error("the refreshed grant is not the one put")
			}
			if !next.Process.UpdatedTime.IsZero() || next.Process.Health != tc.p.Health {
				t.Errorf("a refresh changed the process: %+v", next.Process)
			}
		})
	}
	if SameGrant(old, grant("rt1", "at2")) || !SameGrant(old, grant("rt1", "at1")) || SameGrant(nil, old) {
		t.Error("SameGrant")
	}
}

func TestRuntimeGrantRefreshed(t *testing.T) {
	grant := func(rt, at string) credential.Credential {
		return credential.Credential{Type: credential.GrantType, Fields: map[string]string{"client": "idp", "refresh_token": rt, "access_token": at}}
	}
	old, refreshed, other := grant("rt1", "at1"), grant("rt2", "at2"), grant("rt9", "at9")
	pw := credential.Credential{Type: "password", Fields: map[string]string{"username": "u", "password": "p"}}
	layer := func(c credential.Credential) []credential.Service {
		return []credential.Service{{Name: "crm", Credentials: []credential.Credential{pw}}, {Name: "mail", Credentials: []credential.Credential{pw, c}}}
	}
	for _, tc := range []struct {
		name    string
		p       Process
		service string
		index   int
		effects string
		kept    credential.Credential
	}{
		{"in its place", Process{Health: Running, Runtime: layer(old)}, "mail", 1, "put-process", refreshed},
		{"broken", Process{Health: Broken, Runtime: layer(old)}, "mail", 1, "put-process", refreshed},
		{"replaced meanwhile", Process{Health: Running, Runtime: layer(other)}, "mail", 1, "", other},
		{"another place", Process{Health: Running, Runtime: layer(old)}, "mail", 0, "", old},
		{"service gone", Process{Health: Running, Runtime: layer(old)}, "docs", 1, "", old},
		{"failed", Process{Health: Failed, Runtime: layer(old)}, "mail", 1, "", old},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.ID = "p"
			before := p.Runtime[1].Credentials[1]
			next, list, err := Transition(State{Process: &p}, Event{Kind: RuntimeGrantRefreshed, Service: tc.service, Index: tc.index, RefreshedFrom: &old, Credential: &refreshed})
			if err != nil || describeEffects(list) != tc.effects {
				t.Fatalf("%q %v", describeEffects(list), err)
			}
			if got := next.Process.Runtime[1].Credentials[1]; !SameGrant(&got, &tc.kept) {
				t.Errorf("kept %v", got.Fields)
			}
			if after := p.Runtime[1].Credentials[1]; !SameGrant(&after, &before) {
				t.Error("the state given was changed in place")
			}
			if next.Process.Runtime[0].Credentials[0].Fields["password"] != "p" {
				t.Error("another service changed")
			}
		})
	}
}
