package tests

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// threeLayers writes a definition registry "orders", global registries "common" and "partners"
// (in that order), and a technical password credential.
func threeLayers(t *testing.T, mount string) {
	t.Helper()
	write(t, mount+"/technical/crm-service", map[string]any{"type": "password", "username": "svc-crm", "password": "svc-crm-pw-31"})
	rememberSecrets("svc-crm-pw-31")
	key := func(k string) []map[string]any { return []map[string]any{{"type": "api_key", "key": k}} }
	write(t, mount+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "crm", "url": "https://crm.example.com/api", "credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "crm-service"}}},
		{"name": "docs", "url": "https://docs.example.com/v1", "credentials": key("orders-docs")},
	}})
	write(t, mount+"/registry/common", map[string]any{"services": []map[string]any{
		{"name": "docs", "url": "https://docs.example.com", "credentials": key("common-docs")},
		{"name": "mail", "credentials": key("common-mail")},
	}})
	write(t, mount+"/registry/partners", map[string]any{"services": []map[string]any{
		{"name": "mail", "credentials": key("partners-mail")},
		{"name": "ledger", "url": "https://ledger.example.com:8443/books", "realm": "EU", "credentials": key("partners-ledger-eu")},
		{"name": "ledger-any", "url": "https://ledger.example.com:8443/books", "credentials": key("partners-ledger-any")},
	}})
	write(t, mount+"/config", map[string]any{"global_registries": "common,partners"})
}

// userCurrent is a user's current credentials as JSON text, as `current=@user.json` sends them.
func userCurrent(t *testing.T, user string) string {
	t.Helper()
	rememberSecrets(user + "-own-password")
	return `{"type": "password", "username": "` + user + `", "password": "` + user + `-own-password"}`
}

func TestProcessLeaseRenewableAndBounded(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	write(t, mount+"/config", map[string]any{"process_ttl": "1h", "process_max_ttl": "3h"})
	s := write(t, mount+"/process/p1", map[string]any{"definition": "orders", "current": userCurrent(t, "ann")})
	if s.LeaseID == "" || !s.Renewable || s.LeaseDuration != 3600 {
		t.Fatalf("lease %q renewable %v duration %d", s.LeaseID, s.Renewable, s.LeaseDuration)
	}
	if !strings.HasPrefix(s.LeaseID, mount+"/process/p1/") {
		t.Errorf("lease id %q", s.LeaseID)
	}
	renewed, err := env.client.Sys().Renew(s.LeaseID, 7200)
	if err != nil || renewed.LeaseDuration != 7200 {
		t.Fatalf("renew: %v %+v", err, renewed)
	}
	renewed, err = env.client.Sys().Renew(s.LeaseID, 10*3600)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.LeaseDuration > 3*3600 || renewed.LeaseDuration < 3*3600-60 {
		t.Errorf("a renewal past process_max_ttl got %ds, want it capped at about 3h", renewed.LeaseDuration)
	}

	// The CLI way: a TTL over the max is capped with a warning.
	res := vaultCLI(t, "write", mount+"/process/p2", "definition=orders", "ttl=100h")
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "exceeds process_max_ttl") || !strings.Contains(res.stdout, "lease_duration") {
		t.Errorf("capped create: %d %s %s", res.code, res.stdout, res.stderr)
	}
}

func TestProcessRevokeAndDeleteWipe(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	s := write(t, mount+"/process/by-lease", map[string]any{"definition": "orders", "current": userCurrent(t, "bob")})
	write(t, mount+"/process/by-delete", map[string]any{"definition": "orders", "current": userCurrent(t, "bob")})
	for _, p := range []string{"by-lease", "by-delete"} {
		if got := read(t, mount+"/process/"+p+"/resolve/crm").Data["username"]; got != "bob" {
			t.Fatalf("%s resolves %v before it ends", p, got)
		}
	}
	mustCLI(t, "lease", "revoke", "-sync", s.LeaseID)
	mustCLI(t, "delete", mount+"/process/by-delete")
	for _, p := range []string{"by-lease", "by-delete"} {
		if r := read(t, mount+"/process/"+p); r != nil {
			t.Errorf("%s still reads: %v", p, r.Data)
		}
		// vault/api reports a 404 on a read as no secret and no error.
		if s, err := env.client.Logical().Read(mount + "/process/" + p + "/resolve/crm"); s != nil || err != nil {
			t.Errorf("%s resolves after it ended: %v %v", p, s, err)
		}
	}
	// Revoking an ended process's lease again is not an error (idempotent).
	if err := env.client.Sys().Revoke(s.LeaseID); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	// The id is free again.
	write(t, mount+"/process/by-delete", map[string]any{"definition": "orders"})
	_, err := env.client.Logical().Write(mount+"/process/by-delete", map[string]any{"definition": "orders"})
	badRequest(t, err, `process "by-delete" exists`)
}

