package resolve

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecreds/vault-plugin-pecreds/internal/credential"
)

// snapshot is a Snapshot of usable technical credentials and the current credentials.
func snapshot(technical map[string]map[string]any, cur credential.Credential, status string) Snapshot {
	snap := Snapshot{Technical: map[string]Technical{}, Current: cur, CurrentStatus: status}
	for name, m := range technical {
		snap.Technical[name] = Technical{Material: m}
	}
	return snap
}

func cred(typ string, fields ...string) credential.Credential {
	c := credential.Credential{Type: typ, Fields: map[string]string{}}
	for i := 0; i+1 < len(fields); i += 2 {
		c.Fields[fields[i]] = fields[i+1]
	}
	return c
}

func svc(name, url, realm string, creds ...credential.Credential) credential.Service {
	return credential.Service{Name: name, URL: url, Realm: realm, Credentials: creds}
}

func TestResolveLayering(t *testing.T) {
	now := time.Now()
	pw := func(u string) credential.Credential { return cred("password", "username", u, "password", "p-"+u) }
	layers := []Layer{
		{Source: "runtime", Services: []credential.Service{svc("crm", "", "", pw("runtime-user"))}},
		{Source: "definition:orders", Services: []credential.Service{svc("crm", "", "", pw("def-user")), svc("docs", "", "", pw("def-docs"))}},
		{Source: "global:common", Services: []credential.Service{svc("docs", "", "", pw("global-docs")), svc("mail", "", "", pw("global-mail"))}},
		{Source: "global:other", Services: []credential.Service{svc("mail", "", "", pw("other-mail")), svc("ldap", "", "", pw("other-ldap"))}},
	}
	lk := snapshot(nil, credential.Credential{}, CurrentNone)
	cases := []struct{ service, source, user string }{
		{"crm", "runtime", "runtime-user"},
		{"docs", "definition:orders", "def-docs"},
		{"mail", "global:common", "global-mail"},
		{"ldap", "global:other", "other-ldap"},
	}
	for _, tc := range cases {
		res, err := findAndChoose(layers, Query{Service: tc.service}, lk, now)
		if err != nil || len(res.Found) != 1 {
			t.Fatalf("%s: %v %+v", tc.service, err, res)
		}
		if res.Source != tc.source || res.Found[0].Material["username"] != tc.user {
			t.Errorf("%s: from %s as %v, want %s as %s", tc.service, res.Source, res.Found[0].Material["username"], tc.source, tc.user)
		}
	}
	if _, err := findAndChoose(layers, Query{Service: "nope"}, lk, now); !errors.Is(err, ErrNoService) {
		t.Errorf("unknown service: %v", err)
	}
}

