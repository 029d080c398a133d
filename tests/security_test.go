package tests

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Attack tests: for each boundary of docs/security.md's security model, the other side is hostile and the
// answer is a refusal. Each failed on main before the fail-closed rules.

// recorder is a loopback endpoint that records every request it gets: where a secret must never
// arrive, or a hostile endpoint that reflects what it was sent.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string // the Authorization header of each request
}

func startRecorder(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.auth = append(rec.auth, r.Header.Get("Authorization"))
		rec.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// reflectHeaders answers a 401 that carries the request's headers everywhere an answer can: the reason
// phrase, a non-standard error code, error_description and the body.
func reflectHeaders(w http.ResponseWriter, r *http.Request) {
	echo := r.Header.Get("Authorization") + " " + r.Header.Get("webhook-signature")
	body := fmt.Sprintf(`{"error": %q, "error_description": %q, "echo": %q}`, echo, echo, echo)
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 401 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", echo, len(body), body)
	_ = buf.Flush()
	_, _ = bufio.NewReader(conn).Peek(1)
}

func forbidden(t *testing.T, err error, want ...string) string {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("want a 403, got %v", err)
	}
	msg := strings.Join(re.Errors, "; ")
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	return msg
}

// 1. An admin may write technical credentials but not read their secrets: pointing token_url (or
// client_id) elsewhere must not send the stored client secret there.
func TestAttackAdminCannotRedirectTheClientSecret(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	srv := startTokenServer(t)
	createOAuth2(t, m, "engine", srv, "stolen")
	attacker := startRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) })

	for _, change := range []map[string]any{
		{"token_url": attacker.URL + "/token"},
		{"client_id": "attacker-client"},
		{"token_url": attacker.URL + "/token", "client_id": "stolen"},
	} {
		_, err := p.admin.Logical().Write(m+"/technical/engine", change)
		badRequest(t, err, "client_secret is required when")
	}
	if _, err := p.admin.Logical().Write(m+"/technical/engine/rotate", nil); err != nil {
		t.Fatalf("rotate after the refused writes: %v", err)
	}
	if got := attacker.requests(); len(got) != 0 {
		t.Fatalf("the attacker's endpoint got %d requests: %v", len(got), got)
	}
	// The same token_url, or a new one with its own secret, is a normal write.
	if _, err := p.admin.Logical().Write(m+"/technical/engine", map[string]any{"token_url": srv.TokenURL(), "scopes": "a,b"}); err != nil {
		t.Errorf("an unchanged token_url: %v", err)
	}
	rememberSecrets("the-admins-own-secret")
	if _, err := p.admin.Logical().Write(m+"/technical/engine", map[string]any{"token_url": attacker.URL + "/token", "client_secret": "the-admins-own-secret"}); err != nil {
		t.Errorf("a new endpoint with its own secret: %v", err)
	}
	for _, auth := range attacker.requests() {
		if strings.Contains(auth, base64.StdEncoding.EncodeToString([]byte("stolen:stolen-client-secret"))) {
			t.Errorf("the stored secret reached the new endpoint")
		}
	}
}

// 3. A token endpoint that redirects keeps neither the POST nor the Basic header: a 3xx is a
// failure naming the status, and the redirect's target gets nothing.
func TestAttackTokenEndpointRedirects(t *testing.T) {
	m := newMount(t)
	target := startRecorder(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	redirector := startRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
	})
	rememberSecrets("redirected-client-secret")
	s := write(t, m+"/technical/idp", map[string]any{"type": "oauth2", "token_url": redirector.URL + "/token", "client_id": "c", "client_secret": "redirected-client-secret"})
	if len(s.Warnings) == 0 || !strings.Contains(s.Warnings[0], "HTTP 307") || !strings.Contains(s.Warnings[0], "redirects are not followed") {
		t.Errorf("warnings %v", s.Warnings)
	}
	if got := read(t, m+"/technical/idp").Data["last_error"]; !strings.Contains(fmt.Sprint(got), "HTTP 307") {
		t.Errorf("last_error %v", got)
	}
	_, err := env.client.Logical().Write(m+"/technical/idp/rotate", nil)
	if re, ok := err.(*api.ResponseError); !ok || re.StatusCode != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "HTTP 307") {
		t.Errorf("rotate: %v", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}
}