func TestProcessPrecedenceAndMasking(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "cy")})
	write(t, mount+"/process/p/credentials", map[string]any{"services": []map[string]any{
		{"name": "mail", "credentials": []map[string]any{{"type": "api_key", "key": "runtime-mail"}}},
	}})
	cases := []struct{ service, source, key string }{
		{"docs", "definition:orders", "orders-docs"}, // definition masks common
		{"mail", "runtime", "runtime-mail"},          // runtime masks common and partners
		{"ledger-any", "global:partners", "partners-ledger-any"},
	}
	for _, c := range cases {
		got := read(t, mount+"/process/p/resolve/"+c.service).Data
		if got["source"] != c.source || got["key"] != c.key {
			t.Errorf("%s: %v from %v, want %s from %s", c.service, got["key"], got["source"], c.key, c.source)
		}
	}
	mustCLI(t, "delete", mount+"/process/p/credentials/mail")
	if got := read(t, mount+"/process/p/resolve/mail").Data; got["source"] != "global:common" || got["key"] != "common-mail" {
		t.Errorf("mail after removing the runtime service: %v", got)
	}
	runtime := mustCLI(t, "read", "-format=json", mount+"/process/p/credentials")
	if strings.Contains(runtime, "runtime-mail") {
		t.Error("the runtime layer read shows a secret")
	}
}

func TestProcessResolveByURL(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "dee")})
	cases := []struct {
		url, realm, want string
	}{
		{"https://crm.example.com/api/customers/7", "", "crm"},
		{"https://CRM.example.com:443/api", "", "crm"},
		{"https://docs.example.com/v1/x", "", "docs"}, // definition's /v1 (the effective docs)
		{"https://ledger.example.com:8443/books/2026", "EU", "ledger"},
		{"https://ledger.example.com:8443/books/2026", "", "ledger-any"},
		{"https://ledger.example.com:8443/books/2026", "US", "ledger-any"},
	}
	for _, c := range cases {
		q := map[string][]string{"url": {c.url}}
		if c.realm != "" {
			q["realm"] = []string{c.realm}
		}
		s, err := env.client.Logical().ReadWithData(mount+"/process/p/resolve", q)
		if err != nil {
			t.Errorf("%s (%s): %v", c.url, c.realm, err)
			continue
		}
		if s.Data["service"] != c.want {
			t.Errorf("%s (%s) resolved %v, want %s", c.url, c.realm, s.Data["service"], c.want)
		}
	}
	for _, miss := range []string{"https://crm.example.com/apix", "http://crm.example.com/api", "https://crm.example.com:8443/api", "https://docs.example.com/v2"} {
		_, err := env.client.Logical().ReadWithData(mount+"/process/p/resolve", map[string][]string{"url": {miss}})
		badRequest(t, err, "no service matches url")
	}
	// The write form takes the same parameters in a body.
	s := write(t, mount+"/process/p/resolve", map[string]any{"url": "https://crm.example.com/api", "explain": true})
	if s.Data["service"] != "crm" || s.Data["explain"] == nil {
		t.Errorf("write form %v", s.Data)
	}
}