func TestResolveOrderSkipsAndFilters(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	services := []credential.Service{svc("crm", "", "",
		cred("current"),
		cred("technical", "name", "ghost"),
		cred("token", "token", "old", "expires_at", "2026-01-01T00:00:00Z"),
		cred("technical", "name", "svc"),
		cred("api_key", "key", "k", "header", "X-Key"),
	)}
	layers := []Layer{{Source: "definition:orders", Services: services}}
	tech := map[string]map[string]any{"svc": {"type": "password", "username": "svc", "password": "x", "name": "svc"}}
	user := cred("password", "username", "ann", "password", "pw")

	cases := []struct {
		name      string
		status    string
		q         Query
		wantIdx   []int
		Unusable  string
		skipWords map[int]string
		Tried     int // entries looked at; 0: all of them
	}{
		{name: "current kept wins", status: CurrentKept, q: Query{Service: "crm", Explain: true}, wantIdx: []int{0}},
		{name: "lost current skipped", status: CurrentLost, q: Query{Service: "crm", Explain: true}, wantIdx: []int{3}, Unusable: CurrentLost,
			skipWords: map[int]string{0: "lost", 1: `"ghost" does not exist`, 2: "expired at 2026-01-01"}},
		{name: "none is not unusable", status: CurrentNone, q: Query{Service: "crm", Explain: true}, wantIdx: []int{3}, skipWords: map[int]string{0: "keeps no current"}},
		{name: "expired current", status: CurrentExpired, q: Query{Service: "crm", Explain: true}, wantIdx: []int{3}, Unusable: CurrentExpired},
		{name: "stops at the first usable", status: CurrentKept, q: Query{Service: "crm"}, wantIdx: []int{0}, Tried: 1},
		{name: "all", status: CurrentKept, q: Query{Service: "crm", All: true}, wantIdx: []int{0, 3, 4}},
		{name: "type filter", status: CurrentKept, q: Query{Service: "crm", Type: "api_key", Explain: true}, wantIdx: []int{4}, skipWords: map[int]string{0: "not api_key"}},
		{name: "type filter all", status: CurrentKept, q: Query{Service: "crm", Type: "password", All: true}, wantIdx: []int{0, 3}},
		{name: "type nothing", status: CurrentKept, q: Query{Service: "crm", Type: "certificate"}, wantIdx: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := findAndChoose(layers, tc.q, snapshot(tech, user, tc.status), now)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, f := range res.Found {
				got = append(got, f.Index)
			}
			if len(got) != len(tc.wantIdx) {
				t.Fatalf("found %v, want %v (trace %+v)", got, tc.wantIdx, res.Tried)
			}
			for i := range got {
				if got[i] != tc.wantIdx[i] {
					t.Fatalf("found %v, want %v", got, tc.wantIdx)
				}
			}
			if res.CurrentUnusable != tc.Unusable {
				t.Errorf("current unusable %q, want %q", res.CurrentUnusable, tc.Unusable)
			}
			for idx, word := range tc.skipWords {
				if !contains(res.Tried[idx].Skipped, word) {
					t.Errorf("entry %d skipped for %q, want it to mention %q", idx, res.Tried[idx].Skipped, word)
				}
			}
			want := tc.Tried
			if want == 0 {
				want = len(services[0].Credentials)
			}
			if len(res.Tried) != want {
				t.Errorf("trace has %d entries, want %d", len(res.Tried), want)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestMatchURL(t *testing.T) {
	c := cred("current")
	services := func(ss ...credential.Service) []SourcedService {
		return EffectiveServices([]Layer{{Source: "definition:d", Services: ss}})
	}
	cases := []struct {
		name     string
		services []SourcedService
		url      string
		realm    string
		want     string // "" for no match
	}{
		{"exact", services(svc("a", "https://crm.example.com/api", "", c)), "https://crm.example.com/api", "", "a"},
		{"sub path", services(svc("a", "https://crm.example.com/api", "", c)), "https://crm.example.com/api/x/y?q=1", "", "a"},
		{"not a segment", services(svc("a", "https://crm.example.com/api", "", c)), "https://crm.example.com/apix", "", ""},
		{"trailing slash", services(svc("a", "https://crm.example.com/api/", "", c)), "https://crm.example.com/api", "", "a"},
		{"root service", services(svc("a", "https://crm.example.com", "", c)), "https://crm.example.com/anything", "", "a"},
		{"host case", services(svc("a", "https://CRM.Example.com/api", "", c)), "HTTPS://crm.example.COM/api/v1", "", "a"},
		{"path case matters", services(svc("a", "https://crm.example.com/API", "", c)), "https://crm.example.com/api", "", ""},
		{"default https port", services(svc("a", "https://crm.example.com:443/api", "", c)), "https://crm.example.com/api", "", "a"},
		{"default http port", services(svc("a", "http://crm.example.com/api", "", c)), "http://crm.example.com:80/api", "", "a"},
		{"other port", services(svc("a", "https://crm.example.com:8443/api", "", c)), "https://crm.example.com/api", "", ""},
		{"scheme differs", services(svc("a", "http://crm.example.com/api", "", c)), "https://crm.example.com/api", "", ""},
		{"host differs", services(svc("a", "https://crm.example.com/api", "", c)), "https://crm.example.org/api", "", ""},
		{"longest wins", services(svc("short", "https://h/api", "", c), svc("long", "https://h/api/v2", "", c)), "https://h/api/v2/orders", "", "long"},
		{"longest wins in any order", services(svc("long", "https://h/api/v2", "", c), svc("short", "https://h/api", "", c)), "https://h/api/v1", "", "short"},
		{"realm beats none at equal length", services(svc("plain", "https://h/api", "", c), svc("eu", "https://h/api", "EU", c)), "https://h/api/x", "EU", "eu"},
		{"no realm when the request has none", services(svc("plain", "https://h/api", "", c), svc("eu", "https://h/api", "EU", c)), "https://h/api/x", "", "plain"},
		{"no realm when the request has none, in any order", services(svc("eu", "https://h/api", "EU", c), svc("plain", "https://h/api", "", c)), "https://h/api/x", "", "plain"},
		{"a realm service matches a request without a realm", services(svc("eu", "https://h/api", "EU", c)), "https://h/api/x", "", "eu"},
		{"one realm twice is no ambiguity", services(svc("eu1", "https://h/api", "EU", c), svc("eu2", "https://h/api", "EU", c)), "https://h/api/x", "", "eu1"},
		{"longer realm path beats shorter plain", services(svc("plain", "https://h/api", "", c), svc("eu", "https://h/api/v2", "EU", c)), "https://h/api/v2/x", "", "eu"},
		{"dot segments removed", services(svc("admin", "https://h/admin", "", c), svc("public", "https://h/public", "", c)), "https://h/admin/../public/x", "", "public"},
		{"dot segments cannot climb above the root", services(svc("public", "https://h/public", "", c)), "https://h/../../public/./x", "", "public"},
		{"encoded dot segments removed", services(svc("admin", "https://h/admin", "", c), svc("public", "https://h/public", "", c)), "https://h/admin/%2E%2E/public", "", "public"},
		{"encoded unreserved decoded", services(svc("admin", "https://h/admin", "", c)), "https://h/%61dmin/x", "", "admin"},
		{"service dot segments removed too", services(svc("a", "https://h/x/../api", "", c)), "https://h/api/v1", "", "a"},
		{"a service with a backslash never matches", services(svc("a", `https://h/a\b`, "", c)), "https://h/a/b", "", ""},
		{"other realm never matches", services(svc("eu", "https://h/api", "EU", c)), "https://h/api", "US", ""},
		{"longer path beats realm", services(svc("eu", "https://h/api", "EU", c), svc("deep", "https://h/api/v2", "", c)), "https://h/api/v2/x", "EU", "deep"},
		{"no url", services(svc("a", "", "", c)), "https://h/api", "", ""},
		{"ipv6 and port", services(svc("a", "http://[::1]:8080/x", "", c)), "http://[0:0::1]:8080/x/y", "", "a"},
		{"postgres default port", services(svc("db", "postgres://db.example.com/orders", "", c)), "postgres://db.example.com:5432/orders", "", "db"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _, cands, err := MatchURL(tc.services, tc.url, tc.realm)
			if tc.want == "" {
				if !errors.Is(err, ErrNoService) {
					t.Errorf("matched %v, want none", s)
				}
				return
			}
			if err != nil || s.Name != tc.want {
				t.Errorf("matched %v (%v), want %s; candidates %v", s, err, tc.want, cands)
			}
		})
	}
	if _, _, _, err := MatchURL(nil, "/relative", ""); err == nil || errors.Is(err, ErrNoService) {
		t.Errorf("a relative request URL: %v", err)
	}
	// Several realms at the longest path and none without: ambiguous, naming the realms.
	_, _, _, err := MatchURL(services(svc("eu", "https://h/api", "EU", c), svc("us", "https://h/api", "US", c)), "https://h/api/x", "")
	var amb AmbiguousRealmError
	if !errors.As(err, &amb) || !strings.Contains(err.Error(), `"EU", "US"`) {
		t.Errorf("two realms, no realm asked: %v", err)
	}
	if s, _, _, err := MatchURL(services(svc("eu", "https://h/api", "EU", c), svc("us", "https://h/api", "US", c)), "https://h/api/x", "US"); err != nil || s.Name != "us" {
		t.Errorf("two realms, US asked: %v %v", s, err)
	}
}

func TestAmbiguousPathsRefused(t *testing.T) {
	for u, rule := range map[string]string{
		`https://h/admin\..\public`:         "backslash",
		"https://h/admin/%5C../public":      "backslash",
		"https://h/admin/%5c../public":      "backslash",
		"https://h/admin/..;/public/x":      "dot segment with parameters",
		"https://h/admin/.;/x":              "dot segment with parameters",
		"https://h/admin/%2E%2E;x/public":   "dot segment with parameters",
		"https://h/a/%2e;jsessionid=1/b":    "dot segment with parameters",
		"https://h/a%2Fb":                   "encoded slash",
		"https://h/public/..%2Fadmin":       "encoded slash",
		"https://h/public/..%2fadmin":       "encoded slash",
		"https://h/public/%2E%2E%2Fadmin":   "encoded slash",
		"https://h/public/%2e%2e%2fadmin":   "encoded slash",
		"https://h/public/%252E%252E/admin": "double-encoded",
		"https://h/public/..%252Fadmin":     "double-encoded",
		"https://h/public/%252e%252e%252fx": "double-encoded",
		"https://h/public/..%255Cadmin":     "double-encoded",
	} {
		_, err := ParseEndpoint(u)
		if err == nil || !strings.Contains(err.Error(), "servers read in different ways") || !strings.Contains(err.Error(), rule) {
			t.Errorf("%s: %v, want a refusal naming %q", u, err, rule)
		}
		// Refused as ambiguous, never matched: not even by a service that would cover it.
		covering := EffectiveServices([]Layer{{Source: "runtime", Services: []credential.Service{
			svc("public", "https://h/public", "", cred("current")), svc("a", "https://h/a", "", cred("current"))}}})
		if s, _, _, err := MatchURL(covering, u, ""); err == nil || errors.Is(err, ErrNoService) {
			t.Errorf("%s matched %v (%v)", u, s, err)
		}
	}
	// RFC 3986 decodes an encoded dot segment, and normalization removes it: no ambiguity.
	if e, err := ParseEndpoint("https://h/admin/%2E%2E/public"); err != nil || e.path != "/public" {
		t.Errorf("an encoded dot segment: %v %v", e, err)
	}
	for _, u := range []string{"https://h/a;b/c", "https://h/a/..x/b", "https://h/a/b;v=1"} {
		if _, err := ParseEndpoint(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestEffectiveServicesMaskLowerLayers(t *testing.T) {
	c := cred("current")
	layers := []Layer{
		{Source: "runtime", Services: []credential.Service{svc("crm", "https://runtime.example.com", "", c)}},
		{Source: "definition:d", Services: []credential.Service{svc("crm", "https://h/api", "", c), svc("docs", "https://h/docs", "", c)}},
	}
	// The definition's crm URL is masked by the runtime crm, which has another host.
	if s, _, _, err := MatchURL(EffectiveServices(layers), "https://h/api/x", ""); err == nil {
		t.Errorf("a masked service matched: %v", s.Name)
	}
	s, src, _, err := MatchURL(EffectiveServices(layers), "https://runtime.example.com/x", "")
	if err != nil || s.Name != "crm" || src != "runtime" {
		t.Errorf("got %v from %s: %v", s, src, err)
	}
}

// A technical entry without a token is skipped and named in Refresh only when it comes before
// the answer (or every entry is asked for); once the caller has a token, it wins on its place.
func TestChooseNamesTokensWorthFetching(t *testing.T) {
	now := time.Now()
	pw := cred("password", "username", "svc", "password", "x")
	layers := []Layer{{Source: "definition:d", Services: []credential.Service{
		svc("first", "", "", cred("technical", "name", "idp"), pw, cred("technical", "name", "idp")),
		svc("later", "", "", pw, cred("technical", "name", "idp")),
	}}}
	noToken := Snapshot{Technical: map[string]Technical{"idp": {NeedsToken: true, Unusable: "no valid token"}}, CurrentStatus: CurrentNone}

	m, _, err := Find(layers, Query{Service: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Technicals(); len(got) != 1 || got[0] != "idp" {
		t.Errorf("technicals %v, want [idp] once", got)
	}
	res := Choose(m, Query{Service: "first"}, noToken, now)
	if len(res.Found) != 1 || res.Found[0].Index != 1 || len(res.Refresh) != 1 || res.Refresh[0] != "idp" {
		t.Fatalf("before a token: found %+v, refresh %v", res.Found, res.Refresh)
	}
	withToken := Snapshot{Technical: map[string]Technical{"idp": {Material: map[string]any{"type": "oauth2", "access_token": "t"}}}}
	res = Choose(m, Query{Service: "first"}, withToken, now)
	if len(res.Found) != 1 || res.Found[0].Index != 0 || len(res.Refresh) != 0 {
		t.Fatalf("with a token: found %+v, refresh %v", res.Found, res.Refresh)
	}

	later, _, _ := Find(layers, Query{Service: "later"})
	if res := Choose(later, Query{Service: "later"}, noToken, now); len(res.Refresh) != 0 {
		t.Errorf("a token after the answer is asked for: %v", res.Refresh)
	}
	if res := Choose(later, Query{Service: "later", Explain: true}, noToken, now); len(res.Refresh) != 1 {
		t.Errorf("explain tries every entry, so it names the token: %v", res.Refresh)
	}
	if _, res, err := Find(layers, Query{Service: "nope"}); !errors.Is(err, ErrNoService) || len(res.Layers) != 1 {
		t.Errorf("no service: %v, layers %v", err, res)
	}
}

// findAndChoose is what the backend does with one snapshot: Find the service, then Choose among
// its credentials. An error means no layer has the service.
func findAndChoose(layers []Layer, q Query, snap Snapshot, now time.Time) (*Resolution, error) {
	m, res, err := Find(layers, q)
	if err != nil {
		return res, err
	}
	return Choose(m, q, snap, now), nil
}