// 3, 4. Outbound URLs: https, plain http to loopback only, no user info, query or fragment, and
// never a link-local address, whatever the URL says.
func TestAttackOutboundURLs(t *testing.T) {
	m := newMount(t)
	oauth := func(u string) error {
		_, err := env.client.Logical().Write(m+"/technical/x", map[string]any{"type": "oauth2", "token_url": u, "client_id": "c", "client_secret": "s"})
		return err
	}
	for u, want := range map[string]string{
		"http://idp.example.com/token":           "plain http is allowed only to a loopback host",
		"http://169.254.169.254/latest/token":    "names a link-local, unspecified or multicast address",
		"https://169.254.169.254/latest/token":   "names a link-local, unspecified or multicast address",
		"https://[fe80::1]/token":                "names a link-local, unspecified or multicast address",
		"https://0.0.0.0/token":                  "names a link-local, unspecified or multicast address",
		"https://id:userinfo-secret@idp/token":   "must not carry user info",
		"https://idp.example.com/t?key=q-secret": "must not carry a query",
		"https://idp.example.com/t#frag-secret":  "must not carry a fragment",
		"file:///etc/passwd":                     "must be an absolute https URL",
	} {
		msg := badRequest(t, oauth(u), `field "token_url"`, want)
		if strings.Contains(msg, "secret") || strings.Contains(msg, "example.com") {
			t.Errorf("the 400 echoes the URL: %q", msg)
		}
	}
	for u, want := range map[string]string{
		"https://tm:userinfo-secret@tasks.example.com/hook": "notify_url must not carry user info",
		"https://tasks.example.com/hook?token=q-secret":     "notify_url must not carry a query",
		"http://tasks.example.com/hook":                     "plain http is allowed only to a loopback host",
	} {
		_, err := env.client.Logical().Write(m+"/config", map[string]any{"notify_url": u, "notify_secret": webhookSecret("k")})
		badRequest(t, err, want)
	}
	// A literal address the dial guard would refuse is refused when written, and nothing is
	// stored (a host name that resolves to one is refused at dial time: outbound_test.go).
	if sec, err := env.client.Logical().Read(m + "/technical/x"); err != nil || sec != nil {
		t.Errorf("a refused write stored technical/x: %v %v", sec, err)
	}
	_, err := env.client.Logical().Write(m+"/config", map[string]any{"notify_url": "https://[ff02::1]/hook", "notify_secret": webhookSecret("k")})
	badRequest(t, err, "notify_url names a link-local, unspecified or multicast address")
}

// 6. A token endpoint and a webhook receiver that reflect the request's headers: nothing of their
// answer reaches a read, a warning, an error or the log — only the status, and a standard code.
func TestAttackReflectingEndpoints(t *testing.T) {
	m := newMount(t)
	mirror := startRecorder(t, reflectHeaders)
	const secret = "reflected-client-secret"
	basic := base64.StdEncoding.EncodeToString([]byte("c:" + secret))
	rememberSecrets(secret, basic)
	s := write(t, m+"/technical/idp", map[string]any{"type": "oauth2", "token_url": mirror.URL + "/token", "client_id": "c", "client_secret": secret})
	_, credsErr := env.client.Logical().Read(m + "/technical/idp/creds")
	_, rotateErr := env.client.Logical().Write(m+"/technical/idp/rotate", nil)
	seen := strings.Join(s.Warnings, " ") + fmt.Sprint(read(t, m+"/technical/idp").Data) + fmt.Sprint(credsErr) + fmt.Sprint(rotateErr)
	if strings.Contains(seen, basic) || strings.Contains(seen, "Basic") || !strings.Contains(seen, "HTTP 401 Unauthorized") {
		t.Errorf("what the plugin said: %s", seen)
	}
	if len(mirror.requests()) == 0 || mirror.requests()[0] != "Basic "+basic {
		t.Fatalf("the mirror was not called as a token endpoint: %v", mirror.requests())
	}

	// The webhook receiver: a reflected signature never shows in notify/status.
	write(t, m+"/config", map[string]any{"notify_url": mirror.URL + "/hook", "notify_secret": webhookSecret("reflected-notify-key")})
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	breakProcess(t, m, "p1")
	var status map[string]any
	waitFor(t, 30*time.Second, func() bool {
		status = read(t, m+"/notify/status").Data
		return status["last_error"] != ""
	})
	if got := fmt.Sprint(status["last_error"]); got != "the Task Manager answered HTTP 401 Unauthorized" {
		t.Errorf("notify last_error %q", got)
	}
}