func TestProcessResolveAllTypeExplain(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	write(t, mount+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "eve")})

	out := mustCLI(t, "read", "-format=json", mount+"/process/p/resolve/crm", "all=true")
	var all struct {
		Data struct {
			Source      string           `json:"source"`
			Credentials []map[string]any `json:"credentials"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Data.Credentials) != 2 || all.Data.Credentials[0]["username"] != "eve" || all.Data.Credentials[1]["technical"] != "crm-service" {
		t.Errorf("all=true: %s", out)
	}
	s, err := env.client.Logical().ReadWithData(mount+"/process/p/resolve/crm", map[string][]string{"explain": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	explain, _ := s.Data["explain"].(map[string]any)
	layers, _ := explain["layers"].([]any)
	tried, _ := explain["tried"].([]any)
	if len(layers) != 4 || len(tried) != 2 {
		t.Errorf("explain: %v", explain)
	}
	if s.Data["source"] != "definition:orders" || s.Data["index"] != json.Number("0") || s.Data["type"] != "password" {
		t.Errorf("flat answer %v", s.Data)
	}
	_, err = env.client.Logical().ReadWithData(mount+"/process/p/resolve/crm", map[string][]string{"type": {"certificate"}})
	badRequest(t, err, `no usable credential for service "crm"`, "[0] current: of type password, not certificate", "[1] technical crm-service: of type password, not certificate")
	_, err = env.client.Logical().Read(mount + "/process/p/resolve/nothing")
	badRequest(t, err, `no layer defines service "nothing"`)
}

func TestProcessKeepModesAcrossPluginReload(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	for _, mode := range []string{"persistent", "transient", "none"} {
		write(t, mount+"/config", map[string]any{"keep_credentials": mode})
		write(t, mount+"/process/"+mode, map[string]any{"definition": "orders", "current": userCurrent(t, "user-"+mode)})
	}
	want := map[string][2]string{ // before reload, after reload: status
		"persistent": {"kept", "kept"}, "transient": {"kept", "lost"}, "none": {"none", "none"},
	}
	for mode, w := range want {
		if got := read(t, mount+"/process/"+mode).Data["current_credentials"]; got != w[0] {
			t.Errorf("%s before reload: %v", mode, got)
		}
	}
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitFor(t, 30*time.Second, func() bool { // the reloaded plugin answers
		_, err := env.client.Logical().Read(mount + "/process/persistent")
		return err == nil
	})
	for mode, w := range want {
		if got := read(t, mount+"/process/"+mode).Data["current_credentials"]; got != w[1] {
			t.Errorf("%s after reload: %v, want %s", mode, got, w[1])
		}
	}
	if got := read(t, mount+"/process/persistent/resolve/crm").Data["username"]; got != "user-persistent" {
		t.Errorf("persistent after reload resolves %v", got)
	}
	// A lost or unkept current entry is skipped: the technical fallback answers.
	for _, mode := range []string{"transient", "none"} {
		s, err := env.client.Logical().ReadWithData(mount+"/process/"+mode+"/resolve/crm", map[string][]string{"explain": {"true"}})
		if err != nil || s.Data["technical"] != "crm-service" {
			t.Errorf("%s after reload: %v %v", mode, err, s)
		}
	}
}

func TestProcessExpiredCurrentAndPreflight(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	soon := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
	rememberSecrets("short-lived-user-token")
	write(t, mount+"/process/p", map[string]any{"definition": "orders",
		"current": `{"type": "token", "token": "short-lived-user-token", "expires_at": "` + soon + `"}`})
	pre := write(t, mount+"/process/p/preflight", map[string]any{"duration": "1h"}).Data
	if exp, _ := pre["expiring"].([]any); len(exp) != 1 {
		t.Errorf("preflight %v", pre)
	}
	if got := read(t, mount+"/process/p/resolve/crm").Data["token"]; got != "short-lived-user-token" {
		t.Errorf("before expiry resolves %v", got)
	}
	waitFor(t, time.Until(mustParseTime(t, soon))+30*time.Second, func() bool {
		return read(t, mount+"/process/p").Data["current_credentials"] == "expired"
	})
	if got := read(t, mount+"/process/p/resolve/crm").Data["technical"]; got != "crm-service" {
		t.Errorf("after expiry resolves %v", got)
	}
}

func mustParseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestProcessBadInputAndNoSecrets(t *testing.T) {
	mount := newMount(t)
	threeLayers(t, mount)
	dir := t.TempDir()
	userFile := filepath.Join(dir, "user.json")
	if err := os.WriteFile(userFile, []byte(userCurrent(t, "fay")), 0o600); err != nil {
		t.Fatal(err)
	}
	// What the README tells engine hosts to type.
	out := mustCLI(t, "write", "-format=json", mount+"/process/42", "current=@"+userFile, "definition=orders", "owner=fay")
	if strings.Contains(out, "fay-own-password") || !strings.Contains(out, `"lease_id"`) {
		t.Errorf("create answer: %s", out)
	}
	for _, answer := range []string{
		mustCLI(t, "read", "-format=json", mount+"/process/42"), mustCLI(t, "list", mount+"/process"),
	} {
		if strings.Contains(answer, "fay-own-password") {
			t.Errorf("a process read or list shows the password: %s", answer)
		}
	}
	cases := []struct {
		path string
		data map[string]any
		want []string
	}{
		{"process/42", map[string]any{"definition": "orders"}, []string{`process "42" exists`}},
		{"process/43", map[string]any{"definition": "ghost"}, []string{`definition: registry "ghost" does not exist`}},
		{"process/43", map[string]any{"current": `{"type": "password", "username": "x"}`}, []string{"current:", `missing field "password"`}},
		{"process/43", map[string]any{"current": "not json"}, []string{"current: the text given is not valid JSON"}},
		{"process/bad id", map[string]any{}, []string{`process id "bad id" is invalid`}},
		{"process/42/credentials", map[string]any{"services": `[{"name": "x", "credentials": [{"type": "oauth2"}]}]`}, []string{`type "oauth2" is not allowed`}},
		{"process/42/preflight", map[string]any{}, []string{"duration is required"}},
	}
	for _, c := range cases {
		_, err := env.client.Logical().Write(mount+"/"+c.path, c.data)
		badRequest(t, err, c.want...)
	}
	_, err := env.client.Logical().Write(mount+"/process/nobody/credentials", map[string]any{"services": "[]"})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Errorf("runtime credentials of an unknown process: %v", err)
	}
}
