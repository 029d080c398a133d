package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/pecreds/vault-plugin-pecreds/internal/tokenserver"
)

func startTokenServer(t testing.TB) *tokenserver.Server {
	t.Helper()
	srv, err := tokenserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// createOAuth2 writes an oauth2 technical credential whose client the token server knows.
func createOAuth2(t *testing.T, mount, name string, srv *tokenserver.Server, client string) *api.Secret {
	t.Helper()
	secret := client + "-client-secret"
	srv.SetClient(client, secret)
	rememberSecrets(secret)
	return write(t, mount+"/technical/"+name, map[string]any{
		"type": "oauth2", "token_url": srv.TokenURL(), "client_id": client, "client_secret": secret, "scopes": []string{"crm.read"},
	})
}

// served is one read of technical/:name/creds.
type served struct {
	at        time.Time
	token     string
	expiresAt time.Time
	ttl       int64
}

func readCreds(t *testing.T, path string) (served, error) {
	t.Helper()
	s, err := env.client.Logical().Read(path)
	if err != nil {
		return served{}, err
	}
	out := served{at: time.Now()}
	out.token, _ = s.Data["access_token"].(string)
	exp, _ := s.Data["expires_at"].(string)
	out.expiresAt, _ = time.Parse(time.RFC3339, exp)
	if n, ok := s.Data["ttl"].(json.Number); ok {
		out.ttl, _ = n.Int64()
	}
	rememberSecrets(out.token)
	return out, nil
}

// issuedExpiry maps each token the server handed out to when it really expires.
func issuedExpiry(srv *tokenserver.Server, client string, lifetime time.Duration) map[string]time.Time {
	out := map[string]time.Time{}
	for _, is := range srv.Issues(client) {
		if is.Token != "" {
			out[is.Token] = is.At.Add(lifetime)
		}
	}
	return out
}

func TestTechnicalTokenFetchedAndRefreshedBeforeExpiry(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	const lifetime = 12 * time.Second
	srv.SetLifetime(lifetime)
	createOAuth2(t, mount, "crm", srv, "refresh")
	if n := srv.Requests("refresh"); n != 1 {
		t.Fatalf("create made %d token requests, want 1", n)
	}

	// Read every 250ms for 3 lifetimes: every token served must be unexpired, and the
	// scheduler (not the reads) must have re-created it in time.
	var reads []served
	deadline := time.Now().Add(3 * lifetime)
	for time.Now().Before(deadline) {
		r, err := readCreds(t, mount+"/technical/crm/creds")
		if err != nil {
			t.Fatalf("creds: %v", err)
		}
		reads = append(reads, r)
		time.Sleep(250 * time.Millisecond) // the point: a reader's pace, sampling three lifetimes
	}
	expiry := issuedExpiry(srv, "refresh", lifetime)
	for _, r := range reads {
		real, ok := expiry[r.token]
		if !ok {
			t.Fatalf("served a token the endpoint never issued")
		}
		if !r.at.Before(real) {
			t.Errorf("served an expired token at %s (expired %s)", r.at.Format(time.RFC3339Nano), real.Format(time.RFC3339Nano))
		}
		if r.ttl < 1 || r.ttl > int64(lifetime.Seconds()) {
			t.Errorf("ttl %d out of range", r.ttl)
		}
	}
	issues := srv.Issues("refresh")
	if len(issues) < 4 || len(issues) > 6 {
		t.Errorf("%d token requests in %s with %s lifetimes, want 4 to 6 (one at creation, then at ~0.67 of each lifetime)", len(issues), 3*lifetime, lifetime)
	}
	for i := 1; i < len(issues); i++ {
		gap := issues[i].At.Sub(issues[i-1].At)
		if gap < 6*time.Second || gap > 9*time.Second {
			t.Errorf("refresh %d came %s after the previous one, want about 0.67 × %s", i, gap, lifetime)
		}
	}

	info := read(t, mount+"/technical/crm").Data
	for _, k := range []string{"expires_at", "last_refresh", "next_refresh"} {
		if s, _ := info[k].(string); s == "" {
			t.Errorf("read lacks %s: %v", k, info)
		}
	}
}

func TestTechnicalNoDuplicateRequestsUnderConcurrentReads(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	srv.SetLifetime(4 * time.Second)
	createOAuth2(t, mount, "crm", srv, "flight")

	// Let the token expire behind a failing endpoint, then heal it slowly and read 20 at once.
	srv.FailWith(http.StatusServiceUnavailable)
	waitFor(t, 20*time.Second, func() bool { // the read fetches nothing; creds would
		exp, _ := time.Parse(time.RFC3339, fmt.Sprint(read(t, mount+"/technical/crm").Data["expires_at"]))
		return !exp.IsZero() && time.Now().After(exp)
	})
	srv.FailWith(0)
	srv.SetDelay(time.Second)
	before := srv.Requests("flight")
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	errs := make([]error, 20)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// While the endpoint's backoff runs, a read answers 503 with when to retry; a reader
			// retries, as an engine does.
			deadline := time.Now().Add(60 * time.Second)
			for {
				s, err := env.client.Logical().Read(mount + "/technical/crm/creds")
				var re *api.ResponseError
				if errors.As(err, &re) && re.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond) // the reader's retry pause, as an engine's
					continue
				}
				errs[i] = err
				if err == nil {
					tokens[i], _ = s.Data["access_token"].(string)
				}
				return
			}
		}()
	}
	wg.Wait()
	srv.SetDelay(0)
	successful := 0
	for _, is := range srv.Issues("flight")[before:] {
		if is.Token != "" {
			successful++
		}
	}
	if successful != 1 {
		t.Errorf("20 concurrent reads caused %d token requests, want 1", successful)
	}
	for i := range tokens {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Errorf("reader %d: %v (token equal to reader 0's: %v)", i, errs[i], tokens[i] == tokens[0])
		}
	}
}