// 5. A secret given with the wrong JSON type: the 400 names the field and the type, never the
// value (the framework's own type error would quote it, and so would the audit log).
func TestAttackSecretOfWrongTypeNotEchoed(t *testing.T) {
	m := newMount(t)
	rememberSecrets("listed-password-value", "object-notify-secret")
	for path, body := range map[string]map[string]any{
		m + "/technical/pw": {"type": "password", "username": "u", "password": []any{"listed-password-value"}},
		m + "/config":       {"notify_url": "https://tasks.example.com/hook", "notify_secret": map[string]any{"k": "object-notify-secret"}},
	} {
		_, err := env.client.Logical().Write(path, body)
		msg := badRequest(t, err, "must be a string, not")
		if strings.Contains(msg, "listed-password-value") || strings.Contains(msg, "object-notify-secret") {
			t.Errorf("%s: the 400 echoes the secret: %q", path, msg)
		}
	}
	// An update too (the existence check converts fields as well).
	write(t, m+"/technical/pw", map[string]any{"type": "password", "username": "u", "password": "p"})
	_, err := env.client.Logical().Write(m+"/technical/pw", map[string]any{"password": []any{"listed-password-value"}})
	if msg := badRequest(t, err, `password must be a string, not a list`); strings.Contains(msg, "listed-password-value") {
		t.Errorf("the 400 echoes the secret: %q", msg)
	}
}

// 2. Task completion fails closed: a task without an owner entity is completed by nobody but a
// Task Manager's complete-on-behalf; an owner entity that does not exist is refused at the start.
func TestAttackOwnerlessTaskCannotBeTaken(t *testing.T) {
	p := setupPeople(t)
	m := p.mount
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	// Started by root, which has no entity, without owner_entity_id.
	write(t, m+"/process/orphan", map[string]any{"definition": "orders", "owner": "ann", "current": userCurrent(t, "ann")})
	taskID := write(t, m+"/process/orphan/report", map[string]any{"service": "crm", "error": "auth_failed"}).Data["task_id"].(string)

	rememberSecrets("attacker-password")
	stolen := `{"type": "password", "username": "mallory", "password": "attacker-password"}`
	for who, c := range map[string]*api.Client{"bob (user policy)": p.bob, "root": env.client} {
		_, err := c.Logical().Write(m+"/task/"+taskID+"/complete", map[string]any{"credentials": stolen})
		msg := forbidden(t, err, "has no owner entity", "complete-on-behalf")
		if strings.Contains(msg, "1 error occurred") {
			t.Errorf("%s: %q", who, msg)
		}
	}
	if got := read(t, m+"/process/orphan").Data["health"]; got != "broken" {
		t.Fatalf("the process is %v after the refused completions", got)
	}
	done, err := p.taskManager.Logical().Write(m+"/task/"+taskID+"/complete-on-behalf", map[string]any{"credentials": userCurrent(t, "ann")})
	if err != nil || done.Data["status"] != "completed" || done.Data["completed_by"] == "" {
		t.Fatalf("the Task Manager completes on behalf: %v %v", done, err)
	}
	if got := read(t, m+"/process/orphan/resolve/crm").Data["username"]; got != "ann" {
		t.Errorf("resolves %v after completion", got)
	}

	_, err = p.engine.Logical().Write(m+"/process/typo", map[string]any{"definition": "orders", "owner_entity_id": "0b5e9a3c-no-such-entity"})
	badRequest(t, err, "owner_entity_id", "no identity entity")
}

