package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// write writes through vault/api and returns the answer's data.
func write(t *testing.T, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := env.client.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func read(t *testing.T, path string) *api.Secret {
	t.Helper()
	s, err := env.client.Logical().Read(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return s
}

// badRequest asserts that err is a 400 whose message holds every want, and returns the message.
func badRequest(t *testing.T, err error, want ...string) string {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a 400, got %v", err)
	}
	if re.StatusCode != http.StatusBadRequest {
		t.Fatalf("want a 400, got %d: %v", re.StatusCode, re.Errors)
	}
	msg := strings.Join(re.Errors, "; ")
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	return msg
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigDefaultsAndWrite(t *testing.T) {
	mount := newMount(t)
	cfg := read(t, mount+"/config").Data
	want := map[string]any{
		"keep_credentials":  "persistent",
		"global_registries": []any{},
		"process_ttl":       "24h",
		"process_max_ttl":   "0s",
		"task_manager":      true,
		"error_health_mapping": map[string]any{
			"auth_failed": "broken", "credentials_expired": "broken", "credentials_unavailable": "broken",
			"forbidden": "failed", "unavailable": "running",
		},
		"refresh_fraction": json.Number("0.67"),
		"notify_url":       "",
		"notify_timeout":   "10s",

		"grant_refresh_concurrency": json.Number("8"),

		"notify_secret_overlap":        "24h",
		"notify_concurrency":           json.Number("4"),
		"notify_max_events":            json.Number("100000"),
		"notify_previous_secret_until": "",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults before any write\n got %#v\nwant %#v", cfg, want)
	}

	// What an operator types: seconds or Go durations, a comma list, JSON text for the mapping.
	mustCLI(t, "write", mount+"/config", "keep_credentials=transient", "global_registries=common,partners",
		"process_ttl=48h", `error_health_mapping={"forbidden":"broken"}`, "notify_url=https://tasks.example.com/hook",
		"notify_secret="+webhookSecret("cli-notify-secret-1"))
	out := mustCLI(t, "read", "-format=json", mount+"/config")
	if strings.Contains(out, webhookSecret("cli-notify-secret-1")) {
		t.Error("config read shows notify_secret")
	}
	var got struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"keep_credentials": "transient", "process_ttl": "48h", "task_manager": true,
		"global_registries": []any{"common", "partners"},
	} {
		if !reflect.DeepEqual(got.Data[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got.Data[k], v)
		}
	}
	mapping, _ := got.Data["error_health_mapping"].(map[string]any)
	if mapping["forbidden"] != "broken" || mapping["auth_failed"] != "broken" {
		t.Errorf("mapping %v", mapping)
	}

	_, err := env.client.Logical().Write(mount+"/config", map[string]any{"keep_credentials": "forever"})
	badRequest(t, err, "keep_credentials", "persistent, transient or none")
	_, err = env.client.Logical().Write(mount+"/config", map[string]any{"error_health_mapping": map[string]any{"x": "asleep"}})
	badRequest(t, err, "error_health_mapping", "running, broken or failed")
	_, err = env.client.Logical().Write(mount+"/config", map[string]any{"refresh_fraction": 1.5})
	badRequest(t, err, "refresh_fraction", "between 0.5 and 0.9")
	_, err = env.client.Logical().Write(mount+"/config", map[string]any{"global_registries": []string{"ok", "not ok"}})
	badRequest(t, err, "global_registries[1]", "is invalid")
}

func TestRegistryLifecycleWithCAS(t *testing.T) {
	mount := newMount(t)
	path := mount + "/registry/orders"
	services := []map[string]any{{
		"name": "crm", "url": "https://crm.example.com/api",
		"credentials": []map[string]any{{"type": "current"}, {"type": "technical", "name": "crm-service"}},
	}}
	s := write(t, path, map[string]any{"description": "v1", "services": services, "cas": 0})
	if s.Data["version"] != json.Number("1") {
		t.Fatalf("create answered %v", s.Data)
	}
	_, err := env.client.Logical().Write(path, map[string]any{"description": "again", "cas": 0})
	badRequest(t, err, "check-and-set failed", "cas=0")
	_, err = env.client.Logical().Write(path, map[string]any{"description": "stale", "cas": 7})
	badRequest(t, err, "cas=7 does not match the current version 1")

	s = write(t, path, map[string]any{"description": "v2", "cas": 1})
	if s.Data["version"] != json.Number("2") {
		t.Fatalf("update answered %v", s.Data)
	}
	s = write(t, path, map[string]any{"description": "v3"}) // no cas: unconditional
	if s.Data["version"] != json.Number("3") {
		t.Fatalf("unconditional update answered %v", s.Data)
	}
	got := read(t, path).Data
	if got["description"] != "v3" || got["version"] != json.Number("3") {
		t.Errorf("read %v", got)
	}
	svcs, _ := got["services"].([]any)
	if len(svcs) != 1 {
		t.Fatalf("the update without services lost them: %v", got["services"])
	}

	list, err := env.client.Logical().List(mount + "/registry")
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := list.Data["keys"].([]any); len(keys) != 1 || keys[0] != "orders" {
		t.Errorf("list %v", list.Data)
	}

	if _, err := env.client.Logical().Delete(path); err != nil {
		t.Fatal(err)
	}
	if s := read(t, path); s != nil {
		t.Errorf("read after delete: %v", s.Data)
	}
	s = write(t, path, map[string]any{"cas": 0})
	if s.Data["version"] != json.Number("1") {
		t.Errorf("re-create after delete answered %v", s.Data)
	}
}

// TestRegistryFromExampleFiles does what the README tells operators to do.
func TestRegistryFromExampleFiles(t *testing.T) {
	mount := newMount(t)
	out := mustCLI(t, "write", mount+"/registry/orders", "@examples/registries/orders.json")
	if !strings.Contains(out, "version") {
		t.Errorf("write printed %q", out)
	}
	mustCLI(t, "write", mount+"/registry/common", "@examples/registries/common.json")
	mustCLI(t, "write", mount+"/config", "global_registries=common")

	// services given as JSON text on the command line, the other form DESIGN.md promises.
	mustCLI(t, "write", mount+"/registry/inline", `services=[{"name":"s","credentials":[{"type":"current"}]}]`)

	listed := mustCLI(t, "list", mount+"/registry")
	for _, name := range []string{"orders", "common", "inline"} {
		if !strings.Contains(listed, name) {
			t.Errorf("list does not show %s: %s", name, listed)
		}
	}
	readOut := mustCLI(t, "read", "-format=json", mount+"/registry/orders")
	raw, _ := os.ReadFile("../examples/registries/orders.json")
	var file struct {
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Services) == 0 || !strings.Contains(readOut, `"name": "billing"`) || !strings.Contains(readOut, `"realm": "EU"`) {
		t.Errorf("read does not show the file's services: %s", readOut)
	}
	for _, secret := range []string{"example-billing-key", "example-archive-password"} {
		if strings.Contains(readOut, secret) {
			t.Errorf("read shows the secret %q", secret)
		}
	}
}

func TestEveryCredentialTypeAccepted(t *testing.T) {
	mount := newMount(t)
	cert, key := testCertificate(t)
	rememberSecrets(key)
	creds := []map[string]any{
		{"type": "password", "username": "ann", "password": "type-pw-secret", "domain": "CORP", "label": "l"},
		{"type": "token", "token": "type-token-secret", "token_type": "Bearer", "expires_at": "2030-01-02T03:04:05Z"},
		{"type": "api_key", "key": "type-key-secret", "header": "X-Key"},
		{"type": "certificate", "certificate": cert, "private_key": key, "ca_chain": cert},
		{"type": "technical", "name": "crm-service"},
		{"type": "current"},
	}
	rememberSecrets("type-pw-secret", "type-token-secret", "type-key-secret")
	for _, c := range creds {
		t.Run(c["type"].(string), func(t *testing.T) {
			write(t, mount+"/registry/r-"+c["type"].(string), map[string]any{
				"services": []map[string]any{{"name": "s", "credentials": []map[string]any{c}}},
			})
		})
	}
	// oauth2 lives only in the technical credentials manager.
	_, err := env.client.Logical().Write(mount+"/registry/r-oauth2", map[string]any{"services": []map[string]any{{
		"name": "s", "credentials": []map[string]any{{"type": "oauth2", "token_url": "https://idp/t", "client_id": "c", "client_secret": "oauth-secret"}},
	}}})
	msg := badRequest(t, err, `type "oauth2" is not allowed in a registry`)
	if strings.Contains(msg, "oauth-secret") {
		t.Error("the error shows the client secret")
	}
}

func TestBadInputIsA400NamingIt(t *testing.T) {
	mount := newMount(t)
	cert, _ := testCertificate(t)
	_, otherKey := testCertificate(t)
	svc := func(creds ...map[string]any) map[string]any {
		return map[string]any{"services": []map[string]any{{"name": "crm", "credentials": creds}}}
	}
	tooMany := make([]map[string]any, 1001)
	for i := range tooMany {
		tooMany[i] = map[string]any{"name": fmt.Sprintf("s%d", i), "credentials": []map[string]any{{"type": "current"}}}
	}
	cases := []struct {
		name string
		path string
		data map[string]any
		want []string
	}{
		{"unknown type", "registry/r", svc(map[string]any{"type": "kerberos"}), []string{`services[0] (crm): credentials[0]: unknown type "kerberos"`}},
		{"unknown field", "registry/r", svc(map[string]any{"type": "password", "username": "u", "password": "bad-input-pw", "pasword": "x"}),
			[]string{`unknown field "pasword" for type "password"`}},
		{"missing field", "registry/r", svc(map[string]any{"type": "password", "username": "u"}), []string{`missing field "password"`}},
		{"bad registry name", "registry/-orders", map[string]any{}, []string{`registry name "-orders" is invalid`}},
		{"registry name with slash", "registry/a/b", map[string]any{}, []string{`registry name "a/b" is invalid`}},
		{"bad service name", "registry/r", map[string]any{"services": []map[string]any{{"name": "crm!", "credentials": []map[string]any{{"type": "current"}}}}},
			[]string{`services[0]: field "name" "crm!" is invalid`}},
		{"over the service limit", "registry/r", map[string]any{"services": tooMany}, []string{"1001 services given; the limit is 1000"}},
		{"over the credential limit", "registry/r", svc(repeat(map[string]any{"type": "current"}, 33)...), []string{"33 entries; the limit is 32"}},
		{"over the PEM limit", "registry/r", svc(map[string]any{"type": "certificate", "certificate": strings.Repeat("x", 70000), "private_key": otherKey}),
			[]string{`field "certificate" is 70000 bytes long`, "64 KiB"}},
		{"key does not match", "registry/r", svc(map[string]any{"type": "certificate", "certificate": cert, "private_key": otherKey}),
			[]string{`field "private_key" does not fit field "certificate"`}},
		{"services not JSON", "registry/r", map[string]any{"services": "crm"}, []string{"services: the text given is not valid JSON"}},
		{"bad keep mode", "config", map[string]any{"keep_credentials": "always"}, []string{"keep_credentials"}},
	}
	rememberSecrets("bad-input-pw", otherKey)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.client.Logical().Write(mount+"/"+tc.path, tc.data)
			msg := badRequest(t, err, tc.want...)
			for _, secret := range []string{"bad-input-pw", otherKey} {
				if strings.Contains(msg, secret) {
					t.Errorf("the error shows a secret: %s", msg)
				}
			}
		})
	}
	// Nothing half-written: no registry came out of the rejected writes.
	if list, err := env.client.Logical().List(mount + "/registry"); err != nil || list != nil {
		t.Errorf("rejected writes left registries: %v %v", list, err)
	}

	// What the CLI user sees for a bad write: the code and the message.
	res := vaultCLI(t, "write", mount+"/registry/r", `services=[{"name":"crm","credentials":[{"type":"magic"}]}]`)
	if res.code == 0 || !strings.Contains(res.stderr, "Code: 400") || !strings.Contains(res.stderr, `unknown type "magic"`) {
		t.Errorf("CLI: exit %d, stderr %s", res.code, res.stderr)
	}
}