func TestTechnicalOutageServesOldTokenThenFailsClearlyThenRecovers(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	const lifetime = 10 * time.Second
	srv.SetLifetime(lifetime)
	createOAuth2(t, mount, "crm", srv, "outage")
	first, err := readCreds(t, mount+"/technical/crm/creds")
	if err != nil {
		t.Fatal(err)
	}
	srv.FailWith(http.StatusServiceUnavailable)

	// Past the refresh point, before expiry: the old token, and last_error says why.
	waitFor(t, 9*time.Second, func() bool {
		le, _ := read(t, mount+"/technical/crm").Data["last_error"].(string)
		return le != ""
	})
	r, err := readCreds(t, mount+"/technical/crm/creds")
	if err != nil || r.token != first.token {
		t.Fatalf("during the outage, before expiry: %v (same token: %v)", err, r.token == first.token)
	}
	info := read(t, mount+"/technical/crm").Data
	if le, _ := info["last_error"].(string); !strings.Contains(le, "503") {
		t.Errorf("last_error %q does not name the upstream status", le)
	}
	if info["failures"] == json.Number("0") {
		t.Errorf("failures not counted: %v", info["failures"])
	}

	// After expiry: a clear error naming the credential and the upstream status, never a token.
	waitFor(t, time.Until(first.expiresAt)+30*time.Second, func() bool {
		_, err = env.client.Logical().Read(mount + "/technical/crm/creds")
		return err != nil
	})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after expiry: want a 503, got %v", err)
	}
	msg := strings.Join(re.Errors, " ")
	if !strings.Contains(msg, `"crm"`) || !strings.Contains(msg, "503") || !strings.Contains(msg, "retry") || strings.Contains(msg, first.token) {
		t.Errorf("after expiry the error is %q", msg)
	}

	// The endpoint comes back: once its backoff ends, a read gets a new token, and last_error
	// clears.
	srv.FailWith(0)
	waitFor(t, 5*time.Minute, func() bool {
		r, err = readCreds(t, mount+"/technical/crm/creds")
		return err == nil
	})
	if r.token == first.token || r.token == "" {
		t.Fatalf("after recovery: the old token, or none")
	}
	info = read(t, mount+"/technical/crm").Data
	if info["last_error"] != "" || info["failures"] != json.Number("0") {
		t.Errorf("after recovery: last_error %q, failures %v", info["last_error"], info["failures"])
	}
}

func TestTechnicalPluginReloadReusesStoredToken(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	createOAuth2(t, mount, "crm", srv, "reload")
	before, err := readCreds(t, mount+"/technical/crm/creds")
	if err != nil {
		t.Fatal(err)
	}
	// The 1.21 CLI ignores -mounts in the root namespace; -plugin reloads every mount of it,
	// which is this test's alone.
	mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitFor(t, 30*time.Second, func() bool { // the reloaded plugin answers (a read that fetches no token)
		_, err := env.client.Logical().Read(mount + "/technical/crm")
		return err == nil
	})
	after, err := readCreds(t, mount+"/technical/crm/creds")
	if err != nil {
		t.Fatal(err)
	}
	if after.token != before.token || srv.Requests("reload") != 1 {
		t.Errorf("after reload: same token %v, %d token requests in all (want 1)", after.token == before.token, srv.Requests("reload"))
	}
}