// 7. Dot segments do not steer URL matching (encoded separators and double encodings are refused
// as ambiguous); a realm-less request reaches a realm's service, and
// several realms without a realm-less service ask for the realm.
func TestAttackDotSegmentsAndRealms(t *testing.T) {
	m := newMount(t)
	rememberSecrets("admin-api-password", "public-api-password")
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{
		{"name": "admin", "url": "https://api.example.com/admin", "credentials": []map[string]any{{"type": "password", "username": "root", "password": "admin-api-password"}}},
		{"name": "public", "url": "https://api.example.com/public", "credentials": []map[string]any{{"type": "password", "username": "anon", "password": "public-api-password"}}},
		{"name": "eu", "url": "https://realm.example.com/api", "realm": "EU", "credentials": []map[string]any{{"type": "api_key", "key": "eu-key"}}},
		{"name": "us", "url": "https://realm.example.com/api", "realm": "US", "credentials": []map[string]any{{"type": "api_key", "key": "us-key"}}},
		{"name": "only", "url": "https://one.example.com/api", "realm": "R", "credentials": []map[string]any{{"type": "api_key", "key": "r-key"}}},
	}})
	write(t, m+"/process/p", map[string]any{"definition": "orders"})
	resolve := func(u, realm string) (*api.Secret, error) {
		return env.client.Logical().Write(m+"/process/p/resolve", map[string]any{"url": u, "realm": realm})
	}
	for _, u := range []string{"https://api.example.com/admin/../public/x", "https://api.example.com/admin/%2E%2E/public", "https://api.example.com/x/../../public/./y"} {
		s, err := resolve(u, "")
		if err != nil || s.Data["service"] != "public" {
			t.Errorf("%s resolved %v (%v)", u, s, err)
		}
	}
	for _, u := range []string{"https://api.example.com/admin/..;/public/x", `https://api.example.com/admin\..\public`} {
		_, err := resolve(u, "")
		badRequest(t, err, "servers read in different ways")
	}
	// Separators and dot segments hidden by encoding, which a server or proxy may decode after
	// the match: refused as ambiguous, never matched (each would match "public" as written).
	for u, rule := range map[string]string{
		"https://api.example.com/public/..%2Fadmin":           "encoded slash",
		"https://api.example.com/public/..%2fadmin":           "encoded slash",
		"https://api.example.com/public/%2E%2E%2Fadmin":       "encoded slash",
		"https://api.example.com/public/..%5Cadmin":           "backslash",
		"https://api.example.com/public/%252E%252E/admin":     "double-encoded",
		"https://api.example.com/public/%252e%252e%252fadmin": "double-encoded",
	} {
		_, err := resolve(u, "")
		badRequest(t, err, "servers read in different ways", rule)
		_, err = env.client.Logical().ReadWithData(m+"/process/p/resolve", map[string][]string{"url": {u}})
		badRequest(t, err, "servers read in different ways", rule)
	}
	if s, err := resolve("https://one.example.com/api/x", ""); err != nil || s.Data["service"] != "only" {
		t.Errorf("a realm-less request to a realm's service: %v %v", s, err)
	}
	_, err := resolve("https://realm.example.com/api/x", "")
	badRequest(t, err, `"EU", "US"`, "realm")
	if s, err := resolve("https://realm.example.com/api/x", "US"); err != nil || s.Data["service"] != "us" {
		t.Errorf("with realm US: %v %v", s, err)
	}
}