func repeat(m map[string]any, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = m
	}
	return out
}

func TestNoSecretInReadsOrLists(t *testing.T) {
	mount := newMount(t)
	cert, key := testCertificate(t)
	secretValues := []string{"nosecret-pw-41", "nosecret-token-42", "nosecret-key-43", key}
	rememberSecrets(secretValues...)
	write(t, mount+"/registry/secrets", map[string]any{"services": []map[string]any{{
		"name": "all", "credentials": []map[string]any{
			{"type": "password", "username": "u", "password": secretValues[0]},
			{"type": "token", "token": secretValues[1]},
			{"type": "api_key", "key": secretValues[2]},
			{"type": "certificate", "certificate": cert, "private_key": key},
		}}}})
	var answers []string
	answers = append(answers, jsonOf(t, read(t, mount+"/registry/secrets")))
	list, err := env.client.Logical().List(mount + "/registry")
	if err != nil {
		t.Fatal(err)
	}
	answers = append(answers, jsonOf(t, list))
	answers = append(answers, mustCLI(t, "read", mount+"/registry/secrets"), mustCLI(t, "read", "-format=json", mount+"/registry/secrets"))
	for _, a := range answers {
		for _, s := range secretValues {
			if strings.Contains(a, s) {
				t.Errorf("an answer carries a secret: %.200s", a)
			}
		}
	}
	if !strings.Contains(answers[0], cert[28:60]) {
		t.Error("the certificate, which is not secret, is missing from the read")
	}
}