func TestTechnicalRotateUsageAndStaticTypes(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	createOAuth2(t, mount, "idp", srv, "rotate")
	waitPastMinInterval(t, mount, "idp")
	old, _ := readCreds(t, mount+"/technical/idp/creds")
	mustCLI(t, "write", "-f", mount+"/technical/idp/rotate")
	now, _ := readCreds(t, mount+"/technical/idp/creds")
	if now.token == old.token || srv.Requests("rotate") != 2 {
		t.Errorf("rotate: new token %v, %d requests", now.token != old.token, srv.Requests("rotate"))
	}

	mustCLI(t, "write", mount+"/technical/crm-service", "type=password", "username=svc-crm", "password=static-pw-77")
	rememberSecrets("static-pw-77")
	res := vaultCLI(t, "write", "-f", mount+"/technical/crm-service/rotate")
	if res.code == 0 || !strings.Contains(res.stderr, "Code: 400") || !strings.Contains(res.stderr, "static") {
		t.Errorf("rotating a static credential: exit %d %s", res.code, res.stderr)
	}
	res = vaultCLI(t, "write", "-f", mount+"/technical/nobody/rotate")
	if !strings.Contains(res.stderr, "Code: 404") {
		t.Errorf("rotating an unknown credential: %s", res.stderr)
	}
	creds := mustCLI(t, "read", "-format=json", mount+"/technical/crm-service/creds")
	if !strings.Contains(creds, "static-pw-77") || strings.Contains(creds, `"ttl"`) {
		t.Errorf("static creds: %s", creds)
	}

	// A registry naming a missing credential is warned about, and shows the dangling reference.
	res = vaultCLI(t, "write", mount+"/registry/orders", `services=[{"name":"crm","credentials":[{"type":"technical","name":"crm-service"},{"type":"technical","name":"ghost"}]}]`)
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, `"ghost" does not exist yet`) {
		t.Errorf("no warning for the missing credential: %s %s", res.stdout, res.stderr)
	}
	reg := read(t, mount+"/registry/orders").Data
	if m, _ := reg["missing_technical"].([]any); len(m) != 1 || m[0] != "ghost" {
		t.Errorf("missing_technical %v", reg["missing_technical"])
	}
	usage := read(t, mount+"/technical/crm-service/usage").Data
	if regs, _ := usage["registries"].([]any); len(regs) != 1 || regs[0] != "orders" {
		t.Errorf("usage %v", usage)
	}

	// Reads and lists never show a secret.
	for _, answer := range []string{
		jsonOf(t, read(t, mount+"/technical/idp")), jsonOf(t, read(t, mount+"/technical/crm-service")),
		mustCLI(t, "list", mount+"/technical"), mustCLI(t, "read", mount+"/technical/idp"),
	} {
		for _, secret := range []string{"rotate-client-secret", "static-pw-77", old.token, now.token} {
			if strings.Contains(answer, secret) {
				t.Errorf("a read or list shows a secret: %.300s", answer)
			}
		}
	}
}

// TestAgentRendersRefreshedToken runs the real vault agent with examples/agent and sees the
// rendered file change after a refresh.
func TestAgentRendersRefreshedToken(t *testing.T) {
	mount := newMount(t)
	srv := startTokenServer(t)
	srv.SetLifetime(12 * time.Second)
	createOAuth2(t, mount, "engine", srv, "agent")

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(rootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../examples/agent/engine-token.ctmpl")
	if err != nil {
		t.Fatal(err)
	}
	tmplPath := filepath.Join(dir, "engine-token.ctmpl")
	if err := os.WriteFile(tmplPath, []byte(strings.ReplaceAll(string(tmpl), `"pecreds/`, `"`+mount+`/`)), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("../examples/agent/agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	rendered := filepath.Join(dir, "engine-token.json")
	confText := strings.NewReplacer(
		"http://127.0.0.1:8200", env.addr,
		"bin/dev/agent-token", tokenFile,
		"examples/agent/engine-token.ctmpl", tmplPath,
		"bin/dev/engine-token.json", rendered,
	).Replace(string(conf))
	confPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(confPath, []byte(confText), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startProcess(t, filepath.Join(dir, "agent.log"), env.vaultBin, "agent", "-config="+confPath)

	var seen []string
	poll(40*time.Second, 200*time.Millisecond, func() bool {
		var v struct {
			AccessToken string `json:"access_token"`
		}
		if b, err := os.ReadFile(rendered); err == nil && json.Unmarshal(b, &v) == nil && v.AccessToken != "" {
			if len(seen) == 0 || seen[len(seen)-1] != v.AccessToken {
				seen = append(seen, v.AccessToken)
				rememberSecrets(v.AccessToken)
			}
		}
		return len(seen) >= 3
	})
	if len(seen) < 3 {
		t.Fatalf("the agent rendered %d distinct tokens in 40s with 12s lifetimes, want 3; agent log:\n%s", len(seen), agent.log())
	}
	expiry := issuedExpiry(srv, "agent", 12*time.Second)
	for _, tok := range seen {
		if _, ok := expiry[tok]; !ok {
			t.Errorf("the agent rendered a token the endpoint never issued")
		}
	}
}

// waitPastMinInterval waits until a credential's last token request is older than the minimum
// interval (2 s), before which no token request is made, whoever asks.
func waitPastMinInterval(t *testing.T, mount, name string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		at, _ := time.Parse(time.RFC3339, fmt.Sprint(read(t, mount+"/technical/"+name).Data["last_refresh"]))
		return time.Since(at) > 3*time.Second
	})
}
