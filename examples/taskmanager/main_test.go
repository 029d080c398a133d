package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The unit tests run the service's handlers against a stand-in Vault: the boundaries that need
// no real server (the cookie, cross-origin posts, byte limits, escaping, webhooks' signatures).
// tests/taskmanager_test.go drives it in a browser against a real Vault.

const (
	fakeToken   = "hvs.fake-token-of-ann"
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	typedSecret = "typed-secret-value"
)

// fakeVault answers the few calls the service makes.
type fakeVault struct {
	mu        sync.Mutex
	completed []string // bodies of completions
	revoked   int
	processID string // what task/mine says the task is about
	tokenDead bool   // the token was revoked behind the service's back
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/auth/userpass/login/ann":
		if !strings.Contains(string(body), `"ann-login"`) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"errors":["invalid username or password"]}`)
			return
		}
		_, _ = io.WriteString(w, `{"auth":{"client_token":"`+fakeToken+`","entity_id":"ent-ann","lease_duration":3600}}`)
	case r.Header.Get("X-Vault-Token") != fakeToken || f.tokenDead:
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errors":["permission denied"]}`)
	case r.URL.Path == "/v1/pecreds/task/mine":
		info, _ := json.Marshal(map[string]any{"keys": []string{"t1"}, "key_info": map[string]any{
			"t1": map[string]any{"process_id": f.processID, "service": "crm", "reason": "auth_failed", "created": "2030-01-02T03:04:05Z"}}})
		_, _ = io.WriteString(w, `{"data":`+string(info)+`}`)
	case r.URL.Path == "/v1/pecreds/task/not-mine/complete":
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errors":["only the task's owner may complete task \"not-mine\""]}`)
	case r.URL.Path == "/v1/pecreds/task/refused/complete":
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"errors":["credentials: missing field \"username\""]}`)
	case strings.HasSuffix(r.URL.Path, "/complete"):
		f.completed = append(f.completed, string(body))
		_, _ = io.WriteString(w, `{"data":{"status":"completed"}}`)
	case r.URL.Path == "/v1/auth/token/revoke-self":
		f.revoked++
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// testApp is the service on a test server, with a stand-in Vault behind it.
func testApp(t *testing.T) (*httptest.Server, *fakeVault) {
	t.Helper()
	fv := &fakeVault{processID: "order-7"}
	vault := httptest.NewServer(fv)
	t.Cleanup(vault.Close)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(config{vaultAddr: vault.URL, mount: "pecreds", userpass: "auth/userpass", secretFile: secretFile, sessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv, fv
}

// post sends a form as a same-origin browser does, with the cookie when given.
func post(t *testing.T, srv *httptest.Server, path string, form url.Values, cookie *http.Cookie, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func page(t *testing.T, srv *httptest.Server, cookie *http.Cookie) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.AddCookie(cookie)
	_, body := do(t, req)
	return body
}

// signIn signs ann in and answers her session cookie.
func signIn(t *testing.T, srv *httptest.Server) *http.Cookie {
	t.Helper()
	resp, body := post(t, srv, "/signin", url.Values{"username": {"ann"}, "password": {"ann-login"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || strings.Contains(resp.Header.Get("Location"), "hvs.") {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func TestSessionCookieHoldsOnlyARandomID(t *testing.T) {
	srv, _ := testApp(t)
	c := signIn(t, srv)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || len(c.Value) != 43 || strings.Contains(c.Value, fakeToken) {
		t.Errorf("cookie %+v", c)
	}
	body := page(t, srv, c)
	if !strings.Contains(body, "order-7") || strings.Contains(body, fakeToken) {
		t.Errorf("the task page: %s", body)
	}
	// A wrong password: 401, and the password is not rendered back.
	resp, body := post(t, srv, "/signin", url.Values{"username": {"ann"}, "password": {typedSecret}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, typedSecret) || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong password: %d %s", resp.StatusCode, body)
	}
	// A user name that would step into another path is refused before Vault hears of it.
	if resp, _ := post(t, srv, "/signin", url.Values{"username": {"../../sys/x"}, "password": {"p"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a user name with a path: %d", resp.StatusCode)
	}
}

func TestCrossOriginPostsRefused(t *testing.T) {
	srv, fv := testApp(t)
	c := signIn(t, srv)
	form := url.Values{"kind": {"password"}, "username": {"ann"}, "password": {typedSecret}}
	for _, h := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}, {"Sec-Fetch-Site", "", "Origin", "http://evil.example"}} {
		if resp, _ := post(t, srv, "/tasks/t1/complete", form, c, h...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a post with %v: %d", h, resp.StatusCode)
		}
	}
	if resp, _ := post(t, srv, "/signout", nil, c, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site sign-out: %d", resp.StatusCode)
	}
	if len(fv.completed) != 0 || fv.revoked != 0 {
		t.Errorf("a refused post reached Vault: %v %d", fv.completed, fv.revoked)
	}
}

func TestCompleteSendsTheCredentialsAndNeverShowsThem(t *testing.T) {
	srv, fv := testApp(t)
	c := signIn(t, srv)
	resp, _ := post(t, srv, "/tasks/t1/complete", url.Values{"kind": {"password"}, "username": {"ann"}, "password": {typedSecret}}, c)
	if resp.StatusCode != http.StatusSeeOther || len(fv.completed) != 1 || !strings.Contains(fv.completed[0], typedSecret) {
		t.Fatalf("completing: %d %v", resp.StatusCode, fv.completed)
	}
	if body := page(t, srv, c); !strings.Contains(body, "Task t1 is completed") || strings.Contains(body, typedSecret) {
		t.Errorf("after completing: %s", body)
	}
	for path, want := range map[string]int{"/tasks/not-mine/complete": http.StatusForbidden, "/tasks/refused/complete": http.StatusBadRequest, "/tasks/..%2Fx/complete": http.StatusBadRequest} {
		resp, body := post(t, srv, path, url.Values{"kind": {"password"}, "username": {"ann"}, "password": {typedSecret}}, c)
		if resp.StatusCode != want || strings.Contains(body, typedSecret) || strings.Contains(body, fakeToken) {
			t.Errorf("%s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
	}
	if resp, body := post(t, srv, "/tasks/t1/complete", url.Values{"kind": {"password"}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("completing without a session: %d %s", resp.StatusCode, body)
	}
	if len(fv.completed) != 1 {
		t.Errorf("refused completions reached Vault's complete: %v", fv.completed)
	}
}

func TestInputBoundedInBytes(t *testing.T) {
	srv, fv := testApp(t)
	c := signIn(t, srv)
	huge := strings.Repeat("x", maxFormBytes+1)
	if resp, _ := post(t, srv, "/tasks/t1/complete", url.Values{"kind": {"password"}, "username": {"ann"}, "password": {huge}}, c); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a form past %d bytes: %d", maxFormBytes, resp.StatusCode)
	}
	long := strings.Repeat("x", maxSecretBytes+1)
	resp, body := post(t, srv, "/tasks/t1/complete", url.Values{"kind": {"token"}, "token": {long}}, c)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "the token is longer than 8192 bytes") || strings.Contains(body, long) {
		t.Errorf("a token past its limit: %d", resp.StatusCode)
	}
	if len(fv.completed) != 0 {
		t.Errorf("oversized input reached Vault")
	}
}

func TestOutputEscaped(t *testing.T) {
	srv, fv := testApp(t)
	fv.processID = `<script>alert(1)</script>`
	body := page(t, srv, signIn(t, srv))
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("the page: %s", body)
	}
}

func TestSignOutRevokesAndForgets(t *testing.T) {
	srv, fv := testApp(t)
	c := signIn(t, srv)
	if resp, _ := post(t, srv, "/signout", nil, c); resp.StatusCode != http.StatusSeeOther || fv.revoked != 1 {
		t.Fatalf("sign-out: %d, revoked %d", resp.StatusCode, fv.revoked)
	}
	if body := page(t, srv, c); !strings.Contains(body, `id="signin"`) {
		t.Errorf("the old session still works: %s", body)
	}
}

func TestARevokedTokenEndsTheSession(t *testing.T) {
	srv, fv := testApp(t)
	c := signIn(t, srv)
	fv.mu.Lock()
	fv.tokenDead = true
	fv.mu.Unlock()
	if body := page(t, srv, c); !strings.Contains(body, "Your sign-in has ended") || !strings.Contains(body, `id="signin"`) {
		t.Errorf("with a revoked token: %s", body)
	}
	fv.mu.Lock()
	fv.tokenDead = false
	fv.mu.Unlock()
	if body := page(t, srv, c); !strings.Contains(body, `id="signin"`) || strings.Contains(body, "order-7") {
		t.Errorf("the ended session came back: %s", body)
	}
}

func TestSignInAgainReplacesTheSession(t *testing.T) {
	srv, fv := testApp(t)
	first := signIn(t, srv)
	resp, _ := post(t, srv, "/signin", url.Values{"username": {"ann"}, "password": {"ann-login"}}, first)
	if resp.StatusCode != http.StatusSeeOther || fv.revoked != 1 {
		t.Fatalf("signing in again: %d, revoked %d", resp.StatusCode, fv.revoked)
	}
	if body := page(t, srv, first); !strings.Contains(body, `id="signin"`) {
		t.Errorf("the first session outlived the second sign-in")
	}
}

func TestCookieSecureBehindATLSProxy(t *testing.T) {
	for _, secure := range []bool{false, true} {
		rec := httptest.NewRecorder()
		newSessions(time.Hour, secure).setCookie(rec, httptest.NewRequest(http.MethodPost, "/signin", nil), "id", time.Now().Add(time.Hour))
		c := rec.Result().Cookies()
		if len(c) != 1 || c[0].Secure != secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
			t.Errorf("-secure-cookie=%v: %+v", secure, c)
		}
	}
}

// A user who signs in again and again without the cookie (a script) holds at most
// maxSessionsPerUser sessions: each sign-in past them ends that user's oldest session and revokes
// its token, so one user cannot fill the service for everyone, and no dropped session leaves a
// live token behind.
func TestSignInFloodEndsTheUsersOldestSessions(t *testing.T) {
	srv, fv := testApp(t)
	const n = 10
	for range n {
		if resp, _ := post(t, srv, "/signin", url.Values{"username": {"ann"}, "password": {"ann-login"}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", resp.StatusCode)
		}
	}
	fv.mu.Lock()
	revoked := fv.revoked
	fv.mu.Unlock()
	if revoked != n-maxSessionsPerUser {
		t.Errorf("%d tokens revoked after %d sign-ins, want %d", revoked, n, n-maxSessionsPerUser)
	}
}