func TestPathHelpAndOpenAPI(t *testing.T) {
	mount := newMount(t)
	help := mustCLI(t, "path-help", mount+"/registry/orders")
	for _, want := range []string{"cas", "services", "Check-and-set", "Defaults to", "vault write pecreds/registry/orders @orders.json"} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help registry lacks %q", want)
		}
	}
	help = mustCLI(t, "path-help", mount+"/") // the overview: every path family
	for _, want := range []string{"config ", "registry/<name>", "technical/<name>/creds", "process/<id>/resolve/<svc>", "-wrap-ttl",
		"process/<id>/report", "task/mine", "task/<id>/complete-on-behalf", "notify/retry", "status "} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help of the mount lacks %q", want)
		}
	}
	help = mustCLI(t, "path-help", mount+"/config")
	for _, want := range []string{"keep_credentials", "Defaults to persistent", "error_health_mapping", "notify_secret"} {
		if !strings.Contains(help, want) {
			t.Errorf("path-help config lacks %q", want)
		}
	}

	spec, err := env.client.Logical().ReadWithData("sys/internal/specs/openapi", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := jsonOf(t, spec.Data)
	for _, op := range []string{`"pecreds-read-configuration"`, `"pecreds-configure"`, `"pecreds-write-registry"`, `"pecreds-list-registries"`} {
		if !strings.Contains(body, op) {
			t.Errorf("OpenAPI lacks operationId %s", op)
		}
	}
}

func TestRunningVersion(t *testing.T) {
	mount := newMount(t)
	m, err := env.client.Sys().GetMount(mount)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.RunningVersion, "v") || m.RunningVersion != m.PluginVersion {
		t.Errorf("running version %q, plugin version %q", m.RunningVersion, m.PluginVersion)
	}
}