// 9. A typo in a report's class is a 400 that lists the classes; the process runs on. A mapping
// key that is not built in is accepted with a warning naming it as a new class.
func TestAttackTypoDoesNotKillAProcess(t *testing.T) {
	m := newMount(t)
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}}}}})
	write(t, m+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "ann")})
	_, err := env.client.Logical().Write(m+"/process/p/report", map[string]any{"service": "crm", "error": "auth_faild"})
	badRequest(t, err, `"auth_faild" is not a known error class`, "auth_failed, credentials_expired, credentials_unavailable, forbidden, unavailable")
	if got := read(t, m+"/process/p").Data["health"]; got != "running" {
		t.Errorf("health %v after a typo", got)
	}
	s := write(t, m+"/config", map[string]any{"error_health_mapping": map[string]any{"forbiden": "broken", "quota": "running"}})
	if w := strings.Join(s.Warnings, " "); !strings.Contains(w, `"forbiden" is not a built-in error class`) || !strings.Contains(w, `"quota"`) {
		t.Errorf("warnings %v", s.Warnings)
	}
	if got := write(t, m+"/process/p/report", map[string]any{"service": "crm", "error": "quota"}).Data["action"]; got != "retry" {
		t.Errorf("a new class: %v", got)
	}
}

// 10. A failed process hands out nothing, and keeps no credentials.
func TestAttackFailedProcessResolvesNothing(t *testing.T) {
	m := newMount(t)
	write(t, m+"/registry/orders", map[string]any{"services": []map[string]any{{"name": "crm", "credentials": []map[string]any{{"type": "current"}, {"type": "api_key", "key": "fallback-key"}}}}})
	write(t, m+"/process/p", map[string]any{"definition": "orders", "current": userCurrent(t, "ann")})
	if got := write(t, m+"/process/p/report", map[string]any{"service": "crm", "error": "forbidden"}).Data["health"]; got != "failed" {
		t.Fatalf("health %v", got)
	}
	_, err := env.client.Logical().Read(m + "/process/p/resolve/crm")
	badRequest(t, err, `process "p" is failed`, "resolves nothing")
	_, err = env.client.Logical().Write(m+"/process/p/resolve", map[string]any{"url": "https://crm.example.com/x"})
	badRequest(t, err, "resolves nothing")
	if got := read(t, m+"/process/p").Data["current_credentials"]; got != "none" {
		t.Errorf("current_credentials %v after failing: not wiped", got)
	}
}

// 11, 12. Config bounds, and errors that read cleanly.
func TestConfigBoundsAndCleanErrors(t *testing.T) {
	m := newMount(t)
	for field, v := range map[string]any{"refresh_fraction": 0.01, "notify_timeout": "100000h", "process_ttl": "100000h", "process_max_ttl": "100000h"} {
		_, err := env.client.Logical().Write(m+"/config", map[string]any{field: v})
		badRequest(t, err, field)
	}
	_, err := env.client.Logical().Write(m+"/config", map[string]any{"refresh_fraction": 0.95})
	badRequest(t, err, "refresh_fraction must be between 0.5 and 0.9")
	_, err = env.client.Logical().Write(m+"/config", map[string]any{"notify_timeout": "61s"})
	badRequest(t, err, "notify_timeout must be between 1s and 1m0s")

	// Each path given its own fields (an unknown one is a 400 of its own).
	for path, body := range map[string]map[string]any{
		m + "/technical/nobody/rotate": nil,
		m + "/process/nobody/report":   {"service": "crm", "error": "auth_failed"},
		m + "/task/nobody/complete":    {"credentials": userCurrent(t, "ann")},
	} {
		_, err := env.client.Logical().Write(path, body)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 404 || len(re.Errors) != 1 || strings.Contains(re.Errors[0], "1 error occurred") || !strings.Contains(re.Errors[0], "does not exist") {
			t.Errorf("%s: %v", path, err)
		}
	}
}
